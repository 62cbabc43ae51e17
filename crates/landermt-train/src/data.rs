//! Training examples: `{prompt}\n{target}{eos}`, the prompt drawn from a template set, with
//! the loss on the target and EOS only (METHOD.md stage 4).

use landermt_data::{Direction, Pair};
use landermt_model::LanguageModel;

/// Prompt templates; one is sampled per example. `{src}` is the source sentence, `{Src}` and
/// `{Tgt}` the English names of the languages.
pub const TEMPLATES: &[&str] = &[
    "Translate the following text from {Src} to {Tgt}.\n{Src}: {src}\n{Tgt}:",
    "Translate this {Src} sentence into {Tgt}:\n{src}",
    "{Src}: {src}\n{Tgt}:",
    "Translate \"{src}\" to {Tgt}.",
    "Please translate the sentence below from {Src} into {Tgt}.\n{src}",
    "What is the {Tgt} translation of the {Src} sentence \"{src}\"?",
    "{src}\nTranslate the sentence above into {Tgt}.",
    "Source ({Src}): {src}\nTarget ({Tgt}):",
    "Render the following {Src} text in {Tgt}:\n{src}",
    "Give the {Tgt} version of this {Src} sentence:\n{src}",
];

/// The test prompt (METHOD.md stage 5).
pub const TEST_TEMPLATE: &str = "Translate \"{src}\" to {Tgt}.";

pub fn fill(template: &str, direction: Direction, src: &str) -> String {
    template.replace("{Src}", direction.src.name).replace("{Tgt}", direction.tgt.name).replace("{src}", src)
}

/// One tokenized example: `ids` = prompt (with the model's special tokens), newline, target,
/// EOS; the last `target_len` ids are the target and EOS.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub direction: Direction,
    pub ids: Vec<u32>,
    pub target_len: usize,
}

/// Tokenizes `pair` with `template`, cutting the prompt's start (never the target) to fit
/// `max_len`; `None` if the target alone does not fit.
pub fn example(model: &LanguageModel, direction: Direction, pair: &Pair, template: &str, max_len: usize) -> landermt_model::Result<Option<Example>> {
    let mut prompt = model.encode(&format!("{}\n", fill(template, direction, &pair.src)))?;
    let mut target = model.tokenizer.encode(&pair.tgt, false)?;
    target.push(*model.config.eos_token_ids.first().unwrap_or(&0));
    if target.len() + 1 > max_len {
        return Ok(None);
    }
    if prompt.len() + target.len() > max_len {
        let cut = prompt.len() + target.len() - max_len;
        prompt.drain(..cut);
    }
    let target_len = target.len();
    prompt.extend(target);
    Ok(Some(Example { direction, ids: prompt, target_len }))
}
