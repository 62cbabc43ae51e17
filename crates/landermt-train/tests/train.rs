//! Selective training on the tiny LLaMA with real stage 2–3 artifacts: frozen entries stay
//! bit-identical, optimizer state grows with the trainable entries only, the loss is on target
//! tokens only, and every method lowers the loss on a small batch.

mod common;

use burn::module::Module;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor};
use common::{delta_tensors, examples, load, root, stage2};
use landermt_data::prompt::mixed;
use landermt_data::{Direction, ParallelSource, read_parallel};
use landermt_model::nn::CarMode;
use landermt_model::{Batch, LanguageModel, Taps};
use landermt_route::Route;
use landermt_score::Neurons;
use landermt_train::{Example, Method, Trainee, adamw, example, step};

/// Stages 2 and 3 on 4 FLORES sentences of en, fr, de; layers 2 and 3 selected; pair en–fr.
fn artifacts() -> (Neurons, Route) {
    let (scores, neurons, languages) = stage2();
    let route = landermt_route::build(&neurons, &scores, [languages[0], languages[1]], &neurons.selected, CarMode::Off).unwrap();
    (neurons, route)
}

/// Every float parameter of a module, flattened, in visiting order.
fn weights<M: Module>(m: &M) -> Vec<Vec<f32>> {
    struct Collect(Vec<Vec<f32>>);
    impl burn::module::ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
            self.0.push(p.val().into_data().try_into_vec().unwrap());
        }
    }
    let mut c = Collect(Vec::new());
    m.visit(&mut c);
    c.0
}

fn train(method: Method, steps: usize) -> (Trainee, Vec<f64>, LanguageModel, usize) {
    train_on(&Device::flex().autodiff(), method, steps)
}

fn train_on(device: &Device, method: Method, steps: usize) -> (Trainee, Vec<f64>, LanguageModel, usize) {
    let (neurons, route) = artifacts();
    let model = common::load_on(device);
    let exs = examples(&model, 4);
    let batch: Vec<&Example> = exs.iter().collect();
    let units = method.units(&route, &neurons);
    let mut trainee = Trainee::new(model.net.clone(), method, units.as_ref(), &[2, 3]);
    let mut optim = adamw(0.1);
    let mut losses = Vec::new();
    for _ in 0..steps {
        let (t, loss) = step(trainee, &mut optim, 1e-2, &batch, 0);
        trainee = t;
        losses.push(loss);
    }
    let state = optim.into_bytes().unwrap().len();
    (trainee, losses, model, state)
}

#[test]
fn landermt_changes_only_its_slices_and_keeps_the_rest_bit_identical() {
    only_the_slices_change(&Device::flex().autodiff());
}

// The same guarantee on wgpu, where a build with `fusion` fuses the slice writes and AdamW's
// element-wise chain into generated kernels (`.ci/run` runs it with and without).
#[test]
fn landermt_changes_only_its_slices_and_keeps_the_rest_bit_identical_on_wgpu() {
    let Some(gpu) = landermt_model::Backend::Wgpu.test_device("landermt_changes_only_its_slices_and_keeps_the_rest_bit_identical_on_wgpu") else { return };
    only_the_slices_change(&gpu.autodiff());
}

fn only_the_slices_change(device: &Device) {
    let (trainee, losses, model, state) = train_on(device, Method::Landermt, 4);
    assert!(losses[3] < losses[0], "{losses:?}");
    let before = weights(&model.net);
    let after = weights(&trainee.network().valid());
    assert_eq!(before.len(), after.len());
    // The trained entries: output columns (q, k, v, o, gate, up) or input rows (down) of the slices.
    let (mut changed, mut inside) = (0usize, 0usize);
    let mut trained = vec![Vec::<bool>::new(); before.len()];
    for (i, w) in before.iter().enumerate() {
        trained[i] = vec![false; w.len()];
    }
    let shapes: Vec<[usize; 2]> = {
        struct Shapes(Vec<[usize; 2]>);
        impl burn::module::ModuleVisitor for Shapes {
            fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
                let d = p.dims();
                self.0.push(if D == 2 { [d[0], d[1]] } else { [d[0], 1] });
            }
        }
        let mut s = Shapes(Vec::new());
        model.net.visit(&mut s);
        s.0
    };
    // Map each slice to its tensor by value: the slice's weight entries at the start equal the
    // original weights, so find the original tensor whose shape and units fit.
    for s in &trainee.delta.slices {
        let block = &model.net.layers[s.layer];
        let w = match s.target {
            landermt_train::delta::Target::Q => &block.attn.q_proj.weight,
            landermt_train::delta::Target::K => &block.attn.k_proj.weight,
            landermt_train::delta::Target::V => &block.attn.v_proj.weight,
            landermt_train::delta::Target::O => &block.attn.o_proj.weight,
            landermt_train::delta::Target::Gate => &block.mlp.gate_proj.as_ref().unwrap().weight,
            landermt_train::delta::Target::Up => &block.mlp.up_proj.weight,
            landermt_train::delta::Target::Down => &block.mlp.down_proj.weight,
        };
        let values: Vec<f32> = w.val().into_data().try_into_vec().unwrap();
        let idx = before.iter().position(|b| *b == values).expect("the sliced weight is a model parameter");
        let [rows, cols] = shapes[idx];
        for &u in &s.units {
            if s.target == landermt_train::delta::Target::Down {
                (0..cols).for_each(|c| trained[idx][u * cols + c] = true);
            } else {
                (0..rows).for_each(|r| trained[idx][r * cols + u] = true);
            }
        }
    }
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        for (j, (x, y)) in b.iter().zip(a).enumerate() {
            if trained[i][j] {
                inside += 1;
                changed += (x.to_bits() != y.to_bits()) as usize;
            } else {
                assert_eq!(x.to_bits(), y.to_bits(), "parameter {i} entry {j} is outside the update set but changed");
            }
        }
    }
    assert_eq!(inside, trainee.delta.num_params(), "trainable entries");
    assert!(changed * 10 > inside * 9, "only {changed} of {inside} trainable entries moved");
    // Adam keeps two f32 moments per trainable entry, and nothing for the frozen model.
    let total: usize = before.iter().map(Vec::len).sum();
    assert!(state >= 8 * inside && state < 8 * inside + 64 * 1024, "optimizer state {state} bytes for {inside} trainable of {total}");
}

#[test]
fn every_whole_tensor_method_and_variant_lowers_the_loss() {
    for method in [Method::LandermtLs, Method::LandermtLg, Method::Layers, Method::Full] {
        let (_, losses, _, _) = train(method, 4);
        assert!(losses[3] < losses[0] - 1e-3, "{method:?}: {losses:?}");
    }
    let (t, _, _, _) = train(Method::Layers, 1);
    assert_eq!(t.delta.num_params(), 0);
}

#[test]
fn loss_is_the_cross_entropy_of_target_tokens_only() {
    let model = load();
    let exs = examples(&model, 3);
    let batch: Vec<&Example> = exs.iter().collect();
    let trainee = Trainee::new(model.net.clone(), Method::None, None, &[]);
    let got = trainee.loss(&batch, 0).1;

    // Independently: each example alone, full logits, −log p of the target tokens, pooled.
    let (mut sum, mut n) = (0f64, 0usize);
    for ex in &exs {
        let h = model.net.forward(&Batch::single(&ex.ids), None, &mut Taps::none());
        let logp: Vec<f32> = log_softmax(model.net.logits(h), 2).into_data().try_into_vec().unwrap();
        let (t, v) = (ex.ids.len(), model.config.vocab_size);
        for pos in t - ex.target_len..t {
            sum -= logp[(pos - 1) * v + ex.ids[pos] as usize] as f64;
            n += 1;
        }
    }
    assert!((got - sum / n as f64).abs() < 1e-4, "target loss {got} vs {}", sum / n as f64);
    // The prompt carries no loss: the same targets after another prompt give another loss only
    // through the context, and a target-free example is refused by construction.
    assert!(exs.iter().all(|e| e.target_len >= 2 && e.target_len < e.ids.len()));
}

fn directions_examples(model: &LanguageModel, n: usize) -> Vec<Vec<Example>> {
    let source = ParallelSource::Tsv { path: root().join("data/corpus/train.en-fr.tsv"), src_lang: "en".into(), tgt_lang: "fr".into() };
    ["en-fr", "fr-en"]
        .iter()
        .map(|d| {
            let direction: Direction = d.parse().unwrap();
            let pairs = read_parallel(&source, direction).unwrap();
            pairs.iter().enumerate().filter_map(|(i, p)| example(model, direction, p, &mixed()[i % mixed().len()], 80).unwrap()).take(n).collect()
        })
        .collect()
}

#[test]
fn a_killed_run_resumes_to_the_same_weights_and_refuses_a_changed_setup() {
    let (neurons, mut route) = artifacts();
    route.car = CarMode::Learned; // the router's w and b train too
    let settings = landermt_train::Settings { lr: 1e-2, batch_size: 2, grad_accum: 2, epochs: 1, warmup_steps: 1, checkpoint_every: 1, eval_every: 2, ..Default::default() };
    let model = load();
    let train = directions_examples(&model, 6);
    let dev = examples(&model, 2);
    let setup = serde_json::json!({ "method": "landermt", "lr": settings.lr });
    let fresh = || {
        let mut m = load();
        landermt_route::apply(&mut m, &route).unwrap();
        Trainee::new(m.net, Method::Landermt, Method::Landermt.units(&route, &neurons).as_ref(), &[2, 3])
    };
    let go = |dir: &std::path::Path, setup: serde_json::Value, stop_after: Option<usize>| {
        let r = landermt_train::trainer::Run { settings: &settings, train: &train, dev: &dev, pad_id: 0, setup, dir, stop_after, progress: &|_, _, _| {} };
        landermt_train::trainer::run(fresh(), &r)
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_, whole) = go(a.path(), setup.clone(), None).unwrap();
    assert_eq!(whole.step, 3, "6 batches of 2 per direction… 12 examples, accumulation 2");
    assert!(whole.names.iter().any(|n| n.contains("router")), "{:?}", whole.names);

    let (_, first) = go(b.path(), setup.clone(), Some(1)).unwrap();
    assert_eq!(first.step, 1);
    assert!(!b.path().join("delta.safetensors").exists());
    let err = go(b.path(), serde_json::json!({ "method": "landermt", "lr": 0.5 }), None).unwrap_err().to_string();
    assert!(err.contains("lr: 0.01 → 0.5"), "{err}");
    let (_, resumed) = go(b.path(), setup, None).unwrap();
    assert_eq!(resumed.losses, whole.losses);
    assert_eq!(resumed.validation, whole.validation);
    let (x, y) = (delta_tensors(a.path()), delta_tensors(b.path()));
    assert_eq!(x.len(), whole.names.len());
    assert!(x == y, "the resumed run ends with other weights");

    // One flipped bit in the tensor data of a delta or a checkpoint is refused by checksum.
    let ckpt = b.path().join("checkpoint.safetensors");
    for (file, load) in [("delta.safetensors", true), ("checkpoint.safetensors", false)] {
        let path = b.path().join(file);
        let mut bytes = std::fs::read(if load { &path } else { &ckpt }).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let err = if load { landermt_train::trainer::load_trained(&path, fresh()).map(|_| ()) } else { go(b.path(), serde_json::json!({ "method": "landermt", "lr": settings.lr }), None).map(|_| ()) }
            .unwrap_err()
            .to_string();
        assert!(err.contains(file) && err.contains("checksum mismatch"), "{err}");
    }
}

fn logits_of(net: &landermt_model::Transformer, ids: &[u32]) -> Vec<f32> {
    net.logits(net.forward(&Batch::single(ids), None, &mut Taps::none())).into_data().try_into_vec().unwrap()
}

#[test]
fn lora_and_adapters_start_as_the_base_model_train_and_merge() {
    use landermt_train::added::AddedSettings;
    let model = load();
    let exs = examples(&model, 4);
    let batch: Vec<&Example> = exs.iter().collect();
    let base = logits_of(&model.net, &exs[0].ids);
    let sizes = AddedSettings { lora_rank: 4, adapter_size: 8, ..Default::default() };
    let (h, ffn, layers) = (model.config.hidden_size, model.config.intermediate_size, model.config.num_layers);
    let _ = ffn;
    let q_dim = model.config.q_dim();
    let kv = model.config.kv_dim();
    // LoRA on q, k, v, o: r·(in + out) per map; adapters: 2·hidden·size per layer.
    let lora_entries = layers * 4 * (h + q_dim + h + kv + h + kv + q_dim + h);
    for (method, entries) in [(Method::Lora, lora_entries), (Method::Adapter, layers * 2 * h * 8), (Method::AdapterLora, lora_entries + layers * 2 * h * 8)] {
        let mut trainee = Trainee::with_added(model.net.clone(), method, None, &[], &sizes, 7);
        assert_eq!(landermt_train::ids::trainable(&trainee).iter().map(|(_, t)| t.shape().num_elements()).sum::<usize>(), entries, "{method:?}");
        assert!(logits_of(&trainee.network(), &exs[0].ids) == base, "{method:?}: an untrained {method:?} must be the base model");
        let mut optim = adamw(0.0);
        let mut losses = Vec::new();
        for _ in 0..4 {
            let (t, loss) = step(trainee, &mut optim, 1e-2, &batch, 0);
            trainee = t;
            losses.push(loss);
        }
        assert!(losses[3] < losses[0] - 1e-3, "{method:?}: {losses:?}");
        if let Some(lora) = &trainee.lora {
            // The merged weight is W + A·B·α/r, computed here on the host.
            let (layer, target) = lora.targets[5];
            assert_eq!((layer, target), (1, landermt_train::delta::Target::K));
            let w: Vec<f32> = model.net.layers[1].attn.k_proj.weight.val().into_data().try_into_vec().unwrap();
            let a: Vec<f32> = lora.a[5].val().into_data().try_into_vec().unwrap();
            let b: Vec<f32> = lora.b[5].val().into_data().try_into_vec().unwrap();
            let merged: Vec<f32> = trainee.network().layers[1].attn.k_proj.weight.val().into_data().try_into_vec().unwrap();
            let (r, out) = (4, kv);
            for i in 0..h {
                for j in 0..out {
                    let ab: f32 = (0..r).map(|k| a[i * r + k] * b[k * out + j]).sum();
                    let want = w[i * out + j] + ab * (16.0 / 4.0);
                    assert!((merged[i * out + j] - want).abs() <= 1e-6 * (1.0 + want.abs()), "({i}, {j}): {} vs {want}", merged[i * out + j]);
                }
            }
            assert!(b.iter().any(|&x| x != 0.0), "B trained");
        }
    }
}

/// One AdamW step of `method` on the 4-example batch, on `device`: the batch loss before the
/// step, the loss after it, and every trainable tensor after it.
fn one_step_on(device: &Device, method: Method) -> (f64, f64, Vec<(String, Vec<f32>)>) {
    let (neurons, route) = artifacts();
    let model = LanguageModel::load(root().join("tests/fixtures/hf-tiny/llama-tiny"), device).unwrap();
    let exs = examples(&model, 4);
    let batch: Vec<&Example> = exs.iter().collect();
    let units = method.units(&route, &neurons);
    let sizes = landermt_train::added::AddedSettings { lora_rank: 4, ..Default::default() };
    let trainee = Trainee::with_added(model.net.clone(), method, units.as_ref(), &[2, 3], &sizes, 7);
    let mut optim = adamw(0.1);
    let (trainee, before) = step(trainee, &mut optim, 1e-3, &batch, 0);
    let after = trainee.loss(&batch, 0).1;
    let trained = landermt_train::ids::trainable(&trainee).into_iter().map(|(name, t)| (name, t.into_data().try_into_vec().unwrap())).collect();
    (before, after, trained)
}

// One training step of landermt and of lora on wgpu against the same step on flex. AdamW's first
// step moves each entry by about lr·sign(g) (lr = 1e-3), so an entry whose gradient is near zero
// can move differently on two backends that round differently. Limits: the losses within 1e-4
// relative; at most one trained entry in 1,000 further than 2e-5 (a fiftieth of the step) from
// flex's, and none further than 2·lr. (Measured on lavapipe: 2 of 101,000 landermt entries,
// none of lora's.)
#[test]
fn one_training_step_on_wgpu_matches_flex() {
    let Some(gpu) = landermt_model::Backend::Wgpu.test_device("one_training_step_on_wgpu_matches_flex") else { return };
    let gpu = gpu.autodiff();
    for method in [Method::Landermt, Method::Lora] {
        let (cpu_before, cpu_after, cpu) = one_step_on(&Device::flex().autodiff(), method);
        let (gpu_before, gpu_after, gpu_w) = one_step_on(&gpu, method);
        assert!(cpu_after < cpu_before, "{method:?}: the step must lower the loss on flex");
        for (what, a, b) in [("loss before", cpu_before, gpu_before), ("loss after", cpu_after, gpu_after)] {
            assert!((a - b).abs() <= 1e-4 * a.abs(), "{method:?} {what}: flex {a}, wgpu {b}");
        }
        assert_eq!(cpu.len(), gpu_w.len(), "{method:?}: trainable tensors");
        let (mut entries, mut off) = (0, 0);
        for ((name, a), (_, b)) in cpu.iter().zip(&gpu_w) {
            let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(worst <= 2e-3, "{method:?} {name}: trained entries differ by up to {worst}, more than 2·lr");
            entries += a.len();
            off += a.iter().zip(b).filter(|(x, y)| (*x - *y).abs() > 2e-5).count();
        }
        assert!(off * 1000 <= entries, "{method:?}: {off} of {entries} trained entries differ by more than 2e-5");
    }
}

/// With `route.start = "identity"` the step-0 model is the pretrained one, and λ trains with
/// the selected units (it leaves 0 after one step).
#[test]
fn the_identity_starts_lambda_trains_with_the_units() {
    let (neurons, route) = artifacts();
    let route = Route { car: CarMode::Taylor, start: landermt_model::nn::Start::Identity, ..route };
    let mut model = load();
    landermt_route::apply(&mut model, &route).unwrap();
    let exs = examples(&model, 2);
    let batch: Vec<&Example> = exs.iter().collect();
    let trainee = Trainee::new(model.net.clone(), Method::Landermt, Method::Landermt.units(&route, &neurons).as_ref(), &[2, 3]);
    let lambda = |t: &Trainee| -> Vec<f32> { t.net.layers[2].mlp.router.as_ref().unwrap().lambda.as_ref().unwrap().val().into_data().try_into_vec().unwrap() };
    assert_eq!(lambda(&trainee), [0.0]);
    let mut optim = adamw(0.0);
    let (trained, _) = step(trainee, &mut optim, 1e-2, &batch, 0);
    assert!(lambda(&trained)[0].abs() > 1e-4, "λ did not move: {:?}", lambda(&trained));
}
