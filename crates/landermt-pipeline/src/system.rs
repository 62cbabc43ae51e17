//! A system the evaluation compares: a training method, fine-tuned on all the run's directions
//! (`landermt`) or, for the transfer matrix, on one of them alone (`landermt@en-fr`).

use std::fmt;
use std::str::FromStr;

use landermt_data::Direction;
use landermt_train::Method;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct System {
    pub method: Method,
    /// The one direction it was trained on; `None`: every direction of the run.
    pub only: Option<Direction>,
    /// In-context learning (`icl`): the untuned model given `[eval] icl_shots` dev examples
    /// before each test sentence.
    pub icl: bool,
}

impl System {
    pub fn all(method: Method) -> Self {
        Self { method, only: None, icl: false }
    }

    pub fn icl() -> Self {
        Self { method: Method::None, only: None, icl: true }
    }

    /// Its name in paths (`{run}/train/{name}/`), step names and reports.
    pub fn name(&self) -> String {
        match self.only {
            _ if self.icl => "icl".to_string(),
            None => self.method.name().to_string(),
            Some(d) => format!("{}@{d}", self.method.name()),
        }
    }

    /// The directions it trains on, out of the run's.
    pub fn directions(&self, run: &[Direction]) -> Vec<Direction> {
        match self.only {
            None => run.to_vec(),
            Some(d) => vec![d],
        }
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for System {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "icl" {
            return Ok(Self::icl());
        }
        let (m, d) = match s.split_once('@') {
            Some((m, d)) => (m, Some(d.parse::<Direction>().map_err(|e| format!("`{s}`: {e}"))?)),
            None => (s, None),
        };
        Ok(Self { method: m.parse()?, only: d, icl: false })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in ["landermt", "lora", "landermt@en-fr", "full@fr-en", "icl"] {
            assert_eq!(s.parse::<System>().unwrap().name(), s);
        }
        assert!("landermt@en-xx".parse::<System>().unwrap_err().contains("xx"));
        assert!("qlora@en-fr".parse::<System>().is_err());
    }
}
