//! The generation loop: prompt ids in, streamed text out.
//!
//! [`Generator`] owns a [`KvCache`] and remembers which ids it holds, so a follow-up prompt that
//! extends the previous one (a chat conversation, re-rendered each turn) prefills only the new
//! tokens. Each call samples until the end-of-sequence token, a stop string, `max_tokens`, a
//! full context, or the callback asks to stop; all of these are normal ends
//! ([`StopReason`]), not errors. Text goes to the callback as soon as it is complete UTF-8 and can
//! no longer turn into a stop string, so a stop string is never printed, even in part.
//!
//! On CUDA the one-token steps after the prefill replay a captured CUDA graph
//! ([`GraphDecoder`]; eager launches where none can be captured), and greedy sampling without a
//! repetition penalty picks the token on the device, so a step reads back 4 bytes, not the
//! logits.
//!
//! ```no_run
//! use std::ops::ControlFlow;
//! use nano_infer_host::generate::{GenerateConfig, Generator};
//! # fn demo(model: &nano_infer_host::Llama, tok: &nano_infer_host::tokenizer::Tokenizer)
//! #     -> nano_infer_host::Result<()> {
//! let mut generator = Generator::new(model, tok)?;
//! let prompt = tok.encode("The capital of France is", true)?;
//! let config = GenerateConfig { max_tokens: 32, ..GenerateConfig::default() };
//! let out = generator.generate(&prompt, &config, |text| {
//!     print!("{text}");
//!     ControlFlow::Continue(())
//! })?;
//! eprintln!("{:.1} tokens/s", out.stats.decode_tokens_per_sec());
//! # Ok(()) }
//! ```

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::kv_cache::KvCache;
use crate::models::{GraphDecoder, Llama};
use crate::sampler::{Sampler, SamplerConfig};
use crate::tokenizer::Tokenizer;

/// Token spellings that end a turn in common chat formats (ChatML, Llama 3, GPT-2's document
/// end). Generation stops on them as on EOS when the vocabulary has them.
const END_TOKENS: &[&str] = &[
    "<|im_end|>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "<|endoftext|>",
];

/// What to generate and when to stop.
#[derive(Clone, Debug)]
pub struct GenerateConfig {
    /// The most tokens to generate.
    pub max_tokens: usize,
    /// Stop when the text contains any of these (the stop string is not part of the output).
    pub stop: Vec<String>,
    pub sampler: SamplerConfig,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig {
            max_tokens: 256,
            stop: Vec::new(),
            sampler: SamplerConfig::default(),
        }
    }
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced an end-of-sequence (or end-of-turn) token.
    EndOfSequence,
    /// The text reached one of [`GenerateConfig::stop`].
    StopString,
    /// [`GenerateConfig::max_tokens`] tokens were generated.
    MaxTokens,
    /// The KV cache is full.
    ContextFull,
    /// The callback returned `ControlFlow::Break`.
    Cancelled,
}

/// Counts and timings of one [`Generator::generate`] call.
#[derive(Clone, Debug, Default)]
pub struct GenerationStats {
    /// Prompt tokens run through the model (those found in the cache are not counted).
    pub prompt_tokens: usize,
    /// Prompt tokens whose keys and values were reused from the previous call.
    pub reused_tokens: usize,
    /// Wall time of the prefill, up to the first logits on the host.
    pub prompt_time: Duration,
    /// Tokens sampled (the end-of-sequence token included).
    pub generated_tokens: usize,
    /// One-token forward passes run after the prefill.
    pub decode_steps: usize,
    /// Wall time of the sampling loop: those steps plus sampling and detokenizing.
    pub decode_time: Duration,
}

impl GenerationStats {
    /// Prefill throughput.
    pub fn prompt_tokens_per_sec(&self) -> f64 {
        rate(self.prompt_tokens, self.prompt_time)
    }
    /// Decode throughput (one-token steps per second).
    pub fn decode_tokens_per_sec(&self) -> f64 {
        rate(self.decode_steps, self.decode_time)
    }
}

fn rate(n: usize, t: Duration) -> f64 {
    if t.is_zero() {
        0.0
    } else {
        n as f64 / t.as_secs_f64()
    }
}

/// The result of one [`Generator::generate`] call.
#[derive(Clone, Debug)]
pub struct Generation {
    /// Every token sampled, the end-of-sequence token included.
    pub ids: Vec<u32>,
    /// The text given to the callback (without any stop string or end token).
    pub text: String,
    pub stop: StopReason,
    pub stats: GenerationStats,
}

/// Runs a [`Llama`] over a [`KvCache`] it owns, one prompt after another.
pub struct Generator<'a> {
    model: &'a Llama,
    tokenizer: &'a Tokenizer,
    cache: KvCache,
    /// The ids whose keys and values are in `cache`, in position order.
    cached: Vec<u32>,
    /// Sampling any of these ends generation.
    end_ids: Vec<u32>,
}

impl<'a> Generator<'a> {
    /// A generator with a fresh cache of [`Llama::max_seq`] positions.
    pub fn new(model: &'a Llama, tokenizer: &'a Tokenizer) -> Result<Self> {
        Ok(Self::with_cache(model, tokenizer, model.new_cache()?))
    }

    /// A generator over `cache` (which it resets), e.g. one smaller than the model's context.
    pub fn with_cache(model: &'a Llama, tokenizer: &'a Tokenizer, mut cache: KvCache) -> Self {
        let mut end_ids: Vec<u32> = END_TOKENS
            .iter()
            .filter_map(|t| tokenizer.token_id(t))
            .collect();
        end_ids.extend(tokenizer.eos_id());
        cache.reset();
        Generator {
            model,
            tokenizer,
            cache,
            cached: Vec::new(),
            end_ids,
        }
    }

    /// The cache (its length is the number of positions in use).
    pub fn cache(&self) -> &KvCache {
        &self.cache
    }

    /// Forgets the cached prompt.
    pub fn reset(&mut self) {
        self.cache.reset();
        self.cached.clear();
    }

    /// Generates a continuation of `prompt` (the whole sequence, not only its new part: a
    /// prefix already in the cache is reused), streaming text to `on_text`.
    ///
    /// Errors: an empty prompt, a prompt longer than the cache ([`Error::ContextOverflow`]), a bad
    /// sampler config, or a failure of the model; stopping for any [`StopReason`] is `Ok`.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        config: &GenerateConfig,
        mut on_text: impl FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation> {
        let mut sampler = Sampler::new(config.sampler.clone())?;
        if prompt.is_empty() {
            return Err(Error::invalid("generate", "the prompt has no tokens"));
        }
        if prompt.len() > self.max_positions() {
            return Err(Error::ContextOverflow {
                needed: prompt.len(),
                capacity: self.max_positions(),
            });
        }
        // Reuse the cached prefix, but run at least one token to get logits.
        let reuse = common_prefix(&self.cached, prompt).min(prompt.len() - 1);
        self.cache.truncate(reuse);
        self.cached.truncate(reuse);
        let mut stats = GenerationStats {
            prompt_tokens: prompt.len() - reuse,
            reused_tokens: reuse,
            ..GenerationStats::default()
        };

        let start = Instant::now();
        let new = &prompt[reuse..];
        let logits = self.step(new)?;
        stats.prompt_time = start.elapsed();

        let mut history = prompt.to_vec();
        let mut ids = Vec::new();
        let mut stream = self.tokenizer.decode_stream();
        let mut text = StopScanner::new(&config.stop);
        let max_positions = self.max_positions();
        // The device's argmax is the sampler's pick when nothing else shapes the logits.
        let on_device = config.sampler.is_greedy() && config.sampler.repetition_penalty == 1.0;
        let mut steps = Steps::new(self.model, &mut self.cache, config.max_tokens);
        let mut out = StepOutput::Logits(logits);
        let decode_start = Instant::now();
        let stop = loop {
            if ids.len() >= config.max_tokens {
                break StopReason::MaxTokens;
            }
            let next = match &out {
                StepOutput::Logits(logits) => sampler.sample(logits, &history)?,
                StepOutput::Token(id) => *id,
            };
            ids.push(next);
            history.push(next);
            if self.end_ids.contains(&next) {
                break StopReason::EndOfSequence;
            }
            if let Some(piece) = stream.push(next)? {
                let (ready, hit) = text.push(&piece);
                if on_text(ready).is_break() {
                    break StopReason::Cancelled;
                }
                if hit {
                    break StopReason::StopString;
                }
            }
            if ids.len() >= config.max_tokens {
                break StopReason::MaxTokens;
            }
            if steps.cache().len() >= max_positions {
                break StopReason::ContextFull;
            }
            out = steps.run(next, on_device)?;
            self.cached.push(next);
            stats.decode_steps += 1;
        };
        stats.decode_time = decode_start.elapsed();
        stats.generated_tokens = ids.len();
        if stop != StopReason::StopString && stop != StopReason::Cancelled {
            let tail = stream.finish().unwrap_or_default();
            let (ready, _) = text.push(&tail);
            let _ = on_text(ready);
            let _ = on_text(text.flush());
        }
        Ok(Generation {
            ids,
            text: text.into_text(),
            stop,
            stats,
        })
    }

    /// The most positions usable: the cache's capacity, within the model's RoPE table.
    fn max_positions(&self) -> usize {
        self.cache.capacity().min(self.model.max_seq())
    }

    /// Runs `ids` through the model and returns the last position's logits on the host.
    fn step(&mut self, ids: &[u32]) -> Result<Vec<f32>> {
        let logits = self.model.forward(ids, &mut self.cache)?;
        self.cached.extend_from_slice(ids);
        logits.to_vec_f32()
    }
}

/// What a one-token step hands back: the logits for the host sampler, or the token the device
/// picked.
enum StepOutput {
    Logits(Vec<f32>),
    Token(u32),
}

/// The one-token steps of one `generate` call: replayed from a CUDA graph when the model is on
/// a GPU and one can be captured, else eager.
struct Steps<'a> {
    model: &'a Llama,
    cache: &'a mut KvCache,
    graph: Option<GraphDecoder<'a>>,
    /// Capture at the first step (not before: the first token streams out at once).
    capture: bool,
}

impl<'a> Steps<'a> {
    /// Fewest decode steps for which capturing a graph pays (a capture costs about one eager
    /// step plus instantiation).
    const GRAPH_MIN_STEPS: usize = 4;

    /// Steps for up to `max_tokens` tokens.
    fn new(model: &'a Llama, cache: &'a mut KvCache, max_tokens: usize) -> Self {
        Steps {
            capture: !model.device.is_cpu() && max_tokens >= Self::GRAPH_MIN_STEPS,
            model,
            cache,
            graph: None,
        }
    }

    fn cache(&self) -> &KvCache {
        self.cache
    }

    /// Runs token `id`: the device's argmax when `on_device` (and a graph runs), else the logits.
    /// Where no graph can be captured (`Error::GraphUnavailable`; any other error surfaces again
    /// at the eager step) the steps stay eager.
    fn run(&mut self, id: u32, on_device: bool) -> Result<StepOutput> {
        if std::mem::take(&mut self.capture) {
            self.graph = GraphDecoder::new(self.model, self.cache).ok();
        }
        Ok(match &mut self.graph {
            Some(g) if on_device => StepOutput::Token(g.step_greedy(self.cache, id)?),
            Some(g) => StepOutput::Logits(g.step_logits(self.cache, id)?),
            None => StepOutput::Logits(self.model.forward(&[id], self.cache)?.to_vec_f32()?),
        })
    }
}

/// The length of the longest common prefix.
fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Accumulates streamed text and releases only what can no longer be the start of a stop
/// string.
struct StopScanner<'s> {
    stops: &'s [String],
    /// All text so far (cut before a stop string once one is found).
    text: String,
    /// Bytes of `text` already released.
    released: usize,
}

impl<'s> StopScanner<'s> {
    fn new(stops: &'s [String]) -> Self {
        StopScanner {
            stops,
            text: String::new(),
            released: 0,
        }
    }

    /// Adds `piece`; returns the text now safe to show and whether a stop string was found (the
    /// text is then cut before it and nothing more will be released).
    fn push(&mut self, piece: &str) -> (&str, bool) {
        let from = self.released;
        self.text.push_str(piece);
        // Held-back text never contains a whole stop string, so a match starts at or after
        // `released`.
        let hit = self
            .stops
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| self.text[from..].find(s.as_str()))
            .min();
        if let Some(at) = hit {
            self.text.truncate(from + at);
            self.released = self.text.len();
            return (&self.text[from..], true);
        }
        let keep = self.held_back(from);
        self.released = self.text.len() - keep;
        (&self.text[from..self.released], false)
    }

    /// Bytes at the end of `text[from..]` that are a proper prefix of some stop string.
    fn held_back(&self, from: usize) -> usize {
        let tail = &self.text[from..];
        let mut longest = 0;
        for stop in self.stops {
            for (i, _) in tail.char_indices() {
                let suffix = &tail[i..];
                if suffix.len() < stop.len() && stop.starts_with(suffix) {
                    longest = longest.max(suffix.len());
                    break; // later suffixes are shorter
                }
            }
        }
        longest
    }

    /// Releases whatever is held back (the stream ended without completing a stop string).
    fn flush(&mut self) -> &str {
        let from = self.released;
        self.released = self.text.len();
        &self.text[from..]
    }

    fn into_text(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `pieces` and returns what was released at each step and whether a stop hit.
    fn run(stops: &[&str], pieces: &[&str]) -> (Vec<String>, bool, String) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut s = StopScanner::new(&stops);
        let mut out = Vec::new();
        for p in pieces {
            let (ready, hit) = s.push(p);
            out.push(ready.to_string());
            if hit {
                return (out, true, s.into_text());
            }
        }
        out.push(s.flush().to_string());
        (out, false, s.into_text())
    }

    #[test]
    fn without_stops_text_flows_through() {
        let (out, hit, text) = run(&[], &["Hel", "lo", " world"]);
        assert_eq!(out, vec!["Hel", "lo", " world", ""]);
        assert!(!hit);
        assert_eq!(text, "Hello world");
    }

    #[test]
    fn a_stop_string_split_across_pieces_is_never_shown() {
        let (out, hit, text) = run(&["\nUser:"], &["Sure.", "\nUs", "er", ": hi"]);
        assert_eq!(out, vec!["Sure.", "", "", ""]);
        assert!(hit);
        assert_eq!(text, "Sure.");
    }

    #[test]
    fn a_false_start_is_released_once_it_diverges() {
        let (out, hit, _) = run(&["END"], &["a E", "N", "x"]);
        assert_eq!(out, vec!["a ", "", "ENx", ""]);
        assert!(!hit);
    }

    #[test]
    fn held_back_text_is_flushed_at_the_end() {
        let (out, hit, text) = run(&["END"], &["the E"]);
        assert_eq!(out, vec!["the ", "E"]);
        assert!(!hit);
        assert_eq!(text, "the E");
    }

    #[test]
    fn the_earliest_of_several_stops_wins_and_unicode_is_safe() {
        let (out, hit, text) = run(&["§§", "é!"], &["ab é!", " cd §§"]);
        assert_eq!(out, vec!["ab "]);
        assert!(hit);
        assert_eq!(text, "ab ");
    }

    #[test]
    fn common_prefixes() {
        assert_eq!(common_prefix(&[1, 2, 3], &[1, 2, 4, 5]), 2);
        assert_eq!(common_prefix(&[], &[1]), 0);
        assert_eq!(common_prefix(&[1, 2], &[1, 2]), 2);
    }
}
