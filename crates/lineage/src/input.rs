//! Files the user names, read through one size-limited reader.
//!
//! Only regular files are read: `/dev/zero` would be read until memory runs out (its size
//! is 0, so a size check alone passes it) and a FIFO would block forever. Standard input is
//! read by the commands that accept `-`, under the same limits. Every read stops one byte
//! past its limit, so a file that grows while it is read cannot get past it either.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::CliError;

/// Opens `path` for reading at most `limit` bytes, after checking that it is a regular file
/// no larger than `limit`.
pub fn open(path: &Path, limit: u64) -> Result<std::io::Take<File>, CliError> {
    let shown = path.display();
    let cannot =
        |e: std::io::Error| CliError::new(format!("cannot read `{shown}`: {e}"), "check the path");
    let meta = std::fs::metadata(path).map_err(cannot)?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file (a device, a FIFO or a socket)"
        };
        return Err(CliError::new(
            format!("`{shown}` is {kind}; only regular files are read"),
            "pass a file; commands that read standard input take `-`",
        ));
    }
    if meta.len() > limit {
        return Err(too_large(&shown.to_string(), Some(meta.len()), limit));
    }
    let file = File::open(path).map_err(cannot)?;
    Ok(file.take(limit + 1))
}

fn too_large(shown: &str, size: Option<u64>, limit: u64) -> CliError {
    let size = match size {
        Some(n) => format!("{n} bytes"),
        None => format!("more than {limit} bytes"),
    };
    CliError::new(
        format!("`{shown}` is {size}; the limit is {limit} bytes for this input"),
        "check that it is the file you meant",
    )
}

/// The whole of `path`, at most `limit` bytes.
pub fn read_bytes(path: &Path, limit: u64) -> Result<Vec<u8>, CliError> {
    let mut reader = open(path, limit)?;
    let mut buf = Vec::new();
    reader.read_to_end(&mut buf).map_err(|e| {
        CliError::new(
            format!("cannot read `{}`: {e}", path.display()),
            "check the path",
        )
    })?;
    if buf.len() as u64 > limit {
        return Err(too_large(&path.display().to_string(), None, limit));
    }
    Ok(buf)
}

/// The whole of `path` as UTF-8 text, at most `limit` bytes.
pub fn read_text(path: &Path, limit: u64) -> Result<String, CliError> {
    String::from_utf8(read_bytes(path, limit)?).map_err(|_| {
        CliError::new(
            format!("`{}` is not UTF-8 text", path.display()),
            "the file must be UTF-8 text",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_and_directories_are_refused_without_reading() {
        for p in ["/dev/zero", "/dev/null", "/"] {
            let e = read_bytes(Path::new(p), 1 << 20).unwrap_err();
            assert!(
                e.message.contains("only regular files"),
                "{p}: {}",
                e.message
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        // Would block forever if opened.
        let e = read_text(&fifo, 1 << 20).unwrap_err();
        assert!(e.message.contains("not a regular file"), "{}", e.message);
    }

    #[test]
    fn the_limit_is_named_and_held() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("big");
        std::fs::write(&f, vec![b'a'; 101]).unwrap();
        let e = read_text(&f, 100).unwrap_err();
        assert!(
            e.message.contains("is 101 bytes; the limit is 100 bytes"),
            "{}",
            e.message
        );
        assert_eq!(read_text(&f, 101).unwrap().len(), 101);
    }
}
