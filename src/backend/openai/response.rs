//! Reading the server's completions responses: the echoed prompt's per-token log-probabilities,
//! and the generated text cut at the stop strings.

use serde_json::Value;

use crate::model::generate::first_stop;

#[derive(Debug, Clone, PartialEq)]
pub(super) struct EchoToken {
    pub(super) offset: usize,
    pub(super) logprob: Option<f64>,
    /// the best log-probability at this position (top_logprobs), where given
    pub(super) top: Option<f64>,
}

pub(super) fn snippet(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() > 300 {
        format!("{}…", s.chars().take(300).collect::<String>())
    } else {
        s.to_string()
    }
}

/// Read `choices[0].logprobs` of an echo response for `prompt`.
pub(super) fn parse_echo(v: &Value, prompt: &str) -> Result<Vec<EchoToken>, String> {
    let lp = v
        .pointer("/choices/0/logprobs")
        .filter(|x| !x.is_null())
        .ok_or("the response has no `choices[0].logprobs`: the server ignored `logprobs`/`echo` (a chat-only or incompatible server cannot score log-likelihoods)")?;
    let offsets = lp
        .get("text_offset")
        .and_then(Value::as_array)
        .ok_or("the response's logprobs have no `text_offset`")?;
    let lps = lp
        .get("token_logprobs")
        .and_then(Value::as_array)
        .ok_or("the response's logprobs have no `token_logprobs`")?;
    if offsets.len() != lps.len() {
        return Err(format!(
            "`text_offset` has {} entries and `token_logprobs` {}",
            offsets.len(),
            lps.len()
        ));
    }
    let tops = lp.get("top_logprobs").and_then(Value::as_array);
    let total = prompt.chars().count();
    let mut out = Vec::new();
    for (i, (o, l)) in offsets.iter().zip(lps).enumerate() {
        let offset = o.as_u64().ok_or("a `text_offset` is not a number")? as usize;
        if offset >= total && !out.is_empty() {
            break; // the generated token
        }
        let top = tops
            .and_then(|t| t.get(i))
            .and_then(Value::as_object)
            .and_then(|m| m.values().filter_map(Value::as_f64).reduce(f64::max));
        out.push(EchoToken {
            offset,
            logprob: l.as_f64(),
            top,
        });
    }
    if out.is_empty() {
        return Err("the response echoed no prompt tokens".into());
    }
    Ok(out)
}

/// The text before the earliest stop string (the server may not have cut it).
pub(super) fn cut_at_stop(text: &str, stops: &[String]) -> String {
    match first_stop(text, stops) {
        Some((at, _)) => text[..at].to_string(),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn echo_parsing_drops_the_generated_token_and_reads_top_logprobs() {
        let v = json!({"choices": [{"text": "ab c!", "logprobs": {
            "tokens": ["a", "b", " c", "!"],
            "text_offset": [0, 1, 2, 4],
            "token_logprobs": [null, -1.0, -2.0, -0.5],
            "top_logprobs": [null, {"b": -1.0}, {" d": -0.1, " c": -2.0}, {"!": -0.5}]
        }}]});
        let t = parse_echo(&v, "ab c").unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t[2].top, Some(-0.1));
        assert_eq!(t[0].logprob, None);
    }

    #[test]
    fn a_response_without_logprobs_is_an_error() {
        let v = json!({"choices": [{"text": "x", "logprobs": null}]});
        assert!(parse_echo(&v, "x")
            .unwrap_err()
            .contains("no `choices[0].logprobs`"));
    }

    #[test]
    fn stop_strings_cut_the_text() {
        assert_eq!(
            cut_at_stop("42\n\nQ: x", &["\n\n".into(), "Q:".into()]),
            "42"
        );
    }
}
