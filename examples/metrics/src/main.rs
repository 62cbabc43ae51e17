//! Two systems' hypotheses against one reference file: corpus BLEU and chrF2 of each, and
//! sacreBLEU's paired bootstrap p-value of the system against the baseline (1000 resamples,
//! seed 12345), as `sacrebleu REFS -i BASELINE SYSTEM --paired-bs -m bleu chrf` prints them.
//!
//!     cargo run --release -- REFS BASELINE SYSTEM [TARGET_LANGUAGE]
//!
//! TARGET_LANGUAGE picks BLEU's tokenizer as sacreBLEU does (`zh`: its Chinese tokenizer,
//! anything else: 13a).

use std::process::ExitCode;

use landermt_metrics::bootstrap::{bleu_samples, chrf_samples, paired_p_value, sample_indices};
use landermt_metrics::{Bleu, Chrf};

const SAMPLES: usize = 1000;
const SEED: u64 = 12345;

fn lines(path: &str) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    Ok(text.strip_suffix('\n').unwrap_or(&text).split('\n').map(str::to_string).collect())
}

fn run(args: &[String]) -> Result<(), String> {
    let [refs, baseline, system, rest @ ..] = args else {
        return Err("usage: metrics-example REFS BASELINE SYSTEM [TARGET_LANGUAGE]".into());
    };
    let (refs, base, sys) = (lines(refs)?, lines(baseline)?, lines(system)?);
    for (name, hyps) in [(baseline, &base), (system, &sys)] {
        if hyps.len() != refs.len() {
            return Err(format!("{name}: {} lines against {} references", hyps.len(), refs.len()));
        }
    }
    let bleu = Bleu::for_target(rest.first().map_or("en", String::as_str));
    let idx = sample_indices(refs.len(), SAMPLES, SEED);

    let (b_stats, s_stats) = (bleu.all_stats(&base, &refs), bleu.all_stats(&sys, &refs));
    let (b, s) = (bleu.corpus(&base, &refs).score, bleu.corpus(&sys, &refs).score);
    let p = paired_p_value(&bleu_samples(&b_stats, &idx), &bleu_samples(&s_stats, &idx), b, s, false);
    println!("BLEU   baseline {b:.2}  system {s:.2}  p = {p:.4}  ({})", bleu.signature());

    // sacreBLEU scores chrF's resamples in float32 (the last argument).
    let chrf = Chrf::CHRF;
    let (b_stats, s_stats) = (chrf.all_stats(&base, &refs), chrf.all_stats(&sys, &refs));
    let (b, s) = (chrf.corpus(&base, &refs), chrf.corpus(&sys, &refs));
    let p = paired_p_value(&chrf_samples(&b_stats, &idx), &chrf_samples(&s_stats, &idx), b, s, true);
    println!("chrF2  baseline {b:.2}  system {s:.2}  p = {p:.4}  ({})", chrf.signature());
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
