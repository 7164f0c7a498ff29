//! Token ids back to text: the bytes of every token, worked out once, and an incremental decoder
//! that holds back a UTF-8 character until all of its bytes have arrived.
//!
//! Invalid UTF-8 (a model can emit any byte tokens) becomes U+FFFD exactly as
//! `String::from_utf8_lossy` would place it, so streaming and [`Tokenizer::decode`] agree.

use super::bpe::char_to_byte_table;
use super::sentencepiece::SPACE;
use super::{Tokenizer, TokenizerKind};
use crate::Result;

/// The bytes each token decodes to, by id.
pub(crate) fn token_bytes(kind: TokenizerKind, tokens: &[String], types: &[i32]) -> Vec<Box<[u8]>> {
    let alphabet = char_to_byte_table();
    tokens
        .iter()
        .enumerate()
        .map(|(id, token)| {
            let ty = types.get(id).copied();
            match kind {
                // Control and user-defined tokens are written as they are spelled.
                TokenizerKind::ByteLevelBpe if matches!(ty, Some(3 | 4)) => {
                    token.as_bytes().to_vec().into_boxed_slice()
                }
                TokenizerKind::ByteLevelBpe => {
                    let mut bytes = Vec::with_capacity(token.len());
                    for c in token.chars() {
                        match alphabet.get(c as usize).copied().flatten() {
                            Some(b) => bytes.push(b),
                            // Not in the byte alphabet: keep the char itself.
                            None => bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                        }
                    }
                    bytes.into_boxed_slice()
                }
                TokenizerKind::SentencePiece => match byte_token(token) {
                    Some(b) => vec![b].into_boxed_slice(),
                    _ => token.replace(SPACE, " ").into_bytes().into_boxed_slice(),
                },
            }
        })
        .collect()
}

/// `<0xNN>` → `NN`.
fn byte_token(token: &str) -> Option<u8> {
    let hex = token.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// Moves the complete part of `pending` into a string, with U+FFFD for invalid sequences; an
/// incomplete character at the end stays in `pending` unless `flush`.
fn drain_utf8(pending: &mut Vec<u8>, flush: bool) -> String {
    let mut out = String::new();
    let mut at = 0;
    while at < pending.len() {
        match std::str::from_utf8(&pending[at..]) {
            Ok(s) => {
                out.push_str(s);
                at = pending.len();
            }
            Err(e) => {
                let valid = e.valid_up_to();
                if let Ok(s) = std::str::from_utf8(&pending[at..at + valid]) {
                    out.push_str(s);
                }
                match e.error_len() {
                    Some(bad) => {
                        out.push(char::REPLACEMENT_CHARACTER);
                        at += valid + bad;
                    }
                    None if flush => {
                        out.push(char::REPLACEMENT_CHARACTER);
                        at = pending.len();
                    }
                    None => {
                        at += valid;
                        break;
                    }
                }
            }
        }
    }
    pending.drain(..at);
    out
}

/// Decodes a whole sequence (see [`Tokenizer::decode`]).
pub(crate) fn decode(tok: &Tokenizer, ids: &[u32]) -> Result<String> {
    let mut bytes = Vec::new();
    for &id in ids {
        bytes.extend_from_slice(tok.piece(id)?);
    }
    if tok.strip_leading_space && bytes.first() == Some(&b' ') {
        bytes.remove(0);
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Incremental decoding for streaming generation: [`push`](Self::push) one id at a time and
/// print what comes back. The concatenation of all outputs plus [`finish`](Self::finish) equals
/// [`Tokenizer::decode`] of all the ids.
///
/// ```no_run
/// # fn demo(tok: &nano_infer_host::tokenizer::Tokenizer, ids: &[u32]) -> nano_infer_host::Result<()> {
/// let mut stream = tok.decode_stream();
/// for &id in ids {
///     if let Some(text) = stream.push(id)? {
///         print!("{text}");
///     }
/// }
/// print!("{}", stream.finish().unwrap_or_default());
/// # Ok(()) }
/// ```
pub struct DecodeStream<'t> {
    tok: &'t Tokenizer,
    /// Bytes of a character whose remaining bytes have not arrived yet.
    pending: Vec<u8>,
    /// Whether no byte has been produced yet (for the SentencePiece leading-space strip).
    at_start: bool,
}

impl<'t> DecodeStream<'t> {
    pub(crate) fn new(tok: &'t Tokenizer) -> Self {
        Self {
            tok,
            pending: Vec::new(),
            at_start: true,
        }
    }

    /// Adds one token; returns the text that is now complete, if any. An unknown id is an error
    /// and leaves the stream as it was.
    pub fn push(&mut self, id: u32) -> Result<Option<String>> {
        let mut bytes = self.tok.piece(id)?;
        if self.at_start && !bytes.is_empty() {
            if self.tok.strip_leading_space && bytes[0] == b' ' {
                bytes = &bytes[1..];
            }
            self.at_start = false;
        }
        self.pending.extend_from_slice(bytes);
        let text = drain_utf8(&mut self.pending, false);
        Ok((!text.is_empty()).then_some(text))
    }

    /// Ends the stream: the bytes of an unfinished character come out as U+FFFD.
    pub fn finish(&mut self) -> Option<String> {
        let text = drain_utf8(&mut self.pending, true);
        (!text.is_empty()).then_some(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_matches_lossy() {
        let cases: [&[u8]; 5] = [
            "é日本🍕".as_bytes(),
            b"ab\xE6\x97",
            b"\xE6\x97x\xFFy",
            b"\xF0\x9F\x8D",
            b"\xC3",
        ];
        for bytes in cases {
            // Feed one byte at a time, as the worst-case token split.
            let mut pending = Vec::new();
            let mut got = String::new();
            for &b in bytes {
                pending.push(b);
                got.push_str(&drain_utf8(&mut pending, false));
            }
            got.push_str(&drain_utf8(&mut pending, true));
            assert_eq!(got, String::from_utf8_lossy(bytes), "bytes {bytes:?}");
        }
    }

    #[test]
    fn byte_tokens() {
        assert_eq!(byte_token("<0x0A>"), Some(10));
        assert_eq!(byte_token("<0xff>"), Some(255));
        assert_eq!(byte_token("<0x1>"), None);
        assert_eq!(byte_token("0x41"), None);
    }
}
