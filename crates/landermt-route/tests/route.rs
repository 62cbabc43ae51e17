//! Stage 3 on the tiny LLaMA with real stage-2 scores: CAR off is the base model bit for bit;
//! the routed FFN equals a direct computation of eq. 4–5 with gathered weights; learned CAR
//! starts where static CAR is; the partition and the static constant follow their definitions.

use std::path::PathBuf;

use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use landermt_data::{Language, MonoSource, read_monolingual};
use landermt_model::nn::CarMode;
use landermt_model::{Batch, LanguageModel, Site, Taps};
use landermt_route::{RouteError, apply, build, pair_of, partition};
use landermt_score::{Neurons, Scores, Settings, awareness, frozen, neurons};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load() -> LanguageModel {
    LanguageModel::load(root().join("tests/fixtures/hf-tiny/llama-tiny"), &Device::flex()).unwrap()
}

fn langs(codes: &[&str]) -> Vec<Language> {
    codes.iter().map(|c| c.parse().unwrap()).collect()
}

/// Stage 2 on 4 FLORES sentences of en, fr, de, with layers 2 and 3 selected.
fn stage2() -> (Scores, Neurons) {
    let model = frozen(LanguageModel::load(root().join("tests/fixtures/hf-tiny/llama-tiny"), &Device::flex().autodiff()).unwrap());
    let data = MonoSource::Flores { dir: root().join("data/flores200-devtest"), first: 1, last: 4 };
    let languages = langs(&["en", "fr", "de"]);
    let per: Vec<_> = languages.iter().map(|&l| awareness(&model, &read_monolingual(&data, l).unwrap().iter().map(|s| model.encode(s).unwrap()).collect::<Vec<_>>(), 4, &|_| {})).collect();
    let settings = Settings { model: "llama-tiny".into(), languages, data, epsilon: 0.9, num_layers: 4, selected: vec![2, 3] };
    neurons(&settings, &per).unwrap()
}

fn logits(model: &LanguageModel, text: &str) -> Vec<f32> {
    let ids = model.encode(text).unwrap();
    let h = model.net.forward(&Batch::single(&ids), None, &mut Taps::none());
    model.net.logits(h).into_data().try_into_vec().unwrap()
}

#[test]
fn car_off_is_the_base_model_bit_for_bit_and_other_modes_are_not() {
    let (scores, neurons) = stage2();
    let pair = pair_of(&["en-fr".parse().unwrap(), "fr-en".parse().unwrap()]).unwrap();
    let text = "Le chat dort sur le canapé du salon.";
    let base = logits(&load(), text);
    for (car, same) in [(CarMode::Off, true), (CarMode::Static, false), (CarMode::Taylor, false), (CarMode::Learned, false)] {
        let mut model = load();
        apply(&mut model, &build(&neurons, &scores, pair, &neurons.selected, car).unwrap()).unwrap();
        let routed = logits(&model, text);
        assert_eq!(routed == base, same, "car = {car:?}");
    }
}

#[test]
fn learned_car_starts_at_the_static_constant() {
    let (scores, neurons) = stage2();
    let pair = [Language::try_from("en".to_string()).unwrap(), "fr".parse().unwrap()];
    let text = "Il pleut depuis trois jours.";
    let mut a = load();
    apply(&mut a, &build(&neurons, &scores, pair, &neurons.selected, CarMode::Static).unwrap()).unwrap();
    let mut b = load();
    apply(&mut b, &build(&neurons, &scores, pair, &neurons.selected, CarMode::Learned).unwrap()).unwrap();
    let (x, y) = (logits(&a, text), logits(&b, text));
    let worst = x.iter().zip(&y).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
    assert!(worst < 1e-4, "learned at start differs from static by {worst}");
}

/// Eq. 4–5 computed directly: gather the weights of each branch's units, run the two
/// restricted FFNs on the scaled inputs, add them; Φ, CAR on the host in f64.
#[test]
fn routed_ffn_equals_eq_4_and_5_with_gathered_weights() {
    let (scores, neurons) = stage2();
    let pair = langs(&["en", "fr"]).try_into().unwrap();
    let route = build(&neurons, &scores, pair, &neurons.selected, CarMode::Taylor).unwrap();
    let mut model = load();
    apply(&mut model, &route).unwrap();
    let layer = &route.layers[0];
    let mlp = &model.net.layers[layer.layer].mlp;
    let device = Device::flex();
    let (t, h) = (5, model.config.hidden_size);
    let x = Tensor::<3>::random([1, t, h], Distribution::Normal(0.0, 1.0), &device);
    let got: Vec<f32> = mlp.forward(x.clone(), layer.layer, &mut Taps::none()).into_data().try_into_vec().unwrap();

    // CAR per token from h(x) on the host.
    let act: Vec<f32> = mlp.act(x.clone()).into_data().try_into_vec().unwrap();
    let units = layer.units;
    let car: Vec<f32> = (0..t)
        .map(|p| {
            let phi = |i: usize| act[p * units + i].abs() as f64 * layer.gbar[i];
            let g: f64 = layer.general.iter().map(|&i| phi(i)).sum();
            let s: f64 = layer.specific.iter().map(|&i| phi(i)).sum();
            (g / (g + s)) as f32
        })
        .collect();
    assert!(car.iter().all(|c| (0.0..=1.0).contains(c)) && car.iter().any(|&c| c < 0.999), "{car:?}");

    // FFN_U(x) = down[U, :]ᵀ · (silu(gate[:, U]·x) ⊙ up[:, U]·x), Burn's [in, out] layout.
    let ffn = |units: &[usize], x: Tensor<3>| -> Tensor<3> {
        let idx = Tensor::<1, Int>::from_data(TensorData::new(units.iter().map(|&i| i as i64).collect::<Vec<_>>(), [units.len()]), &device);
        let gate = mlp.gate_proj.as_ref().unwrap().weight.val().select(1, idx.clone());
        let up = mlp.up_proj.weight.val().select(1, idx.clone());
        let down = mlp.down_proj.weight.val().select(0, idx);
        let x = x.reshape([t, h]);
        let a = burn::tensor::activation::silu(x.clone().matmul(gate)).mul(x.matmul(up));
        a.matmul(down).reshape([1, t, h])
    };
    let c = Tensor::<3>::from_data(TensorData::new(car.clone(), [1, t, 1]), &device);
    let go: Vec<usize> = layer.general.iter().chain(&layer.other).copied().collect();
    let want = ffn(&go, x.clone().mul(c.clone())).add(ffn(&layer.specific, x.mul(c.neg().add_scalar(1.0))));
    let want: Vec<f32> = want.into_data().try_into_vec().unwrap();
    let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(worst <= 1e-5 * scale.max(1.0), "routed FFN differs from eq. 5 by {worst} (scale {scale})");
}

#[test]
fn partition_and_static_constant_follow_their_definitions() {
    let (scores, neurons) = stage2();
    let pair: [Language; 2] = langs(&["fr", "de"]).try_into().unwrap();
    let p = partition(&neurons, &scores, 3, pair).unwrap();
    let split = &neurons.layers[1].modules["ffn_act"];
    let mut s = [split.specific["fr"].clone(), split.specific["de"].clone()].concat();
    s.sort_unstable();
    assert_eq!(p.specific, s);
    assert_eq!(p.other, split.specific["en"]);
    assert_eq!(p.general.len() + p.specific.len() + p.other.len(), 176);
    let m = &scores.modules[&(3, Site::FfnAct)];
    let sbar = |i: usize| m.s[1][i] + m.s[2][i];
    let g: f64 = p.general.iter().map(|&i| sbar(i)).sum();
    let sp: f64 = p.specific.iter().map(|&i| sbar(i)).sum();
    assert!((p.constant - g / (g + sp)).abs() < 1e-12);
    assert!((p.gbar[7] - (m.g[1][7] + m.g[2][7]) / 2.0).abs() < 1e-15);

    let err = partition(&neurons, &scores, 3, langs(&["fr", "zh"]).try_into().unwrap()).unwrap_err();
    assert_eq!(err, RouteError::NotScored("zh".into(), "en, fr, de".into()));
    assert_eq!(partition(&neurons, &scores, 0, pair).unwrap_err(), RouteError::NoSplit(0));
    let several = pair_of(&["en-fr".parse().unwrap(), "en-de".parse().unwrap()]).unwrap_err();
    assert!(several.to_string().contains("(en–fr, de–en)"), "{several}");
}
