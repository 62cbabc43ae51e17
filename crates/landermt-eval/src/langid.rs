//! The off-target rate: the share of hypotheses written in another language than the
//! direction's target (METHOD.md, stage 5). Languages are identified by `lingua` (n-gram models
//! compiled in, no network), among the run's languages only, so that a French hypothesis is
//! never taken for a language the run has never seen.

use std::str::FromStr;

use lingua::{IsoCode639_1, LanguageDetector, LanguageDetectorBuilder};

#[derive(Debug, thiserror::Error)]
pub enum LangIdError {
    #[error("language `{0}`: not one lingua identifies here (compiled in: ar de en es fr it ja ru zh)")]
    Unknown(String),
    #[error("language identification needs at least two languages, got {0:?}")]
    TooFew(Vec<String>),
}

/// A language identifier restricted to a run's languages (ISO 639-1 codes, as in `Language`).
pub struct LanguageId {
    detector: LanguageDetector,
}

/// How many of a direction's hypotheses are off target.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OffTarget {
    /// Hypotheses identified as another of the run's languages.
    pub off: usize,
    /// Hypotheses with no identifiable language (empty, digits, punctuation): neither on nor
    /// off target.
    pub undetermined: usize,
    pub lines: usize,
}

impl OffTarget {
    /// `off` over all lines: an empty or unidentifiable line counts as on target.
    pub fn rate(&self) -> f64 {
        self.off as f64 / self.lines.max(1) as f64
    }
}

impl LanguageId {
    pub fn new(codes: &[&str]) -> Result<Self, LangIdError> {
        let mut isos: Vec<IsoCode639_1> = codes.iter().map(|c| iso(c)).collect::<Result<_, _>>()?;
        isos.sort_by_key(|i| i.to_string());
        isos.dedup();
        if isos.len() < 2 {
            return Err(LangIdError::TooFew(codes.iter().map(|c| c.to_string()).collect()));
        }
        Ok(Self { detector: LanguageDetectorBuilder::from_iso_codes_639_1(&isos).build() })
    }

    /// The ISO 639-1 code of `text`'s language, if one of the identifier's languages is likely.
    pub fn detect(&self, text: &str) -> Option<String> {
        self.detector.detect_language_of(text).map(|l| l.iso_code_639_1().to_string())
    }

    /// How many of `hypotheses` are identified as another language than `target`.
    pub fn off_target(&self, hypotheses: &[String], target: &str) -> OffTarget {
        let detected: Vec<Option<String>> = hypotheses.iter().map(|h| self.detect(h)).collect();
        OffTarget { off: detected.iter().flatten().filter(|l| *l != target).count(), undetermined: detected.iter().filter(|l| l.is_none()).count(), lines: hypotheses.len() }
    }
}

fn iso(code: &str) -> Result<IsoCode639_1, LangIdError> {
    let unknown = || LangIdError::Unknown(code.to_string());
    let iso = IsoCode639_1::from_str(code).map_err(|_| unknown())?;
    // Only the languages whose models are compiled in (the workspace's `lingua` features).
    const COMPILED: [&str; 9] = ["ar", "de", "en", "es", "fr", "it", "ja", "ru", "zh"];
    COMPILED.contains(&code).then_some(iso).ok_or_else(unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sentence_is_identified_among_the_runs_languages() {
        let id = LanguageId::new(&["en", "fr", "de", "zh"]).unwrap();
        assert_eq!(id.detect("Le chat dort sur le canapé depuis ce matin.").as_deref(), Some("fr"));
        assert_eq!(id.detect("Die Katze schläft seit heute Morgen auf dem Sofa.").as_deref(), Some("de"));
        assert_eq!(id.detect("猫从早上开始就在沙发上睡觉。").as_deref(), Some("zh"));
        assert_eq!(id.detect("").as_deref(), None);
    }

    #[test]
    fn the_off_target_rate_counts_other_languages_only() {
        let id = LanguageId::new(&["en", "de", "zh"]).unwrap();
        let hyps: Vec<String> = ["Die Katze schläft auf dem Sofa.", "猫在沙发上睡觉。", "", "The cat is sleeping on the sofa."].map(String::from).into();
        let o = id.off_target(&hyps, "de");
        assert_eq!((o.off, o.undetermined, o.lines), (2, 1, 4));
        assert_eq!(o.rate(), 0.5);
    }

    #[test]
    fn unknown_languages_and_single_languages_are_refused() {
        assert!(matches!(LanguageId::new(&["en", "xx"]), Err(LangIdError::Unknown(c)) if c == "xx"));
        assert!(matches!(LanguageId::new(&["en", "pt"]), Err(LangIdError::Unknown(c)) if c == "pt"));
        assert!(matches!(LanguageId::new(&["en", "en"]), Err(LangIdError::TooFew(_))));
    }
}
