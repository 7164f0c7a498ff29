//! Special and added tokens (`<|im_start|>`, `<s>`, ...) found in the text before BPE.
//!
//! Like HF `tokenizers` (Aho-Corasick, leftmost-longest), the earliest match in the text wins,
//! and among matches starting at the same byte the longest. The text between matches is
//! pre-tokenized and merged on its own, so a regex never looks across a special token.

/// A piece of the input: plain text for the model, or one special token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Segment<'a> {
    Text(&'a str),
    Special(u32),
}

/// The special tokens, bucketed by first byte, longest first within a bucket.
pub(crate) struct SpecialMatcher {
    by_first_byte: Vec<Vec<(String, u32)>>,
    count: usize,
}

impl SpecialMatcher {
    /// Empty contents are ignored (they would match everywhere).
    pub(crate) fn new(tokens: impl IntoIterator<Item = (String, u32)>) -> Self {
        let mut by_first_byte = vec![Vec::new(); 256];
        let mut count = 0;
        for (content, id) in tokens {
            if let Some(&first) = content.as_bytes().first() {
                by_first_byte[usize::from(first)].push((content, id));
                count += 1;
            }
        }
        for bucket in &mut by_first_byte {
            // Longest first; equal contents keep the lowest id.
            bucket.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        }
        Self {
            by_first_byte,
            count,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// The longest special token starting at byte `at`.
    fn match_at(&self, text: &str, at: usize) -> Option<(usize, u32)> {
        let rest = &text.as_bytes()[at..];
        let first = *rest.first()?;
        self.by_first_byte[usize::from(first)]
            .iter()
            .find(|(content, _)| rest.starts_with(content.as_bytes()))
            .map(|(content, id)| (content.len(), *id))
    }

    /// Splits `text` into plain text and special tokens, in order; empty text pieces are left
    /// out.
    pub(crate) fn split<'a>(&self, text: &'a str) -> Vec<Segment<'a>> {
        let mut out = Vec::new();
        if self.count == 0 {
            if !text.is_empty() {
                out.push(Segment::Text(text));
            }
            return out;
        }
        let mut text_start = 0;
        let mut at = 0;
        while at < text.len() {
            // A special token is valid UTF-8, so a match can only start on a char boundary.
            match self.match_at(text, at) {
                Some((len, id)) => {
                    if text_start < at {
                        out.push(Segment::Text(&text[text_start..at]));
                    }
                    out.push(Segment::Special(id));
                    at += len;
                    text_start = at;
                }
                None => at += 1,
            }
        }
        if text_start < text.len() {
            out.push(Segment::Text(&text[text_start..]));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftmost_longest() {
        let m = SpecialMatcher::new([
            ("<|im_start|>".to_string(), 1),
            ("<|im".to_string(), 7),
            ("<s>".to_string(), 9),
            (String::new(), 3),
        ]);
        assert_eq!(m.len(), 3);
        let got = m.split("a<|im_start|>b<|im_x<s>");
        assert_eq!(
            got,
            [
                Segment::Text("a"),
                Segment::Special(1),
                Segment::Text("b"),
                Segment::Special(7),
                Segment::Text("_x"),
                Segment::Special(9),
            ]
        );
        assert!(m.split("").is_empty());
        assert_eq!(m.split("é"), [Segment::Text("é")]);
    }
}
