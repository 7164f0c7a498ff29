//! BPE merging by rank, and the GPT-2 byte-level alphabet.
//!
//! [`MergeTable`] replays HF `tokenizers`' `Word::merge_all`: every adjacent pair that has a
//! merge goes into a min-heap keyed by (rank, position); the best pair is merged, stale entries
//! are skipped when popped, and the two pairs the merge creates are pushed. A word of n symbols
//! costs O(n log n).
//!
//! [`ByteLevel`] is the GPT-2 scheme on top: each UTF-8 byte of a pre-token is one of 256
//! printable chars (`bytes_to_unicode`), the vocabulary is spelled in those chars, so every byte
//! has a token and nothing is ever unknown.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use crate::{Error, Result};

/// A fast non-cryptographic hash (rustc's FxHash) for the vocabulary and merge maps: their keys
/// come from the model file, and building them with SipHash took most of `Tokenizer::from_spec`.
#[derive(Clone, Copy, Default)]
pub(crate) struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(word));
        }
        for &b in chunks.remainder() {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` with [`FxHasher`].
pub(crate) type FxHashMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;

/// The vocabulary: token spelling → id.
pub(crate) type Vocab = FxHashMap<String, u32>;

/// `merges[(left, right)] = (rank, merged)`; rank 0 is merged first.
pub(crate) struct MergeTable {
    merges: FxHashMap<(u32, u32), (u32, u32)>,
}

/// No neighbour, in [`Symbol::prev`]/[`Symbol::next`].
const NONE: usize = usize::MAX;

#[derive(Clone, Copy)]
struct Symbol {
    id: u32,
    prev: usize,
    next: usize,
    alive: bool,
}

impl MergeTable {
    /// Builds the table from `"left right"` lines (or already split pairs), highest priority
    /// first. Every part and every result must be in `vocab`.
    pub(crate) fn new<'m>(
        merges: impl IntoIterator<Item = (&'m str, &'m str)>,
        vocab: &Vocab,
    ) -> Result<Self> {
        let mut table = FxHashMap::default();
        let mut joined = String::new();
        for (rank, (left, right)) in merges.into_iter().enumerate() {
            let id = |s: &str| {
                vocab.get(s).copied().ok_or_else(|| {
                    Error::format(
                        "tokenizer",
                        format!("merge {rank} `{left} {right}`"),
                        format!("`{s}` is not in the vocabulary"),
                    )
                })
            };
            joined.clear();
            joined.push_str(left);
            joined.push_str(right);
            let pair = (id(left)?, id(right)?);
            let rank = u32::try_from(rank)
                .map_err(|_| Error::format("tokenizer", "merges", "more than 2^32 merges"))?;
            // A repeated pair keeps its first (best) rank, as HF does.
            table.entry(pair).or_insert((rank, id(&joined)?));
        }
        Ok(Self { merges: table })
    }

    /// Splits a `"left right"` merge line.
    pub(crate) fn split_line(line: &str) -> Result<(&str, &str)> {
        match line.split_once(' ') {
            Some((l, r)) if !l.is_empty() && !r.is_empty() && !r.contains(' ') => Ok((l, r)),
            _ => Err(Error::format(
                "tokenizer",
                "merges",
                format!("`{line}` is not two tokens separated by one space"),
            )),
        }
    }

    /// Merges `word` (initial symbol ids) and appends the result to `out`.
    pub(crate) fn merge_into(&self, word: &[u32], out: &mut Vec<u32>) {
        if word.len() < 2 {
            out.extend_from_slice(word);
            return;
        }
        let n = word.len();
        let mut syms: Vec<Symbol> = (0..n)
            .map(|i| Symbol {
                id: word[i],
                prev: if i == 0 { NONE } else { i - 1 },
                next: if i + 1 == n { NONE } else { i + 1 },
                alive: true,
            })
            .collect();
        // Reverse((rank, left position, merged id)): lowest rank first, then leftmost.
        let mut heap = BinaryHeap::with_capacity(n);
        for i in 0..n - 1 {
            if let Some(&(rank, id)) = self.merges.get(&(word[i], word[i + 1])) {
                heap.push(Reverse((rank, i, id)));
            }
        }
        while let Some(Reverse((_, pos, new_id))) = heap.pop() {
            let left = syms[pos];
            if !left.alive || left.next == NONE {
                continue;
            }
            let right = syms[left.next];
            // Stale entry: one side has been merged into something else since it was pushed.
            match self.merges.get(&(left.id, right.id)) {
                Some(&(_, id)) if id == new_id => {}
                _ => continue,
            }
            syms[left.next].alive = false;
            syms[pos].id = new_id;
            syms[pos].next = right.next;
            if right.next != NONE {
                syms[right.next].prev = pos;
            }
            if left.prev != NONE
                && let Some(&(rank, id)) = self.merges.get(&(syms[left.prev].id, new_id))
            {
                heap.push(Reverse((rank, left.prev, id)));
            }
            if right.next != NONE
                && let Some(&(rank, id)) = self.merges.get(&(new_id, syms[right.next].id))
            {
                heap.push(Reverse((rank, pos, id)));
            }
        }
        let mut i = 0;
        while i != NONE {
            out.push(syms[i].id);
            i = syms[i].next;
        }
    }
}

/// GPT-2's `bytes_to_unicode`: printable Latin-1 bytes stand for themselves, the other 68 bytes
/// are shifted to U+0100.. so that no token contains whitespace or control chars.
pub(crate) fn byte_to_char() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut shifted = 0u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        let code = if printable {
            u32::from(b)
        } else {
            shifted += 1;
            255 + shifted
        };
        table[usize::from(b)] = char::from_u32(code).unwrap_or('\0');
    }
    table
}

/// The inverse of [`byte_to_char`], for decoding, indexed by char code: the alphabet's chars
/// all lie below U+0144.
pub(crate) fn char_to_byte_table() -> [Option<u8>; 0x144] {
    let mut table = [None; 0x144];
    for (b, c) in byte_to_char().into_iter().enumerate() {
        if let Some(slot) = table.get_mut(c as usize) {
            *slot = u8::try_from(b).ok();
        }
    }
    table
}

/// Byte-level BPE: the byte → initial token table and the merges.
pub(crate) struct ByteLevel {
    /// The token id of each byte's alphabet char, `None` if the vocabulary lacks it.
    byte_ids: [Option<u32>; 256],
    byte_chars: [char; 256],
    merges: MergeTable,
    /// HF `ignore_merges` (Llama 3): a pre-token that is a whole vocabulary entry is taken as is.
    ignore_merges: bool,
}

impl ByteLevel {
    pub(crate) fn new(vocab: &Vocab, merges: MergeTable, ignore_merges: bool) -> Self {
        let byte_chars = byte_to_char();
        let byte_ids = byte_chars.map(|c| vocab.get(c.encode_utf8(&mut [0; 4]) as &str).copied());
        Self {
            byte_ids,
            byte_chars,
            merges,
            ignore_merges,
        }
    }

    /// Encodes one pre-token, appending its ids to `out`.
    pub(crate) fn encode_word(
        &self,
        word: &str,
        vocab: &Vocab,
        unk: Option<u32>,
        out: &mut Vec<u32>,
    ) -> Result<()> {
        if self.ignore_merges {
            let spelled: String = word
                .bytes()
                .map(|b| self.byte_chars[usize::from(b)])
                .collect();
            if let Some(&id) = vocab.get(&spelled) {
                out.push(id);
                return Ok(());
            }
        }
        let mut initial = Vec::with_capacity(word.len());
        for b in word.bytes() {
            match self.byte_ids[usize::from(b)].or(unk) {
                Some(id) => initial.push(id),
                None => {
                    return Err(Error::Tokenizer {
                        reason: format!(
                            "byte 0x{b:02X} has no token and there is no unknown token"
                        ),
                    });
                }
            }
        }
        self.merges.merge_into(&initial, out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabet_round_trips() {
        let table = byte_to_char();
        assert_eq!(table[usize::from(b' ')], 'Ġ');
        assert_eq!(table[usize::from(b'\n')], 'Ċ');
        assert_eq!(table[usize::from(b'a')], 'a');
        let inverse = char_to_byte_table();
        for b in 0..=255u8 {
            assert_eq!(inverse[table[usize::from(b)] as usize], Some(b), "byte {b}");
        }
        assert_eq!(inverse[usize::from(b' ')], None);
    }

    #[test]
    fn merges_by_rank_then_leftmost() {
        let vocab: Vocab = ["a", "b", "ab", "aa", "aab"]
            .iter()
            .enumerate()
            .map(|(i, s)| (s.to_string(), i as u32))
            .collect();
        // "a b" outranks "a a": in "aab" the pair at 1 merges first, then "a ab" has no merge.
        let table = MergeTable::new([("a", "b"), ("a", "a"), ("aa", "b")], &vocab).unwrap();
        let mut out = Vec::new();
        table.merge_into(&[0, 0, 1], &mut out);
        assert_eq!(out, [0, 2]);
        // Equal ranks: the leftmost "a a" wins in "aaa".
        out.clear();
        table.merge_into(&[0, 0, 0], &mut out);
        assert_eq!(out, [3, 0]);
    }
}
