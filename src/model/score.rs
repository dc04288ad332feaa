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
    let ctx = model.tokenizer.encode(&context, add_special_tokens)?;
    let n_cont = whole.len().saturating_sub(ctx.len());
    Ok(Request {
        tokens: whole,
        n_cont,
    })
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
}
