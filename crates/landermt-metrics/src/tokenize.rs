//! sacreBLEU's tokenizers, character for character: `13a` (mteval-v13a), `zh`, `intl`, `char`
//! and `none`. Each returns the line re-spaced; BLEU splits the result on whitespace.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tokenize {
    #[default]
    #[serde(rename = "13a")]
    Mteval13a,
    Zh,
    Intl,
    Char,
    None,
}

impl Tokenize {
    /// The name in sacreBLEU's signature.
    pub fn name(self) -> &'static str {
        match self {
            Tokenize::Mteval13a => "13a",
            Tokenize::Zh => "zh",
            Tokenize::Intl => "intl",
            Tokenize::Char => "char",
            Tokenize::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Tokenize::Mteval13a, Tokenize::Zh, Tokenize::Intl, Tokenize::Char, Tokenize::None].into_iter().find(|t| t.name() == s)
    }

    /// The tokens of `line`.
    pub fn tokens(self, line: &str) -> Vec<String> {
        let spaced = match self {
            Tokenize::Mteval13a => tokenize_13a(line),
            Tokenize::Zh => tokenize_zh(line),
            Tokenize::Intl => tokenize_intl(line),
            Tokenize::Char => line.chars().map(|c| c.to_string()).collect::<Vec<_>>().join(" "),
            Tokenize::None => line.to_string(),
        };
        split(&spaced).map(str::to_string).collect()
    }
}

/// Python's `str.split()`: Rust's whitespace plus U+001C–U+001F.
pub fn split(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_py_space).filter(|t| !t.is_empty())
}

pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

fn join_split(s: &str) -> String {
    split(s).collect::<Vec<_>>().join(" ")
}

/// The four substitutions of mteval-v13a, in order.
static RULES_13A: LazyLock<[(Regex, &str); 4]> = LazyLock::new(|| {
    [
        (Regex::new(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])").unwrap(), " $1 "),
        (Regex::new(r"([^0-9])([\.,])").unwrap(), "$1 $2 "),
        (Regex::new(r"([\.,])([^0-9])").unwrap(), " $1 $2"),
        (Regex::new(r"([0-9])(-)").unwrap(), "$1 $2 "),
    ]
});

fn apply_13a_rules(mut line: String) -> String {
    for (re, rep) in RULES_13A.iter() {
        line = re.replace_all(&line, *rep).into_owned();
    }
    line
}

fn tokenize_13a(line: &str) -> String {
    let mut line = line.replace("<skipped>", "").replace("-\n", "").replace('\n', " ");
    if line.contains('&') {
        line = line.replace("&quot;", "\"").replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">");
    }
    join_split(&apply_13a_rules(format!(" {line} ")))
}

/// sacreBLEU's "Chinese" ranges as its code compares them (`u'\u20000'` is U+2000 followed by
/// '0', and so on), which is what its scores are computed with.
fn is_zh(c: char) -> bool {
    const RANGES: [(u32, u32); 13] = [
        (0x2001, 0x2A6D),
        (0x2E80, 0x2FDF),
        (0x2FF0, 0x303F),
        (0x3100, 0x312F),
        (0x31A0, 0x31EF),
        (0x3200, 0x4DB5),
        (0x4E00, 0x9FBB),
        (0xF900, 0xFA2D),
        (0xFA30, 0xFA6A),
        (0xFA70, 0xFAD9),
        (0xFE10, 0xFE1F),
        (0xFE30, 0xFE4F),
        (0xFF00, 0xFFEF),
    ];
    let c = c as u32;
    RANGES.iter().any(|&(a, b)| (a..=b).contains(&c))
}

fn tokenize_zh(line: &str) -> String {
    let line = line.trim_matches(is_py_space);
    let mut out = String::with_capacity(line.len() * 2);
    for c in line.chars() {
        if is_zh(c) {
            out.push(' ');
            out.push(c);
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    join_split(&apply_13a_rules(out))
}

static RULES_INTL: LazyLock<[(Regex, &str); 3]> =
    LazyLock::new(|| [(Regex::new(r"(\P{N})(\p{P})").unwrap(), "$1 $2 "), (Regex::new(r"(\p{P})(\P{N})").unwrap(), " $1 $2"), (Regex::new(r"(\p{S})").unwrap(), " $1 ")]);

fn tokenize_intl(line: &str) -> String {
    let mut line = line.to_string();
    for (re, rep) in RULES_INTL.iter() {
        line = re.replace_all(&line, *rep).into_owned();
    }
    join_split(&line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirteen_a_splits_punctuation_but_not_numbers() {
        assert_eq!(Tokenize::Mteval13a.tokens("The total was 1,000.50 dollars."), ["The", "total", "was", "1,000.50", "dollars", "."]);
        assert_eq!(Tokenize::Mteval13a.tokens("Tom &amp; Jerry"), ["Tom", "&", "Jerry"]);
        assert_eq!(Tokenize::Zh.tokens("东京2021。"), ["东", "京", "2021", "。"]);
    }
}
