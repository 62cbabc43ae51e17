//! Training examples: the prompt, then the target and EOS, with the loss on the target and EOS
//! only (METHOD.md stage 4). Prompt and target are the two halves of a
//! [`Template`](landermt_data::prompt::Template), split at `{tgt}`.

pub use landermt_data::prompt::{Mixing, Template};
use landermt_data::{Direction, Pair};
use landermt_model::LanguageModel;

/// The template of example `k` of direction number `direction`: `single` for
/// [`Mixing::Single`], else one of the mixed set, drawn as a function of the seed and the
/// position so that no random state needs saving.
pub fn template(single: &Template, mixing: Mixing, seed: u64, direction: usize, k: usize) -> &Template {
    match mixing {
        Mixing::Single => single,
        Mixing::Mixed => {
            let set = landermt_data::prompt::mixed();
            let h = landermt_data::mix(seed ^ ((direction as u64) << 32) ^ k as u64);
            &set[(h % set.len() as u64) as usize]
        }
    }
}

/// One tokenized example: `ids` = prompt (with the model's special tokens), target, EOS; the
/// last `target_len` ids are the target and EOS.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub direction: Direction,
    pub ids: Vec<u32>,
    pub target_len: usize,
}

/// Tokenizes `pair` with `template`, cutting the prompt's start (never the target) to fit
/// `max_len`; `None` if the target alone does not fit.
///
/// The prompt's ids are exactly those a decoder is given at test time. The target's are those
/// of prompt + target tokenized as one text, after the prompt's, so that a target starting with
/// a space gets the word-initial tokens (`▁Le`) the model reads in running text; a tokenizer
/// that merges across the boundary gets the target tokenized alone instead.
pub fn example(model: &LanguageModel, direction: Direction, pair: &Pair, template: &Template, max_len: usize) -> landermt_model::Result<Option<Example>> {
    let (prompt_text, target_text) = template.split(direction, &pair.src, &pair.tgt);
    let mut prompt = model.encode(&prompt_text)?;
    let whole = model.encode(&format!("{prompt_text}{target_text}"))?;
    let mut target = match whole.strip_prefix(prompt.as_slice()) {
        Some(rest) => rest.to_vec(),
        None => model.tokenizer.encode(&target_text, false)?,
    };
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
