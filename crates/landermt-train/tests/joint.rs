//! Joint training on the tiny LLaMA with real stage 2–3 artifacts for two pairs (en–fr, en–de)
//! over the same layers: a batch of one direction changes only its pair's units (moments
//! included) under the lazy optimizer; the dense optimizer differs from it exactly there; a
//! killed joint run resumes to the same delta.

mod common;

use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use common::{load, root, stage2};
use landermt_data::prompt::mixed;
use landermt_data::{Direction, ParallelSource, read_parallel};
use landermt_model::LanguageModel;
use landermt_model::nn::CarMode;
use landermt_route::Route;
use landermt_score::Neurons;
use landermt_train::joint::Joint;
use landermt_train::optim::Optim;
use landermt_train::trainer::OptimizerKind;
use landermt_train::{Example, Method, Trainee, UnitSet, example};

/// Stage 2 on 4 FLORES sentences of en, fr, de (layers 2 and 3), and the routes of en–fr and
/// en–de over those layers.
fn artifacts() -> (Neurons, Vec<Route>) {
    let (scores, neurons, languages) = stage2();
    let routes = [[languages[0], languages[1]], [languages[0], languages[2]]].map(|pair| landermt_route::build(&neurons, &scores, pair, &neurons.selected, CarMode::Taylor).unwrap());
    (neurons, routes.into())
}

const DIRECTIONS: [&str; 2] = ["en-fr", "en-de"];

fn examples(model: &LanguageModel, n: usize) -> Vec<Vec<Example>> {
    DIRECTIONS
        .iter()
        .map(|d| {
            let direction: Direction = d.parse().unwrap();
            let source = ParallelSource::Corpus { dir: root().join("data/corpus"), split: "train".into() };
            let pairs = read_parallel(&source, direction).unwrap();
            pairs.iter().enumerate().filter_map(|(i, p)| example(model, direction, p, &mixed()[i % mixed().len()], 80).unwrap()).take(n).collect()
        })
        .collect()
}

/// The joint trainee of `landermt` and each direction's unit set.
fn trainee(neurons: &Neurons, routes: &[Route]) -> (Trainee, Vec<UnitSet>) {
    trainee_on(&Device::flex().autodiff(), neurons, routes)
}

fn trainee_on(device: &Device, neurons: &Neurons, routes: &[Route]) -> (Trainee, Vec<UnitSet>) {
    let mut model = common::load_on(device);
    landermt_route::apply(&mut model, &routes[0]).unwrap();
    let sets: Vec<UnitSet> = routes.iter().map(|r| Method::Landermt.units(r, neurons).unwrap()).collect();
    let routing = routes.iter().map(|r| landermt_route::router_masks(r, model.config.hidden_size, &model.net.device())).collect();
    let mut t = Trainee::new(model.net.clone(), Method::Landermt, Some(&landermt_train::method::union(&sets)), &[2, 3]);
    t.joint = Some(Joint::new(&t.delta, DIRECTIONS.iter().map(|d| d.parse().unwrap()).collect(), &sets, routing));
    (t, sets)
}

fn values(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

/// Per delta weight: its values, and (lazy only) its moments.
type Snapshot = Vec<(Vec<f32>, Option<(Vec<f32>, Vec<f32>)>)>;

fn snapshot(t: &Trainee, optim: &Optim) -> Snapshot {
    t.delta
        .weights
        .iter()
        .enumerate()
        .map(|(k, w)| {
            let moments = match optim {
                Optim::Lazy { moments, .. } => moments[k].as_ref().map(|m| (values(m.m.clone()), values(m.v.clone()))),
                Optim::Dense(_) => None,
            };
            (values(w.val().inner()), moments)
        })
        .collect()
}

/// One optimizer step on a batch of direction `d`.
fn step(t: Trainee, optim: &mut Optim, batch: &[Example], d: usize) -> Trainee {
    let refs: Vec<&Example> = batch.iter().collect();
    let (loss, _) = t.loss(&refs, 0);
    let mut grads = GradientsParams::from_grads(loss.backward(), &t);
    t.joint.as_ref().unwrap().mask_gradients(&t, &mut grads, d);
    optim.step(1e-2, t, grads, &[d])
}

/// Two steps, en→fr then en→de: the snapshots after each.
fn fr_then_de_on(device: &Device, kind: OptimizerKind) -> (Trainee, Vec<UnitSet>, Snapshot, Snapshot) {
    let (neurons, routes) = artifacts();
    let (t, sets) = trainee_on(device, &neurons, &routes);
    let data = examples(&common::load_on(device), 2);
    let settings = landermt_train::Settings { weight_decay: 0.1, optimizer: kind, ..Default::default() };
    let mut optim = Optim::new(&t, &settings);
    assert_eq!(matches!(optim, Optim::Lazy { .. }), kind == OptimizerKind::Lazy);
    let t = step(t, &mut optim, &data[0], 0);
    let after_fr = snapshot(&t, &optim);
    let t = step(t, &mut optim, &data[1], 1);
    let after_de = snapshot(&t, &optim);
    (t, sets, after_fr, after_de)
}

/// For each delta weight, each of its units' columns (or rows, for down): whether the unit is
/// in `set`.
fn membership(t: &Trainee, set: &UnitSet) -> Vec<Vec<bool>> {
    t.delta.slices.iter().map(|s| s.units.iter().map(|u| set.get(&(s.layer, s.target.site())).is_some_and(|v| v.contains(u))).collect()).collect()
}

/// The entries of unit `u` of a `[rows, cols]` weight, by rows when `by_rows`.
fn unit_entries(v: &[f32], dims: [usize; 2], by_rows: bool, u: usize) -> Vec<u32> {
    if by_rows { v[u * dims[1]..(u + 1) * dims[1]].iter().map(|x| x.to_bits()).collect() } else { (0..dims[0]).map(|r| v[r * dims[1] + u].to_bits()).collect() }
}

#[test]
fn a_step_of_en_de_leaves_every_entry_outside_its_units_and_its_moments_bit_identical() {
    only_the_directions_units_change(&Device::flex().autodiff());
}

// The same on wgpu: with `fusion` built, the lazy optimizer's masked update runs as fused kernels.
#[test]
fn a_step_of_en_de_on_wgpu_leaves_every_entry_outside_its_units_and_its_moments_bit_identical() {
    let Some(gpu) = landermt_model::Backend::Wgpu.test_device("a_step_of_en_de_on_wgpu_leaves_every_entry_outside_its_units_and_its_moments_bit_identical") else { return };
    only_the_directions_units_change(&gpu.autodiff());
}

fn only_the_directions_units_change(device: &Device) {
    let (t, sets, after_fr, after_de) = fr_then_de_on(device, OptimizerKind::Lazy);
    let (fr, de) = (membership(&t, &sets[0]), membership(&t, &sets[1]));
    let (mut kept, mut moved, mut fr_only) = (0, 0, 0);
    for (k, s) in t.delta.slices.iter().enumerate() {
        let dims = t.delta.weights[k].val().dims();
        let (a, b) = (&after_fr[k], &after_de[k]);
        let (ma, mb) = (a.1.as_ref().unwrap(), b.1.as_ref().unwrap());
        for u in 0..s.units.len() {
            let e = |v: &[f32]| unit_entries(v, dims, s.target.by_rows(), u);
            if de[k][u] {
                moved += (e(&a.0) != e(&b.0)) as usize;
            } else {
                assert!(e(&a.0) == e(&b.0), "slice {k} unit {}: moved in a step that may not update it", s.units[u]);
                assert!(e(&ma.0) == e(&mb.0) && e(&ma.1) == e(&mb.1), "slice {k} unit {}: its moments moved", s.units[u]);
                kept += 1;
                fr_only += fr[k][u] as usize;
            }
        }
    }
    assert!(moved > 0 && kept > 0, "moved {moved}, kept {kept}");
    assert!(fr_only > 0, "no unit updated by en→fr only: the test would not see leftover moments");
}

/// Direction `d`'s masked gradients of a batch, on `t` as it is.
fn gradients(t: &Trainee, batch: &[Example], d: usize) -> GradientsParams {
    let refs: Vec<&Example> = batch.iter().collect();
    let (loss, _) = t.loss(&refs, 0);
    let mut grads = GradientsParams::from_grads(loss.backward(), t);
    t.joint.as_ref().unwrap().mask_gradients(t, &mut grads, d);
    grads
}

#[test]
fn lazy_and_dense_differ_exactly_where_the_issue_says() {
    // Both optimizers get the same gradients (the lazy trainee's), so that the difference is
    // the optimizers' own, not that of the models the gradients were taken on.
    let (neurons, routes) = artifacts();
    let (t, sets) = trainee(&neurons, &routes);
    let data = examples(&load(), 2);
    let optim = |kind| Optim::new(&t, &landermt_train::Settings { weight_decay: 0.1, optimizer: kind, ..Default::default() });
    let (mut lazy, mut dense) = (optim(OptimizerKind::Lazy), optim(OptimizerKind::Dense));
    let (mut a, mut b) = (t.clone(), t.clone());
    let mut after = Vec::new();
    for (d, batch) in data.iter().enumerate() {
        let (ga, gb) = (gradients(&a, batch, d), gradients(&a, batch, d));
        a = lazy.step(1e-2, a, ga, &[d]);
        b = dense.step(1e-2, b, gb, &[d]);
        after.push((snapshot(&a, &lazy), snapshot(&b, &dense)));
    }
    let [(lazy_fr, dense_fr), (lazy_de, dense_de)] = <[_; 2]>::try_from(after).ok().unwrap();
    let (fr, de) = (membership(&t, &sets[0]), membership(&t, &sets[1]));
    let mut seen = [0usize; 3];
    for (k, s) in t.delta.slices.iter().enumerate() {
        let dims = t.delta.weights[k].val().dims();
        for u in 0..s.units.len() {
            let e = |v: &[f32]| unit_entries(v, dims, s.target.by_rows(), u).into_iter().map(f32::from_bits).collect::<Vec<f32>>();
            let close = |x: &[f32], y: &[f32]| x.iter().zip(y).all(|(p, q)| (p - q).abs() <= 1e-6);
            let unit = s.units[u];
            match (fr[k][u], de[k][u]) {
                // In both sets: the same moments, count and step.
                (true, true) => {
                    assert!(close(&e(&lazy_de[k].0), &e(&dense_de[k].0)), "slice {k} unit {unit}: the optimizers differ where they should not");
                    seen[0] += 1;
                }
                // en→fr only: dense moves it in the en→de step on its old moments and decays it; lazy leaves it.
                (true, false) => {
                    assert!(e(&lazy_de[k].0) == e(&lazy_fr[k].0), "slice {k} unit {unit}: lazy moved it");
                    seen[1] += !close(&e(&dense_de[k].0), &e(&dense_fr[k].0)) as usize;
                }
                // en→de only: lazy's first step of the unit (t = 1), dense's second (t = 2).
                (false, true) => seen[2] += !close(&e(&lazy_de[k].0), &e(&dense_de[k].0)) as usize,
                // The delta holds the union of the directions' units, nothing else.
                (false, false) => panic!("slice {k} unit {unit}: in the delta but in no direction's set"),
            }
        }
    }
    assert!(seen[0] > 0, "no unit in both sets");
    assert!(seen[1] > 0, "dense AdamW never moved a unit of en→fr only in the en→de step");
    assert!(seen[2] > 0, "the bias corrections never differed");
}

#[test]
fn a_killed_joint_run_resumes_to_the_same_delta() {
    let (neurons, routes) = artifacts();
    let model = load();
    let train = examples(&model, 4);
    let settings = landermt_train::Settings { lr: 1e-2, batch_size: 2, grad_accum: 1, epochs: 1, warmup_steps: 1, checkpoint_every: 1, ..Default::default() };
    let setup = serde_json::json!({ "method": "landermt", "joint": true });
    let go = |dir: &std::path::Path, stop_after: Option<usize>| {
        let r = landermt_train::trainer::Run { settings: &settings, train: &train, dev: &train[1][..1], pad_id: 0, setup: setup.clone(), dir, stop_after, progress: &|_, _, _| {} };
        landermt_train::trainer::run(trainee(&neurons, &routes).0, &r).unwrap()
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_, whole) = go(a.path(), None);
    assert_eq!(whole.step, 4, "2 batches of 2 per direction, in turn");
    let (_, first) = go(b.path(), Some(3));
    assert_eq!(first.step, 3);
    let (_, resumed) = go(b.path(), None);
    assert_eq!(resumed.losses, whole.losses);
    let tensors = |dir: &std::path::Path| {
        let bytes = std::fs::read(dir.join("delta.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut out: Vec<(String, Vec<u8>)> = st.tensors().into_iter().map(|(n, v)| (n, v.data().to_vec())).collect();
        out.sort();
        out
    };
    assert!(tensors(a.path()) == tensors(b.path()), "the resumed joint run ends with other weights");
    // The checkpoint carries the lazy optimizer's per-unit state.
    let ckpt = std::fs::read(b.path().join("checkpoint.safetensors")).unwrap();
    let names = safetensors::SafeTensors::deserialize(&ckpt).unwrap().names().into_iter().map(str::to_string).collect::<Vec<_>>();
    assert!(names.iter().any(|n| n.starts_with("lazy.") && n.ends_with(".t")), "{names:?}");
}
