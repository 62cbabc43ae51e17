//! Runs over several language pairs (the paper's setting, e.g. en↔{ar, de, fr, it, zh}).
//!
//! Each pair probes, routes, trains and evaluates as a run of its own, in `{run}/pairs/{pair}/`
//! with its own stamps, so adding a pair runs only that pair's stages. The score stage runs
//! once, in `{run}/`, over the union of the run's languages (a unit's awareness is a variance
//! across languages) and over every layer, so that what it writes does not depend on which
//! pairs ran or which layers they selected. A run whose directions form one pair keeps the
//! single-run layout.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use landermt_data::{Direction, Language};

use crate::config::RunConfig;

/// One language pair of a run: its directions, in the run's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LangPair {
    /// `src-tgt` of its first direction in the run (e.g. `en-de`): its folder's name.
    pub name: String,
    pub languages: [Language; 2],
    pub directions: Vec<Direction>,
}

impl RunConfig {
    /// The run's language pairs, in order of first appearance.
    pub fn pairs(&self) -> Vec<LangPair> {
        let mut out: Vec<LangPair> = Vec::new();
        for &d in &self.run.directions {
            match out.iter_mut().find(|p| p.languages.contains(&d.src) && p.languages.contains(&d.tgt)) {
                Some(p) => p.directions.push(d),
                None => out.push(LangPair { name: d.to_string(), languages: [d.src, d.tgt], directions: vec![d] }),
            }
        }
        out
    }

    /// Whether the run's directions span several language pairs, each run on its own
    /// (`run.mode = "per-pair"`).
    pub fn is_multi_pair(&self) -> bool {
        self.pairs().len() > 1 && self.run.mode == crate::config::RunMode::PerPair
    }

    /// Stage 3's artifact: `routes.json` (one route per pair) in a joint run, else `route.json`.
    pub fn route_file(&self) -> &'static str {
        if self.is_joint() { "routes.json" } else { "route.json" }
    }

    /// Whether one model learns every direction of several pairs (`run.mode = "joint"`).
    pub fn is_joint(&self) -> bool {
        self.pairs().len() > 1 && self.run.mode == crate::config::RunMode::Joint
    }

    /// Where `neurons.json` and `neurons.safetensors` are: the run's folder, also for a pair's
    /// view of a run over several pairs.
    pub fn neurons_dir(&self) -> &Path {
        self.joint_dir.as_deref().unwrap_or(&self.run.dir)
    }

    /// The folder whose lock a command on this config takes: the run's, also for a pair's view
    /// (a pipeline over every pair and a command on one pair must not interleave).
    pub fn lock_dir(&self) -> &Path {
        self.neurons_dir()
    }

    /// The pair named `name` (e.g. `en-de`, or `de-en` for the same pair).
    pub fn pair(&self, name: &str) -> Result<LangPair> {
        let wanted: Direction = name.parse().map_err(|e| anyhow::anyhow!("pair `{name}`: {e}"))?;
        match self.pairs().into_iter().find(|p| p.languages.contains(&wanted.src) && p.languages.contains(&wanted.tgt)) {
            Some(p) => Ok(p),
            None => bail!("pair `{name}` is not one of the run's ({})", self.pairs().iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")),
        }
    }

    /// The run as one pair sees it: its directions only, in `{run}/pairs/{pair}/`, reading the
    /// shared `neurons.*` from the run's folder. Test sets that list directions keep the ones
    /// the pair decodes. With `[eval] transfer = M`, M is decoded on the other pairs'
    /// directions too ([`crate::config::EvalSection::cross`]).
    pub fn for_pair(&self, pair: &LangPair) -> RunConfig {
        let mut cfg = self.clone();
        cfg.run.name = format!("{}/{}", self.run.name, pair.name);
        cfg.run.dir = pair_dir(self, &pair.name);
        cfg.run.directions = pair.directions.clone();
        cfg.joint_dir = Some(self.run.dir.clone());
        cfg.eval.extra_directions.retain(|d| !pair.directions.contains(d));
        // `transfer` across pairs: the method trained on this pair, decoded on the others'
        // directions too (not trained on each direction alone, as in a one-pair run).
        if let Some(m) = cfg.eval.transfer.take() {
            if !cfg.eval.methods.contains(&m) {
                cfg.eval.methods.push(m);
            }
            let others: Vec<Direction> = self.run.directions.iter().copied().filter(|d| !pair.directions.contains(d) && !cfg.eval.extra_directions.contains(d)).collect();
            cfg.eval.cross = Some((m, others));
        }
        let mut evaluated = cfg.eval_directions();
        evaluated.extend(cfg.eval.cross.iter().flat_map(|(_, ds)| ds.iter().copied()));
        for t in &mut cfg.eval.test_sets {
            if let Some(ds) = &mut t.directions {
                ds.retain(|d| evaluated.contains(d));
            }
        }
        cfg
    }

    /// The names given to `--pairs` (`en-de,en-fr`), checked against the run's pairs.
    pub fn select_pairs(&self, names: &[String]) -> Result<Vec<LangPair>> {
        names.iter().map(|n| self.pair(n)).collect()
    }
}

/// `{run}/pairs/{pair}/`.
pub fn pair_dir(cfg: &RunConfig, pair: &str) -> PathBuf {
    cfg.run.dir.join("pairs").join(pair)
}
