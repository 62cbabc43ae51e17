//! What each training method updates (METHOD.md stage 4): the update set of the LANDeRMT
//! variants, unit by unit, and the whole-tensor sets of the baselines.

use std::collections::BTreeMap;

use landermt_model::Site;
use landermt_route::Route;
use landermt_score::Neurons;
use serde::{Deserialize, Serialize};

/// `train.method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// G ∪ S units of the selected layers (the paper's method).
    #[default]
    Landermt,
    /// S units only (ablation).
    LandermtLs,
    /// G units only (ablation).
    LandermtLg,
    /// Every parameter of the selected layers (ablation).
    Layers,
    /// LAPE's units of the batch's two languages in every block (the subnetwork protocol of
    /// Gurgurov et al. 2025; issue 39): FFN gate and up rows, down columns.
    Lape,
    /// Every parameter.
    Full,
    Lora,
    Adapter,
    AdapterLora,
    /// No training (0-shot or in-context).
    None,
}

/// Which units of one module of one layer are trained: output units of q, k, v, o, and the FFN
/// intermediate units (gate/up outputs and down inputs).
pub type UnitSet = BTreeMap<(usize, Site), Vec<usize>>;

/// Every unit any of `sets` holds, per layer and site, sorted: the delta a joint run gathers.
pub fn union(sets: &[UnitSet]) -> UnitSet {
    let mut out = UnitSet::new();
    for set in sets {
        for (key, units) in set {
            out.entry(*key).or_default().extend(units);
        }
    }
    for units in out.values_mut() {
        units.sort_unstable();
        units.dedup();
    }
    out
}

/// The units `lape` trains for a batch of `languages`: in every block, the FFN units LAPE gives
/// any of them (`lape.units[block][language]`).
pub fn lape_units(lape: &landermt_score::lape::Lape, languages: &[landermt_data::Language]) -> UnitSet {
    let mut set = UnitSet::new();
    for (layer, units) in lape.units.iter().enumerate() {
        let mut u: Vec<usize> = languages.iter().flat_map(|l| units.get(l.code).into_iter().flatten().copied()).collect();
        u.sort_unstable();
        u.dedup();
        if !u.is_empty() {
            set.insert((layer, Site::FfnAct), u);
        }
    }
    set
}

/// The units trained by a LANDeRMT variant, from stage 3's FFN partition and stage 2's
/// attention splits. `general` and `specific` say which parts are included.
pub fn unit_set(route: &Route, neurons: &Neurons, general: bool, specific: bool) -> UnitSet {
    let mut set = UnitSet::new();
    for l in &route.layers {
        let mut ffn: Vec<usize> = Vec::new();
        if general {
            ffn.extend(&l.general);
        }
        if specific {
            ffn.extend(&l.specific);
        }
        ffn.sort_unstable();
        set.insert((l.layer, Site::FfnAct), ffn);
        let Some(split) = neurons.layers.iter().find(|s| s.layer == l.layer) else { continue };
        for site in [Site::AttnQ, Site::AttnK, Site::AttnV, Site::AttnO] {
            let Some(m) = split.modules.get(site.name()) else { continue };
            let mut units: Vec<usize> = Vec::new();
            if general {
                units.extend(&m.general);
            }
            if specific {
                for lang in &route.pair {
                    units.extend(m.specific.get(lang.code).into_iter().flatten());
                }
            }
            units.sort_unstable();
            set.insert((l.layer, site), units);
        }
    }
    set
}

impl Method {
    pub const ALL: [Method; 10] =
        [Method::Landermt, Method::LandermtLs, Method::LandermtLg, Method::Layers, Method::Lape, Method::Full, Method::Lora, Method::Adapter, Method::AdapterLora, Method::None];

    /// The config and directory name (`landermt`, `landermt-ls`, …, `adapter-lora`, `none`).
    pub fn name(self) -> &'static str {
        match self {
            Method::Landermt => "landermt",
            Method::LandermtLs => "landermt-ls",
            Method::LandermtLg => "landermt-lg",
            Method::Layers => "layers",
            Method::Lape => "lape",
            Method::Full => "full",
            Method::Lora => "lora",
            Method::Adapter => "adapter",
            Method::AdapterLora => "adapter-lora",
            Method::None => "none",
        }
    }

    /// Whether it trains a unit set (the LANDeRMT variants).
    pub fn is_selective(self) -> bool {
        matches!(self, Method::Landermt | Method::LandermtLs | Method::LandermtLg)
    }

    /// The unit set of the LANDeRMT variants; `None` for the whole-tensor and added-module
    /// methods.
    pub fn units(self, route: &Route, neurons: &Neurons) -> Option<UnitSet> {
        match self {
            Method::Landermt => Some(unit_set(route, neurons, true, true)),
            Method::LandermtLs => Some(unit_set(route, neurons, false, true)),
            Method::LandermtLg => Some(unit_set(route, neurons, true, false)),
            _ => None,
        }
    }
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Method::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| format!("unknown method `{s}` (known: {})", Method::ALL.map(Method::name).join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_config_spellings() {
        for m in Method::ALL {
            assert_eq!(serde_json::to_value(m).unwrap(), m.name());
            assert_eq!(m.name().parse::<Method>(), Ok(m));
        }
        assert!("qlora".parse::<Method>().unwrap_err().contains("unknown method `qlora`"));
    }
}
