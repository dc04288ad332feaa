//! Incremental decoding with a KV cache: greedy or seeded sampling (temperature, top-p), stopping
//! on end-of-sequence ids, stop strings, or a token budget.

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};

use super::decoder::Decoder;
use super::tokenizer::Tokenizer;
use super::ModelError;

#[derive(Debug, Clone, PartialEq)]
pub enum Decoding {
    Greedy,
    /// sample from the temperature-scaled distribution restricted to the top-p nucleus
    Sample {
        temperature: f64,
        top_p: f64,
        seed: u64,
    },
}

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    pub decoding: Decoding,
    /// generation ends after emitting any of these (the id is kept in `ids`, not in `text`)
    pub eos_token_ids: Vec<u32>,
    /// generation ends when the text contains one of these; `text` is cut before it
    pub stop_strings: Vec<String>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_new_tokens: 256,
            decoding: Decoding::Greedy,
            eos_token_ids: vec![],
            stop_strings: vec![],
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum StopReason {
    Eos,
    StopString(String),
    MaxTokens,
}

#[derive(Debug, Clone)]
pub struct Generation {
    /// new token ids only
    pub ids: Vec<u32>,
    /// decoded continuation (special tokens skipped), cut before a stop string
    pub text: String,
    pub stop: StopReason,
}

/// Generate a continuation of `prompt` (token ids, special tokens already in place).
pub fn generate(
    decoder: &Decoder,
    tokenizer: &Tokenizer,
    prompt: &[u32],
    opts: &GenerateOptions,
    device: &Device,
) -> Result<Generation, ModelError> {
    if prompt.is_empty() {
        return Err(ModelError::Invalid(
            "cannot generate from an empty prompt".into(),
        ));
    }
    let ctx = |what: &str| ModelError::candle(format!("generation: {what}"));
    let mut processor = match opts.decoding {
        Decoding::Greedy => LogitsProcessor::from_sampling(0, Sampling::ArgMax),
        Decoding::Sample {
            temperature,
            top_p,
            seed,
        } => {
            if temperature <= 0.0 {
                LogitsProcessor::from_sampling(seed, Sampling::ArgMax)
            } else if top_p >= 1.0 {
                LogitsProcessor::from_sampling(seed, Sampling::All { temperature })
            } else {
                LogitsProcessor::from_sampling(
                    seed,
                    Sampling::TopP {
                        p: top_p,
                        temperature,
                    },
                )
            }
        }
    };
    let mut cache = decoder.new_cache(1);
    let mut ids: Vec<u32> = Vec::new();
    let mut input = prompt.to_vec();
    let mut stop = StopReason::MaxTokens;
    let mut text = String::new();
    while ids.len() < opts.max_new_tokens {
        let cached = cache.lengths()[0];
        if let Some(b) = decoder.recompute_boundary() {
            if cached > 0 && cached <= b && cached + input.len() > b {
                // as transformers does for longrope: start over with the long factors everywhere
                cache = decoder.new_cache(1);
                input = prompt.iter().chain(&ids).copied().collect();
            }
        }
        let n = input.len();
        let x = Tensor::from_vec(input.clone(), (1, n), device).map_err(ctx("input"))?;
        let logits = decoder
            .forward_cached(&x, &[n], &mut cache)
            .map_err(ctx("forward"))?;
        let last = logits
            .i((0, n - 1))
            .and_then(|l| l.to_dtype(DType::F32))
            .map_err(ctx("logits"))?;
        // NaN or infinite logits (broken weights) would still "choose" a token: refuse instead
        let total = last
            .sum_all()
            .and_then(|t| t.to_scalar::<f32>())
            .map_err(ctx("logits"))?;
        if !total.is_finite() {
            return Err(ModelError::Invalid(
                "the model's logits are not finite (NaN or infinite weights?): nothing is generated from them".into(),
            ));
        }
        let next = processor.sample(&last).map_err(ctx("sampling"))?;
        ids.push(next);
        if opts.eos_token_ids.contains(&next) {
            stop = StopReason::Eos;
            break;
        }
        if !opts.stop_strings.is_empty() {
            text = tokenizer.decode(&ids, true)?;
            if let Some((at, s)) = first_stop(&text, &opts.stop_strings) {
                text.truncate(at);
                stop = StopReason::StopString(s.to_string());
                break;
            }
        }
        input = vec![next];
    }
    if !matches!(stop, StopReason::StopString(_)) {
        let body = if stop == StopReason::Eos {
            &ids[..ids.len() - 1]
        } else {
            &ids[..]
        };
        text = tokenizer.decode(body, true)?;
    }
    Ok(Generation { ids, text, stop })
}

/// Earliest occurrence of any stop string: (byte offset, the string).
fn first_stop<'a>(text: &str, stops: &'a [String]) -> Option<(usize, &'a str)> {
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()).map(|at| (at, s.as_str())))
        .min_by_key(|(at, _)| *at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_stop_string_wins() {
        let stops = vec!["\n\n".to_string(), "Q:".to_string()];
        assert_eq!(first_stop("42 Q: next\n\n", &stops), Some((3, "Q:")));
        assert_eq!(first_stop("no stop", &stops), None);
    }
}
