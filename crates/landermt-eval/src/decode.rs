//! Decoding translations for evaluation: the template's prompt, greedy continuation with the KV
//! cache over length-sorted sentences, `batch_size` rows at a time with finished rows replaced by
//! the next sentences (continuous batching), stopped at EOS or at the first token that
//! contains a newline, and the output cut at that newline (METHOD.md stage 5).

use landermt_data::{Direction, Pair};
use landermt_data::prompt::Template;
use landermt_model::LanguageModel;
use landermt_model::generate::{BeamOptions, GreedyOptions, beam, greedy_stream};

#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// The prompt is this template's text before `{tgt}` (`[eval] template`, else `[prompt]`).
    pub template: Template,
    pub max_new_tokens: usize,
    pub batch_size: usize,
    /// Stop at (and cut at) the first newline.
    pub stop_at_newline: bool,
    /// 1: greedy, batched; more: beam search, one sentence at a time.
    pub beams: usize,
    pub length_penalty: f64,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self { template: Template::default(), max_new_tokens: 128, batch_size: 8, stop_at_newline: true, beams: 1, length_penalty: 1.0 }
    }
}

/// Ids whose text contains a newline: generating one ends the translation.
pub fn newline_ids(model: &LanguageModel) -> Vec<u32> {
    let t = &model.tokenizer;
    (0..t.vocab_size() as u32).filter(|&id| t.decode(&[id], false).is_ok_and(|s| s.contains('\n'))).collect()
}

/// The prompt of `src` for `direction`: the template's text before `{tgt}`, after the
/// in-context examples `shots` (each written as a complete example and a line break).
pub fn prompt(template: &Template, direction: Direction, src: &str, shots: &[Pair]) -> String {
    let mut p: String = shots
        .iter()
        .map(|s| {
            let (prompt, target) = template.split(direction, &s.src, &s.tgt);
            format!("{prompt}{target}\n")
        })
        .collect();
    p.push_str(&template.prompt(direction, src));
    p
}

/// A model with its decoding settings and stop tokens, which are found once (finding the
/// newline tokens scans the whole vocabulary).
pub struct Decoder<'a> {
    model: &'a LanguageModel,
    opts: DecodeOptions,
    stop_ids: Vec<u32>,
}

impl<'a> Decoder<'a> {
    pub fn new(model: &'a LanguageModel, opts: &DecodeOptions) -> Self {
        let mut stop_ids = model.config.eos_token_ids.clone();
        if opts.stop_at_newline {
            stop_ids.extend(newline_ids(model));
        }
        Self { model, opts: opts.clone(), stop_ids }
    }

    /// Translations of `sources`, one line each (in order), with the same in-context examples
    /// `shots` before every source (`eval.shots`); `progress` gets the sentences done.
    pub fn translate(&self, direction: Direction, sources: &[String], shots: &[Pair], progress: &dyn Fn(usize)) -> landermt_model::Result<Decoded> {
        let (model, opts) = (self.model, &self.opts);
        let greedy_opts = GreedyOptions { max_new_tokens: opts.max_new_tokens, stop_ids: self.stop_ids.clone(), pad_id: model.config.pad_token_id.unwrap_or(0) };
        let ids: Vec<Vec<u32>> = sources.iter().map(|s| model.encode(&prompt(&opts.template, direction, s, shots))).collect::<landermt_model::Result<_>>()?;
        // Similar lengths together waste less on padding; outputs go back to their lines.
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| ids[i].len());
        let sorted: Vec<Vec<u32>> = order.iter().map(|&i| ids[i].clone()).collect();
        let generated: Vec<Vec<u32>> = if opts.beams > 1 {
            let b = BeamOptions { beams: opts.beams, length_penalty: opts.length_penalty, max_new_tokens: opts.max_new_tokens, stop_ids: self.stop_ids.clone() };
            sorted.iter().map(|p| { let g = beam(&model.net, p, &b).0; progress(1); g }).collect()
        } else {
            // Continuous batching: finished rows make room for the next sentences.
            greedy_stream(&model.net, &sorted, opts.batch_size, &greedy_opts, &mut |_| progress(1))
        };
        let mut out = vec![String::new(); ids.len()];
        let mut generated_tokens = 0;
        for (&i, generated) in order.iter().zip(generated) {
            generated_tokens += generated.len();
            let text = model.tokenizer.decode(&generated, true)?;
            let line = if opts.stop_at_newline { text.split('\n').next().unwrap_or("") } else { text.as_str() };
            out[i] = line.trim().to_string();
        }
        Ok(Decoded { lines: out, generated_tokens })
    }
}

/// What [`Decoder::translate`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// One translation per source line.
    pub lines: Vec<String>,
    /// Tokens the model generated, the stop token included and the text after a cut newline
    /// too: the decoding work done, for tokens/s.
    pub generated_tokens: usize,
}

/// Translations of `sources` without in-context examples (a [`Decoder`] made for one call).
pub fn translate(model: &LanguageModel, direction: Direction, sources: &[String], opts: &DecodeOptions, progress: &dyn Fn(usize)) -> landermt_model::Result<Vec<String>> {
    Ok(Decoder::new(model, opts).translate(direction, sources, &[], progress)?.lines)
}
