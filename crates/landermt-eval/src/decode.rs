//! Decoding translations for evaluation: the template's prompt, greedy continuation with the KV
//! cache over length-sorted sentences, `batch_size` rows at a time with finished rows replaced by
//! the next sentences (continuous batching), stopped at EOS or at a newline once the output has
//! text, and the hypothesis is the first non-empty line, trimmed (METHOD.md stage 5).

use std::sync::Arc;

use landermt_data::prompt::Template;
use landermt_data::{Direction, Pair};
use landermt_model::LanguageModel;
use landermt_model::generate::{BeamOptions, GreedyOptions, LineBreaks, beam, greedy_stream, stops};

/// Where a translation ends at a newline (`[eval] newline`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Newline {
    /// At a newline once the output has non-whitespace text; the hypothesis is the first
    /// non-empty line (as `text.strip().split("\n")[0]`). A model that starts its answer on a
    /// new line is not cut to an empty hypothesis.
    #[default]
    AfterText,
    /// At the first token holding a newline, even the first token (landermt before 0.2, the
    /// ref-code's cut): an untuned model's hypothesis is empty wherever it starts with one.
    First,
    /// Never: EOS or the token limit ends the output, which is kept whole.
    Ignore,
}

impl Newline {
    /// The hypothesis in a decoded `text`.
    pub fn hypothesis(self, text: &str) -> String {
        match self {
            Newline::AfterText => text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or(""),
            Newline::First => text.split('\n').next().unwrap_or("").trim(),
            Newline::Ignore => text.trim(),
        }
        .to_string()
    }

    pub fn describe(self) -> &'static str {
        match self {
            Newline::AfterText => "EOS, or a newline after text (hypothesis: the first non-empty line)",
            Newline::First => "EOS or the first newline (hypothesis: the text before it)",
            Newline::Ignore => "EOS",
        }
    }
}

#[derive(Clone)]
pub struct DecodeOptions {
    /// The prompt is this template's text before `{tgt}` (`[eval] template`, else `[prompt]`).
    pub template: Template,
    pub max_new_tokens: usize,
    pub batch_size: usize,
    /// Where a newline ends the translation.
    pub newline: Newline,
    /// 1: greedy, batched; more: beam search, one sentence at a time.
    pub beams: usize,
    pub length_penalty: f64,
    /// Never repeat an n-gram of this size within a hypothesis (0: off, the default); see
    /// [`landermt_model::generate::repeated_ngram_ends`].
    pub no_repeat_ngram: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self { template: Template::default(), max_new_tokens: 128, batch_size: 8, newline: Newline::AfterText, beams: 1, length_penalty: 1.0, no_repeat_ngram: 0 }
    }
}

/// The options as decoded outputs are keyed by (their text goes into each hypothesis file's
/// key): an option added later appears only when set, so that files decoded before it
/// existed, with what is its default, stay current.
impl std::fmt::Debug for DecodeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("DecodeOptions");
        d.field("template", &self.template)
            .field("max_new_tokens", &self.max_new_tokens)
            .field("batch_size", &self.batch_size)
            .field("newline", &self.newline)
            .field("beams", &self.beams)
            .field("length_penalty", &self.length_penalty);
        if self.no_repeat_ngram > 0 {
            d.field("no_repeat_ngram", &self.no_repeat_ngram);
        }
        d.finish()
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

/// Each token's text as [`LineBreaks`] classifies it (a scan of the whole vocabulary).
pub fn line_breaks(model: &LanguageModel) -> LineBreaks {
    let t = &model.tokenizer;
    LineBreaks::new(t.vocab_size(), |id| t.decode(&[id], false).ok())
}

/// A model with its decoding settings and stop tokens, which are found once (finding the
/// newline tokens scans the whole vocabulary).
pub struct Decoder<'a> {
    model: &'a LanguageModel,
    opts: DecodeOptions,
    stop_ids: Vec<u32>,
    line_breaks: Option<Arc<LineBreaks>>,
}

impl<'a> Decoder<'a> {
    pub fn new(model: &'a LanguageModel, opts: &DecodeOptions) -> Self {
        let mut stop_ids = model.config.eos_token_ids.clone();
        let mut line_breaks = None;
        match opts.newline {
            Newline::AfterText => line_breaks = Some(Arc::new(self::line_breaks(model))),
            Newline::First => stop_ids.extend(newline_ids(model)),
            Newline::Ignore => {}
        }
        Self { model, opts: opts.clone(), stop_ids, line_breaks }
    }

    /// Translations of `sources`, one line each (in order), with the same in-context examples
    /// `shots` before every source (`eval.shots`); `progress` gets the sentences done.
    pub fn translate(&self, direction: Direction, sources: &[String], shots: &[Pair], progress: &dyn Fn(usize)) -> landermt_model::Result<Decoded> {
        let mut out = self.translate_all(&[Job { direction, sources, shots }], progress)?;
        Ok(out.pop().expect("one job, one result"))
    }

    /// [`Decoder::translate`] of several jobs in ONE stream of continuous batching: every job's
    /// sentences are sorted by prompt length together, so the steps after the last sentence
    /// has joined (a batch of stragglers that still reads every weight) come once, not once a
    /// job. Returns each job's result, in order. Rows do not interact, so each line is what
    /// the job alone gives.
    pub fn translate_all(&self, jobs: &[Job], progress: &dyn Fn(usize)) -> landermt_model::Result<Vec<Decoded>> {
        let model = self.model;
        let ids: Vec<Vec<u32>> = jobs.iter().flat_map(|j| j.sources.iter().map(move |s| model.encode(&prompt(&self.opts.template, j.direction, s, j.shots)))).collect::<landermt_model::Result<_>>()?;
        let mut generated = self.generate(&ids, progress).into_iter();
        jobs.iter().map(|j| self.decoded(generated.by_ref().take(j.sources.len()).collect())).collect()
    }

    /// The continuation of each prompt of `ids`, in order, by beam search or greedy decoding.
    fn generate(&self, ids: &[Vec<u32>], progress: &dyn Fn(usize)) -> Vec<Vec<u32>> {
        let (model, opts) = (self.model, &self.opts);
        // Similar lengths together waste less on padding; outputs go back to their lines.
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| ids[i].len());
        let sorted: Vec<Vec<u32>> = order.iter().map(|&i| ids[i].clone()).collect();
        let generated: Vec<Vec<u32>> = if opts.beams > 1 {
            let b = BeamOptions {
                beams: opts.beams,
                length_penalty: opts.length_penalty,
                max_new_tokens: opts.max_new_tokens,
                stop_ids: self.stop_ids.clone(),
                line_breaks: self.line_breaks.clone(),
                no_repeat_ngram: opts.no_repeat_ngram,
            };
            sorted
                .iter()
                .map(|p| {
                    let g = beam(&model.net, p, &b).0;
                    progress(1);
                    g
                })
                .collect()
        } else {
            let greedy_opts = GreedyOptions {
                max_new_tokens: opts.max_new_tokens,
                stop_ids: self.stop_ids.clone(),
                line_breaks: self.line_breaks.clone(),
                no_repeat_ngram: opts.no_repeat_ngram,
                pad_id: model.config.pad_token_id.unwrap_or(0),
            };
            // Continuous batching: finished rows make room for the next sentences.
            greedy_stream(&model.net, &sorted, opts.batch_size, &greedy_opts, &mut |_| progress(1))
        };
        let mut out = vec![Vec::new(); ids.len()];
        for (&i, g) in order.iter().zip(generated) {
            out[i] = g;
        }
        out
    }

    /// The hypotheses, token count and runaways of one job's continuations.
    fn decoded(&self, generated: Vec<Vec<u32>>) -> landermt_model::Result<Decoded> {
        let mut out = Decoded { lines: Vec::with_capacity(generated.len()), generated_tokens: 0, at_limit: Vec::with_capacity(generated.len()) };
        for generated in generated {
            out.generated_tokens += generated.len();
            // A stop token is kept in the output, so a row that ends with one stopped by itself.
            let stopped = generated.last().is_some_and(|&t| stops(&self.stop_ids, self.line_breaks.as_deref(), &generated[..generated.len() - 1], t));
            out.at_limit.push(generated.len() >= self.opts.max_new_tokens && !stopped);
            out.lines.push(self.opts.newline.hypothesis(&self.model.tokenizer.decode(&generated, true)?));
        }
        Ok(out)
    }
}

/// One set of sentences for [`Decoder::translate_all`]: their direction, and the in-context
/// examples before each.
#[derive(Debug, Clone, Copy)]
pub struct Job<'s> {
    pub direction: Direction,
    pub sources: &'s [String],
    pub shots: &'s [Pair],
}

/// What [`Decoder::translate`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// One translation per source line.
    pub lines: Vec<String>,
    /// Tokens the model generated, the stop token included and the text after a cut newline
    /// too: the decoding work done, for tokens/s.
    pub generated_tokens: usize,
    /// Per line: whether decoding ran to `max_new_tokens` without a stop (a runaway output,
    /// typically a span repeated to the limit).
    pub at_limit: Vec<bool>,
}

/// Translations of `sources` without in-context examples (a [`Decoder`] made for one call).
pub fn translate(model: &LanguageModel, direction: Direction, sources: &[String], opts: &DecodeOptions, progress: &dyn Fn(usize)) -> landermt_model::Result<Vec<String>> {
    Ok(Decoder::new(model, opts).translate(direction, sources, &[], progress)?.lines)
}

#[cfg(test)]
mod tests {
    use super::{DecodeOptions, Newline};

    /// Hypothesis files are keyed by this text: it must not change for options at their
    /// defaults, or every kept output (and every trained system behind it) is redone.
    #[test]
    fn the_key_text_of_default_options_is_what_derive_wrote() {
        let opts = DecodeOptions { max_new_tokens: 128, batch_size: 32, ..Default::default() };
        let text = format!("{opts:?}");
        assert!(text.starts_with("DecodeOptions { template: "), "{text}");
        assert!(text.ends_with(", max_new_tokens: 128, batch_size: 32, newline: AfterText, beams: 1, length_penalty: 1.0 }"), "{text}");
        assert!(format!("{:?}", DecodeOptions { no_repeat_ngram: 4, ..opts }).ends_with("length_penalty: 1.0, no_repeat_ngram: 4 }"));
    }

    #[test]
    fn the_hypothesis_is_the_first_non_empty_line_trimmed() {
        let text = "\n \n  Le chat dort.  \nTranslate this from English to French:";
        assert_eq!(Newline::AfterText.hypothesis(text), "Le chat dort.");
        assert_eq!(Newline::First.hypothesis(text), "", "the old cut leaves it empty");
        assert_eq!(Newline::AfterText.hypothesis("Le chat.\nEnglish:"), "Le chat.");
        assert_eq!(Newline::AfterText.hypothesis(" \n\t"), "");
        assert_eq!(Newline::Ignore.hypothesis(" a\nb "), "a\nb");
    }
}
