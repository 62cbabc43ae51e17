//! Stage 2's artifacts: `neurons.safetensors` holds every score tensor, `neurons.json` the
//! split of the selected layers. Both are versioned ([`NEURONS_VERSION`]).
//!
//! Tensor names (all f64, one entry per unit):
//! - `layer.{i}.{module}.S.{lang}`: `S_ℓ`, Σ over sentences of the token-mean of `|∂L/∂h · h|`;
//! - `layer.{i}.{module}.G.{lang}`: `G_ℓ`, Σ over sentences and tokens of `|∂L/∂h|` / tokens;
//! - `layer.{i}.{module}.var`: `σ`, the unbiased variance of `S_ℓ` across languages;
//!
//! with `module` one of `q k v o ffn_act ffn_down` and `lang` an ISO 639-1 code. The file's
//! metadata has one key, `landermt`, whose value is the JSON
//! `{"artifact":"neurons","version":1,"languages":["en","fr",…]}` (languages in the run's
//! order). One key, because safetensors writes its metadata map in hash order, and the file
//! should come out byte-identical from identical inputs.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use landermt_data::{Language, MonoSource};
use landermt_model::Site;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};

use crate::split::Split;

/// Version of the `neurons.json` and `neurons.safetensors` schemas.
pub const NEURONS_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {msg}")]
    Format { path: PathBuf, msg: String },
}

/// The metadata of `neurons.safetensors`.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    artifact: String,
    version: u32,
    languages: Vec<Language>,
}

/// The scores of one module in every language (languages in [`Scores::languages`] order).
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleScores {
    pub s: Vec<Vec<f64>>,
    pub g: Vec<Vec<f64>>,
    pub var: Vec<f64>,
}

/// Everything in `neurons.safetensors`.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    pub languages: Vec<Language>,
    pub modules: BTreeMap<(usize, Site), ModuleScores>,
}

fn name(layer: usize, site: Site, what: &str) -> String {
    format!("layer.{layer}.{}.{what}", site.name())
}

impl Scores {
    pub fn num_layers(&self) -> usize {
        self.modules.keys().map(|(l, _)| l + 1).max().unwrap_or(0)
    }

    pub fn write(&self, path: &Path) -> landermt_model::Result<()> {
        let mut named: Vec<(String, Vec<u8>, usize)> = Vec::new();
        let mut push = |n: String, v: &[f64]| named.push((n, v.iter().flat_map(|x| x.to_le_bytes()).collect(), v.len()));
        for (&(layer, site), m) in &self.modules {
            for (l, lang) in self.languages.iter().enumerate() {
                push(name(layer, site, &format!("S.{lang}")), &m.s[l]);
                push(name(layer, site, &format!("G.{lang}")), &m.g[l]);
            }
            push(name(layer, site, "var"), &m.var);
        }
        let views: Vec<(String, TensorView)> = named.iter().map(|(n, bytes, len)| (n.clone(), TensorView::new(Dtype::F64, vec![*len], bytes).expect("shape matches the bytes"))).collect();
        let header = Header { artifact: "neurons".into(), version: NEURONS_VERSION, languages: self.languages.clone() };
        let meta = HashMap::from([("landermt".to_string(), serde_json::to_string(&header).expect("plain data serialises"))]);
        let bytes = safetensors::serialize(views, Some(meta)).expect("safetensors serialisation of f64 vectors");
        landermt_model::atomic::write_atomic(path, |w| w.write_all(&bytes))
    }

    pub fn read(path: &Path) -> Result<Self, ArtifactError> {
        let bad = |msg: String| ArtifactError::Format { path: path.into(), msg };
        let bytes = std::fs::read(path).map_err(|source| ArtifactError::Io { path: path.into(), source })?;
        let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(format!("not a safetensors file ({e})")))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        let header: Header = meta
            .get("landermt")
            .and_then(|h| serde_json::from_str(h).ok())
            .filter(|h: &Header| h.artifact == "neurons")
            .ok_or_else(|| bad("not a landermt neurons file (no `landermt` metadata naming the artifact)".into()))?;
        if header.version != NEURONS_VERSION {
            return Err(bad(format!("schema version {}, this build reads {NEURONS_VERSION}", header.version)));
        }
        let languages = header.languages;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("not a safetensors file ({e})")))?;
        let get = |n: &str| -> Result<Vec<f64>, ArtifactError> {
            let t = st.tensor(n).map_err(|_| bad(format!("tensor `{n}` is missing")))?;
            if t.dtype() != Dtype::F64 {
                return Err(bad(format!("tensor `{n}` is {:?}, expected F64", t.dtype())));
            }
            Ok(t.data().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
        };
        let mut modules = BTreeMap::new();
        for n in st.names() {
            let Some(rest) = n.strip_prefix("layer.") else { continue };
            let Some((layer, rest)) = rest.split_once('.') else { continue };
            let Some(site) = rest.strip_suffix(".var").and_then(Site::from_name) else { continue };
            let layer: usize = layer.parse().map_err(|_| bad(format!("tensor `{n}`: bad layer index")))?;
            let per_lang = |what: &str| languages.iter().map(|l| get(&name(layer, site, &format!("{what}.{l}")))).collect::<Result<Vec<_>, _>>();
            modules.insert((layer, site), ModuleScores { s: per_lang("S")?, g: per_lang("G")?, var: get(n)? });
        }
        Ok(Self { languages, modules })
    }
}

/// One language's [`Awareness`](crate::Awareness), saved while a run goes on so that a killed
/// run resumes at the next language. `key` identifies the inputs it was computed from; a saved
/// file with another key is ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Partial {
    pub key: String,
    pub sentences: usize,
    pub positions: usize,
    /// (layer, module, S, G) per scored module.
    pub modules: Vec<(usize, String, Vec<f64>, Vec<f64>)>,
}

impl Partial {
    pub fn new(key: String, a: &crate::Awareness) -> Self {
        let modules = a.s.iter().map(|(&(l, site), s)| (l, site.name().to_string(), s.clone(), a.g[&(l, site)].clone())).collect();
        Self { key, sentences: a.sentences, positions: a.positions, modules }
    }

    /// The awareness, if the file was made from the inputs named by `key`.
    pub fn load(path: &Path, key: &str) -> Option<crate::Awareness> {
        let p: Partial = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        if p.key != key {
            return None;
        }
        let mut a = crate::Awareness { sentences: p.sentences, positions: p.positions, ..Default::default() };
        for (l, site, s, g) in p.modules {
            let site = Site::from_name(&site)?;
            a.s.insert((l, site), s);
            a.g.insert((l, site), g);
        }
        Some(a)
    }

    pub fn save(&self, path: &Path) -> landermt_model::Result<()> {
        let json = serde_json::to_vec(self).expect("plain data serialises");
        landermt_model::atomic::write_atomic(path, |w| w.write_all(&json))
    }
}

/// Sentences and tokens scored in one language.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LanguageCount {
    pub language: Language,
    pub sentences: usize,
    pub positions: usize,
}

/// The split of one module of a selected layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleSplit {
    pub units: usize,
    /// The variance threshold λ.
    pub lambda: f64,
    /// Language-general units (0-based, ascending).
    pub general: Vec<usize>,
    /// Language-specific units by language code.
    pub specific: BTreeMap<String, Vec<usize>>,
    /// `general` and each language's specific unit count.
    pub counts: BTreeMap<String, usize>,
}

impl ModuleSplit {
    pub fn new(split: &Split, languages: &[Language]) -> Self {
        let specific: BTreeMap<String, Vec<usize>> = languages.iter().zip(&split.specific).map(|(l, u)| (l.code.to_string(), u.clone())).collect();
        let mut counts: BTreeMap<String, usize> = specific.iter().map(|(l, u)| (l.clone(), u.len())).collect();
        counts.insert("general".into(), split.general.len());
        Self { units: split.var.len(), lambda: split.lambda, general: split.general.clone(), specific, counts }
    }
}

/// The split of one selected layer, by module name (`q`, `k`, `v`, `o`, `ffn_act`, `ffn_down`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerSplit {
    pub layer: usize,
    pub modules: BTreeMap<String, ModuleSplit>,
}

/// Stage 2's summary, written as `neurons.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Neurons {
    pub version: u32,
    pub model: String,
    pub epsilon: f64,
    pub languages: Vec<Language>,
    pub data: MonoSource,
    pub counts: Vec<LanguageCount>,
    pub num_layers: usize,
    /// The layers of `layers.json` whose splits follow (0-based, sorted).
    pub selected: Vec<usize>,
    pub layers: Vec<LayerSplit>,
    /// How the units were chosen: Taylor awareness (absent), or the `random` control with its
    /// seed (`score.method`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_seed: Option<u64>,
    /// With `score.method = "lape"`: LAPE's thresholds (its FFN units are in the splits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lape: Option<crate::lape::LapeSettings>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores() -> Scores {
        let languages: Vec<Language> = ["en", "zh"].iter().map(|c| c.parse().unwrap()).collect();
        let m = |k: f64| ModuleScores { s: vec![vec![k, 2.0], vec![3.0, k]], g: vec![vec![0.5, k], vec![k, 0.25]], var: vec![k * k, 1.0] };
        Scores { languages, modules: [((0, Site::AttnQ), m(1.0)), ((1, Site::FfnAct), m(-7.5))].into() }
    }

    #[test]
    fn scores_round_trip_through_safetensors_with_the_documented_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("neurons.safetensors");
        scores().write(&path).unwrap();
        let back = Scores::read(&path).unwrap();
        let again = dir.path().join("again.safetensors");
        back.write(&again).unwrap();
        assert!(std::fs::read(&again).unwrap() == std::fs::read(&path).unwrap(), "the same scores must give the same bytes");
        assert_eq!(back, scores());
        assert_eq!(back.num_layers(), 2);
        let bytes = std::fs::read(&path).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let mut names = st.names();
        names.sort();
        assert_eq!(names[..3], ["layer.0.q.G.en", "layer.0.q.G.zh", "layer.0.q.S.en"]);
        assert!(names.contains(&"layer.1.ffn_act.var"));
    }

    #[test]
    fn partial_results_reload_only_under_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("en.json");
        let mut a = crate::Awareness { sentences: 2, positions: 9, ..Default::default() };
        a.s.insert((3, Site::FfnDown), vec![1.0, 2.5]);
        a.g.insert((3, Site::FfnDown), vec![0.1, 0.2]);
        Partial::new("model A, lines 1-2".into(), &a).save(&path).unwrap();
        assert_eq!(Partial::load(&path, "model A, lines 1-2"), Some(a));
        assert_eq!(Partial::load(&path, "model B, lines 1-2"), None);
        assert_eq!(Partial::load(&dir.path().join("missing.json"), "model A, lines 1-2"), None);
    }

    #[test]
    fn a_truncated_or_foreign_file_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("neurons.safetensors");
        scores().write(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 9]).unwrap();
        let err = Scores::read(&path).unwrap_err().to_string();
        assert!(err.contains("neurons.safetensors") && err.contains("not a safetensors file"), "{err}");
        let other = dir.path().join("other.safetensors");
        std::fs::write(&other, safetensors::serialize(Vec::<(String, TensorView)>::new(), None).unwrap()).unwrap();
        let err = Scores::read(&other).unwrap_err().to_string();
        assert!(err.contains("not a landermt neurons file"), "{err}");
    }
}
