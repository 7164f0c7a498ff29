//! Pre-tokenizers: split text into the words that byte-level BPE merges within.
//!
//! The rules are the regexes of GPT-2, Llama 3 (`llama-bpe`) and SmolLM2 (`smollm`), written out
//! by hand as a scan over classified characters, so no regex engine (with look-ahead) is needed:
//!
//! ```text
//! gpt2:      's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//! llama-bpe: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}
//!            | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//! smollm:    every \p{N} on its own (HF `Digits(individual_digits)`), then gpt2 on the rest
//! ```
//!
//! Each function below returns where the regex's match starting at char `i` ends; the first
//! alternative that matches wins, as in the regex. `host/tests/tokenizer.rs` checks the splits
//! against HF `tokenizers` on tricky strings (`tests/reference/pretokenize_reference.json`).

use std::sync::OnceLock;

use crate::{Error, Result};

/// The splitting rule of a byte-level BPE vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PreTokenizer {
    /// GPT-2's regex.
    Gpt2,
    /// Every digit isolated first, then GPT-2's regex (SmolLM2, StarCoder).
    DigitsThenGpt2,
    /// Llama 3's regex (case-insensitive contractions, digits in groups of up to three).
    Llama3,
}

impl PreTokenizer {
    /// The rule for a GGUF `tokenizer.ggml.pre` name, as llama.cpp maps them.
    pub(crate) fn from_gguf_name(pre: &str) -> Result<Self> {
        match pre {
            "" | "default" | "gpt2" | "gpt-2" => Ok(Self::Gpt2),
            "smollm" | "starcoder" | "refact" => Ok(Self::DigitsThenGpt2),
            "llama3" | "llama-v3" | "llama-bpe" | "smaug-bpe" | "falcon3" | "dbrx" => {
                Ok(Self::Llama3)
            }
            other => Err(Error::Unsupported {
                format: "tokenizer",
                what: format!("pre-tokenizer `{other}`"),
            }),
        }
    }

    /// Appends the pre-tokens of `text` to `out`; their concatenation is `text`.
    pub(crate) fn split<'a>(self, text: &'a str, out: &mut Vec<&'a str>) {
        match self {
            Self::Gpt2 => split_with(text, gpt2_end, out),
            Self::Llama3 => split_with(text, llama3_end, out),
            Self::DigitsThenGpt2 => {
                let mut rest_start = 0;
                for (at, c) in text.char_indices() {
                    if c.is_numeric() {
                        split_with(&text[rest_start..at], gpt2_end, out);
                        let end = at + c.len_utf8();
                        out.push(&text[at..end]);
                        rest_start = end;
                    }
                }
                split_with(&text[rest_start..], gpt2_end, out);
            }
        }
    }
}

/// The regex character classes the rules care about; every char is exactly one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// `\p{L}`
    Letter,
    /// `\p{N}`
    Number,
    /// `\s` (Unicode `White_Space`)
    Space,
    /// Anything else: punctuation, symbols, marks, emoji.
    Other,
}

/// The `\p{L}` ranges, taken from `regex-syntax`'s Unicode tables once.
fn letter_ranges() -> &'static [(char, char)] {
    static RANGES: OnceLock<Vec<(char, char)>> = OnceLock::new();
    RANGES.get_or_init(|| {
        use regex_syntax::hir::{Class as HirClass, HirKind};
        match regex_syntax::parse(r"\p{L}").map(|hir| hir.kind().clone()) {
            Ok(HirKind::Class(HirClass::Unicode(class))) => class
                .ranges()
                .iter()
                .map(|r| (r.start(), r.end()))
                .collect(),
            // Unreachable with regex-syntax's default Unicode tables; an empty table would make
            // `is_letter` fall back to `char::is_alphabetic`.
            _ => Vec::new(),
        }
    })
}

fn is_letter(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    // \p{L} is a subset of Alphabetic, which std answers cheaply.
    if !c.is_alphabetic() {
        return false;
    }
    let ranges = letter_ranges();
    if ranges.is_empty() {
        return true;
    }
    ranges
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

fn classify(c: char) -> Class {
    if is_letter(c) {
        Class::Letter
    } else if c.is_numeric() {
        Class::Number
    } else if c.is_whitespace() {
        Class::Space
    } else {
        Class::Other
    }
}

/// A text as classified chars, indexable by char position.
struct Scan<'a> {
    text: &'a str,
    /// (byte offset, char, class) of each char.
    chars: Vec<(usize, char, Class)>,
}

impl Scan<'_> {
    fn len(&self) -> usize {
        self.chars.len()
    }

    fn char(&self, i: usize) -> Option<char> {
        self.chars.get(i).map(|&(_, c, _)| c)
    }

    fn class(&self, i: usize) -> Option<Class> {
        self.chars.get(i).map(|&(_, _, k)| k)
    }

    fn offset(&self, i: usize) -> usize {
        self.chars.get(i).map_or(self.text.len(), |&(o, _, _)| o)
    }

    /// The end of the run of `class` chars starting at `i`.
    fn run_end(&self, i: usize, class: Class) -> usize {
        let mut j = i;
        while self.class(j) == Some(class) {
            j += 1;
        }
        j
    }

    /// The length (in chars) of a contraction `'s 't 're 've 'm 'll 'd` starting at `i`.
    fn contraction(&self, i: usize, ignore_case: bool) -> Option<usize> {
        if self.char(i) != Some('\'') {
            return None;
        }
        let lower = |j: usize| {
            self.char(j).map(|c| {
                if ignore_case {
                    c.to_ascii_lowercase()
                } else {
                    c
                }
            })
        };
        match (lower(i + 1), lower(i + 2)) {
            (Some('s' | 't' | 'm' | 'd'), _) => Some(2),
            (Some('r' | 'v'), Some('e')) | (Some('l'), Some('l')) => Some(3),
            _ => None,
        }
    }

    /// `\s+(?!\S)|\s+` at a whitespace char `i`: a run of whitespace, less its last char when a
    /// non-space follows (that char then starts the next word, e.g. " world").
    fn trailing_space_end(&self, i: usize) -> usize {
        let j = self.run_end(i, Class::Space);
        if j < self.len() && j - i >= 2 {
            j - 1
        } else {
            j
        }
    }
}

fn split_with<'a>(text: &'a str, end_of: fn(&Scan, usize) -> usize, out: &mut Vec<&'a str>) {
    if text.is_empty() {
        return;
    }
    let scan = Scan {
        text,
        chars: text
            .char_indices()
            .map(|(o, c)| (o, c, classify(c)))
            .collect(),
    };
    let mut i = 0;
    while i < scan.len() {
        // Every rule consumes at least one char; `max` guards the loop regardless.
        let j = end_of(&scan, i).max(i + 1);
        out.push(&text[scan.offset(i)..scan.offset(j)]);
        i = j;
    }
}

/// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
fn gpt2_end(s: &Scan, i: usize) -> usize {
    if let Some(n) = s.contraction(i, false) {
        return i + n;
    }
    // ` ?X+` for the three non-space classes: an optional U+0020 joins the run after it.
    let start = match s.class(i + 1) {
        Some(next) if s.char(i) == Some(' ') && next != Class::Space => i + 1,
        _ => i,
    };
    match s.class(start) {
        Some(Class::Space) | None => s.trailing_space_end(i),
        Some(class) => s.run_end(start, class),
    }
}

/// Llama 3: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}
/// | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`.
fn llama3_end(s: &Scan, i: usize) -> usize {
    if let Some(n) = s.contraction(i, true) {
        return i + n;
    }
    let (c, class) = match (s.char(i), s.class(i)) {
        (Some(c), Some(k)) => (c, k),
        _ => return i + 1,
    };
    let newline = |c: Option<char>| matches!(c, Some('\r' | '\n'));
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if class == Class::Letter {
        return s.run_end(i, Class::Letter);
    }
    if class != Class::Number && !newline(Some(c)) && s.class(i + 1) == Some(Class::Letter) {
        return s.run_end(i + 1, Class::Letter);
    }
    // \p{N}{1,3}
    if class == Class::Number {
        return s.run_end(i, Class::Number).min(i + 3);
    }
    // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
    let start = if c == ' ' && s.class(i + 1) == Some(Class::Other) {
        i + 1
    } else {
        i
    };
    if s.class(start) == Some(Class::Other) {
        let mut j = s.run_end(start, Class::Other);
        while newline(s.char(j)) {
            j += 1;
        }
        return j;
    }
    // \s*[\r\n]+: the whitespace run up to and including its last line break.
    let run = s.run_end(i, Class::Space);
    if let Some(last_break) = (i..run).rev().find(|&j| newline(s.char(j))) {
        return last_break + 1;
    }
    s.trailing_space_end(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(pre: PreTokenizer, text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        pre.split(text, &mut out);
        out
    }

    #[test]
    fn gpt2_basic_rules() {
        let got = split(PreTokenizer::Gpt2, "Hello  world's 12ab!! \n x");
        assert_eq!(
            got,
            ["Hello", " ", " world", "'s", " 12", "ab", "!!", " \n", " x"]
        );
    }

    #[test]
    fn smollm_isolates_digits() {
        let got = split(PreTokenizer::DigitsThenGpt2, "a  12 b");
        assert_eq!(got, ["a", "  ", "1", "2", " b"]);
    }

    #[test]
    fn llama3_groups_digits_and_newlines() {
        let got = split(PreTokenizer::Llama3, "I'LL pay 12345\n\n ok");
        assert_eq!(got, ["I", "'LL", " pay", " ", "123", "45", "\n\n", " ok"]);
    }

    /// The splits of HF `tokenizers` (`pre_tokenize_str`) for the three rules, on tricky strings.
    #[test]
    fn matches_hf_splits() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/reference/pretokenize_reference.json"
        );
        let text = std::fs::read_to_string(path).expect("pretokenize_reference.json");
        let rows: serde_json::Value = serde_json::from_str(&text).expect("json");
        let mut failures = Vec::new();
        for row in rows.as_array().expect("rows") {
            let input = row["text"].as_str().expect("text");
            for (name, pre) in [
                ("gpt2", PreTokenizer::Gpt2),
                ("smollm", PreTokenizer::DigitsThenGpt2),
                ("llama-bpe", PreTokenizer::Llama3),
            ] {
                let want: Vec<&str> = row[name]
                    .as_array()
                    .expect("splits")
                    .iter()
                    .map(|s| s.as_str().expect("split"))
                    .collect();
                let got = split(pre, input);
                if got != want {
                    failures.push(format!(
                        "{name} {:?}:\n  got {got:?}\n  HF  {want:?}",
                        row["name"]
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn letters_follow_unicode_categories() {
        assert!(is_letter('é') && is_letter('東') && is_letter('Ж'));
        // Combining marks and Devanagari vowel signs are Alphabetic but not \p{L}.
        assert!(!is_letter('\u{301}') && !is_letter('\u{93f}'));
        assert_eq!(classify('²'), Class::Number);
        assert_eq!(classify('\u{3000}'), Class::Space);
    }
}
