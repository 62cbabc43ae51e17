//! Eq. 1 and the layer selection rules.

use serde::{Deserialize, Serialize};

/// How the top D_i become layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    /// Blocks i and i+1 of the k/2 largest D_i (the reference code's layer lists are always two
    /// adjacent pairs).
    #[default]
    Pairs,
    /// Block i+1 of the k largest D_i.
    Blocks,
    /// Blocks named by hand (`probe.layers`), not chosen by D: an ablation of *where* the
    /// method trains. The curves are still measured, for the figures.
    Given,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("k = {k} layers asked for, but the model has {layers}")]
    TooMany { k: usize, layers: usize },
    #[error("rule `pairs` selects adjacent pairs and needs an even k ≥ 2, got {0}")]
    OddPairs(usize),
    #[error("k must be at least 1")]
    Zero,
    #[error("rule `given` takes its blocks from probe.layers, which is empty or missing")]
    NoGivenBlocks,
    #[error("block {block} given, but the model's blocks are 0–{}", .layers - 1)]
    OutOfRange { block: usize, layers: usize },
}

/// Blocks given by hand, checked against the model's `layers` blocks, sorted, without repeats.
pub fn given(blocks: &[usize], layers: usize) -> Result<Vec<usize>, SelectError> {
    if blocks.is_empty() {
        return Err(SelectError::NoGivenBlocks);
    }
    if let Some(&block) = blocks.iter().find(|&&b| b >= layers) {
        return Err(SelectError::OutOfRange { block, layers });
    }
    Ok(sorted_unique(blocks.to_vec()))
}

/// Blocks sorted, without repeats (overlapping pairs and hand-given lists repeat blocks).
fn sorted_unique(mut blocks: Vec<usize>) -> Vec<usize> {
    blocks.sort_unstable();
    blocks.dedup();
    blocks
}

/// `D_i = |Ā_i − Ā_{i+1}|`.
pub fn deltas(mean_a: &[f64]) -> Vec<f64> {
    mean_a.windows(2).map(|w| (w[0] - w[1]).abs()).collect()
}

/// Indices of the `n` largest values, ties to the lower index.
fn top(d: &[f64], n: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..d.len()).collect();
    idx.sort_by(|&a, &b| d[b].total_cmp(&d[a]).then(a.cmp(&b)));
    idx.truncate(n);
    idx
}

/// The selected layers (0-based, sorted, without repeats) for deltas `d` of a model with
/// `d.len() + 1` blocks. Overlapping pairs share a block, so `pairs` may select fewer than k.
pub fn select(d: &[f64], k: usize, rule: Rule) -> Result<Vec<usize>, SelectError> {
    let layers = d.len() + 1;
    if k == 0 {
        return Err(SelectError::Zero);
    }
    if k > layers {
        return Err(SelectError::TooMany { k, layers });
    }
    let sel: Vec<usize> = match rule {
        Rule::Pairs if k % 2 != 0 => return Err(SelectError::OddPairs(k)),
        Rule::Pairs => top(d, k / 2).into_iter().flat_map(|i| [i, i + 1]).collect(),
        Rule::Blocks => {
            if k > d.len() {
                return Err(SelectError::TooMany { k, layers: d.len() });
            }
            top(d, k).into_iter().map(|i| i + 1).collect()
        }
        Rule::Given => return Err(SelectError::NoGivenBlocks),
    };
    Ok(sorted_unique(sel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_are_absolute_differences_of_neighbours() {
        assert_eq!(deltas(&[1.0, 3.0, 2.5, 2.5]), vec![2.0, 0.5, 0.0]);
    }

    #[test]
    fn rules_on_hand_made_deltas() {
        //        D_0  D_1  D_2  D_3  D_4
        let d = [0.1, 0.9, 0.2, 0.8, 0.3];
        assert_eq!(select(&d, 4, Rule::Pairs).unwrap(), vec![1, 2, 3, 4]);
        assert_eq!(select(&d, 2, Rule::Pairs).unwrap(), vec![1, 2]);
        assert_eq!(select(&d, 2, Rule::Blocks).unwrap(), vec![2, 4]);
        assert_eq!(select(&d, 2, Rule::Given), Err(SelectError::NoGivenBlocks));
        assert_eq!(select(&d, 3, Rule::Blocks).unwrap(), vec![2, 4, 5]);
        // Adjacent top deltas share a block: pairs (1,2) and (2,3) give three layers.
        assert_eq!(select(&[0.0, 0.9, 0.8, 0.1], 4, Rule::Pairs).unwrap(), vec![1, 2, 3]);
        // Ties go to the lower index.
        assert_eq!(select(&[0.5, 0.5, 0.5], 1, Rule::Blocks).unwrap(), vec![1]);
    }

    #[test]
    fn impossible_selections_are_errors() {
        let d = [0.1, 0.2, 0.3];
        assert_eq!(select(&d, 5, Rule::Pairs), Err(SelectError::TooMany { k: 5, layers: 4 }));
        assert_eq!(select(&d, 3, Rule::Pairs), Err(SelectError::OddPairs(3)));
        assert_eq!(select(&d, 0, Rule::Blocks), Err(SelectError::Zero));
        assert!(select(&d, 4, Rule::Blocks).is_err());
    }

    #[test]
    fn given_blocks_are_checked_sorted_and_deduplicated() {
        assert_eq!(given(&[2, 0, 2, 1], 18).unwrap(), vec![0, 1, 2]);
        assert_eq!(given(&[17], 18).unwrap(), vec![17]);
        assert_eq!(given(&[3, 18], 18), Err(SelectError::OutOfRange { block: 18, layers: 18 }));
        assert_eq!(given(&[], 18), Err(SelectError::NoGivenBlocks));
        assert_eq!(given(&[3, 18], 18).unwrap_err().to_string(), "block 18 given, but the model's blocks are 0–17");
    }
}
