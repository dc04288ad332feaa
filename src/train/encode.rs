//! Records → token ids with a per-token "is a training target" flag, following TRL's SFTTrainer
//! (checked against TRL 1.16 in tests/fixtures/trl):
//!
//! - prompt/completion: the tokenizer's EOS *string* is appended to the completion; `prompt` and
//!   `prompt + completion` are tokenized with special tokens; the targets are the tokens of the
//!   joined text after its longest common token prefix with the prompt's tokens.
//! - conversational prompt/completion (lists of messages): `prompt` rendered with the generation
//!   prompt and `prompt + completion` rendered without, each tokenized without special tokens;
//!   the targets are the tokens after their longest common token prefix — so everything the
//!   template writes after the prompt, the end-of-turn token and any separator after it
//!   included (TRL's `tokenize_fn`; no EOS is appended).
//! - messages: rendered with the chat template (no special tokens added); targets are the tokens
//!   overlapping assistant text — the template's `{% generation %}` blocks when it has them,
//!   otherwise each assistant turn found by rendering the conversation up to it.
//! - text: `<bos> text <eos>`, every token a target.
//!
//! Sequences longer than `max_length` keep their start; examples left without a target are
//! dropped and counted (with packing they are packed all the same, as TRL packs them: they take
//! room in a row and add no loss).

use std::ops::Range;

use crate::data::{Record, Sample};
use crate::model::{ChatTemplate, Message, Tokenizer};

use super::batch::Example;
use super::TrainError;

/// Whether prompt/completion records go through the chat template.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum TemplatePolicy {
    /// messages use the chat template; prompt/completion and text do not
    #[default]
    Auto,
    /// prompt/completion records become a user turn and an assistant turn
    Always,
}

pub struct Encoder<'a> {
    pub tokenizer: &'a Tokenizer,
    pub template: Option<&'a ChatTemplate>,
    pub max_length: usize,
    pub policy: TemplatePolicy,
}

/// Encoded examples and what was left out.
#[derive(Debug, Default)]
pub struct Encoded {
    pub examples: Vec<Example>,
    /// lines of records dropped for having no target left after truncation
    pub dropped: Vec<usize>,
    /// lines of records that were truncated
    pub truncated: Vec<usize>,
}

impl Encoder<'_> {
    pub fn encode_all(&self, samples: &[Sample], replay: bool) -> Result<Encoded, TrainError> {
        self.encode_all_with(samples, replay, false)
    }

    /// As [`encode_all`](Self::encode_all); with `keep_untargeted`, an example left without a
    /// target is kept (and still listed in `dropped`): packing places it as TRL does, where it
    /// takes room in a row but adds no loss.
    pub fn encode_all_with(
        &self,
        samples: &[Sample],
        replay: bool,
        keep_untargeted: bool,
    ) -> Result<Encoded, TrainError> {
        let mut out = Encoded::default();
        for s in samples {
            let (mut ids, mut sup) = self.encode(s)?;
            if ids.len() > self.max_length {
                ids.truncate(self.max_length);
                sup.truncate(self.max_length);
                out.truncated.push(s.line);
            }
            let ex = Example {
                ids,
                supervised: sup,
                task: s.task.clone(),
                replay,
                line: s.line,
                docs: vec![],
            };
            if ex.n_supervised() == 0 {
                out.dropped.push(s.line);
                if keep_untargeted {
                    out.examples.push(ex);
                }
            } else {
                out.examples.push(ex);
            }
        }
        Ok(out)
    }

    fn eos(&self) -> Result<&str, TrainError> {
        self.tokenizer.eos_token().ok_or_else(|| {
            TrainError::Data(
                "the tokenizer names no eos_token; it is needed to end responses".into(),
            )
        })
    }

    pub fn encode(&self, s: &Sample) -> Result<(Vec<u32>, Vec<bool>), TrainError> {
        match &s.record {
            Record::PromptCompletion { prompt, completion } => match self.policy {
                TemplatePolicy::Always => self.encode_messages(
                    &[
                        Message::new("user", prompt.clone()),
                        Message::new("assistant", completion.clone()),
                    ],
                    s.line,
                ),
                TemplatePolicy::Auto => self.encode_prompt_completion(prompt, completion),
            },
            Record::ChatPromptCompletion { prompt, completion } => {
                self.encode_chat_prompt_completion(prompt, completion, s.line)
            }
            Record::Messages(m) => self.encode_messages(m, s.line),
            Record::Text(t) => {
                let eos = self.eos()?;
                let text = if t.ends_with(eos) {
                    t.clone()
                } else {
                    format!("{t}{eos}")
                };
                let ids = self.tokenizer.encode(&text, true)?;
                let n = ids.len();
                Ok((ids, vec![true; n]))
            }
        }
    }

    fn encode_prompt_completion(
        &self,
        prompt: &str,
        completion: &str,
    ) -> Result<(Vec<u32>, Vec<bool>), TrainError> {
        let eos = self.eos()?;
        let completion = if completion.ends_with(eos) {
            completion.to_string()
        } else {
            format!("{completion}{eos}")
        };
        let p = self.tokenizer.encode(prompt, true)?;
        let full = self
            .tokenizer
            .encode(&format!("{prompt}{completion}"), true)?;
        let common = p.iter().zip(&full).take_while(|(a, b)| a == b).count();
        let sup = (0..full.len()).map(|i| i >= common).collect();
        Ok((full, sup))
    }

    fn template(&self, line: usize) -> Result<&ChatTemplate, TrainError> {
        self.template.ok_or_else(|| {
            TrainError::Data(format!(
                "line {line}: conversational data needs a chat template, and this model has none (chat_template.jinja or tokenizer_config.json)"
            ))
        })
    }

    fn encode_chat_prompt_completion(
        &self,
        prompt: &[Message],
        completion: &[Message],
        line: usize,
    ) -> Result<(Vec<u32>, Vec<bool>), TrainError> {
        let template = self.template(line)?;
        let p = self
            .tokenizer
            .encode(&template.render(prompt, true)?, false)?;
        let all: Vec<Message> = prompt.iter().chain(completion).cloned().collect();
        let full = self
            .tokenizer
            .encode(&template.render(&all, false)?, false)?;
        let common = p.iter().zip(&full).take_while(|(a, b)| a == b).count();
        let sup = (0..full.len()).map(|i| i >= common).collect();
        Ok((full, sup))
    }

    fn encode_messages(
        &self,
        messages: &[Message],
        line: usize,
    ) -> Result<(Vec<u32>, Vec<bool>), TrainError> {
        let template = self.template(line)?;
        let (text, spans) = match template.render_generation_spans(messages)? {
            Some(r) => r,
            None => assistant_spans_by_prefix(template, messages, line)?,
        };
        let (ids, offsets) = self.tokenizer.encode_with_offsets(&text, false)?;
        let sup = offsets
            .iter()
            .map(|&(a, b)| b > a && spans.iter().any(|s| a < s.end && b > s.start))
            .collect();
        Ok((ids, sup))
    }
}

/// Assistant spans of a template without `{% generation %}` blocks: for each assistant turn,
/// the text the conversation gains between "up to this turn, with generation prompt" and "up to
/// and including this turn". An EOS the template writes only after the last turn (Phi-3) is not
/// part of an earlier turn; it is trained with the last one, as TRL's patched Phi-3 template
/// does. Refuses templates whose renderings are otherwise not prefixes of each other.
fn assistant_spans_by_prefix(
    template: &ChatTemplate,
    messages: &[Message],
    line: usize,
) -> Result<(String, Vec<Range<usize>>), TrainError> {
    let full = template.render(messages, false)?;
    let eos = template
        .special_tokens()
        .iter()
        .find(|(n, _)| n == "eos_token")
        .map(|(_, t)| t.as_str());
    let mut spans = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        if m.role != "assistant" {
            continue;
        }
        let before = template.render(&messages[..i], true)?;
        let upto = template.render(&messages[..=i], false)?;
        // where this turn ends in the full rendering: all of `upto`, or all but an EOS the
        // template writes only after the last turn (which the full rendering then ends with)
        let end = if full.starts_with(&upto) {
            Some(upto.len())
        } else {
            eos.filter(|e| !e.is_empty() && upto.ends_with(e) && full.ends_with(e))
                .map(|e| upto.len() - e.len())
                .filter(|&k| full.starts_with(&upto[..k]))
        }
        .filter(|&k| k >= before.len());
        let Some(common) = end.filter(|_| upto.starts_with(&before)) else {
            return Err(TrainError::Data(format!(
                "line {line}: the chat template renders earlier turns differently once later turns follow, so assistant turn {i} cannot be located; add {{% generation %}} blocks to the template"
            )));
        };
        spans.push(before.len()..common);
    }
    Ok((full, spans))
}
