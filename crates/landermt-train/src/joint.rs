//! Joint training: one model for every direction of a run over several language pairs
//! (METHOD.md stage 4, joint mode; the authors' `--lang_pairs`). Every batch holds one
//! direction. A batch of src→tgt routes CAR with its pair's partition and Ḡ, and updates only
//! its pair's units (`landermt`: G ∪ S_src ∪ S_tgt of the selected layers; `-ls`: S_src ∪ S_tgt;
//! `-lg`: G). The trainee's [`Delta`] holds the union of every pair's units; [`Joint`] says,
//! per direction, which of them a batch may change.

use std::sync::Arc;

use burn::optim::GradientsParams;
use landermt_data::Direction;
use landermt_model::Transformer;
use landermt_model::nn::router::RouterMasks;

use crate::Trainee;
use crate::delta::Delta;
use crate::lazy::UnitMask;
use crate::method::UnitSet;

/// What each direction of a joint run routes and updates.
#[derive(Debug)]
pub struct Joint {
    pub directions: Vec<Direction>,
    /// Per direction: (layer, its pair's router constants) for every routed layer.
    routing: Vec<Vec<(usize, RouterMasks)>>,
    /// Per direction: one mask per delta weight, then one per delta bias (`None` where the
    /// slice has no bias), in the delta's order.
    updates: Vec<Vec<Option<UnitMask>>>,
}

impl Joint {
    /// `units[d]` is direction d's update set (a subset of the one `delta` was built from);
    /// `routing[d]` its pair's routers.
    pub fn new(delta: &Delta, directions: Vec<Direction>, units: &[UnitSet], routing: Vec<Vec<(usize, RouterMasks)>>) -> Arc<Self> {
        assert_eq!(directions.len(), units.len(), "one unit set per direction");
        assert_eq!(directions.len(), routing.len(), "one routing per direction");
        let updates = units
            .iter()
            .map(|set| {
                let weights = delta.slices.iter().map(|s| Some(mask_of(set, s)));
                let biases = delta.slices.iter().zip(&delta.biases).map(|(s, b)| b.as_ref().map(|_| UnitMask { rows: false, ..mask_of(set, s) }));
                weights.chain(biases).collect()
            })
            .collect();
        Arc::new(Self { directions, routing, updates })
    }

    /// The index of `direction` among the run's.
    pub fn index(&self, direction: Direction) -> usize {
        self.directions.iter().position(|&d| d == direction).unwrap_or_else(|| panic!("{direction} is not a direction of this joint run"))
    }

    /// Routes `net` as direction `d`'s pair routes (its routers' learned parts, if any, kept).
    pub fn route(&self, net: &mut Transformer, d: usize) {
        landermt_route::swap_masks(net, &self.routing[d]);
    }

    /// The update masks of a step whose batches were of `directions`: their union.
    pub fn step_masks(&self, directions: &[usize]) -> Vec<Option<UnitMask>> {
        let mut out = self.updates[directions[0]].clone();
        for &d in &directions[1..] {
            for (a, b) in out.iter_mut().zip(&self.updates[d]) {
                if let (Some(a), Some(b)) = (a.as_mut(), b) {
                    *a = a.union(b);
                }
            }
        }
        out
    }

    /// Zeroes the delta's gradients outside direction `d`'s units, so that a step over
    /// several directions' batches moves each unit only by the batches that may update it.
    pub fn mask_gradients(&self, trainee: &Trainee, grads: &mut GradientsParams, d: usize) {
        let delta = &trainee.delta;
        let (weights, biases) = self.updates[d].split_at(delta.weights.len());
        for (w, mask) in delta.weights.iter().zip(weights) {
            if let (Some(g), Some(mask)) = (grads.remove::<2>(w.id), mask) {
                let zero = mask.ones(&g.device()).equal_elem(0.0).expand(g.dims());
                grads.register(w.id, g.mask_fill(zero, 0.0));
            }
        }
        for (b, mask) in delta.biases.iter().zip(biases) {
            if let (Some(b), Some(mask)) = (b, mask)
                && let Some(g) = grads.remove::<1>(b.id)
            {
                let zero = mask.ones(&g.device()).reshape([mask.on.len()]).equal_elem(0.0);
                grads.register(b.id, g.mask_fill(zero, 0.0));
            }
        }
    }
}

/// Which of slice `s`'s units are in `set`.
fn mask_of(set: &UnitSet, s: &crate::delta::Slice) -> UnitMask {
    let allowed = set.get(&(s.layer, s.target.site())).map(Vec::as_slice).unwrap_or(&[]);
    UnitMask { on: s.units.iter().map(|u| allowed.binary_search(u).is_ok()).collect(), rows: s.target.by_rows() }
}
