//! [`GraphDecoder`]: batch-1 decoding on CUDA from one captured CUDA graph.
//!
//! A decode step launches about a dozen kernels per layer; for small models the host's launch
//! overhead, not the GPU, sets the pace. So the whole step — embedding of the token id, every
//! layer, the final norm, the LM head, greedy argmax and the position update — is captured
//! once and replayed per token with one launch. The step reads everything that changes from
//! device memory: the token id (a [`DeviceU32`] that the captured argmax overwrites with the
//! next id) and the position (the [`KvCache`]'s device-side length, which the step advances).
//! Per token the host then launches the graph and reads 4 bytes (greedy) or the logits (other
//! sampling): no allocation (the capture's buffers are reserved for the graph) and one
//! synchronisation.
//!
//! The captured step is the eager one-token step (`Llama::forward` on a CUDA cache) with the
//! token read on the device, so replays equal eager steps token for token
//! (`tests/decode_graph.rs`).
//!
//! ```no_run
//! # fn demo(model: &nano_infer_host::Llama) -> nano_infer_host::Result<()> {
//! use nano_infer_host::models::llama::GraphDecoder;
//! let mut cache = model.new_cache()?;
//! let logits = model.forward(&[1, 2, 3], &mut cache)?.to_vec_f32()?; // prefill, eager
//! let mut next = nano_infer_host::sampler::argmax(&logits);
//! let mut decoder = GraphDecoder::new(model, &mut cache)?; // Error::GraphUnavailable: stay eager
//! for _ in 0..32 {
//!     next = decoder.step_greedy(&mut cache, next)?;
//! }
//! # Ok(()) }
//! ```

use super::Llama;
use crate::backend::cuda::{CapturedGraph, CudaBackend, DeviceU32};
use crate::error::{Error, Result};
use crate::functional;
use crate::kv_cache::KvCache;
use crate::tensor::{Device, Tensor};

/// One sequence's decode steps replayed from a CUDA graph. It borrows the model; each step
/// takes the cache it was captured with (whose buffers the graph writes) and refuses any other,
/// so a replay only runs while that cache is alive and borrowed.
pub struct GraphDecoder<'a> {
    // Field order is drop order: the graph (and its reserved memory) goes first.
    graph: CapturedGraph,
    /// `[1, vocab]` f32, rewritten by every replay (in the graph's reserved memory).
    logits: Tensor,
    /// The next step's token id; the captured argmax writes the id after it.
    token: DeviceU32,
    /// The id `token` holds, when the host knows it.
    token_holds: Option<u32>,
    model: &'a Llama,
    /// [`KvCache::id`] of the cache the graph was captured with.
    cache_id: u64,
}

impl std::fmt::Debug for GraphDecoder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GraphDecoder({:?}, cache {})", self.graph, self.cache_id)
    }
}

/// The captured step: everything one token needs, reading its id from `token` and its
/// position from the cache's device-side length, ending with the argmax into `token` and the
/// position update. Returns the logits (`[1, vocab]` f32).
fn step(model: &Llama, token: &DeviceU32, cache: &KvCache) -> Result<Tensor> {
    let pos = cache.device_len().ok_or_else(|| Error::GraphUnavailable {
        reason: "the cache's device-side length is not in sync".into(),
    })?;
    let table = model
        .embed_tokens
        .table()
        .as_dense()
        .ok_or_else(|| Error::GraphUnavailable {
            reason: "the embedding table is quantized (looked up on the CPU)".into(),
        })?;
    let x = functional::embedding_at(token, table)?;
    let logits = model.layers_and_head(x, cache, true)?;
    functional::argmax_into(&logits, token)?;
    pos.add(1)?;
    Ok(logits)
}

impl<'a> GraphDecoder<'a> {
    /// Captures one decode step of `model` over `cache` (on the model's CUDA device). Returns
    /// [`Error::GraphUnavailable`] where a graph cannot be made (a CPU model, a head size the
    /// decode kernels do not take, no capture support): decode eagerly with
    /// [`Llama::forward`] then.
    pub fn new(model: &'a Llama, cache: &mut KvCache) -> Result<Self> {
        let Device::Cuda(backend) = &model.device else {
            return Err(Error::GraphUnavailable {
                reason: format!("the model is on {}", model.device),
            });
        };
        if !CudaBackend::decode_attention_supports(model.config.head_dim) {
            return Err(Error::GraphUnavailable {
                reason: format!(
                    "head_dim {} is not taken by the decode-attention kernel",
                    model.config.head_dim
                ),
            });
        }
        if cache.num_layers() != model.layers.len() || cache.dtype() != Some(model.dtype) {
            return Err(Error::invalid(
                "GraphDecoder::new",
                "the cache was not made by this model",
            ));
        }
        let token = DeviceU32::new(backend, 0)?;
        // One eager run first: loads every kernel and leaves the step's buffer sizes in the
        // allocator's cache, so the capture itself queues only kernels. It writes the cache row
        // at `len` (scratch until the cache advances) and moves the device-side length, which
        // is then set again.
        model.check_room(cache, 1)?;
        cache.sync_device_len()?;
        drop(step(model, &token, cache)?);
        cache.forget_device_len();
        cache.sync_device_len()?;
        let (graph, logits) = backend.capture(|| step(model, &token, cache))?;
        Ok(GraphDecoder {
            graph,
            logits,
            token,
            token_holds: None,
            model,
            cache_id: cache.id(),
        })
    }

    /// Runs `id` at position `cache.len()` of the graph's cache (eager prefills, resets and
    /// truncations between steps are fine) and returns the greedy next token (4 bytes read back:
    /// the step's only synchronisation).
    pub fn step_greedy(&mut self, cache: &mut KvCache, id: u32) -> Result<u32> {
        self.replay(cache, id)?;
        let next = self.token.get()?;
        self.token_holds = Some(next);
        Ok(next)
    }

    /// Runs `id` at position `cache.len()` and returns its logits (`[vocab]` f32, downloaded: one
    /// synchronisation), for sampling on the host.
    pub fn step_logits(&mut self, cache: &mut KvCache, id: u32) -> Result<Vec<f32>> {
        self.replay(cache, id)?;
        // The captured argmax wrote an id the host has not read.
        self.token_holds = None;
        self.logits.to_vec_f32()
    }

    /// Queues one replay for token `id` and commits the position.
    fn replay(&mut self, cache: &mut KvCache, id: u32) -> Result<()> {
        const OP: &str = "GraphDecoder::step";
        if cache.id() != self.cache_id {
            return Err(Error::invalid(
                OP,
                "not the cache this graph was captured with",
            ));
        }
        let vocab = self.model.config.vocab_size;
        if id as usize >= vocab {
            return Err(Error::invalid(
                OP,
                format!("token id {id} is outside the vocabulary of {vocab}"),
            ));
        }
        self.model.check_room(cache, 1)?;
        cache.sync_device_len()?;
        if self.token_holds != Some(id) {
            self.token.set(id)?;
            self.token_holds = Some(id);
        }
        if let Err(e) = self.graph.launch() {
            cache.forget_device_len();
            return Err(e);
        }
        cache.advance_on_device()
    }
}
