//! Bearer tokens on the server: what a token may do is decided in `lineage_core::tokens`;
//! this module only reads the `Authorization` header.

pub use lineage_core::tokens::*;

/// The bearer token of an `Authorization` header value, if it is one.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, rest) = header.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_reads_the_header() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
    }
}
