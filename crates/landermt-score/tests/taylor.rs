//! The Taylor scores against independent estimates: central finite differences of the loss
//! when one unit's output at one token is scaled by 1 ± δ (which estimates `∂L/∂h · h` there),
//! and batched scoring against sentence-by-sentence scoring.

use std::path::PathBuf;

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use landermt_model::{Batch, LanguageModel, Site, Taps};
use landermt_score::{awareness, frozen};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn load(name: &str) -> LanguageModel {
    frozen(LanguageModel::load(fixtures().join("hf-tiny").join(name), &Device::flex().autodiff()).unwrap())
}

/// Mean next-token cross-entropy over the T−1 predicted positions, written out independently
/// of the crate's batched, weighted loss.
fn loss(model: &LanguageModel, ids: &[u32], taps: &mut Taps) -> f64 {
    let logits = model.net.logits(model.net.forward(&Batch::single(ids), None, taps));
    let [_, t, v] = logits.dims();
    let logp = log_softmax(logits.reshape([t, v]).narrow(0, 0, t - 1), 1);
    let targets: Vec<i64> = ids[1..].iter().map(|&i| i as i64).collect();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [t - 1]), &logp.device()).reshape([t - 1, 1]);
    logp.gather(1, targets).mean().neg().into_data().try_into_vec::<f32>().unwrap()[0] as f64
}

/// S and G of the most aware units of `site` in `layer`, against finite differences.
fn check(model_name: &str, layer: usize, site: Site) {
    let model = load(model_name);
    let ids = model.encode("Le chat dort sur le canapé du salon.").unwrap();
    let t = ids.len();
    let scores = awareness(&model, std::slice::from_ref(&ids), 1, &|_| {});
    assert_eq!((scores.sentences, scores.positions), (1, t));
    let s = &scores.s[&(layer, site)];
    let g = &scores.g[&(layer, site)];

    let mut taps = Taps::recording([site]);
    model.net.forward(&Batch::single(&ids), None, &mut taps);
    let h: Vec<f32> = taps.recorded[&(layer, site)].clone().into_data().try_into_vec().unwrap();
    let width = s.len();

    let mut units: Vec<usize> = (0..width).collect();
    units.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
    let delta = 1e-2;
    for &unit in &units[..2] {
        let (mut s_fd, mut g_fd) = (0.0, 0.0);
        for pos in 0..t {
            let hv = h[pos * width + unit] as f64;
            let at = |scale: f64| {
                let mut bump = vec![0f32; t * width];
                bump[pos * width + unit] = (hv * scale) as f32;
                let bump = Tensor::<3>::from_data(TensorData::new(bump, [1, t, width]), &model.net.device());
                loss(&model, &ids, &mut Taps::none().with_probe(layer, site, bump))
            };
            // d L(h·(1+δ)) / dδ at 0 = ∂L/∂h · h.
            let gh = (at(delta) - at(-delta)) / (2.0 * delta);
            s_fd += gh.abs() / t as f64;
            if hv.abs() > 1e-3 {
                g_fd += (gh / hv).abs() / t as f64;
            } else {
                g_fd = f64::NAN; // too small to divide by: skip the G check for this unit
            }
        }
        assert!((s[unit] - s_fd).abs() <= 1e-4 + 2e-2 * s_fd.abs(), "{model_name} layer {layer} {site:?} unit {unit}: S {} vs finite difference {s_fd}", s[unit]);
        if g_fd.is_finite() {
            assert!((g[unit] - g_fd).abs() <= 1e-4 + 5e-2 * g_fd.abs(), "{model_name} layer {layer} {site:?} unit {unit}: G {} vs finite difference {g_fd}", g[unit]);
        }
    }
}

#[test]
fn taylor_scores_equal_finite_differences_llama() {
    check("llama-tiny", 1, Site::FfnAct);
    check("llama-tiny", 2, Site::AttnQ);
}

#[test]
fn taylor_scores_equal_finite_differences_gemma3() {
    check("gemma3-tiny", 0, Site::FfnDown);
    check("gemma3-tiny", 1, Site::AttnK);
}

#[test]
fn batched_scores_equal_sentence_by_sentence_scores() {
    let model = load("bloom-tiny");
    let texts = ["Un.", "Le chat dort sur le canapé.", "Il pleut depuis trois jours sur la ville de Lyon."];
    let ids: Vec<Vec<u32>> = texts.iter().map(|s| model.encode(s).unwrap()).collect();
    let batched = awareness(&model, &ids, 3, &|_| {});
    let mut alone = awareness(&model, &ids[..1], 1, &|_| {});
    for one in &ids[1..] {
        let a = awareness(&model, std::slice::from_ref(one), 1, &|_| {});
        for (k, v) in a.s {
            alone.s.get_mut(&k).unwrap().iter_mut().zip(v).for_each(|(x, y)| *x += y);
        }
    }
    assert_eq!(batched.sentences, 3);
    for (k, want) in &alone.s {
        let got = &batched.s[k];
        let scale = want.iter().fold(0f64, |m, x| m.max(x.abs()));
        let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f64, f64::max);
        assert!(worst <= 1e-5 * scale.max(1e-12), "{k:?}: batched differs by {worst} (scale {scale})");
    }
}
