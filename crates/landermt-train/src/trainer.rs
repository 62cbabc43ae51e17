//! The training loop: a fixed, seeded plan of batches (one direction per batch, directions
//! alternating), AdamW with warm-up and a schedule, gradient accumulation, validation loss, and
//! an atomic checkpoint every `checkpoint_every` optimizer steps from which a killed run resumes
//! to the same weights as an uninterrupted one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Tensor, TensorData};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};

use crate::data::Example;
use crate::optim::{Optim, StateTensor};
use crate::{Trainee, ids};

/// Version of the checkpoint and `delta.safetensors` layout.
pub const CHECKPOINT_VERSION: u32 = 1;

/// Learning-rate shape after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    Constant,
    #[default]
    Linear,
    Cosine,
}

/// The optimisation settings of `[train]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub lr: f64,
    pub weight_decay: f64,
    /// Examples per micro-batch (all of one direction).
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    pub epochs: usize,
    /// Optimizer steps of linear warm-up.
    pub warmup_steps: usize,
    pub schedule: Schedule,
    pub max_len: usize,
    pub seed: u64,
    /// Validation loss every this many optimizer steps (0: only at the end).
    pub eval_every: usize,
    /// Checkpoint every this many optimizer steps (0: only at the end).
    pub checkpoint_every: usize,
    /// The optimizer of a joint run's gathered slices (METHOD.md stage 4, joint mode); absent
    /// from the recorded setup when `lazy`, so that no other run's key depends on it.
    #[serde(skip_serializing_if = "OptimizerKind::is_lazy")]
    pub optimizer: OptimizerKind,
}

/// `train.optimizer`: how a joint run's slices step when a batch may update only some units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Units outside the step's update set do not move, decay or advance their moments; the
    /// bias correction counts each unit's own steps ([`crate::lazy`]).
    #[default]
    Lazy,
    /// The authors' code: AdamW over masked gradients (every entry decays, and moves on the
    /// moments earlier batches left).
    Dense,
}

impl OptimizerKind {
    pub fn is_lazy(&self) -> bool {
        *self == OptimizerKind::Lazy
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            lr: 5e-5,
            weight_decay: 0.01,
            batch_size: 8,
            grad_accum: 10,
            epochs: 1,
            warmup_steps: 0,
            schedule: Schedule::Linear,
            max_len: 256,
            seed: 1,
            eval_every: 0,
            checkpoint_every: 10,
            optimizer: OptimizerKind::Lazy,
        }
    }
}

impl Settings {
    /// The learning rate of optimizer step `step` (0-based) of `total`.
    pub fn lr_at(&self, step: usize, total: usize) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = total.saturating_sub(self.warmup_steps).max(1) as f64;
        let done = (step - self.warmup_steps) as f64 / span;
        match self.schedule {
            Schedule::Constant => self.lr,
            Schedule::Linear => self.lr * (1.0 - done),
            Schedule::Cosine => self.lr * 0.5 * (1.0 + (std::f64::consts::PI * done).cos()),
        }
    }
}

pub use landermt_data::mix;

/// The micro-batches of the whole run: per epoch, each direction's examples shuffled by the
/// seed and cut into batches; directions take turns. Each entry is (direction index, example
/// indices).
pub fn plan(per_direction: &[usize], batch_size: usize, epochs: usize, seed: u64) -> Vec<(usize, Vec<usize>)> {
    let mut out = Vec::new();
    for epoch in 0..epochs {
        let batches: Vec<Vec<Vec<usize>>> = per_direction
            .iter()
            .enumerate()
            .map(|(d, &n)| {
                let mut order: Vec<usize> = (0..n).collect();
                order.sort_by_key(|&i| mix(seed ^ mix((epoch as u64) << 32 | (d as u64) << 24) ^ i as u64));
                order.chunks(batch_size.max(1)).map(<[usize]>::to_vec).collect()
            })
            .collect();
        let rounds = batches.iter().map(Vec::len).max().unwrap_or(0);
        for r in 0..rounds {
            for (d, b) in batches.iter().enumerate() {
                if let Some(batch) = b.get(r) {
                    out.push((d, batch.clone()));
                }
            }
        }
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{path}: {msg}")]
    Checkpoint { path: PathBuf, msg: String },
    #[error("{path}: the checkpoint was made with a different setup ({changes}); delete it or restore the old setup")]
    Changed { path: PathBuf, changes: String },
    #[error(transparent)]
    Model(#[from] landermt_model::ModelError),
}

/// What a checkpoint carries besides tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    /// Optimizer steps done.
    pub step: usize,
    /// The setup the run was started with (model, data, method, settings, upstream artifacts):
    /// a resume with another setup is refused, naming the keys that changed.
    pub setup: serde_json::Value,
    /// Training loss per optimizer step.
    pub losses: Vec<f64>,
    /// (step, validation loss).
    pub validation: Vec<(usize, f64)>,
    /// Target and prompt tokens processed, and seconds spent, over all sessions.
    pub tokens: usize,
    pub seconds: f64,
    /// Module paths of the trainable tensors, in order.
    pub names: Vec<String>,
}

/// The keys whose values differ between two setups, as `key: old → new`.
fn changes(old: &serde_json::Value, new: &serde_json::Value) -> String {
    let (Some(a), Some(b)) = (old.as_object(), new.as_object()) else { return format!("{old} → {new}") };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k}: {} → {}", a.get(k).map_or("(none)".into(), |v| v.to_string()), b.get(k).map_or("(none)".into(), |v| v.to_string())))
        .collect::<Vec<_>>()
        .join("; ")
}

fn f32_bytes(t: &Tensor<2>) -> Vec<u8> {
    t.clone().into_data().try_into_vec::<f32>().expect("f32 parameters").iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes the trainable tensors (and, for a checkpoint, the optimizer state) with `state` in
/// the metadata, atomically. The checksum covers the trainable tensors, then Burn's optimizer
/// record, then the lazy optimizer's tensors by name.
pub fn save(path: &Path, trainee: &Trainee, optim: Option<&Optim>, state: &State) -> Result<(), TrainError> {
    let tensors = ids::trainable(trainee);
    let mut state = state.clone();
    state.names = tensors.iter().map(|(n, _)| n.clone()).collect();
    let mut bytes: Vec<StateTensor> = tensors.iter().enumerate().map(|(k, (_, t))| (format!("trainable.{k}"), Dtype::F32, t.dims().to_vec(), f32_bytes(t))).collect();
    if let Some(o) = optim {
        let (record, mut lazy) = o.state().map_err(|e| TrainError::Checkpoint { path: path.into(), msg: format!("optimizer state: {e}") })?;
        bytes.push(("optimizer".into(), Dtype::U8, vec![record.len()], record));
        lazy.sort_by(|a, b| a.0.cmp(&b.0));
        bytes.extend(lazy);
    }
    let views: Vec<(String, TensorView)> = bytes.iter().map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).expect("shape matches"))).collect();
    let meta = HashMap::from([("landermt".to_string(), serde_json::to_string(&state).expect("plain data")), (CHECKSUM_KEY.to_string(), checksum(views.iter().map(|(n, v)| (n.as_str(), v.data()))))]);
    let file = safetensors::serialize(views, Some(meta)).map_err(|e| TrainError::Checkpoint { path: path.into(), msg: e.to_string() })?;
    landermt_model::atomic::write_atomic(path, |w| w.write_all(&file))?;
    Ok(())
}

/// Loads a checkpoint into `trainee` and `optim`; refuses one from another setup. The
/// optimizer state goes on the trainee's device (the vendored burn-optim's `from_bytes_on`),
/// not on `Device::default()`, which is the GPU in a build with a GPU backend.
pub fn load(path: &Path, trainee: Trainee, optim: Optim, setup: &serde_json::Value) -> Result<(Trainee, Optim, State), TrainError> {
    let bad = |msg: String| TrainError::Checkpoint { path: path.into(), msg };
    let file = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let state = read_state(path, &file, "not a checkpoint", "; delete it to start over")?;
    if state.version != CHECKPOINT_VERSION {
        return Err(bad(format!("checkpoint version {}, this build reads {CHECKPOINT_VERSION}", state.version)));
    }
    if state.setup != *setup {
        return Err(TrainError::Changed { path: path.into(), changes: changes(&state.setup, setup) });
    }
    let st = SafeTensors::deserialize(&file).map_err(|e| bad(e.to_string()))?;
    let current = ids::trainable(&trainee);
    if current.len() != state.names.len() {
        return Err(bad(format!("{} trainable tensors saved, {} expected", state.names.len(), current.len())));
    }
    let device = trainee.net.device().inner();
    let values = read_trainable(path, &st, &current, &device)?;
    let trainee = ids::restore(trainee, values);
    let optim = match st.tensor("optimizer") {
        Ok(o) => optim.restored(o.data().to_vec(), &st, &device).map_err(|e| bad(format!("optimizer state: {e}")))?,
        Err(_) => return Err(bad("no optimizer state (a final delta, not a checkpoint)".into())),
    };
    Ok((trainee, optim, state))
}

/// Puts the trained tensors of `delta.safetensors` (or a checkpoint) into `trainee`, which
/// must have been built for the same method and model.
pub fn load_trained(path: &Path, trainee: Trainee) -> Result<(Trainee, State), TrainError> {
    let bad = |msg: String| TrainError::Checkpoint { path: path.into(), msg };
    let file = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let state = read_state(path, &file, "not a landermt delta", "")?;
    let st = SafeTensors::deserialize(&file).map_err(|e| bad(e.to_string()))?;
    let trainee = ids::number(trainee);
    let current = ids::trainable(&trainee);
    let names: Vec<&String> = current.iter().map(|(n, _)| n).collect();
    if names != state.names.iter().collect::<Vec<_>>() {
        return Err(bad(format!("holds {} trained tensors for another setup than the {} of this method and model", state.names.len(), current.len())));
    }
    let values = read_trainable(path, &st, &current, &trainee.net.device().inner())?;
    Ok((ids::restore(trainee, values), state))
}

/// The metadata key of the SHA-256 over every tensor's name and bytes, in file order.
pub const CHECKSUM_KEY: &str = "landermt.sha256";

pub fn checksum<'a>(tensors: impl Iterator<Item = (&'a str, &'a [u8])>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (name, data) in tensors {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((data.len() as u64).to_le_bytes());
        h.update(data);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The [`State`] in the metadata of a delta or checkpoint file read into `file`, after its
/// checksum (absent from files written before checksums) is verified: a flipped bit or a
/// partial copy is refused here, not trained on.
fn read_state(path: &Path, file: &[u8], not_ours: &str, hint: &str) -> Result<State, TrainError> {
    let bad = |msg: String| TrainError::Checkpoint { path: path.into(), msg };
    let (_, meta) = SafeTensors::read_metadata(file).map_err(|e| bad(format!("{not_ours} ({e}){hint}")))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let state: State = meta.get("landermt").and_then(|s| serde_json::from_str(s).ok()).ok_or_else(|| bad("no landermt state in the metadata".into()))?;
    if let Some(expected) = meta.get(CHECKSUM_KEY) {
        let st = SafeTensors::deserialize(file).map_err(|e| bad(format!("{e}{hint}")))?;
        let mut names: Vec<String> = (0..state.names.len()).map(|k| format!("trainable.{k}")).collect();
        if st.names().contains(&"optimizer") {
            names.push("optimizer".into());
        }
        let mut lazy: Vec<String> = st.names().into_iter().filter(|n| n.starts_with("lazy.")).map(str::to_string).collect();
        lazy.sort();
        names.extend(lazy);
        let views = names.iter().map(|n| st.tensor(n)).collect::<Result<Vec<_>, _>>().map_err(|e| bad(e.to_string()))?;
        if checksum(names.iter().zip(&views).map(|(n, v)| (n.as_str(), v.data()))) != *expected {
            return Err(bad(format!("checksum mismatch: the file is corrupted (a flipped bit or a partial copy){hint}")));
        }
    }
    Ok(state)
}

/// The saved `trainable.{k}` tensors, checked against the shapes of `current` (the trainee's
/// trainable tensors in order), on `device`.
fn read_trainable(path: &Path, st: &SafeTensors, current: &[(String, Tensor<2>)], device: &burn::tensor::Device) -> Result<Vec<Tensor<2>>, TrainError> {
    let bad = |msg: String| TrainError::Checkpoint { path: path.into(), msg };
    let mut values = Vec::with_capacity(current.len());
    for (k, (name, t)) in current.iter().enumerate() {
        let v = st.tensor(&format!("trainable.{k}")).map_err(|e| bad(format!("tensor {k} ({name}): {e}")))?;
        if v.shape() != t.dims() {
            return Err(bad(format!("tensor {k} ({name}) has shape {:?}, expected {:?}", v.shape(), t.dims())));
        }
        let data: Vec<f32> = v.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
        values.push(Tensor::<2>::from_data(TensorData::new(data, t.dims()), device));
    }
    Ok(values)
}

/// Inputs of [`run`].
pub struct Run<'a> {
    pub settings: &'a Settings,
    /// Training examples per direction.
    pub train: &'a [Vec<Example>],
    /// Validation examples (any directions).
    pub dev: &'a [Example],
    pub pad_id: u32,
    /// The setup recorded in checkpoints.
    pub setup: serde_json::Value,
    /// `checkpoint.safetensors` lives here; `delta.safetensors` is written here at the end.
    pub dir: &'a Path,
    /// Stop after this many optimizer steps in this call (a test's stand-in for a kill).
    pub stop_after: Option<usize>,
    /// Called after each optimizer step with (step, total, loss).
    pub progress: &'a dyn Fn(usize, usize, f64),
}

/// Trains `trainee`, resuming from `dir/checkpoint.safetensors` if there is one. Returns the
/// trained trainee and the final state (also saved as `dir/delta.safetensors`).
pub fn run(mut trainee: Trainee, r: &Run) -> Result<(Trainee, State), TrainError> {
    let s = r.settings;
    trainee = ids::number(trainee);
    let mut optim = Optim::new(&trainee, s);
    let batches = plan(&r.train.iter().map(Vec::len).collect::<Vec<_>>(), s.batch_size, s.epochs, s.seed);
    let total = batches.len().div_ceil(s.grad_accum.max(1));
    let ckpt = r.dir.join("checkpoint.safetensors");
    let names = ids::trainable(&trainee).into_iter().map(|(n, _)| n).collect();
    let mut state = State { version: CHECKPOINT_VERSION, step: 0, setup: r.setup.clone(), losses: vec![], validation: vec![], tokens: 0, seconds: 0.0, names };
    if ckpt.exists() {
        let (t, o, st) = load(&ckpt, trainee, optim, &r.setup)?;
        (trainee, optim, state) = (t, o, st);
        tracing::info!(step = state.step, total, path = %ckpt.display(), "resuming from the checkpoint");
    }
    let mut done_here = 0;
    while state.step < total {
        let start = std::time::Instant::now();
        let lr = s.lr_at(state.step, total);
        let micro = &batches[state.step * s.grad_accum..((state.step + 1) * s.grad_accum).min(batches.len())];
        let mut accumulator = GradientsAccumulator::<Trainee>::new();
        let mut loss_sum = 0.0;
        // In a joint run, the joint directions of the step's batches.
        let mut directions = Vec::new();
        for (d, idx) in micro {
            let examples: Vec<&Example> = idx.iter().map(|&i| &r.train[*d][i]).collect();
            let (loss, value) = trainee.loss(&examples, r.pad_id);
            let loss = loss.div_scalar(micro.len() as f64);
            loss_sum += value / micro.len() as f64;
            state.tokens += examples.iter().map(|e| e.ids.len()).sum::<usize>();
            let mut grads = GradientsParams::from_grads(loss.backward(), &trainee);
            if let Some(j) = &trainee.joint {
                let d = j.index(examples[0].direction);
                j.mask_gradients(&trainee, &mut grads, d);
                directions.push(d);
            }
            accumulator.accumulate(&trainee, grads);
        }
        trainee = optim.step(lr, trainee, accumulator.grads(), &directions);
        state.step += 1;
        state.losses.push(loss_sum);
        state.seconds += start.elapsed().as_secs_f64();
        if s.eval_every > 0 && state.step.is_multiple_of(s.eval_every) && state.step < total {
            state.validation.push((state.step, validation_loss(&trainee, r.dev, s.batch_size, r.pad_id)));
        }
        (r.progress)(state.step, total, loss_sum);
        if s.checkpoint_every > 0 && state.step.is_multiple_of(s.checkpoint_every) && state.step < total {
            save(&ckpt, &trainee, Some(&optim), &state)?;
        }
        done_here += 1;
        if r.stop_after == Some(done_here) && state.step < total {
            save(&ckpt, &trainee, Some(&optim), &state)?;
            return Ok((trainee, state));
        }
    }
    if state.validation.last().map(|v| v.0) != Some(total) && !r.dev.is_empty() {
        state.validation.push((total, validation_loss(&trainee, r.dev, s.batch_size, r.pad_id)));
    }
    save(&r.dir.join("delta.safetensors"), &trainee, None, &state)?;
    save(&ckpt, &trainee, Some(&optim), &state)?;
    Ok((trainee, state))
}

/// Mean target loss over `dev`, in batches, on a copy of the network without autodiff (no
/// graph is recorded for a loss that is never backpropagated).
pub fn validation_loss(trainee: &Trainee, dev: &[Example], batch_size: usize, pad_id: u32) -> f64 {
    use burn::module::Module;
    let mut net = trainee.network().valid();
    // A joint run routes each direction as its pair does: batches of one direction each.
    let groups: Vec<&[Example]> = if trainee.joint.is_some() { dev.chunk_by(|a, b| a.direction == b.direction).collect() } else { vec![dev] };
    let (mut sum, mut n) = (0.0, 0usize);
    for group in groups {
        if let (Some(j), Some(first)) = (&trainee.joint, group.first()) {
            j.route(&mut net, j.index(first.direction));
        }
        for chunk in group.chunks(batch_size.max(1)) {
            let refs: Vec<&Example> = chunk.iter().collect();
            let seqs: Vec<Vec<u32>> = chunk.iter().map(|e| e.ids.clone()).collect();
            let batch = landermt_model::Batch::left_padded(&seqs, pad_id);
            let hidden = net.forward(&batch, None, &mut landermt_model::Taps::none());
            let loss = crate::loss::target_loss(&net, &batch, &refs, hidden);
            sum += loss.into_data().try_into_vec::<f32>().expect("f32")[0] as f64 * chunk.len() as f64;
            n += chunk.len();
        }
    }
    sum / n.max(1) as f64
}
