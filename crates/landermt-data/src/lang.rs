//! Languages and translation directions.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A language the project knows: ISO 639-1 code, English name (used in prompts) and FLORES-200
/// code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "String")]
pub struct Language {
    pub code: &'static str,
    pub name: &'static str,
    pub flores: &'static str,
}

pub const LANGUAGES: &[Language] = &[
    Language { code: "en", name: "English", flores: "eng_Latn" },
    Language { code: "fr", name: "French", flores: "fra_Latn" },
    Language { code: "de", name: "German", flores: "deu_Latn" },
    Language { code: "it", name: "Italian", flores: "ita_Latn" },
    Language { code: "zh", name: "Chinese", flores: "zho_Hans" },
    Language { code: "ar", name: "Arabic", flores: "arb_Arab" },
    Language { code: "es", name: "Spanish", flores: "spa_Latn" },
    Language { code: "ja", name: "Japanese", flores: "jpn_Jpan" },
    Language { code: "ru", name: "Russian", flores: "rus_Cyrl" },
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LangError {
    #[error("unknown language code `{0}` (known: {known})", known = LANGUAGES.iter().map(|l| l.code).collect::<Vec<_>>().join(" "))]
    Unknown(String),
    #[error("direction `{0}` is not `src-tgt` with two different language codes")]
    Direction(String),
}

impl FromStr for Language {
    type Err = LangError;
    fn from_str(s: &str) -> Result<Self, LangError> {
        LANGUAGES.iter().copied().find(|l| l.code == s).ok_or_else(|| LangError::Unknown(s.to_string()))
    }
}

/// Written by hand: a derived impl would see the `&'static str` fields and demand `'de: 'static`,
/// which makes every struct holding a language undeserialisable from borrowed input.
impl<'de> Deserialize<'de> for Language {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Direction {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl TryFrom<String> for Language {
    type Error = LangError;
    fn try_from(s: String) -> Result<Self, LangError> {
        s.parse()
    }
}

impl From<Language> for String {
    fn from(l: Language) -> String {
        l.code.to_string()
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

/// `src→tgt`, written `src-tgt` (e.g. `en-fr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "String")]
pub struct Direction {
    pub src: Language,
    pub tgt: Language,
}

impl FromStr for Direction {
    type Err = LangError;
    fn from_str(s: &str) -> Result<Self, LangError> {
        let (a, b) = s.split_once('-').ok_or_else(|| LangError::Direction(s.to_string()))?;
        let (src, tgt): (Language, Language) = (a.parse()?, b.parse()?);
        if src == tgt {
            return Err(LangError::Direction(s.to_string()));
        }
        Ok(Self { src, tgt })
    }
}

impl TryFrom<String> for Direction {
    type Error = LangError;
    fn try_from(s: String) -> Result<Self, LangError> {
        s.parse()
    }
}

impl From<Direction> for String {
    fn from(d: Direction) -> String {
        d.to_string()
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.src.code, self.tgt.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directions_parse_and_print() {
        let d: Direction = "en-fr".parse().unwrap();
        assert_eq!((d.src.name, d.tgt.flores), ("English", "fra_Latn"));
        assert_eq!(d.to_string(), "en-fr");
        assert!(matches!("en-xx".parse::<Direction>(), Err(LangError::Unknown(c)) if c == "xx"));
        assert!(matches!("en-en".parse::<Direction>(), Err(LangError::Direction(_))));
        assert!(matches!("enfr".parse::<Direction>(), Err(LangError::Direction(_))));
    }
}
