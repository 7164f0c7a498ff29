//! SentencePiece-style BPE (Llama 1/2, Mistral, TinyLlama): spaces become `▁`, words are
//! merged from UTF-8 chars, and a char the vocabulary lacks falls back to `<0xNN>` byte tokens.
//!
//! Two ways of choosing the next merge:
//! - [`Merging::Scores`] (GGUF `tokenizer.ggml.model = llama`): llama.cpp's `llm_tokenizer_spm`
//!   — merge the adjacent pair whose concatenation is a token with the highest score, ties to
//!   the left.
//! - [`Merging::Ranks`] (HF `tokenizer.json` with `byte_fallback`): HF's BPE over the merge list,
//!   the same loop as byte-level BPE ([`MergeTable`]).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::bpe::{MergeTable, Vocab};
use crate::{Error, Result};

/// The `▁` (U+2581) that stands for a space.
pub(crate) const SPACE: char = '\u{2581}';

/// When a segment of text gets a `▁` in front.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SpacePrefix {
    Never,
    /// Every text segment, even one that already starts with a space (llama.cpp with
    /// `add_space_prefix`, HF's legacy `Prepend("▁")` normalizer).
    Always,
    /// Every text segment that does not already start with a space (HF `Metaspace`
    /// `prepend_scheme = "always"`).
    UnlessSpace,
    /// Only a segment at the very start of the text that does not already start with a space
    /// (HF `Metaspace` `prepend_scheme = "first"`).
    First,
}

/// How the model chooses the next merge.
pub(crate) enum Merging {
    /// Per-token scores, indexed by id.
    Scores(Vec<f32>),
    Ranks(MergeTable),
}

/// A SentencePiece BPE model.
pub(crate) struct SentencePiece {
    pub(crate) prefix: SpacePrefix,
    /// HF `Metaspace(split = true)`: BPE runs separately on each `▁word`.
    pub(crate) split_words: bool,
    pub(crate) merging: Merging,
    /// The id of `<0xNN>` for each byte, when the vocabulary has it.
    byte_ids: [Option<u32>; 256],
    /// Which ids the score merge may produce (normal and user-defined tokens, not control or
    /// byte tokens).
    mergeable: Vec<bool>,
    /// HF `fuse_unk`: consecutive unknown chars become one unknown token.
    pub(crate) fuse_unk: bool,
}

impl SentencePiece {
    pub(crate) fn new(
        tokens: &[String],
        token_types: &[i32],
        vocab: &Vocab,
        merging: Merging,
    ) -> Self {
        let mut byte_ids = [None; 256];
        for (b, slot) in byte_ids.iter_mut().enumerate() {
            *slot = vocab.get(&format!("<0x{b:02X}>")).copied();
        }
        // GGUF token types: 2 unknown, 3 control, 5 unused, 6 byte are never merge results.
        let mergeable = (0..tokens.len())
            .map(|i| !matches!(token_types.get(i), Some(2 | 3 | 5 | 6)))
            .collect();
        Self {
            prefix: SpacePrefix::Always,
            split_words: false,
            merging,
            byte_ids,
            mergeable,
            fuse_unk: false,
        }
    }

    /// Encodes one segment of plain text (the text between special tokens); `at_text_start` is
    /// whether it begins the whole input.
    pub(crate) fn encode_segment(
        &self,
        text: &str,
        at_text_start: bool,
        vocab: &Vocab,
        unk: Option<u32>,
        out: &mut Vec<u32>,
    ) -> Result<()> {
        // HF looks at the text after spaces became `▁`, so a literal `▁` counts as a space.
        let starts_with_space = text.starts_with([' ', SPACE]);
        let prefix = match self.prefix {
            SpacePrefix::Never => false,
            SpacePrefix::Always => true,
            SpacePrefix::UnlessSpace => !starts_with_space,
            SpacePrefix::First => at_text_start && !starts_with_space,
        };
        let mut normalized = String::with_capacity(text.len() + 3);
        if prefix {
            normalized.push(SPACE);
        }
        normalized.extend(text.chars().map(|c| if c == ' ' { SPACE } else { c }));
        if !self.split_words {
            return self.encode_word(&normalized, vocab, unk, out);
        }
        // Split before every `▁` (HF `MergedWithNext`).
        let mut start = 0;
        for (at, c) in normalized.char_indices() {
            if c == SPACE && at > start {
                self.encode_word(&normalized[start..at], vocab, unk, out)?;
                start = at;
            }
        }
        self.encode_word(&normalized[start..], vocab, unk, out)
    }

    fn encode_word(
        &self,
        word: &str,
        vocab: &Vocab,
        unk: Option<u32>,
        out: &mut Vec<u32>,
    ) -> Result<()> {
        if word.is_empty() {
            return Ok(());
        }
        match &self.merging {
            Merging::Scores(scores) => self.merge_by_score(word, scores, vocab, unk, out),
            Merging::Ranks(table) => {
                let mut initial = Vec::with_capacity(word.len());
                let mut buf = [0u8; 4];
                for c in word.chars() {
                    if let Some(&id) = vocab.get(c.encode_utf8(&mut buf) as &str) {
                        initial.push(id);
                    } else if !self.push_bytes(c.encode_utf8(&mut buf).as_bytes(), &mut initial) {
                        let unk = unknown(unk, c)?;
                        if !(self.fuse_unk && initial.last() == Some(&unk)) {
                            initial.push(unk);
                        }
                    }
                }
                table.merge_into(&initial, out);
                Ok(())
            }
        }
    }

    /// Appends the `<0xNN>` tokens of `bytes`; false (and nothing appended) if one is missing.
    fn push_bytes(&self, bytes: &[u8], out: &mut Vec<u32>) -> bool {
        let ids: Option<Vec<u32>> = bytes
            .iter()
            .map(|&b| self.byte_ids[usize::from(b)])
            .collect();
        match ids {
            Some(ids) => {
                out.extend(ids);
                true
            }
            None => false,
        }
    }

    fn token_for(&self, piece: &str, vocab: &Vocab) -> Option<u32> {
        vocab
            .get(piece)
            .copied()
            .filter(|&id| self.mergeable.get(id as usize) == Some(&true))
    }

    /// llama.cpp's `llm_tokenizer_spm::tokenize`.
    fn merge_by_score(
        &self,
        word: &str,
        scores: &[f32],
        vocab: &Vocab,
        unk: Option<u32>,
        out: &mut Vec<u32>,
    ) -> Result<()> {
        // Symbols are byte spans of `word`, starting as one per char; `len == 0` once merged
        // into the left neighbour.
        let mut syms: Vec<Span> = word
            .char_indices()
            .map(|(start, c)| Span {
                start,
                len: c.len_utf8(),
                prev: None,
                next: None,
            })
            .collect();
        let n = syms.len();
        for (i, s) in syms.iter_mut().enumerate() {
            s.prev = i.checked_sub(1);
            s.next = (i + 1 < n).then_some(i + 1);
        }
        let mut heap = BinaryHeap::new();
        let push_pair = |heap: &mut BinaryHeap<Bigram>, syms: &[Span], left: usize| {
            let Some(right) = syms[left].next else { return };
            let (start, end) = (syms[left].start, syms[right].start + syms[right].len);
            if let Some(id) = self.token_for(&word[start..end], vocab) {
                let score = scores
                    .get(id as usize)
                    .copied()
                    .unwrap_or(f32::NEG_INFINITY);
                heap.push(Bigram {
                    score,
                    left,
                    right,
                    len: end - start,
                });
            }
        };
        for i in 0..n.saturating_sub(1) {
            push_pair(&mut heap, &syms, i);
        }
        while let Some(b) = heap.pop() {
            let (l, r) = (syms[b.left], syms[b.right]);
            if l.len == 0 || r.len == 0 || l.len + r.len != b.len {
                continue;
            }
            syms[b.left].len += r.len;
            syms[b.right].len = 0;
            syms[b.left].next = r.next;
            if let Some(next) = r.next {
                syms[next].prev = Some(b.left);
            }
            if let Some(prev) = l.prev {
                push_pair(&mut heap, &syms, prev);
            }
            push_pair(&mut heap, &syms, b.left);
        }
        let mut at = (n > 0).then_some(0);
        while let Some(i) = at {
            let piece = &word[syms[i].start..syms[i].start + syms[i].len];
            if let Some(id) = self.token_for(piece, vocab) {
                out.push(id);
            } else if !self.push_bytes(piece.as_bytes(), out) {
                out.push(unknown(unk, piece.chars().next().unwrap_or(' '))?);
            }
            at = syms[i].next;
        }
        Ok(())
    }
}

fn unknown(unk: Option<u32>, c: char) -> Result<u32> {
    unk.ok_or_else(|| Error::Tokenizer {
        reason: format!("{c:?} is not in the vocabulary, which has no byte or unknown tokens"),
    })
}

#[derive(Clone, Copy)]
struct Span {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// A candidate merge; the heap pops the highest score, then the leftmost.
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    len: usize,
}

impl Ord for Bigram {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then(other.left.cmp(&self.left))
    }
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Bigram {}
