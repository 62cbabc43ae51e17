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
    /// Blocks i and i+1 of the k/4 largest D_i within each half of the network (k = 4: one
    /// adjacent pair near each end): the reference code's hard-coded BLOOM-7b1 layers (3, 4,
    /// 21, 22) and the paper's analysis, which finds the pair's information in the early and
    /// the late layers. A pair that straddles the middle belongs to neither half.
    Ends,
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
    #[error("rule `ends` selects k/4 adjacent pairs in each half and needs k a multiple of 4, got {0}")]
    EndsK(usize),
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

/// Blocks i and i+1 of the `per_half` largest D_i with both blocks in the first half
/// (blocks 0 … L/2 − 1), and the same in the second half (L/2 … L − 1).
fn ends(d: &[f64], per_half: usize) -> Result<Vec<usize>, SelectError> {
    let half = d.len().div_ceil(2); // L/2 for L = d.len() + 1 blocks
    let (first, second) = (&d[..half.saturating_sub(1)], &d[half.min(d.len())..]);
    if per_half > first.len() || per_half > second.len() {
        return Err(SelectError::TooMany { k: 4 * per_half, layers: d.len() + 1 });
    }
    let pairs = top(first, per_half).into_iter().chain(top(second, per_half).into_iter().map(|i| i + half));
    Ok(pairs.flat_map(|i| [i, i + 1]).collect())
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
        Rule::Pairs if !k.is_multiple_of(2) => return Err(SelectError::OddPairs(k)),
        Rule::Pairs => top(d, k / 2).into_iter().flat_map(|i| [i, i + 1]).collect(),
        Rule::Blocks => {
            if k > d.len() {
                return Err(SelectError::TooMany { k, layers: d.len() });
            }
            top(d, k).into_iter().map(|i| i + 1).collect()
        }
        Rule::Ends if !k.is_multiple_of(4) => return Err(SelectError::EndsK(k)),
        Rule::Ends => ends(d, k / 4)?,
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
    fn ends_picks_one_adjacent_pair_in_each_half() {
        // Ten blocks: the first half is blocks 0–4 (D_0 … D_3), the second 5–9 (D_5 … D_8);
        // D_4 joins blocks 4 and 5 and belongs to neither, although it is the largest.
        //         D_0  D_1  D_2  D_3  D_4   D_5  D_6  D_7  D_8
        let d = [0.1, 0.7, 0.2, 0.3, 0.95, 0.2, 0.1, 0.8, 0.4];
        assert_eq!(select(&d, 4, Rule::Ends).unwrap(), vec![1, 2, 7, 8]);
        assert_eq!(select(&d, 4, Rule::Pairs).unwrap(), vec![4, 5, 7, 8], "pairs takes the middle");
        // k = 8: two pairs per half.
        assert_eq!(select(&d, 8, Rule::Ends).unwrap(), vec![1, 2, 3, 4, 7, 8, 9]);
        assert_eq!(select(&d, 6, Rule::Ends), Err(SelectError::EndsK(6)));
        // Eighteen blocks (Gemma 3 270M): halves 0–8 and 9–17.
        let mut g = [0.0; 17];
        g[7] = 1.0; // blocks 7, 8: the last pair of the first half
        g[8] = 2.0; // blocks 8, 9 straddle
        g[9] = 0.5; // blocks 9, 10: the first pair of the second half
        assert_eq!(select(&g, 4, Rule::Ends).unwrap(), vec![7, 8, 9, 10]);
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
