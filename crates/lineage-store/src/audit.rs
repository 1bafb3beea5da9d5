//! Projection audit helpers shared by both backends: an order-independent digest of a table's
//! rows, so `check_projections` can compare a rebuilt projection with the stored one by
//! streaming both once (no sort, no temporary copy), and run the row-by-row `EXCEPT`
//! comparison only for a table whose digests differ.
//!
//! The digest is a keyed multiset hash (Clarke et al., "Incremental Multiset Hash Functions
//! and Their Application to Memory Integrity Checking", MSet-Add-Hash): each row is
//! HMAC-SHA-256'd under a key drawn fresh for every audit, and the row hashes are added
//! modulo 2^256, with the row count alongside. Someone editing the tables cannot know the key,
//! so cannot make a change that cancels out; equal multisets of rows always give equal
//! digests, so equal digests never hide a difference the `EXCEPT` comparison would report.

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;

/// One column value, typed, as both backends hand it over.
pub(crate) enum Value<'a> {
    Null,
    Integer(i64),
    Real(f64),
    Text(&'a [u8]),
    Blob(&'a [u8]),
}

/// The key of one audit; rows digested under different keys are not comparable.
pub(crate) struct AuditKey(hmac::Key);

impl AuditKey {
    pub(crate) fn generate() -> Result<AuditKey, crate::StoreError> {
        hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
            .map(AuditKey)
            .map_err(|_| crate::StoreError::Backend("cannot draw a random audit key".into()))
    }
}

/// The digest of a multiset of rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct TableDigest {
    rows: u64,
    /// Sum of the row MACs modulo 2^256, as four little-endian 64-bit limbs.
    sum: [u64; 4],
}

/// The MAC of one row under an audit's key, to be added to its table's digest (it may be
/// computed on another thread than the one that adds it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowMac([u64; 4]);

impl RowMac {
    /// The MAC of one row, its values in column order.
    pub(crate) fn of(key: &AuditKey, values: &[Value<'_>]) -> RowMac {
        let mut ctx = hmac::Context::with_key(&key.0);
        // A length-prefixed, typed encoding: distinct rows never encode alike.
        ctx.update(&(values.len() as u64).to_le_bytes());
        for v in values {
            match v {
                Value::Null => ctx.update(&[0]),
                Value::Integer(n) => {
                    ctx.update(&[1]);
                    ctx.update(&n.to_le_bytes());
                }
                Value::Real(x) => {
                    ctx.update(&[2]);
                    ctx.update(&x.to_bits().to_le_bytes());
                }
                Value::Text(t) | Value::Blob(t) => {
                    ctx.update(&[if matches!(v, Value::Text(_)) { 3 } else { 4 }]);
                    ctx.update(&(t.len() as u64).to_le_bytes());
                    ctx.update(t);
                }
            }
        }
        let tag = ctx.sign();
        let bytes = tag.as_ref();
        RowMac(std::array::from_fn(|i| {
            u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
        }))
    }
}

impl TableDigest {
    /// Adds one row, its values in column order.
    pub(crate) fn add(&mut self, key: &AuditKey, values: &[Value<'_>]) {
        self.add_mac(RowMac::of(key, values));
    }

    /// Adds one row by its MAC.
    pub(crate) fn add_mac(&mut self, mac: RowMac) {
        let mut carry = 0u64;
        for (limb, word) in self.sum.iter_mut().zip(mac.0) {
            let (s1, c1) = limb.overflowing_add(word);
            let (s2, c2) = s1.overflowing_add(carry);
            *limb = s2;
            carry = u64::from(c1) + u64::from(c2);
        }
        self.rows += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_ignores_order_and_sees_every_change() {
        let key = AuditKey::generate().unwrap();
        let rows: [&[Value<'_>]; 3] = [
            &[Value::Text(b"api"), Value::Integer(3)],
            &[Value::Text(b"web"), Value::Null],
            &[Value::Blob(b"api"), Value::Integer(3)],
        ];
        let digest = |order: &[usize]| {
            let mut d = TableDigest::default();
            for &i in order {
                d.add(&key, rows[i]);
            }
            d
        };
        assert_eq!(digest(&[0, 1, 2]), digest(&[2, 0, 1]));
        // A text and a blob of the same bytes differ; so do a missing and a duplicated row.
        assert_ne!(digest(&[0, 1]), digest(&[2, 1]));
        assert_ne!(digest(&[0, 1]), digest(&[0, 1, 1]));
        assert_ne!(digest(&[0, 1]), digest(&[0]));
    }
}
