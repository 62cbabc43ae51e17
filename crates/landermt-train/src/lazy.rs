//! "Lazy" AdamW for the gathered slices of a joint run (METHOD.md stage 4, joint mode).
//!
//! Each step has an update set: the units its batches' directions may change. An entry whose
//! unit is outside it does not move, decay, or advance its moments in that step, so it stays
//! bit-identical, moments included. Inside it, the bias correction counts the unit's own steps,
//! as `torch.optim.SparseAdam` does for embedding rows, but per unit rather than per tensor: a
//! unit that is general for one pair is specific for another, so units of one tensor are
//! updated on different steps.
//!
//! The ref code's behaviour (dense AdamW over masked gradients: every entry decays and keeps
//! moving on its old moments) is `train.optimizer = "dense"`, Burn's AdamW.

use burn::tensor::{Bool, Tensor};

/// The hyper-parameters, as in [`crate::adamw`] (β = 0.9, 0.999; ε = 1e-8).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LazyAdamW {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    pub weight_decay: f32,
}

impl LazyAdamW {
    pub fn new(weight_decay: f64) -> Self {
        Self { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-8, weight_decay: weight_decay as f32 }
    }
}

/// Which units of a parameter a step updates: one flag per unit, along the columns (`[in,
/// out]` weights and biases, indexed by output unit) or the rows (the down projection, by
/// input unit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitMask {
    pub on: Vec<bool>,
    pub rows: bool,
}

impl UnitMask {
    /// The flags as a 0/1 tensor that broadcasts over the parameter.
    fn tensor(&self, values: impl Iterator<Item = f32>, device: &burn::tensor::Device) -> Tensor<2> {
        let n = self.on.len();
        let dims = if self.rows { [n, 1] } else { [1, n] };
        Tensor::from_data(burn::tensor::TensorData::new(values.collect::<Vec<f32>>(), dims), device)
    }

    /// 1 on the mask's units and 0 elsewhere, as a tensor that broadcasts over the parameter.
    pub fn ones(&self, device: &burn::tensor::Device) -> Tensor<2> {
        self.tensor(self.on.iter().map(|&on| on as u8 as f32), device)
    }

    /// Unit by unit, whether either mask holds it.
    pub fn union(&self, other: &UnitMask) -> UnitMask {
        UnitMask { on: self.on.iter().zip(&other.on).map(|(a, b)| *a || *b).collect(), rows: self.rows }
    }
}

/// The state of one parameter: its moments, and each unit's step count.
#[derive(Debug, Clone)]
pub struct Moments {
    pub m: Tensor<2>,
    pub v: Tensor<2>,
    pub t: Vec<u32>,
}

impl LazyAdamW {
    /// One step of parameter `p` with gradient `g` on the units of `units`. Returns the
    /// parameter and its state.
    pub fn step(&self, lr: f64, p: Tensor<2>, g: Tensor<2>, units: &UnitMask, state: Option<Moments>) -> (Tensor<2>, Moments) {
        let dims = p.dims();
        let device = p.device();
        let mut state = state.unwrap_or_else(|| Moments { m: Tensor::zeros(dims, &device), v: Tensor::zeros(dims, &device), t: vec![0; units.on.len()] });
        for (t, &on) in state.t.iter_mut().zip(&units.on) {
            *t += on as u32;
        }
        let keep: Tensor<2, Bool> = units.ones(&device).equal_elem(0.0).expand(dims);
        let (b1, b2) = (self.beta_1, self.beta_2);
        let m = state.m.clone().mul_scalar(b1).add(g.clone().mul_scalar(1.0 - b1)).mask_where(keep.clone(), state.m);
        let v = state.v.clone().mul_scalar(b2).add(g.square().mul_scalar(1.0 - b2)).mask_where(keep.clone(), state.v);
        // 1 − βᵗ in f64 (as PyTorch's Python floats): in f32, 1 − 0.999 loses four digits. A
        // unit never stepped gets 1; its entries are kept below.
        let correction = |beta: f32| units.tensor(state.t.iter().map(|&t| (1.0 - (beta as f64).powi(t.max(1) as i32)) as f32), &device).expand(dims);
        let update = m.clone().div(correction(b1)).div(v.clone().div(correction(b2)).sqrt().add_scalar(self.epsilon));
        let decay = lr * self.weight_decay as f64;
        let decayed = if decay == 0.0 { p.clone() } else { p.clone().mul_scalar(1.0 - decay) };
        let moved = decayed.sub(update.mul_scalar(lr)).mask_where(keep, p);
        (moved, Moments { m, v, t: state.t })
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Param;
    use burn::optim::Optimizer;
    use burn::tensor::{Device, TensorData};

    use super::*;

    fn tensor(v: &[f32], dims: [usize; 2], device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v.to_vec(), dims), device)
    }

    fn values(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    /// A scalar reference of the rule in the module comment, in f64: per unit, moments and a
    /// step count that advance only when the unit is in the step's set.
    fn reference(p0: &[f32], grads: &[Vec<f32>], sets: &[Vec<bool>], cols: usize, lr: f64, wd: f64) -> Vec<f64> {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
        let mut p: Vec<f64> = p0.iter().map(|&x| x as f64).collect();
        let (mut m, mut v, mut t) = (vec![0.0; p.len()], vec![0.0; p.len()], vec![0i32; cols]);
        for (g, set) in grads.iter().zip(sets) {
            for (u, &on) in set.iter().enumerate() {
                if on {
                    t[u] += 1;
                }
            }
            for i in 0..p.len() {
                let u = i % cols;
                if !set[u] {
                    continue;
                }
                m[i] = b1 * m[i] + (1.0 - b1) * g[i] as f64;
                v[i] = b2 * v[i] + (1.0 - b2) * (g[i] as f64).powi(2);
                let (mh, vh) = (m[i] / (1.0 - b1.powi(t[u])), v[i] / (1.0 - b2.powi(t[u])));
                p[i] = p[i] * (1.0 - lr * wd) - lr * mh / (vh.sqrt() + eps);
            }
        }
        p
    }

    #[test]
    fn entries_outside_the_set_stay_bit_identical_and_the_rest_follow_per_unit_counts() {
        let device = Device::default();
        let (rows, cols) = (3, 4);
        let p0: Vec<f32> = (0..rows * cols).map(|i| 0.1 * i as f32 - 0.4).collect();
        let grads: Vec<Vec<f32>> = (0..3).map(|s| (0..rows * cols).map(|i| ((i * 7 + s * 3) % 5) as f32 * 0.3 - 0.6).collect()).collect();
        // Unit 0 in every step, unit 1 in steps 1 and 3, unit 2 in step 2 only, unit 3 never.
        let sets = [vec![true, true, false, false], vec![true, false, true, false], vec![true, true, false, false]];
        let opt = LazyAdamW::new(0.1);
        let (mut p, mut state) = (tensor(&p0, [rows, cols], &device), None::<Moments>);
        // (p, m, v) after each step.
        let mut after: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = Vec::new();
        for (g, set) in grads.iter().zip(&sets) {
            let units = UnitMask { on: set.clone(), rows: false };
            let (q, s) = opt.step(1e-2, p, tensor(g, [rows, cols], &device), &units, state);
            after.push((values(q.clone()), values(s.m.clone()), values(s.v.clone())));
            (p, state) = (q, Some(s));
        }
        let got = values(p);
        let want = reference(&p0, &grads, &sets, cols, 1e-2, 0.1);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((*g as f64 - w).abs() < 1e-6, "entry {i}: {g} against the reference {w}");
        }
        let same = |a: &[f32], b: &[f32], col: usize| (0..rows).all(|r| a[r * cols + col].to_bits() == b[r * cols + col].to_bits());
        // Unit 3 was never in a set: bit-identical to the start, moments still zero.
        assert!(same(&got, &p0, 3));
        assert!(same(&after[2].1, &[0.0; 12], 3) && same(&after[2].2, &[0.0; 12], 3));
        // Step 2 left unit 1 alone (entries, decay and moments), though its moments were not zero.
        assert!(same(&after[1].0, &after[0].0, 1) && same(&after[1].1, &after[0].1, 1) && same(&after[1].2, &after[0].2, 1));
        assert!(!same(&after[0].1, &[0.0; 12], 1));
        assert_eq!(state.unwrap().t, vec![3, 2, 1, 0]);
    }

    #[test]
    fn with_every_unit_in_every_step_it_is_burns_adamw() {
        let device = Device::default().autodiff();
        let (rows, cols) = (2, 3);
        let p0: Vec<f32> = (0..rows * cols).map(|i| 0.2 * i as f32 - 0.5).collect();
        let param = Param::from_tensor(tensor(&p0, [rows, cols], &device).require_grad());
        let mut burn_p = param.val().inner();
        let mut burn_state = None;
        let adamw = burn::optim::AdamWConfig::new().with_weight_decay(0.05).with_epsilon(1e-8).build();
        let lazy = LazyAdamW::new(0.05);
        let (mut lazy_p, mut lazy_state) = (param.val().inner(), None);
        let all = UnitMask { on: vec![true; cols], rows: false };
        for s in 0..4 {
            let g = tensor(&(0..rows * cols).map(|i| ((i + s) % 4) as f32 * 0.25 - 0.4).collect::<Vec<_>>(), [rows, cols], &burn_p.device());
            (burn_p, burn_state) = adamw.step(1e-2, burn_p, g.clone(), burn_state);
            let (p, st) = lazy.step(1e-2, lazy_p, g, &all, lazy_state);
            (lazy_p, lazy_state) = (p, Some(st));
        }
        for (a, b) in values(burn_p).iter().zip(values(lazy_p)) {
            // Burn corrects in f32 (1 − 0.999 to four digits): 1e-6 is that error, not ours.
            assert!((a - b).abs() <= 1e-6, "Burn's AdamW {a}, lazy {b}");
        }
    }
}
