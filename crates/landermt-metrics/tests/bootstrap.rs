//! Bootstrap resampling against sacreBLEU 2.6.0 (tests/fixtures/bleu/expected.json): numpy's
//! indices for seed 12345, the single-system confidence interval, and the paired bootstrap
//! test's means, intervals and p-values for BLEU and chrF.

use std::path::PathBuf;

use landermt_metrics::bootstrap::{estimate, paired_p_value, sample_indices};
use landermt_metrics::{Bleu, Chrf};
use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/bleu")
}

fn lines(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(dir().join("sets").join(name)).unwrap();
    text.strip_suffix('\n').unwrap_or(&text).split('\n').map(str::to_string).collect()
}

fn close(what: &str, got: f64, want: &Value) {
    let want = want.as_f64().unwrap();
    assert!((got - want).abs() < 1e-9, "{what}: ours {got}, sacreBLEU {want}");
}

/// Sample scores of one system: each sample's segment statistics summed, then scored.
fn bleu_samples(hyps: &[String], refs: &[String], idx: &[Vec<usize>]) -> Vec<f64> {
    landermt_metrics::bootstrap::bleu_samples(&Bleu::default().all_stats(hyps, refs), idx)
}

fn chrf_samples(hyps: &[String], refs: &[String], idx: &[Vec<usize>]) -> Vec<f64> {
    landermt_metrics::bootstrap::chrf_samples(&Chrf::CHRF.all_stats(hyps, refs), idx)
}

#[test]
fn bootstrap_reproduces_sacrebleu_confidence_and_paired_test() {
    let e: Value = serde_json::from_slice(&std::fs::read(dir().join("expected.json")).unwrap()).unwrap();
    let b = &e["bootstrap"];
    let (hyps, refs, sys2) = (lines("en-fr.hyp"), lines("en-fr.ref"), lines("en-fr.sys2.hyp"));
    let idx = sample_indices(refs.len(), 1000, 12345);
    let first: Vec<Vec<usize>> = serde_json::from_value(b["indices"]["first_rows"].clone()).unwrap();
    assert_eq!(idx[..first.len()], first[..]);
    let last: Vec<usize> = serde_json::from_value(b["indices"]["last_row"].clone()).unwrap();
    assert_eq!(idx[999], last);

    // Single-system interval (--confidence).
    let base = bleu_samples(&hyps, &refs, &idx);
    let conf = &b["confidence"];
    for (i, w) in conf["first_sample_scores"].as_array().unwrap().iter().enumerate() {
        close(&format!("sample {i}"), base[i], w);
    }
    let est = estimate(&base, true, false);
    close("confidence mean", est.mean, &conf["mean"]);
    close("confidence ci", est.ci, &conf["ci"]);

    // Paired bootstrap, BLEU (float64 sample scores) and chrF (float32).
    let p = &b["paired_bs"];
    let system = bleu_samples(&sys2, &refs, &idx);
    let (bl_score, sys_score) = (Bleu::default().corpus(&hyps, &refs).score, Bleu::default().corpus(&sys2, &refs).score);
    close("BLEU system score", sys_score, &p["BLEU"]["system"]["score"]);
    let est = estimate(&system, false, false);
    close("BLEU system mean", est.mean, &p["BLEU"]["system"]["mean"]);
    close("BLEU system ci", est.ci, &p["BLEU"]["system"]["ci"]);
    close("BLEU p", paired_p_value(&base, &system, bl_score, sys_score, false), &p["BLEU"]["system"]["p_value"]);

    let (cb, cs) = (chrf_samples(&hyps, &refs, &idx), chrf_samples(&sys2, &refs, &idx));
    let (cb_score, cs_score) = (Chrf::CHRF.corpus(&hyps, &refs), Chrf::CHRF.corpus(&sys2, &refs));
    let est = estimate(&cs, false, true);
    close("chrF system mean", est.mean, &p["chrF2"]["system"]["mean"]);
    close("chrF system ci", est.ci, &p["chrF2"]["system"]["ci"]);
    let est = estimate(&cb, false, true);
    close("chrF baseline mean (paired)", est.mean, &p["chrF2"]["baseline"]["mean"]);
    close("chrF p", paired_p_value(&cb, &cs, cb_score, cs_score, true), &p["chrF2"]["system"]["p_value"]);
}
