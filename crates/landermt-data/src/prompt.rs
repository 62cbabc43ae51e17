//! Translation prompts shared by training and evaluation (METHOD.md stages 4–5): an example is
//! `{prompt}\n{target}`, so a model trained on it is asked for a translation with
//! `{prompt}\n` and answers up to the end of the line.

use crate::lang::Direction;

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

