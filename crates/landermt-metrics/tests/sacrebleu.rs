//! Our BLEU and chrF against scores produced by the sacreBLEU 2.6.0 package on the same files
//! (tests/fixtures/bleu, made by make_reference.py there): every score within 1e-9, the
//! statistics equal, the signatures identical.

use std::path::PathBuf;

use landermt_metrics::{Bleu, Chrf, Smooth, Tokenize};
use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/bleu")
}

fn lines(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(dir().join("sets").join(name)).unwrap();
    text.strip_suffix('\n').unwrap_or(&text).split('\n').map(str::to_string).collect()
}

fn expected() -> Value {
    serde_json::from_slice(&std::fs::read(dir().join("expected.json")).unwrap()).unwrap()
}

fn settings(key: &str) -> Bleu {
    let parts: Vec<&str> = key.split('/').collect();
    let smooth = match parts[1] {
        "exp" => Smooth::Exp,
        "floor" => Smooth::Floor(0.1),
        "add-k" => Smooth::AddK(1.0),
        "none" => Smooth::None,
        other => panic!("smoothing {other}"),
    };
    Bleu { tokenize: Tokenize::parse(parts[0]).unwrap(), smooth, lowercase: parts.get(2) == Some(&"lowercase"), effective_order: parts.get(2) == Some(&"effective_order") }
}

fn close(what: &str, got: f64, want: f64) {
    assert!((got - want).abs() < 1e-9, "{what}: ours {got}, sacreBLEU {want}");
}

#[test]
fn corpus_bleu_equals_sacrebleu_for_every_tokenizer_and_smoothing() {
    let e = expected();
    let mut checked = 0;
    for (set, v) in e["sets"].as_object().unwrap() {
        let (hyps, refs) = (lines(&format!("{set}.hyp")), lines(&format!("{set}.ref")));
        assert_eq!(hyps.len(), refs.len());
        for (key, want) in v["bleu"].as_object().unwrap() {
            let b = settings(key);
            let stats = landermt_metrics::bleu::sum(&b.all_stats(&hyps, &refs));
            let want_stats: Vec<u64> = want["stats"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
            assert_eq!(stats.to_vec(), want_stats, "{set} {key}: statistics");
            let got = b.score_stats(&stats);
            close(&format!("{set} {key}"), got.score, want["score"].as_f64().unwrap());
            close(&format!("{set} {key} bp"), got.bp, want["bp"].as_f64().unwrap());
            assert_eq!(b.signature(), want["signature"].as_str().unwrap(), "{set} {key}");
            checked += 1;
        }
    }
    assert!(checked >= 50, "{checked}");
}

#[test]
fn chrf_and_chrf_plus_plus_equal_sacrebleu() {
    let e = expected();
    for (set, v) in e["sets"].as_object().unwrap() {
        let (hyps, refs) = (lines(&format!("{set}.hyp")), lines(&format!("{set}.ref")));
        for (key, metric) in [("chrf", Chrf::CHRF), ("chrf++", Chrf::CHRF_PP)] {
            let want = &v[key];
            let stats = landermt_metrics::chrf::sum(&metric.all_stats(&hyps, &refs));
            let flat: Vec<u64> = stats.iter().flatten().copied().collect();
            let want_stats: Vec<u64> = want["stats"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
            assert_eq!(flat, want_stats, "{set} {key}: statistics");
            close(&format!("{set} {key}"), metric.score_stats(&stats), want["score"].as_f64().unwrap());
            assert_eq!(metric.signature(), want["signature"].as_str().unwrap());
        }
    }
}

#[test]
fn sentence_scores_equal_sacrebleu() {
    let e = expected();
    let sentence_bleu = Bleu { effective_order: true, ..Bleu::default() };
    for set in ["edge", "en-fr"] {
        let (hyps, refs) = (lines(&format!("{set}.hyp")), lines(&format!("{set}.ref")));
        let want = &e["sets"][set]["sentence"];
        assert_eq!(sentence_bleu.signature(), want["bleu"]["signature"].as_str().unwrap());
        for (i, w) in want["bleu"]["lines"].as_array().unwrap().iter().enumerate() {
            close(&format!("{set} line {} BLEU", i + 1), sentence_bleu.sentence(&hyps[i], &refs[i]).score, w["score"].as_f64().unwrap());
        }
        for (i, w) in want["chrf"]["scores"].as_array().unwrap().iter().enumerate() {
            close(&format!("{set} line {} chrF", i + 1), Chrf::CHRF.sentence(&hyps[i], &refs[i]), w.as_f64().unwrap());
        }
    }
}
