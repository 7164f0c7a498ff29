//! [`Sampler`]: picks the next token from a row of logits.
//!
//! The filters run in Hugging Face's order — repetition penalty, temperature, top-k, top-p,
//! min-p — then one token is drawn from what is left. Temperature 0 means greedy (argmax after
//! the repetition penalty), which is what the end-to-end tests and the reference comparisons
//! use. Randomness comes from a small seeded generator ([`SplitMix64`]) so a seed reproduces a
//! run exactly, on every platform, with no dependency.

use crate::error::{Error, Result};

/// How to choose tokens. [`SamplerConfig::default`] is greedy with every filter off.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerConfig {
    /// Softmax temperature; 0 picks the argmax.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens (0 = off).
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability sums to at least `top_p`
    /// (1 = off). Must lie in (0, 1].
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely one (0 = off). In [0, 1].
    pub min_p: f32,
    /// HF's repetition penalty on every token already seen (1 = off): a positive logit is divided
    /// by it, a negative one multiplied. Must be positive.
    pub repetition_penalty: f32,
    /// Seed of the random generator.
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            seed: 0,
        }
    }
}

impl SamplerConfig {
    /// Errors with [`Error::InvalidArgument`] on a setting outside its range.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::invalid("sampler", reason));
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad(format!(
                "temperature must be finite and >= 0, got {}",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top_p must lie in (0, 1], got {}", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad(format!("min_p must lie in [0, 1], got {}", self.min_p));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return bad(format!(
                "repetition_penalty must be finite and > 0, got {}",
                self.repetition_penalty
            ));
        }
        Ok(())
    }

    /// Whether this config always picks the argmax.
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0 || self.top_k == 1
    }
}

/// Steele, Lea and Flood's SplitMix64: tiny, fast, and good enough to draw tokens.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A validated [`SamplerConfig`] and its random state.
#[derive(Clone, Debug)]
pub struct Sampler {
    config: SamplerConfig,
    rng: SplitMix64,
}

impl Sampler {
    /// Checks the config and seeds the generator.
    pub fn new(config: SamplerConfig) -> Result<Sampler> {
        config.validate()?;
        let rng = SplitMix64::new(config.seed);
        Ok(Sampler { config, rng })
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.config
    }

    /// The next token for `logits` (`[vocab]`), given the ids seen so far (prompt and output)
    /// for the repetition penalty.
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> Result<u32> {
        if logits.is_empty() {
            return Err(Error::invalid("sampler", "empty logits"));
        }
        if let Some(i) = logits.iter().position(|x| x.is_nan()) {
            return Err(Error::invalid(
                "sampler",
                format!("logit {i} is NaN (the model produced invalid values)"),
            ));
        }
        let mut logits = logits.to_vec();
        apply_repetition_penalty(&mut logits, history, self.config.repetition_penalty);
        if self.config.is_greedy() {
            return Ok(argmax(&logits));
        }
        let candidates = self.filter(&logits);
        Ok(self.draw(&candidates))
    }

    /// The tokens that survive temperature, top-k, top-p and min-p, as `(id, probability)` sorted
    /// by falling probability; probabilities are not renormalised.
    pub fn filter(&self, logits: &[f32]) -> Vec<(u32, f32)> {
        let c = &self.config;
        let inv_t = 1.0 / c.temperature.max(f32::MIN_POSITIVE);
        let mut ids: Vec<u32> = (0..logits.len() as u32).collect();
        // Stable sort with ties broken by id, so equal logits never depend on sort internals.
        ids.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
        if c.top_k > 0 {
            ids.truncate(c.top_k);
        }
        // Softmax over the survivors of top-k (those past it have probability 0 after HF's
        // top-k warper anyway), in f64 so that long tails sum accurately.
        // Subtract the max before scaling, so a tiny temperature gives exp(-inf) = 0, not NaN.
        let max = f64::from(logits[ids[0] as usize]);
        let weights: Vec<f64> = ids
            .iter()
            .map(|&i| ((f64::from(logits[i as usize]) - max) * f64::from(inv_t)).exp())
            .collect();
        let total: f64 = weights.iter().sum();
        let mut keep = ids.len();
        if c.top_p < 1.0 {
            let mut cum = 0.0;
            for (n, w) in weights.iter().enumerate() {
                cum += w / total;
                if cum >= f64::from(c.top_p) {
                    keep = n + 1;
                    break;
                }
            }
        }
        if c.min_p > 0.0 {
            // weights[0] is the largest, exp(0) = 1: the threshold is min_p times it.
            let threshold = f64::from(c.min_p) * weights[0];
            keep = keep.min(weights.iter().take_while(|&&w| w >= threshold).count());
        }
        ids.iter()
            .zip(&weights)
            .take(keep.max(1))
            .map(|(&id, &w)| (id, (w / total) as f32))
            .collect()
    }

    /// Draws one id from `candidates` in proportion to their probabilities.
    fn draw(&mut self, candidates: &[(u32, f32)]) -> u32 {
        let total: f64 = candidates.iter().map(|&(_, p)| f64::from(p)).sum();
        let mut r = self.rng.next_f64() * total;
        for &(id, p) in candidates {
            r -= f64::from(p);
            if r < 0.0 {
                return id;
            }
        }
        // Rounding left a sliver past the last candidate.
        candidates[candidates.len() - 1].0
    }
}

/// The index of the largest value (the first one on ties).
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best as u32
}

/// HF's `RepetitionPenaltyLogitsProcessor`: every id in `history` (each once) has its logit
/// divided by `penalty` when positive and multiplied by it when negative.
pub fn apply_repetition_penalty(logits: &mut [f32], history: &[u32], penalty: f32) {
    if penalty == 1.0 {
        return;
    }
    let mut seen = vec![false; logits.len()];
    for &id in history {
        let i = id as usize;
        if i < logits.len() && !seen[i] {
            seen[i] = true;
            let l = logits[i];
            logits[i] = if l > 0.0 { l / penalty } else { l * penalty };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampler(config: SamplerConfig) -> Sampler {
        Sampler::new(config).unwrap()
    }

    fn random(temperature: f32) -> SamplerConfig {
        SamplerConfig {
            temperature,
            ..SamplerConfig::default()
        }
    }

    /// Logits whose softmax at temperature 1 is exactly `probs`.
    fn logits_of(probs: &[f32]) -> Vec<f32> {
        probs.iter().map(|p| p.ln()).collect()
    }

    fn ids(c: &[(u32, f32)]) -> Vec<u32> {
        c.iter().map(|&(id, _)| id).collect()
    }

    #[test]
    fn greedy_picks_the_argmax() {
        let mut s = sampler(SamplerConfig::default());
        assert_eq!(s.sample(&[0.1, 3.0, -2.0, 2.9], &[]).unwrap(), 1);
        assert_eq!(s.sample(&[5.0, 5.0, 1.0], &[]).unwrap(), 0, "ties: first");
    }

    #[test]
    fn top_k_one_is_greedy() {
        let logits = [0.3, 0.1, 2.5, 2.4, -1.0];
        let config = SamplerConfig {
            temperature: 1.5,
            top_k: 1,
            seed: 7,
            ..SamplerConfig::default()
        };
        let mut s = sampler(config);
        for _ in 0..20 {
            assert_eq!(s.sample(&logits, &[]).unwrap(), 2);
        }
    }

    #[test]
    fn top_k_keeps_the_k_best() {
        let s = sampler(SamplerConfig {
            top_k: 2,
            ..random(1.0)
        });
        assert_eq!(ids(&s.filter(&[0.0, 3.0, 1.0, 2.0])), vec![1, 3]);
    }

    #[test]
    fn top_p_keeps_the_smallest_set_reaching_p() {
        let logits = logits_of(&[0.1, 0.5, 0.3, 0.1]);
        let keep = |p: f32| {
            let s = sampler(SamplerConfig {
                top_p: p,
                ..random(1.0)
            });
            ids(&s.filter(&logits))
        };
        assert_eq!(keep(0.5), vec![1], "0.5 alone reaches 0.5");
        assert_eq!(keep(0.6), vec![1, 2]);
        assert_eq!(keep(0.79), vec![1, 2], "0.5 + 0.3 reaches 0.79");
        assert_eq!(keep(0.81).len(), 3, "0.81 needs a third token");
        assert_eq!(keep(1.0).len(), 4);
        assert_eq!(keep(0.01), vec![1], "at least one token survives");
    }

    #[test]
    fn min_p_drops_tokens_below_a_fraction_of_the_best() {
        let logits = logits_of(&[0.05, 0.5, 0.3, 0.15]);
        let s = sampler(SamplerConfig {
            min_p: 0.25,
            ..random(1.0)
        });
        // Threshold 0.25 * 0.5 = 0.125: 0.15 stays, 0.05 goes.
        assert_eq!(ids(&s.filter(&logits)), vec![1, 2, 3]);
        let s = sampler(SamplerConfig {
            min_p: 1.0,
            ..random(1.0)
        });
        assert_eq!(ids(&s.filter(&logits)), vec![1]);
    }

    #[test]
    fn temperature_sharpens_and_flattens() {
        let logits = [1.0, 2.0];
        let p_best = |t: f32| sampler(random(t)).filter(&logits)[0].1;
        assert!(p_best(0.5) > p_best(1.0));
        assert!(p_best(2.0) < p_best(1.0));
        assert!((p_best(1.0) - 1.0 / (1.0 + (-1.0f32).exp())).abs() < 1e-6);
    }

    #[test]
    fn repetition_penalty_follows_hf() {
        let mut logits = vec![2.0, -2.0, 1.0, 0.0];
        apply_repetition_penalty(&mut logits, &[0, 1, 1, 3, 99], 2.0);
        assert_eq!(logits, vec![1.0, -4.0, 1.0, 0.0]);
        // Greedy after the penalty: token 0 (4.0 → 2.0) loses to token 2 (3.0).
        let mut s = sampler(SamplerConfig {
            repetition_penalty: 2.0,
            ..SamplerConfig::default()
        });
        assert_eq!(s.sample(&[4.0, 0.0, 3.0], &[0]).unwrap(), 2);
    }

    #[test]
    fn same_seed_same_tokens() {
        let logits: Vec<f32> = (0..50).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let run = |seed| {
            let mut s = sampler(SamplerConfig {
                seed,
                ..random(1.0)
            });
            (0..64)
                .map(|_| s.sample(&logits, &[]).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    #[test]
    fn draws_follow_the_probabilities() {
        let logits = logits_of(&[0.2, 0.8]);
        let mut s = sampler(SamplerConfig {
            seed: 1,
            ..random(1.0)
        });
        let n = 20_000;
        let ones = (0..n)
            .filter(|_| s.sample(&logits, &[]).unwrap() == 1)
            .count();
        let freq = ones as f64 / n as f64;
        assert!(
            (freq - 0.8).abs() < 0.02,
            "frequency of the 0.8 token: {freq}"
        );
    }

    #[test]
    fn bad_configs_are_typed_errors() {
        let bad = [
            random(-0.5),
            random(f32::NAN),
            random(f32::INFINITY),
            SamplerConfig {
                top_p: 0.0,
                ..random(1.0)
            },
            SamplerConfig {
                top_p: 1.5,
                ..random(1.0)
            },
            SamplerConfig {
                min_p: -0.1,
                ..random(1.0)
            },
            SamplerConfig {
                repetition_penalty: 0.0,
                ..random(1.0)
            },
        ];
        for config in bad {
            let err = Sampler::new(config.clone()).unwrap_err();
            assert!(
                matches!(err, Error::InvalidArgument { op: "sampler", .. }),
                "{config:?}: {err}"
            );
        }
    }

    #[test]
    fn nan_and_empty_logits_are_errors() {
        let mut s = sampler(SamplerConfig::default());
        assert!(s.sample(&[], &[]).is_err());
        assert!(s.sample(&[1.0, f32::NAN], &[]).is_err());
    }
}
