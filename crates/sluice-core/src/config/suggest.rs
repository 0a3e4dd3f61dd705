//! "Did you mean …?" suggestions for misspelled keys and names.

/// The candidate closest to `input` by edit distance, if it is close enough to
/// be a plausible typo (at most a third of the word, and at least one edit).
pub fn did_you_mean<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (input.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (levenshtein(&input.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Classic Levenshtein distance over chars.
pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys_only() {
        let keys = ["write_mode", "primary_key", "on_error", "path"];
        assert_eq!(did_you_mean("wirte_mode", keys), Some("write_mode"));
        assert_eq!(did_you_mean("primary_keys", keys), Some("primary_key"));
        assert_eq!(did_you_mean("pth", keys), Some("path"));
        assert_eq!(did_you_mean("completely_else", keys), None);
    }
}
