//! Translation prompts shared by training and evaluation (METHOD.md stages 4–5).
//!
//! A [`Template`] is one text with `{Src}` and `{Tgt}` (the languages' English names), `{src}`
//! (the source sentence) and `{tgt}` (the translation). The prompt is the filled text before
//! `{tgt}`; the training target is the text from `{tgt}` on, then EOS. Spaces that end the text
//! before `{tgt}` (the space of `French: {tgt}`) are moved to the target: tokenizers attach a
//! space to the word after it (`▁Le`), so a prompt ending in a space would ask the model for a
//! token it has rarely seen. A line break stays in the prompt: decoding stops at one.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use crate::lang::Direction;

/// The default template, for training and evaluation alike: ALMA's prompt, which a pretrained
/// (not instruction-tuned) model answers instead of continuing.
pub const DEFAULT_TEMPLATE: &str = "Translate this from {Src} to {Tgt}:\n{Src}: {src}\n{Tgt}: {tgt}";

/// The paper's test prompt, an instruction (METHOD.md stage 5: an option, not the default).
pub const PAPER_TEST_TEMPLATE: &str = "Translate \"{src}\" to {Tgt}.\n{tgt}";

/// The ref-code's ten instruction templates, one sampled per example when `[prompt] train =
/// "mixed"`; the translation follows on the next line.
pub const MIXED_TEMPLATES: [&str; 10] = [
    "Translate the following text from {Src} to {Tgt}.\n{Src}: {src}\n{Tgt}:\n{tgt}",
    "Translate this {Src} sentence into {Tgt}:\n{src}\n{tgt}",
    "{Src}: {src}\n{Tgt}:\n{tgt}",
    "Translate \"{src}\" to {Tgt}.\n{tgt}",
    "Please translate the sentence below from {Src} into {Tgt}.\n{src}\n{tgt}",
    "What is the {Tgt} translation of the {Src} sentence \"{src}\"?\n{tgt}",
    "{src}\nTranslate the sentence above into {Tgt}.\n{tgt}",
    "Source ({Src}): {src}\nTarget ({Tgt}):\n{tgt}",
    "Render the following {Src} text in {Tgt}:\n{src}\n{tgt}",
    "Give the {Tgt} version of this {Src} sentence:\n{src}\n{tgt}",
];

/// [`MIXED_TEMPLATES`], parsed once.
pub fn mixed() -> &'static [Template] {
    static PARSED: LazyLock<Vec<Template>> = LazyLock::new(|| MIXED_TEMPLATES.iter().map(|t| t.parse().expect("shipped templates are valid")).collect());
    &PARSED
}

/// Which templates the training examples use (`[prompt] train`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mixing {
    /// Every example uses `[prompt] template`.
    #[default]
    Single,
    /// Each example uses one of [`MIXED_TEMPLATES`], drawn by seed and position.
    Mixed,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("the template has no `{0}`; it needs `{{src}}` (the source sentence) and `{{tgt}}` (where the translation starts)")]
    Missing(&'static str),
    #[error("`{0}` appears twice; it must appear once")]
    Twice(&'static str),
    #[error("unknown placeholder `{0}`; the template may use {{Src}}, {{Tgt}}, {{src}} and {{tgt}}")]
    Unknown(String),
    #[error("`{{tgt}}` comes before `{{src}}`; the prompt (the text before `{{tgt}}`) must contain the source")]
    TargetFirst,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    SrcName,
    TgtName,
    Src,
    Tgt,
}

/// A parsed prompt template; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Template {
    text: String,
    pieces: Vec<Piece>,
}

impl FromStr for Template {
    type Err = TemplateError;

    fn from_str(text: &str) -> Result<Self, TemplateError> {
        let mut pieces = Vec::new();
        let mut rest = text;
        // A placeholder is `{name}` with a name of letters and underscores; other braces are text.
        while let Some((start, end, name)) = next_placeholder(rest) {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_string()));
            }
            pieces.push(match name {
                "Src" => Piece::SrcName,
                "Tgt" => Piece::TgtName,
                "src" => Piece::Src,
                "tgt" => Piece::Tgt,
                _ => return Err(TemplateError::Unknown(format!("{{{name}}}"))),
            });
            rest = &rest[end..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        let position = |p: &Piece, name: &'static str| -> Result<usize, TemplateError> {
            match pieces.iter().filter(|q| *q == p).count() {
                0 => Err(TemplateError::Missing(name)),
                1 => Ok(pieces.iter().position(|q| q == p).expect("counted")),
                _ => Err(TemplateError::Twice(name)),
            }
        };
        if position(&Piece::Src, "{src}")? > position(&Piece::Tgt, "{tgt}")? {
            return Err(TemplateError::TargetFirst);
        }
        Ok(Self { text: text.to_string(), pieces })
    }
}

/// The byte range and name of the first `{name}` in `s`.
fn next_placeholder(s: &str) -> Option<(usize, usize, &str)> {
    let mut from = 0;
    while let Some(open) = s[from..].find('{').map(|i| i + from) {
        let name_len = s[open + 1..].find(|c: char| !(c.is_ascii_alphabetic() || c == '_')).unwrap_or(s.len() - open - 1);
        let close = open + 1 + name_len;
        if name_len > 0 && s[close..].starts_with('}') {
            return Some((open, close + 1, &s[open + 1..close]));
        }
        from = open + 1;
    }
    None
}

impl TryFrom<String> for Template {
    type Error = TemplateError;
    fn try_from(s: String) -> Result<Self, TemplateError> {
        s.parse()
    }
}

impl From<Template> for String {
    fn from(t: Template) -> String {
        t.text
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Default for Template {
    fn default() -> Self {
        DEFAULT_TEMPLATE.parse().expect("the default template is valid")
    }
}

impl Template {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The prompt and the target of one example (see [`Self::prompt`], [`Self::target`]).
    pub fn split(&self, direction: Direction, src: &str, tgt: &str) -> (String, String) {
        let (mut before, mut after) = (String::new(), String::new());
        let mut out = &mut before;
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::SrcName => out.push_str(direction.src.name),
                Piece::TgtName => out.push_str(direction.tgt.name),
                Piece::Src => out.push_str(src),
                Piece::Tgt => {
                    out = &mut after;
                    out.push_str(tgt);
                }
            }
        }
        let kept = before.trim_end_matches([' ', '\t']).len();
        let moved = before.split_off(kept);
        (before, moved + &after)
    }

    /// What the model is given: the filled text before `{tgt}`, trailing spaces removed.
    pub fn prompt(&self, direction: Direction, src: &str) -> String {
        self.split(direction, src, "").0
    }

    /// What the model is trained to continue the prompt with: the spaces removed from the
    /// prompt's end, the translation, and any template text after `{tgt}` (EOS is added by the
    /// tokenizing code).
    pub fn target(&self, direction: Direction, src: &str, tgt: &str) -> String {
        self.split(direction, src, tgt).1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn en_fr() -> Direction {
        "en-fr".parse().unwrap()
    }

    #[test]
    fn the_default_prompt_is_alma_s_and_the_target_starts_at_tgt() {
        let t = Template::default();
        assert_eq!(t.prompt(en_fr(), "The cat."), "Translate this from English to French:\nEnglish: The cat.\nFrench:");
        assert_eq!(t.target(en_fr(), "The cat.", "Le chat."), " Le chat.");
        let whole = format!("{}{}", t.prompt(en_fr(), "The cat."), t.target(en_fr(), "The cat.", "Le chat."));
        assert_eq!(whole, "Translate this from English to French:\nEnglish: The cat.\nFrench: Le chat.");
    }

    #[test]
    fn text_after_tgt_belongs_to_the_target_and_names_repeat() {
        let t: Template = "<{Src}> {src} <{Tgt}>\n\n{tgt} </{Tgt}>".parse().unwrap();
        assert_eq!(t.prompt(en_fr(), "a"), "<English> a <French>\n\n");
        assert_eq!(t.target(en_fr(), "a", "b"), "b </French>");
        let tab: Template = "{src} =>\t {tgt}".parse().unwrap();
        assert_eq!((tab.prompt(en_fr(), "a"), tab.target(en_fr(), "a", "b")), ("a =>".to_string(), "\t b".to_string()));
    }

    #[test]
    fn sentences_are_not_read_as_placeholders() {
        let t = Template::default();
        let p = t.prompt(en_fr(), "Write {Tgt} and {tgt} in {braces}.");
        assert!(p.ends_with("English: Write {Tgt} and {tgt} in {braces}.\nFrench:"), "{p}");
        let json: Template = "{ \"src\": \"{src}\" } => {tgt}".parse().unwrap();
        assert_eq!(json.prompt(en_fr(), "x"), "{ \"src\": \"x\" } =>");
    }

    #[test]
    fn bad_templates_are_refused() {
        let cases = [
            ("{Src}: {src}", TemplateError::Missing("{tgt}")),
            ("{Tgt}: {tgt}", TemplateError::Missing("{src}")),
            ("{src} {src} {tgt}", TemplateError::Twice("{src}")),
            ("{src} {tgt} {tgt}", TemplateError::Twice("{tgt}")),
            ("{tgt} {src}", TemplateError::TargetFirst),
            ("{Source}: {src}\n{tgt}", TemplateError::Unknown("{Source}".into())),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<Template>().unwrap_err(), want, "{text}");
        }
    }

    #[test]
    fn the_mixed_set_parses_and_keeps_the_old_prompts() {
        assert_eq!(mixed().len(), 10);
        assert_eq!(mixed()[3].prompt(en_fr(), "x"), "Translate \"x\" to French.\n");
        assert_eq!(mixed()[3].target(en_fr(), "x", "y"), "y");
        assert_eq!(PAPER_TEST_TEMPLATE.parse::<Template>().unwrap(), mixed()[3]);
    }
}
