//! "Did you mean …?": the one way Lineage picks a suggestion for a misspelt name, so an
//! environment, a setting or a rule is suggested alike wherever it is typed.

/// The closest name by edit distance, or the one `input` is a prefix of (`prod` → `production`).
pub fn closest<'a>(input: &str, names: &[&'a str]) -> Option<&'a str> {
    if let Some(n) = names
        .iter()
        .find(|n| n.starts_with(input) && !input.is_empty())
    {
        return Some(n);
    }
    names
        .iter()
        // Transpositions count as one edit (`stgaing`); short names need a near-exact match,
        // or `qa` would "suggest" `dev`.
        .map(|n| (strsim::damerau_levenshtein(input, n), *n))
        .filter(|(d, n)| *d <= 1.max(n.len() / 3))
        .min()
        .map(|(_, n)| n)
}
