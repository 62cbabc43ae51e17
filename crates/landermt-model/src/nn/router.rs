//! Conditional awareness-based routing of one FFN (METHOD.md stage 3, eq. 4–5): the
//! intermediate units split into general G, pair-specific S and other-specific O; the FFN input
//! is shared between the branch G ∪ O and the branch S by the token's CAR weight:
//!
//! ```text
//! CAR(x_t) = Σ_{i∈G} Φ_t(i) / (Σ_{i∈G} Φ_t(i) + Σ_{j∈S} Φ_t(j))
//! H^f      = FFN_{G∪O}(CAR(x_t) · x_t) + FFN_S((1 − CAR(x_t)) · x_t)
//! ```

use burn::module::{Module, Param};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// How `CAR(x_t)` is computed (`route.car`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CarMode {
    /// `Φ_t(i) = |h_i(x_t)| · Ḡ(i)`: the Taylor score with its gradient factor estimated offline.
    #[default]
    Taylor,
    /// One constant per layer, from the stage-2 sums.
    Static,
    /// `sigmoid(w·x_t + b)`, trained; w = 0 and b = logit(static) at the start.
    Learned,
    /// No routing: the FFN as it was (only the update masks of training apply).
    Off,
}

/// Where the routed FFN starts (`route.start`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Start {
    /// The paper's eq. 5 from the first step: the routed model differs from the pretrained one
    /// before any update.
    #[default]
    Paper,
    /// Ours: each branch's input is scaled by `1 + λ·(share − 1)` (share: CAR for G ∪ O, 1 − CAR
    /// for S) with a trained λ per layer that starts at 0, so that step 0 is the pretrained
    /// model and λ = 1 is eq. 5.
    Identity,
}

impl Start {
    pub fn is_paper(&self) -> bool {
        *self == Start::Paper
    }
}

/// The routing of one FFN: unit masks and the CAR weights. `w` and `b` are trainable in the
/// `learned` mode, λ with the identity start; everything else is a constant.
#[derive(Module, Debug)]
pub struct Router {
    /// `learned`: `[hidden]`, zeros at the start.
    pub w: Option<Param<Tensor<1>>>,
    /// `learned`: `[1]`, logit of the static CAR at the start.
    pub b: Option<Param<Tensor<1>>>,
    /// The identity start: `[1]`, 0 at the start (see [`Start::Identity`]).
    pub lambda: Option<Param<Tensor<1>>>,
    #[module(skip)]
    pub masks: RouterMasks,
}

/// The constant part of a [`Router`].
#[derive(Debug, Clone)]
pub struct RouterMasks {
    pub mode: CarMode,
    /// `[I]`: 1 on S, 0 on G ∪ O.
    pub specific: Tensor<1>,
    /// `[I, 1]`: Ḡ on G, 0 elsewhere (the numerator's weights).
    pub general_weight: Tensor<2>,
    /// `[I, 1]`: Ḡ on G ∪ S, 0 on O (the denominator's weights).
    pub scored_weight: Tensor<2>,
    /// The `static` CAR constant.
    pub constant: f32,
}

/// A unit partition of one FFN with the numbers CAR needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Partition {
    pub general: Vec<usize>,
    pub specific: Vec<usize>,
    pub other: Vec<usize>,
    /// Ḡ per unit (all units).
    pub gbar: Vec<f64>,
    /// The static CAR constant.
    pub constant: f64,
}

impl Router {
    pub fn new(mode: CarMode, p: &Partition, hidden: usize, device: &Device) -> Self {
        let units = p.gbar.len();
        let vector = |set: &[usize], value: &dyn Fn(usize) -> f32| {
            let mut v = vec![0f32; units];
            set.iter().for_each(|&i| v[i] = value(i));
            v
        };
        let gbar = |i: usize| p.gbar[i] as f32;
        let scored: Vec<usize> = p.general.iter().chain(&p.specific).copied().collect();
        let masks = RouterMasks {
            mode,
            specific: Tensor::from_data(TensorData::new(vector(&p.specific, &|_| 1.0), [units]), device),
            general_weight: Tensor::from_data(TensorData::new(vector(&p.general, &gbar), [units, 1]), device),
            scored_weight: Tensor::from_data(TensorData::new(vector(&scored, &gbar), [units, 1]), device),
            constant: p.constant as f32,
        };
        let (w, b) = match mode {
            CarMode::Learned => {
                let c = p.constant.clamp(1e-6, 1.0 - 1e-6);
                let logit = (c / (1.0 - c)).ln() as f32;
                (Some(Param::from_tensor(Tensor::zeros([hidden], device))), Some(Param::from_tensor(Tensor::from_data(TensorData::new(vec![logit], [1]), device))))
            }
            _ => (None, None),
        };
        Self { w, b, lambda: None, masks }
    }

    /// As [`new`](Self::new), starting as `start` says.
    pub fn with_start(mode: CarMode, start: Start, p: &Partition, hidden: usize, device: &Device) -> Self {
        let lambda = (start == Start::Identity).then(|| Param::from_tensor(Tensor::zeros([1], device)));
        Self { lambda, ..Self::new(mode, p, hidden, device) }
    }

    /// The constant input scales of the two branches (G ∪ O, S) where CAR does not depend on
    /// the token (`static`), with the identity start's λ applied; `None` for `taylor` and
    /// `learned`. `off` routes nothing: (1, 1).
    pub fn constant_shares(&self) -> Option<(f32, f32)> {
        let c = match self.masks.mode {
            CarMode::Off => return Some((1.0, 1.0)),
            CarMode::Static => self.masks.constant,
            CarMode::Taylor | CarMode::Learned => return None,
        };
        Some(match &self.lambda {
            None => (c, 1.0 - c),
            Some(l) => {
                let l = l.val().into_data().try_into_vec::<f32>().expect("f32 λ")[0];
                (1.0 + l * (c - 1.0), 1.0 - l * c)
            }
        })
    }

    /// Per intermediate unit, the scale of its branch: `[1, I]`, for folding a constant CAR
    /// into the gate and up columns (`FFN_U(c·x)` has the units' input maps scaled by c).
    pub fn unit_scales(&self, general: f32, specific: f32) -> Tensor<2> {
        let s = self.masks.specific.clone();
        let units = s.dims()[0];
        s.clone().mul_scalar(specific).add(s.neg().add_scalar(1.0).mul_scalar(general)).reshape([1, units])
    }

    pub fn mode(&self) -> CarMode {
        self.masks.mode
    }

    /// `CAR(x_t)` as `[B, T, 1]`; `act` gives the FFN's intermediate units of an input (the
    /// Taylor mode needs them at `x` itself).
    pub fn car(&self, x: &Tensor<3>, act: &dyn Fn(Tensor<3>) -> Tensor<3>) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let m = &self.masks;
        match m.mode {
            CarMode::Taylor => {
                let phi = act(x.clone()).abs();
                let [_, _, units] = phi.dims();
                let flat = phi.reshape([b * t, units]);
                let general = flat.clone().matmul(m.general_weight.clone());
                let scored = flat.matmul(m.scored_weight.clone());
                // A token with no awareness anywhere goes to the general branch whole.
                let car = general.div(scored.clamp_min(f32::MIN_POSITIVE)).clamp(0.0, 1.0);
                car.reshape([b, t, 1])
            }
            CarMode::Static | CarMode::Off => Tensor::full([b, t, 1], m.constant, &x.device()),
            CarMode::Learned => {
                let w = self.w.as_ref().expect("learned routers have w").val();
                let bias = self.b.as_ref().expect("learned routers have b").val();
                let [_, _, h] = x.dims();
                let logits = x.clone().reshape([b * t, h]).matmul(w.reshape([h, 1])).add(bias.reshape([1, 1]));
                sigmoid(logits).reshape([b, t, 1])
            }
        }
    }

    /// The routed intermediate units: `act(CAR·x)` on G ∪ O and `act((1 − CAR)·x)` on S (with
    /// the identity start, `act((1 + λ(CAR − 1))·x)` and `act((1 − λ·CAR)·x)`).
    pub fn route(&self, x: Tensor<3>, act: &dyn Fn(Tensor<3>) -> Tensor<3>) -> Tensor<3> {
        let car = self.car(&x, act);
        let (general_share, specific_share) = match &self.lambda {
            None => (car.clone(), car.neg().add_scalar(1.0)),
            Some(l) => {
                let l = l.val().reshape([1, 1, 1]);
                (car.clone().sub_scalar(1.0).mul(l.clone()).add_scalar(1.0), car.mul(l).neg().add_scalar(1.0))
            }
        };
        let general = act(x.clone().mul(general_share));
        let specific = act(x.mul(specific_share));
        let s = self.masks.specific.clone().reshape([1, 1, self.masks.specific.dims()[0]]);
        general.mul(s.clone().neg().add_scalar(1.0)).add(specific.mul(s))
    }
}
