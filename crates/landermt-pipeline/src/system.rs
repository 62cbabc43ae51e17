//! A system the evaluation compares: a training method, fine-tuned on all the run's directions
//! (`landermt`), on one of them alone for the transfer matrix (`landermt@en-fr`), or with
//! another seed than `train.seed` (`landermt.seed2`, `[eval] seeds`).

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
    /// The seed it trains with instead of `train.seed` (data order, LoRA's initialisation).
    pub seed: Option<u64>,
}

impl System {
    pub fn all(method: Method) -> Self {
        Self { method, only: None, icl: false, seed: None }
    }

    pub fn icl() -> Self {
        Self { method: Method::None, only: None, icl: true, seed: None }
    }

    /// `method` on every direction, trained with `seed`.
    pub fn seeded(method: Method, seed: u64) -> Self {
        Self { seed: Some(seed), ..Self::all(method) }
    }

    /// Its name in paths (`{run}/train/{name}/`), step names and reports.
    pub fn name(&self) -> String {
        let base = match self.only {
            _ if self.icl => "icl".to_string(),
            None => self.method.name().to_string(),
            Some(d) => format!("{}@{d}", self.method.name()),
        };
        match self.seed {
            Some(seed) => format!("{base}.seed{seed}"),
            None => base,
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
        let (rest, seed) = match s.rsplit_once(".seed") {
            Some((rest, n)) => (rest, Some(n.parse::<u64>().map_err(|e| format!("`{s}`: seed `{n}`: {e}"))?)),
            None => (s, None),
        };
        if rest == "icl" {
            return Ok(Self { seed, ..Self::icl() });
        }
        let (m, d) = match rest.split_once('@') {
            Some((m, d)) => (m, Some(d.parse::<Direction>().map_err(|e| format!("`{s}`: {e}"))?)),
            None => (rest, None),
        };
        Ok(Self { method: m.parse()?, only: d, icl: false, seed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in ["landermt", "lora", "landermt@en-fr", "full@fr-en", "icl", "landermt.seed2", "landermt-ls.seed3"] {
            assert_eq!(s.parse::<System>().unwrap().name(), s);
        }
        assert_eq!("lora.seed7".parse::<System>().unwrap(), System::seeded(Method::Lora, 7));
        assert!("lora.seedx".parse::<System>().unwrap_err().contains("seed `x`"));
        assert!("landermt@en-xx".parse::<System>().unwrap_err().contains("xx"));
        assert!("qlora@en-fr".parse::<System>().is_err());
    }
}
