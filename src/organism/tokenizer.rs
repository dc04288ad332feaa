//! The organism's tokenizer: byte-level BPE trained on its corpus with the `tokenizers` crate,
//! digits split one per token (so numbers are written digit by digit), `<s>` added in front of
//! every sequence, and a chat template that renders a user turn as `Q: …` and an assistant
//! turn as `A: …` — the format of every pretraining document.

use std::path::Path;

use serde_json::json;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper,
    TokenizerBuilder, TokenizerImpl,
};

use super::OrganismError;

pub const PAD: &str = "<pad>";
pub const BOS: &str = "<s>";
pub const EOS: &str = "</s>";

/// `Q: {user}\nA: {assistant}</s>`; the generation prompt is `A:`. Assistant text is marked
/// with `{% generation %}` so training on conversations masks everything else.
pub const CHAT_TEMPLATE: &str = "{% for message in messages %}\
{% if message['role'] == 'user' %}{{ bos_token }}Q: {{ message['content'] }}\n\
{% elif message['role'] == 'assistant' %}A: {% generation %}{{ message['content'] }}{{ eos_token }}{% endgeneration %}\
{% else %}{{ raise_exception('the organism knows only user and assistant turns') }}{% endif %}\
{% endfor %}{% if add_generation_prompt %}A:{% endif %}";

/// Train a BPE of `vocab_size` tokens (the 256 byte symbols and three specials included) on
/// `texts`, and write `tokenizer.json` and `tokenizer_config.json` into `dir`.
pub fn train_tokenizer<'a>(
    texts: impl Iterator<Item = &'a str> + Send,
    vocab_size: usize,
    dir: &Path,
) -> Result<(), OrganismError> {
    let err = |e: Box<dyn std::error::Error + Send + Sync>| OrganismError::Tokenizer(e.to_string());
    let specials: Vec<AddedToken> = [PAD, BOS, EOS]
        .iter()
        .map(|t| AddedToken::from(*t, true))
        .collect();
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(specials.clone())
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let pre = Sequence::new(vec![
        PreTokenizerWrapper::Digits(Digits::new(true)),
        PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true)),
    ]);
    let post = TemplateProcessing::builder()
        .try_single(format!("{BOS} $A"))
        .and_then(|b| b.try_pair(format!("{BOS} $A {BOS} $B")))
        .map_err(|e| OrganismError::Tokenizer(e.to_string()))?
        .special_tokens(vec![(BOS, 1)])
        .build()
        .map_err(|e| OrganismError::Tokenizer(e.to_string()))?;
    let mut tok: TokenizerImpl<
        BPE,
        NormalizerWrapper,
        PreTokenizerWrapper,
        PostProcessorWrapper,
        DecoderWrapper,
    > = TokenizerBuilder::new()
        .with_model(BPE::default())
        .with_normalizer(None)
        .with_pre_tokenizer(Some(pre.into()))
        .with_post_processor(Some(post.into()))
        .with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevel::default())))
        .build()
        .map_err(err)?;
    tok.train(&mut trainer, texts).map_err(err)?;
    tok.add_special_tokens(specials).map_err(err)?;
    let path = dir.join("tokenizer.json");
    tok.save(&path, true).map_err(err)?;
    let config = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOS,
        "pad_token": PAD,
        "model_max_length": 1_000_000,
        "chat_template": CHAT_TEMPLATE,
    });
    crate::model::checkpoint::write_json(&dir.join("tokenizer_config.json"), &config)
        .map_err(|e| OrganismError::Io(e.to_string()))?;
    Ok(())
}
