//! Training examples: `{prompt}\n{target}{eos}`, the prompt drawn from a template set, with
//! the loss on the target and EOS only (METHOD.md stage 4).

pub use landermt_data::prompt::{TEMPLATES, TEST_TEMPLATE, fill};
use landermt_data::{Direction, Pair};
use landermt_model::LanguageModel;

/// The template of example `k` of direction number `direction`: a function of the seed and
/// the position, so no random state needs saving.
pub fn template(seed: u64, direction: usize, k: usize) -> &'static str {
    let h = crate::trainer::mix(seed ^ ((direction as u64) << 32) ^ k as u64);
    TEMPLATES[(h % TEMPLATES.len() as u64) as usize]
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
