//! # landermt-probe — stage 1: language-pair-relevant layers
//!
//! Runs translation prompts that hold a source sentence *and its reference* through the model,
//! takes the signed mean `A_{i,n}` of each block's output over all tokens and hidden units,
//! and ranks the blocks by `D_i = |mean_n A_{i,n} − mean_n A_{i+1,n}|` (METHOD.md eq. 1),
//! averaged over the run's directions. The rule `pairs` (default) selects blocks i and i+1 of
//! the k/2 largest D_i; `blocks` selects block i+1 of the k largest. The result is the versioned
//! artifact `layers.json` ([`Layers`]).
//!
//! Stage 1 on the tiny fixture model, two FLORES lines of en→fr (docs/METHOD.md, stage 1):
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use landermt_data::{Direction, ParallelSource, read_parallel};
//! let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
//! let model = landermt_model::LanguageModel::load(format!("{root}/tests/fixtures/hf-tiny/llama-tiny"), &burn::tensor::Device::flex())?;
//! let direction: Direction = "en-fr".parse()?;
//! let source = ParallelSource::Flores { dir: format!("{root}/data/flores200-devtest").into(), first: 1, last: 2 };
//! let prompts: Vec<String> = read_parallel(&source, direction)?.iter().map(|p| landermt_probe::prompt(direction, p)).collect();
//! let a = landermt_probe::block_means(&model, &prompts, 2, &|_| {})?;
//! let layers = landermt_probe::layers("llama-tiny".into(), vec![landermt_probe::curves(direction, &a)], landermt_probe::Rule::Pairs, 2)?;
//! assert_eq!(layers.selected.len(), 2); // one adjacent pair of blocks: write it as layers.json
//! # Ok(()) }
//! ```

mod select;

pub use select::{Rule, SelectError, deltas, given, select};

use landermt_data::{Direction, Pair};
use landermt_model::{Batch, LanguageModel, Site, Taps};
use serde::{Deserialize, Serialize};

/// Version of the `layers.json` schema.
pub const LAYERS_VERSION: u32 = 1;

/// The probe prompt (METHOD.md, from the reference code).
pub fn prompt(direction: Direction, pair: &Pair) -> String {
    let (s, t) = (direction.src.name, direction.tgt.name);
    format!("Translate the following sentence from {s} to {t}:\n{s}: {}\n{t}: {}", pair.src, pair.tgt)
}

/// Stage 1's result, written as `layers.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layers {
    pub version: u32,
    /// The model the curves were measured on (its path or cache name).
    pub model: String,
    pub num_layers: usize,
    pub directions: Vec<DirectionCurves>,
    /// D averaged over the directions, `num_layers − 1` entries.
    pub mean_d: Vec<f64>,
    pub rule: Rule,
    pub k: usize,
    /// Selected blocks, 0-based, sorted.
    pub selected: Vec<usize>,
}

/// The curves of one direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectionCurves {
    pub direction: Direction,
    /// Number of sentences used.
    pub n: usize,
    /// Per block, the mean over sentences of `A_{i,n}`.
    pub a: Vec<f64>,
    /// `D_i`, `num_layers − 1` entries.
    pub d: Vec<f64>,
}

/// `A_{i,n}` for every prompt n (rows) and block i (columns): the mean of block i's output
/// over the prompt's tokens and hidden units, in f64. Prompts run in left-padded batches of
/// `batch_size` without autodiff; padding positions are excluded from the means.
pub fn block_means(model: &LanguageModel, prompts: &[String], batch_size: usize, progress: &dyn Fn(usize)) -> landermt_model::Result<Vec<Vec<f64>>> {
    let ids = prompts.iter().map(|p| model.encode(p)).collect::<landermt_model::Result<Vec<_>>>()?;
    Ok(block_means_of_ids(model, &ids, batch_size, progress))
}

/// As [`block_means`], for prompts already tokenized.
pub fn block_means_of_ids(model: &LanguageModel, prompts: &[Vec<u32>], batch_size: usize, progress: &dyn Fn(usize)) -> Vec<Vec<f64>> {
    let pad = model.config.pad_token_id.unwrap_or(0);
    let (layers, hidden) = (model.config.num_layers, model.config.hidden_size);
    let mut out = Vec::with_capacity(prompts.len());
    for ids in prompts.chunks(batch_size.max(1)) {
        let batch = Batch::left_padded(ids, pad);
        let mut taps = Taps::recording([Site::Block]);
        model.net.forward(&batch, None, &mut taps);
        let mut rows = vec![vec![0f64; layers]; batch.rows];
        for layer in 0..layers {
            // Sum over hidden units on the device; the masked mean over tokens on the host.
            let sums: Vec<f32> = taps.recorded[&(layer, Site::Block)].clone().sum_dim(2).into_data().try_into_vec().expect("f32 activations");
            for (r, row) in rows.iter_mut().enumerate() {
                let span = r * batch.len..(r + 1) * batch.len;
                let total: f64 = sums[span.clone()].iter().zip(&batch.mask[span]).filter(|(_, m)| **m).map(|(s, _)| *s as f64).sum();
                row[layer] = total / (ids[r].len() * hidden) as f64;
            }
        }
        out.extend(rows);
        progress(ids.len());
    }
    out
}

/// Per-block means over prompts, and their deltas.
pub fn curves(direction: Direction, a: &[Vec<f64>]) -> DirectionCurves {
    let layers = a.first().map_or(0, Vec::len);
    let mean: Vec<f64> = (0..layers).map(|i| a.iter().map(|row| row[i]).sum::<f64>() / a.len() as f64).collect();
    DirectionCurves { direction, n: a.len(), d: deltas(&mean), a: mean }
}

/// Builds the artifact from per-direction curves: mean D over directions and the selection.
pub fn layers(model: String, directions: Vec<DirectionCurves>, rule: Rule, k: usize) -> Result<Layers, SelectError> {
    let (num_layers, mean_d) = mean_deltas(&directions);
    let selected = select(&mean_d, k, rule)?;
    Ok(Layers { version: LAYERS_VERSION, model, num_layers, directions, mean_d, rule, k, selected })
}

/// Like [`layers`], but the blocks are given by hand (rule `given`, k = their number); the
/// curves are kept so the figures still show where the probe would have looked.
pub fn given_layers(model: String, directions: Vec<DirectionCurves>, blocks: &[usize]) -> Result<Layers, SelectError> {
    let (num_layers, mean_d) = mean_deltas(&directions);
    let selected = given(blocks, num_layers)?;
    Ok(Layers { version: LAYERS_VERSION, model, num_layers, directions, mean_d, rule: Rule::Given, k: selected.len(), selected })
}

/// The number of blocks and D averaged over the directions.
fn mean_deltas(directions: &[DirectionCurves]) -> (usize, Vec<f64>) {
    let num_layers = directions.first().map_or(0, |d| d.a.len());
    let m = num_layers.saturating_sub(1);
    let mean_d = (0..m).map(|i| directions.iter().map(|d| d.d[i]).sum::<f64>() / directions.len() as f64).collect();
    (num_layers, mean_d)
}
