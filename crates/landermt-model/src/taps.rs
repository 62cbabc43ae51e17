//! Taps: named points inside the network where a caller can record activations or attach a
//! probe. A probe is a zero tensor added at the site; made a leaf with `require_grad()` on an
//! autodiff device, its gradient after `backward()` is ∂L/∂h at that site (Burn keeps no
//! gradients of intermediate tensors, so this is how stage 2 reads them).

use std::collections::{BTreeMap, BTreeSet};

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// A site inside block `layer`. Each is the output of one parameterised module, except
/// `FfnAct` (the FFN's intermediate units after the activation) and `Block` (the block output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Site {
    /// The embedding output (after BLOOM's embedding norm and Gemma's scaling); layer 0.
    Embedding,
    AttnQ,
    AttnK,
    AttnV,
    AttnO,
    FfnAct,
    FfnDown,
    Block,
    /// The FFN's activation before the gate product: `act(gate·x)` for gated FFNs, `act(up·x)`
    /// otherwise (LAPE's activation; recorded only, computed only when asked for).
    FfnGate,
}

impl Site {
    /// The per-block sites (all but `Embedding`).
    pub const ALL: [Site; 7] = [Site::AttnQ, Site::AttnK, Site::AttnV, Site::AttnO, Site::FfnAct, Site::FfnDown, Site::Block];

    /// The short name used in artifacts (`embedding`, `q`, `k`, `v`, `o`, `ffn_act`, `ffn_down`, `block`).
    pub fn name(self) -> &'static str {
        match self {
            Site::Embedding => "embedding",
            Site::AttnQ => "q",
            Site::AttnK => "k",
            Site::AttnV => "v",
            Site::AttnO => "o",
            Site::FfnAct => "ffn_act",
            Site::FfnDown => "ffn_down",
            Site::Block => "block",
            Site::FfnGate => "ffn_gate",
        }
    }

    /// The site of an artifact name (the inverse of [`name`](Self::name)).
    pub fn from_name(name: &str) -> Option<Site> {
        [Site::Embedding, Site::FfnGate].into_iter().chain(Site::ALL).find(|s| s.name() == name)
    }
}

/// Which sites to record, which probes to add, and what was recorded.
#[derive(Debug, Default)]
pub struct Taps {
    record: BTreeSet<Site>,
    /// Sites that get a zero `require_grad` leaf of the activation's shape in every layer.
    auto_probe: BTreeSet<Site>,
    probes: BTreeMap<(usize, Site), Tensor<3>>,
    /// Activations recorded during the last forward pass, by (layer, site).
    pub recorded: BTreeMap<(usize, Site), Tensor<3>>,
}

impl Taps {
    /// No recording, no probes.
    pub fn none() -> Self {
        Self::default()
    }

    /// Record `sites` in every layer.
    pub fn recording(sites: impl IntoIterator<Item = Site>) -> Self {
        Self { record: sites.into_iter().collect(), ..Self::default() }
    }

    /// Adds a zero probe leaf at `sites` of every layer, shaped like the activation there
    /// (on an autodiff device; read the gradients through [`probes`](Self::probes)).
    pub fn probing(mut self, sites: impl IntoIterator<Item = Site>) -> Self {
        self.auto_probe.extend(sites);
        self
    }

    /// The probes of the last forward pass, by (layer, site).
    pub fn probes(&self) -> &BTreeMap<(usize, Site), Tensor<3>> {
        &self.probes
    }

    /// Adds `probe` (same shape as the site's activation) at `site` of `layer`.
    pub fn with_probe(mut self, layer: usize, site: Site, probe: Tensor<3>) -> Self {
        self.probes.insert((layer, site), probe);
        self
    }

    pub fn probe(&self, layer: usize, site: Site) -> Option<&Tensor<3>> {
        self.probes.get(&(layer, site))
    }

    /// Called by the model at each site; returns the activation (plus the probe, if any).
    pub fn tap(&mut self, layer: usize, site: Site, x: Tensor<3>) -> Tensor<3> {
        if self.auto_probe.contains(&site) && !self.probes.contains_key(&(layer, site)) {
            let probe = Tensor::zeros(x.dims(), &x.device()).require_grad();
            self.probes.insert((layer, site), probe);
        }
        let x = match self.probes.get(&(layer, site)) {
            Some(p) => x + p.clone(),
            None => x,
        };
        if self.record.contains(&site) {
            self.recorded.insert((layer, site), x.clone());
        }
        x
    }

    /// Whether `site` is recorded (for activations computed only on request).
    pub fn records(&self, site: Site) -> bool {
        self.record.contains(&site)
    }

    /// Whether anything will be recorded or probed (lets the model skip bookkeeping).
    pub fn is_empty(&self) -> bool {
        self.record.is_empty() && self.probes.is_empty() && self.auto_probe.is_empty()
    }
}
