//! A minimal, strict DER reader (ITU-T X.690 §10) for the few ASN.1 structures Sigstore needs:
//! X.509 certificates (RFC 5280), SubjectPublicKeyInfo, and RFC 3161 time-stamp tokens.
//!
//! Only definite lengths in their shortest form are accepted, because DER forbids the others
//! and a lenient reader would let two encodings of one certificate verify differently. Every
//! read is bounds-checked; malformed input is an error, never a panic.

use std::fmt;

/// Universal tags used by this crate (X.690 §8.1.2).
pub mod tag {
    pub const BOOLEAN: u8 = 0x01;
    pub const INTEGER: u8 = 0x02;
    pub const BIT_STRING: u8 = 0x03;
    pub const OCTET_STRING: u8 = 0x04;
    pub const NULL: u8 = 0x05;
    pub const OID: u8 = 0x06;
    pub const UTF8_STRING: u8 = 0x0c;
    pub const PRINTABLE_STRING: u8 = 0x13;
    pub const IA5_STRING: u8 = 0x16;
    pub const UTC_TIME: u8 = 0x17;
    pub const GENERALIZED_TIME: u8 = 0x18;
    pub const SEQUENCE: u8 = 0x30;
    pub const SET: u8 = 0x31;
}

/// A DER decoding failure, with the structure being read when it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerError(pub String);

impl fmt::Display for DerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed DER: {}", self.0)
    }
}

impl std::error::Error for DerError {}

pub type Result<T> = std::result::Result<T, DerError>;

fn err<T>(what: impl Into<String>) -> Result<T> {
    Err(DerError(what.into()))
}

/// One TLV: its tag byte, its contents, and the full encoding (tag + length + contents), the
/// latter being what signatures are computed over (e.g. `tbsCertificate`).
#[derive(Debug, Clone, Copy)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub contents: &'a [u8],
    pub raw: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// A reader over this TLV's contents, for constructed types.
    pub fn reader(&self) -> Reader<'a> {
        Reader::new(self.contents)
    }

    /// Require a specific tag.
    pub fn expect(self, tag: u8, what: &str) -> Result<Tlv<'a>> {
        if self.tag != tag {
            return err(format!(
                "{what}: expected tag 0x{tag:02x}, found 0x{:02x}",
                self.tag
            ));
        }
        Ok(self)
    }
}

/// A cursor over a sequence of TLVs.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The tag of the next TLV without consuming it.
    pub fn peek_tag(&self) -> Option<u8> {
        self.data.first().copied()
    }

    /// Read the next TLV of any tag.
    pub fn read(&mut self) -> Result<Tlv<'a>> {
        let data = self.data;
        let Some(&tag) = data.first() else {
            return err("unexpected end of data");
        };
        if tag & 0x1f == 0x1f {
            // Multi-byte tags never occur in the structures we read.
            return err("high tag numbers are not supported");
        }
        let Some(&first) = data.get(1) else {
            return err("missing length");
        };
        let (len, header) = if first < 0x80 {
            (first as usize, 2)
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 {
                return err("indefinite length is not DER");
            }
            if n > 4 {
                return err("length too large");
            }
            let Some(bytes) = data.get(2..2 + n) else {
                return err("truncated length");
            };
            if bytes[0] == 0 {
                return err("non-minimal length encoding");
            }
            let len = bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
            if len < 0x80 {
                return err("non-minimal length encoding");
            }
            (len, 2 + n)
        };
        let end = header
            .checked_add(len)
            .filter(|end| *end <= data.len())
            .ok_or_else(|| DerError("length runs past the end of the data".into()))?;
        self.data = &data[end..];
        Ok(Tlv {
            tag,
            contents: &data[header..end],
            raw: &data[..end],
        })
    }

    /// Read the next TLV and require its tag.
    pub fn expect(&mut self, tag: u8, what: &str) -> Result<Tlv<'a>> {
        self.read()?.expect(tag, what)
    }

    /// Read the next TLV only if it has `tag` (for OPTIONAL and DEFAULT fields).
    pub fn optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>> {
        if self.peek_tag() == Some(tag) {
            Ok(Some(self.read()?))
        } else {
            Ok(None)
        }
    }

    /// Require that everything has been consumed.
    pub fn finish(&self, what: &str) -> Result<()> {
        if self.data.is_empty() {
            Ok(())
        } else {
            err(format!("{what}: trailing data"))
        }
    }
}

/// Parse exactly one TLV spanning all of `data`.
pub fn parse_single<'a>(data: &'a [u8], tag: u8, what: &str) -> Result<Tlv<'a>> {
    let mut r = Reader::new(data);
    let tlv = r.expect(tag, what)?;
    r.finish(what)?;
    Ok(tlv)
}

/// Render an OBJECT IDENTIFIER's contents in dotted form (X.690 §8.19).
pub fn oid_to_string(contents: &[u8]) -> Result<String> {
    if contents.is_empty() {
        return err("empty OID");
    }
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    let mut in_arc = false;
    for &b in contents {
        if !in_arc && b == 0x80 {
            return err("non-minimal OID arc");
        }
        if value > (u64::MAX >> 7) {
            return err("OID arc too large");
        }
        value = (value << 7) | u64::from(b & 0x7f);
        in_arc = true;
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let (first, second) = match value {
                    0..=39 => (0, value),
                    40..=79 => (1, value - 40),
                    _ => (2, value - 80),
                };
                arcs.push(first);
                arcs.push(second);
            } else {
                arcs.push(value);
            }
            value = 0;
            in_arc = false;
        }
    }
    if in_arc {
        return err("truncated OID");
    }
    Ok(arcs
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join("."))
}

/// Read an OID TLV and return it dotted.
pub fn read_oid(r: &mut Reader<'_>, what: &str) -> Result<String> {
    let tlv = r.expect(tag::OID, what)?;
    oid_to_string(tlv.contents)
}

/// The contents of a BIT STRING with zero unused bits (all keys and signatures we read).
pub fn bit_string_bytes<'a>(tlv: &Tlv<'a>) -> Result<&'a [u8]> {
    match tlv.contents.split_first() {
        Some((0, rest)) => Ok(rest),
        Some(_) => err("BIT STRING with unused bits"),
        None => err("empty BIT STRING"),
    }
}

/// Parse a UTCTime or GeneralizedTime in the forms RFC 5280 §4.1.2.5 allows
/// (`YYMMDDHHMMSSZ`, `YYYYMMDDHHMMSS[.fff]Z`) into Unix seconds. RFC 3161 `genTime` may carry
/// fractional seconds; they are dropped, since every comparison here is at second precision.
pub fn parse_time(tlv: &Tlv<'_>) -> Result<time::OffsetDateTime> {
    let s = std::str::from_utf8(tlv.contents).map_err(|_| DerError("time is not ASCII".into()))?;
    let (year, rest) = match tlv.tag {
        tag::UTC_TIME => {
            let yy: i32 = digits(s.get(0..2))?;
            // RFC 5280 §4.1.2.5.1: YY >= 50 means 19YY, otherwise 20YY.
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &s[2..])
        }
        tag::GENERALIZED_TIME => (digits(s.get(0..4))?, s.get(4..).unwrap_or("")),
        other => return err(format!("expected a time, found tag 0x{other:02x}")),
    };
    let month: u8 = digits(rest.get(0..2))?;
    let day: u8 = digits(rest.get(2..4))?;
    let hour: u8 = digits(rest.get(4..6))?;
    let minute: u8 = digits(rest.get(6..8))?;
    let second: u8 = digits(rest.get(8..10))?;
    let tail = rest.get(10..).unwrap_or("");
    let tail = match tail.strip_prefix('.') {
        Some(frac) => {
            let digits_len = frac.bytes().take_while(u8::is_ascii_digit).count();
            if digits_len == 0 {
                return err("empty fractional seconds");
            }
            &frac[digits_len..]
        }
        None => tail,
    };
    if tail != "Z" {
        return err("time must end in Z");
    }
    let month = time::Month::try_from(month).map_err(|_| DerError("bad month".into()))?;
    let date = time::Date::from_calendar_date(year, month, day)
        .map_err(|_| DerError("bad date".into()))?;
    let t = time::Time::from_hms(hour, minute, second).map_err(|_| DerError("bad time".into()))?;
    Ok(time::PrimitiveDateTime::new(date, t).assume_utc())
}

fn digits<T: std::str::FromStr>(s: Option<&str>) -> Result<T> {
    match s {
        Some(s) if s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().map_err(|_| DerError("bad number in time".into()))
        }
        _ => err("bad digits in time"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nested_sequence_and_rejects_trailing_data() {
        let data = [0x30, 0x03, 0x02, 0x01, 0x05];
        let seq = parse_single(&data, tag::SEQUENCE, "seq").unwrap();
        let mut r = seq.reader();
        let int = r.expect(tag::INTEGER, "int").unwrap();
        assert_eq!(int.contents, &[5]);
        r.finish("seq").unwrap();
        assert!(parse_single(&[0x30, 0x00, 0x00], tag::SEQUENCE, "seq").is_err());
    }

    #[test]
    fn rejects_truncated_and_non_minimal_lengths() {
        assert!(Reader::new(&[0x30, 0x05, 0x00]).read().is_err());
        assert!(Reader::new(&[0x04, 0x81, 0x01, 0x00]).read().is_err());
        assert!(Reader::new(&[0x04, 0x80]).read().is_err());
    }

    #[test]
    fn oids_render_dotted() {
        // 1.2.840.10045.4.3.2 (ecdsa-with-SHA256)
        let oid = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
        assert_eq!(oid_to_string(&oid).unwrap(), "1.2.840.10045.4.3.2");
        // 1.3.6.1.4.1.57264.1.8 (Fulcio issuer v2)
        let oid = [0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xbf, 0x30, 0x01, 0x08];
        assert_eq!(oid_to_string(&oid).unwrap(), "1.3.6.1.4.1.57264.1.8");
    }

    #[test]
    fn times_parse_both_forms() {
        let utc = Tlv {
            tag: tag::UTC_TIME,
            contents: b"221212184818Z",
            raw: &[],
        };
        assert_eq!(parse_time(&utc).unwrap().unix_timestamp(), 1670870898);
        let gen = Tlv {
            tag: tag::GENERALIZED_TIME,
            contents: b"20221212184818.123Z",
            raw: &[],
        };
        assert_eq!(parse_time(&gen).unwrap().unix_timestamp(), 1670870898);
        let bad = Tlv {
            tag: tag::GENERALIZED_TIME,
            contents: b"20221312184818Z",
            raw: &[],
        };
        assert!(parse_time(&bad).is_err());
    }
}
