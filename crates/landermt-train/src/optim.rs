//! The optimizer of a training run. Burn's AdamW over every trainable tensor, except in a
//! joint run of a LANDeRMT variant with `train.optimizer = "lazy"` (the default there): then
//! the delta's slices step with [`LazyAdamW`] on each step's update set, and Burn's AdamW takes
//! the rest (the learned CAR's w and b, shared by every pair).

use burn::module::Param;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};

use crate::Trainee;
use crate::lazy::{LazyAdamW, Moments};
use crate::trainer::{OptimizerKind, Settings};

pub enum Optim {
    Dense(ModuleOptimizer),
    Lazy {
        lazy: LazyAdamW,
        /// One per delta weight, then one per delta bias slot (`None` until its first step).
        moments: Vec<Option<Moments>>,
        rest: ModuleOptimizer,
    },
}

/// A tensor of optimizer state as a checkpoint stores it: name, dtype, shape, bytes.
pub type StateTensor = (String, Dtype, Vec<usize>, Vec<u8>);

impl Optim {
    pub fn new(trainee: &Trainee, settings: &Settings) -> Self {
        let burn = crate::adamw(settings.weight_decay);
        match (&trainee.joint, settings.optimizer) {
            (Some(_), OptimizerKind::Lazy) => {
                let slots = trainee.delta.weights.len() + trainee.delta.biases.len();
                Optim::Lazy { lazy: LazyAdamW::new(settings.weight_decay), moments: vec![None; slots], rest: burn }
            }
            _ => Optim::Dense(burn),
        }
    }

    /// One step with `grads`; `directions` are the joint run's indices of the step's batches.
    pub fn step(&mut self, lr: f64, mut trainee: Trainee, mut grads: GradientsParams, directions: &[usize]) -> Trainee {
        let (lazy, moments, rest) = match self {
            Optim::Dense(o) => return o.step(lr, trainee, grads),
            Optim::Lazy { lazy, moments, rest } => (lazy, moments, rest),
        };
        let joint = trainee.joint.clone().expect("a lazy optimizer only in a joint run");
        let masks = joint.step_masks(directions);
        let n = trainee.delta.weights.len();
        for k in 0..n {
            let w = &trainee.delta.weights[k];
            let p = w.val().inner();
            let g = grads.remove::<2>(w.id).unwrap_or_else(|| p.zeros_like());
            let mask = masks[k].as_ref().expect("every weight has a mask");
            let (p, m) = lazy.step(lr, p, g, mask, moments[k].take());
            moments[k] = Some(m);
            trainee.delta.weights[k] = Param::initialized(w.id, p.autodiff().require_grad());
        }
        for k in 0..trainee.delta.biases.len() {
            let (Some(b), Some(mask)) = (&trainee.delta.biases[k], &masks[n + k]) else { continue };
            let p = b.val().inner();
            let units = p.dims()[0];
            let g = grads.remove::<1>(b.id).unwrap_or_else(|| p.zeros_like());
            // Joint gives biases column masks (`[1, n]`), the shape they are stepped in.
            let (p, m) = lazy.step(lr, p.reshape([1, units]), g.reshape([1, units]), mask, moments[n + k].take());
            moments[n + k] = Some(m);
            trainee.delta.biases[k] = Some(Param::initialized(b.id, p.reshape([units]).autodiff().require_grad()));
        }
        rest.step(lr, trainee, grads)
    }

    /// Burn's optimizer record, and for the lazy optimizer its moments and step counts.
    pub fn state(&self) -> Result<(Vec<u8>, Vec<StateTensor>), String> {
        let (burn, moments) = match self {
            Optim::Dense(o) => (o, &[][..]),
            Optim::Lazy { moments, rest, .. } => (rest, &moments[..]),
        };
        let bytes = burn.into_bytes().map_err(|e| format!("{e:?}"))?.to_vec();
        let mut tensors = Vec::new();
        for (k, m) in moments.iter().enumerate() {
            let Some(m) = m else { continue };
            let f32s = |t: &Tensor<2>| t.clone().into_data().try_into_vec::<f32>().expect("f32 moments").iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
            tensors.push((format!("lazy.{k:05}.m"), Dtype::F32, m.m.dims().to_vec(), f32s(&m.m)));
            tensors.push((format!("lazy.{k:05}.t"), Dtype::U32, vec![m.t.len()], m.t.iter().flat_map(|x| x.to_le_bytes()).collect()));
            tensors.push((format!("lazy.{k:05}.v"), Dtype::F32, m.v.dims().to_vec(), f32s(&m.v)));
        }
        Ok((bytes, tensors))
    }

    /// This optimizer with the state a checkpoint saved (`burn`: Burn's record).
    pub fn restored(self, burn: Vec<u8>, st: &SafeTensors, device: &burn::tensor::Device) -> Result<Self, String> {
        let bytes = burn::tensor::Bytes::from_bytes_vec(burn);
        match self {
            Optim::Dense(o) => Ok(Optim::Dense(o.from_bytes_on(bytes, device).map_err(|e| format!("{e:?}"))?)),
            Optim::Lazy { lazy, mut moments, rest } => {
                let rest = rest.from_bytes_on(bytes, device).map_err(|e| format!("{e:?}"))?;
                for (k, slot) in moments.iter_mut().enumerate() {
                    let Ok(t) = st.tensor(&format!("lazy.{k:05}.t")) else { continue };
                    let read = |part: &str| -> Result<Tensor<2>, String> {
                        let v = st.tensor(&format!("lazy.{k:05}.{part}")).map_err(|e| format!("lazy optimizer slot {k}: {e}"))?;
                        let shape: [usize; 2] = v.shape().try_into().map_err(|_| format!("lazy optimizer slot {k}: shape {:?}", v.shape()))?;
                        let data: Vec<f32> = v.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
                        Ok(Tensor::from_data(TensorData::new(data, shape), device))
                    };
                    let t = t.data().chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
                    *slot = Some(Moments { m: read("m")?, v: read("v")?, t });
                }
                Ok(Optim::Lazy { lazy, moments, rest })
            }
        }
    }
}
