//! Log-likelihood scoring with lm-evaluation-harness's conventions, so per-item numbers are
//! comparable with lm-eval's:
//!
//! - trailing whitespace of the context moves into the continuation;
//! - `whole = enc(context + continuation)`, `ctx = enc(context)`, and the continuation tokens are
//!   `whole[len(ctx)..]` (so a token merging across the boundary is scored as continuation);
//! - an empty context is replaced by one prefix token (BOS, else EOS);
//! - the model sees `(ctx + cont)[..-1]`, truncated from the left to the context length, and the
//!   score is Σ log p(cont_i | prefix); `is_greedy` is whether every continuation token is the
//!   argmax.
//!
//! [`loglikelihood`] runs every request as its own sequence; [`loglikelihood_shared`] gives the
//! same numbers running each distinct context once and its continuations from its KV cache
//! (multiple choice: the prompt once, then the choices).

use std::collections::HashMap;

use candle_core::{DType, IndexOp, Tensor, D};

use super::{Model, ModelError};

/// One `loglikelihood` request's answer.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogLik {
    pub logprob: f64,
    pub is_greedy: bool,
    /// continuation tokens scored
    pub tokens: usize,
}

/// Tokenized request: the tokens fed, and how many trailing tokens are scored.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub tokens: Vec<u32>,
    pub n_cont: usize,
}

/// Split `(context, continuation)` into tokens the lm-eval way.
pub fn encode_pair(
    model: &Model,
    context: &str,
    continuation: &str,
    add_special_tokens: bool,
) -> Result<Request, ModelError> {
    let trimmed = context.trim_end();
    let moved = &context[trimmed.len()..];
    let (context, continuation) = if moved.is_empty() {
        (context.to_string(), continuation.to_string())
    } else {
        (trimmed.to_string(), format!("{moved}{continuation}"))
    };
    if context.is_empty() {
        // lm-eval: the prefix token stands in for the context, unless the continuation already
        // starts with it, in which case its first token is the context
        let prefix = prefix_token(model)?;
        let cont = model.tokenizer.encode(&continuation, false)?;
        if cont.first() == Some(&prefix) {
            let n_cont = cont.len() - 1;
            return Ok(Request {
                tokens: cont,
                n_cont,
            });
        }
        let n_cont = cont.len();
        let mut tokens = vec![prefix];
        tokens.extend(cont);
        return Ok(Request { tokens, n_cont });
    }
    // lm-eval encodes without special tokens a string that already starts with the BOS text
    let add_special_tokens = add_special_tokens
        && !model
            .tokenizer
            .bos_token()
            .is_some_and(|b| context.starts_with(b));
    let whole = model
        .tokenizer
        .encode(&format!("{context}{continuation}"), add_special_tokens)?;
    let mut tokens = model.tokenizer.encode(&context, add_special_tokens)?;
    // lm-eval feeds `context_enc + whole_enc[len(context_enc):]`: the context's own tokens even
    // where `whole` merged a token across the boundary, so every continuation of one context
    // shares its tokens as a prefix
    let n_cont = whole.len().saturating_sub(tokens.len());
    tokens.extend_from_slice(&whole[whole.len() - n_cont..]);
    Ok(Request { tokens, n_cont })
}

/// Score requests in batches of `batch_size` (longest first, as lm-eval orders them).
pub fn loglikelihood(
    model: &Model,
    requests: &[Request],
    batch_size: usize,
) -> Result<Vec<LogLik>, ModelError> {
    let max_len = model.config().context_length().unwrap_or(usize::MAX);
    let mut order: Vec<usize> = (0..requests.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(requests[i].tokens.len()));
    let mut out = vec![
        LogLik {
            logprob: 0.0,
            is_greedy: true,
            tokens: 0
        };
        requests.len()
    ];
    let ctx = |m: &str| ModelError::candle(format!("loglikelihood: {m}"));
    for chunk in order.chunks(batch_size.max(1)) {
        // the model sees all but the last token, left-truncated to the context length
        let rows: Vec<Vec<u32>> = chunk
            .iter()
            .map(|&i| {
                let t = &requests[i].tokens;
                let input = &t[..t.len().saturating_sub(1)];
                input[input.len().saturating_sub(max_len)..].to_vec()
            })
            .collect();
        let logits = model.forward_batch(&rows)?;
        let logp = super::layers::log_softmax(&logits).map_err(ctx("log_softmax"))?;
        for (row, &i) in chunk.iter().enumerate() {
            let req = &requests[i];
            let n_in = rows[row].len();
            let n = req.n_cont.min(n_in);
            if n == 0 {
                out[i] = LogLik {
                    logprob: 0.0,
                    is_greedy: true,
                    tokens: 0,
                };
                continue;
            }
            let targets: Vec<u32> = req.tokens[req.tokens.len() - n..].to_vec();
            let lp = logp.i((row, n_in - n..n_in)).map_err(ctx("slice"))?;
            let tgt = Tensor::new(targets.as_slice(), lp.device()).map_err(ctx("targets"))?;
            let picked: Vec<f32> = lp
                .gather(&tgt.unsqueeze(1).map_err(ctx("gather"))?, 1)
                .and_then(|t| t.squeeze(1))
                .and_then(|t| t.to_vec1())
                .map_err(ctx("gather"))?;
            let argmax: Vec<u32> = lp
                .argmax(D::Minus1)
                .and_then(|t| t.to_dtype(DType::U32))
                .and_then(|t| t.to_vec1())
                .map_err(ctx("argmax"))?;
            out[i] = LogLik {
                logprob: picked.iter().map(|&x| x as f64).sum(),
                is_greedy: argmax == targets,
                tokens: n,
            };
        }
    }
    Ok(out)
}

/// Score requests as [`loglikelihood`] does (same numbers up to float rounding), running each
/// distinct context once.
///
/// Requests are grouped by their context tokens (`tokens[..len - n_cont]`; with
/// [`encode_pair`], every choice of one prompt shares them). Contexts run in batches of
/// `batch_size`, longest first, filling a KV cache; the logits at a context's last token score
/// the first token of each of its continuations, and the continuations' remaining tokens run in
/// batches of `batch_size` rows (longest first) from copies of their context's cache.
/// Requests that would be left-truncated to the context length, or that reach the length where
/// RoPE frequencies start depending on the sequence length (`longrope`, `dynamic`), are scored
/// by [`loglikelihood`] instead.
pub fn loglikelihood_shared(
    model: &Model,
    requests: &[Request],
    batch_size: usize,
) -> Result<Vec<LogLik>, ModelError> {
    let batch_size = batch_size.max(1);
    let max_len = model.config().context_length().unwrap_or(usize::MAX);
    let rope_limit = model.decoder.length_dependent_limit();
    let empty = LogLik {
        logprob: 0.0,
        is_greedy: true,
        tokens: 0,
    };
    let mut out = vec![empty; requests.len()];
    // requests for the full path, and groups of requests by context
    let mut full: Vec<usize> = Vec::new();
    let mut groups: Vec<(&[u32], Vec<usize>)> = Vec::new();
    let mut group_of: HashMap<&[u32], usize> = HashMap::new();
    for (i, r) in requests.iter().enumerate() {
        let n_in = r.tokens.len().saturating_sub(1);
        if r.n_cont == 0 || n_in == 0 {
            continue; // nothing scored: the full path answers `empty` too
        }
        let cached =
            r.n_cont < r.tokens.len() && n_in <= max_len && rope_limit.is_none_or(|l| n_in <= l);
        if !cached {
            full.push(i);
            continue;
        }
        let ctx = &r.tokens[..r.tokens.len() - r.n_cont];
        let g = *group_of.entry(ctx).or_insert_with(|| {
            groups.push((ctx, Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push(i);
    }
    if !full.is_empty() {
        let reqs: Vec<Request> = full.iter().map(|&i| requests[i].clone()).collect();
        for (&i, l) in full.iter().zip(loglikelihood(model, &reqs, batch_size)?) {
            out[i] = l;
        }
    }
    let ctx = |m: &str| ModelError::candle(format!("loglikelihood (shared context): {m}"));
    let device = model.device();
    groups.sort_by_key(|(c, _)| std::cmp::Reverse(c.len()));
    for chunk in groups.chunks(batch_size) {
        // 1. every context once, into a cache
        let rows: Vec<Vec<u32>> = chunk.iter().map(|(c, _)| c.to_vec()).collect();
        let (ids, lengths) = super::pad_batch(&rows, device).map_err(ctx("batch"))?;
        let mut cache = model.decoder.new_cache(rows.len());
        let hidden = model
            .decoder
            .forward_cached_hidden(&ids, &lengths, &mut cache)
            .map_err(ctx("context forward"))?;
        let (b, t, h) = hidden.dims3().map_err(ctx("hidden"))?;
        let last: Vec<u32> = lengths
            .iter()
            .enumerate()
            .map(|(row, &l)| (row * t + l - 1) as u32)
            .collect();
        let last = Tensor::from_vec(last, b, device).map_err(ctx("index"))?;
        let last_hidden = hidden
            .reshape((b * t, h))
            .and_then(|x| x.index_select(&last, 0))
            .map_err(ctx("last position"))?;
        let logits = model.decoder.logits(&last_hidden).map_err(ctx("head"))?;
        let lp = super::layers::log_softmax(&logits).map_err(ctx("log_softmax"))?;
        let argmax: Vec<u32> = lp
            .argmax(D::Minus1)
            .and_then(|t| t.to_dtype(DType::U32))
            .and_then(|t| t.to_vec1())
            .map_err(ctx("argmax"))?;
        // the first continuation token of every member, from its context's last position
        let members: Vec<(usize, usize)> = chunk
            .iter()
            .enumerate()
            .flat_map(|(row, (_, m))| m.iter().map(move |&i| (row, i)))
            .collect();
        let row_idx: Vec<u32> = members.iter().map(|&(row, _)| row as u32).collect();
        let first: Vec<u32> = members
            .iter()
            .map(|&(_, i)| {
                let r = &requests[i];
                r.tokens[r.tokens.len() - r.n_cont]
            })
            .collect();
        let picked: Vec<f32> = Tensor::from_vec(row_idx, members.len(), device)
            .and_then(|idx| lp.index_select(&idx, 0))
            .and_then(|rows| {
                let tgt = Tensor::new(first.as_slice(), device)?.unsqueeze(1)?;
                rows.gather(&tgt, 1)?.squeeze(1)?.to_vec1()
            })
            .map_err(ctx("first token"))?;
        for (k, &(row, i)) in members.iter().enumerate() {
            out[i] = LogLik {
                logprob: picked[k] as f64,
                is_greedy: argmax[row] == first[k],
                tokens: requests[i].n_cont,
            };
        }
        // 2. the other continuation tokens, from copies of the context's cache
        let mut rest: Vec<(usize, usize)> = members
            .into_iter()
            .filter(|&(_, i)| requests[i].n_cont > 1)
            .collect();
        rest.sort_by_key(|&(_, i)| std::cmp::Reverse(requests[i].n_cont));
        for sub in rest.chunks(batch_size) {
            let rows: Vec<usize> = sub.iter().map(|&(row, _)| row).collect();
            let mut sub_cache = cache.select_rows(&rows).map_err(ctx("cache copy"))?;
            let conts: Vec<Vec<u32>> = sub
                .iter()
                .map(|&(_, i)| {
                    let r = &requests[i];
                    r.tokens[r.tokens.len() - r.n_cont..r.tokens.len() - 1].to_vec()
                })
                .collect();
            let (ids, lens) = super::pad_batch(&conts, device).map_err(ctx("batch"))?;
            let logits = model
                .decoder
                .forward_cached(&ids, &lens, &mut sub_cache)
                .map_err(ctx("continuation forward"))?;
            let logp = super::layers::log_softmax(&logits).map_err(ctx("log_softmax"))?;
            for (j, &(_, i)) in sub.iter().enumerate() {
                let r = &requests[i];
                let n = r.n_cont - 1;
                let targets: Vec<u32> = r.tokens[r.tokens.len() - n..].to_vec();
                let lp = logp.i((j, 0..n)).map_err(ctx("slice"))?;
                let tgt = Tensor::new(targets.as_slice(), device).map_err(ctx("targets"))?;
                let picked: Vec<f32> = lp
                    .gather(&tgt.unsqueeze(1).map_err(ctx("gather"))?, 1)
                    .and_then(|t| t.squeeze(1))
                    .and_then(|t| t.to_vec1())
                    .map_err(ctx("gather"))?;
                let argmax: Vec<u32> = lp
                    .argmax(D::Minus1)
                    .and_then(|t| t.to_dtype(DType::U32))
                    .and_then(|t| t.to_vec1())
                    .map_err(ctx("argmax"))?;
                let o = &mut out[i];
                o.logprob += picked.iter().map(|&x| x as f64).sum::<f64>();
                o.is_greedy &= argmax == targets;
            }
        }
    }
    Ok(out)
}

/// The prefix token lm-eval uses in place of an empty context (BOS, else EOS).
fn prefix_token(model: &Model) -> Result<u32, ModelError> {
    model
        .tokenizer
        .bos_token()
        .and_then(|t| model.tokenizer.token_to_id(t))
        .or_else(|| model.eos_token_ids().first().copied())
        .ok_or_else(|| {
            ModelError::Invalid(
                "scoring needs a BOS or EOS token to stand in for an empty context".into(),
            )
        })
}

/// lm-eval's rolling windows over `tokens` for a context of `max_len` tokens: the first window
/// predicts up to `max_len` tokens after the prefix token, each later one the next `max_len`
/// tokens after as much preceding text as fits (`get_rolling_token_windows` with
/// `context_len = 1`, then `make_disjoint_window`).
pub fn rolling_windows(tokens: &[u32], prefix: u32, max_len: usize) -> Vec<Request> {
    let mut out = Vec::new();
    if tokens.is_empty() {
        return out;
    }
    let first = max_len.min(tokens.len());
    let mut ctx = vec![prefix];
    ctx.extend_from_slice(&tokens[..first - 1]);
    let mut windows = vec![(ctx, tokens[..first].to_vec())];
    let mut predicted = first;
    while predicted < tokens.len() {
        let n = (tokens.len() - predicted).min(max_len);
        let end = predicted + n;
        let start = end.saturating_sub(max_len + 1);
        windows.push((
            tokens[start..end - 1].to_vec(),
            tokens[end - n..end].to_vec(),
        ));
        predicted += n;
    }
    for (a, b) in windows {
        let keep = a.len() - (b.len() - 1);
        let mut t = a[..keep].to_vec();
        let n_cont = b.len();
        t.extend(b);
        out.push(Request { tokens: t, n_cont });
    }
    out
}

/// Total log-likelihood of a text and the number of tokens scored (lm-eval
/// `loglikelihood_rolling`; with a BOS tokenizer the first scored token is BOS given BOS).
pub fn loglikelihood_rolling(
    model: &Model,
    text: &str,
    batch_size: usize,
) -> Result<(f64, usize), ModelError> {
    let tokens = model.tokenizer.encode(text, true)?;
    let max_len = model.config().context_length().unwrap_or(2048);
    let windows = rolling_windows(&tokens, prefix_token(model)?, max_len);
    let lls = loglikelihood(model, &windows, batch_size)?;
    Ok((lls.iter().map(|l| l.logprob).sum(), tokens.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LoadOptions;
    use std::path::Path;

    fn model(v: &str) -> Model {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/models")
            .join(v);
        Model::load(&dir, &LoadOptions::default()).unwrap()
    }

    #[test]
    fn trailing_context_space_moves_into_the_continuation() {
        let m = model("llama");
        let a = encode_pair(&m, "Question: 2+2?\nAnswer: ", "4", true).unwrap();
        let b = encode_pair(&m, "Question: 2+2?\nAnswer:", " 4", true).unwrap();
        assert_eq!(a, b);
        assert!(a.n_cont >= 1);
    }

    #[test]
    fn scores_equal_a_direct_forward_and_do_not_depend_on_batching() {
        let m = model("llama");
        let reqs: Vec<Request> = [
            ("The cat sat on the", " mat"),
            ("Hello", " world, again"),
            ("", "Just text"),
        ]
        .iter()
        .map(|(c, x)| encode_pair(&m, c, x, true).unwrap())
        .collect();
        let one = loglikelihood(&m, &reqs, 1).unwrap();
        let all = loglikelihood(&m, &reqs, 8).unwrap();
        for (a, b) in one.iter().zip(&all) {
            assert!((a.logprob - b.logprob).abs() < 1e-4, "{a:?} vs {b:?}");
            assert_eq!(a.is_greedy, b.is_greedy);
        }
        // by hand for the first request
        let r = &reqs[0];
        let logits = m
            .forward_batch(&[r.tokens[..r.tokens.len() - 1].to_vec()])
            .unwrap();
        let lp = crate::model::layers::log_softmax(&logits).unwrap();
        let mut want = 0f64;
        for k in 0..r.n_cont {
            let pos = r.tokens.len() - 1 - r.n_cont + k;
            let tok = r.tokens[pos + 1];
            want += lp
                .i((0, pos, tok as usize))
                .unwrap()
                .to_scalar::<f32>()
                .unwrap() as f64;
        }
        assert!((want - one[0].logprob).abs() < 1e-5);
        assert!(one.iter().all(|l| l.logprob < 0.0 && l.tokens > 0));
    }

    /// The shared-context path equals the full recompute within 1e-5 on every fixture family:
    /// sliding windows (mistral, gemma2 with soft-capping), learned positions (gpt2, whose
    /// 64-token context also sends the longest request down the truncating full path), longrope
    /// (phi3, past its switch length), llama3 RoPE scaling; any batch size.
    #[test]
    fn shared_context_scoring_equals_full_recompute() {
        let long = "The quick brown fox jumps over the lazy dog near the river bank. ".repeat(6);
        let pairs: Vec<(String, String)> = [
            ("Question: What is 2+2?\nAnswer:", " 4"),
            (
                "Question: What is 2+2?\nAnswer:",
                " five, or maybe twenty-two",
            ),
            ("Question: What is 2+2?\nAnswer:", " 22"),
            ("Question: Is fire hot?\nAnswer: ", "yes"),
            ("Question: Is fire hot?\nAnswer: ", "no it is not"),
            ("The cat sat on the\n", "mat"),
            ("The cat sat on the\n", " moon tonight"),
            ("", "Just text"),
            ("", "Other text, longer than the first"),
            ("A", "B"),
            ("A long one: ", "and its continuation of several tokens"),
        ]
        .iter()
        .map(|(c, x)| (c.to_string(), x.to_string()))
        .chain([
            (format!("{long}Then"), " it slept.".to_string()),
            (
                format!("{long}Then"),
                " it ran away from the farm".to_string(),
            ),
        ])
        .collect();
        for name in ["llama", "gpt2", "mistral", "gemma2", "qwen2", "phi3"] {
            let m = model(name);
            let reqs: Vec<Request> = pairs
                .iter()
                .map(|(c, x)| encode_pair(&m, c, x, true).unwrap())
                .collect();
            let want = loglikelihood(&m, &reqs, 4).unwrap();
            for bs in [1, 3, 16] {
                let got = loglikelihood_shared(&m, &reqs, bs).unwrap();
                for (k, (a, b)) in want.iter().zip(&got).enumerate() {
                    assert!(
                        (a.logprob - b.logprob).abs() < 1e-5,
                        "{name} bs {bs} request {k}: full {a:?} vs shared {b:?}"
                    );
                    assert_eq!(a.is_greedy, b.is_greedy, "{name} request {k}");
                    assert_eq!(a.tokens, b.tokens, "{name} request {k}");
                }
            }
        }
    }

    #[test]
    fn continuations_of_one_context_share_its_tokens() {
        for name in ["llama", "gpt2"] {
            let m = model(name);
            let ctx = m.tokenizer.encode("Question: 2+2?\nAnswer:", true).unwrap();
            for cont in [" 4", "4", "\n4", " four"] {
                let r = encode_pair(&m, "Question: 2+2?\nAnswer:", cont, true).unwrap();
                assert_eq!(
                    r.tokens[..r.tokens.len() - r.n_cont],
                    ctx[..],
                    "{name} {cont:?}"
                );
            }
        }
    }
}
