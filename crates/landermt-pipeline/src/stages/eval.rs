//! Stage 5, `eval/` and `report.*`: every system decoded on every test set, scored, compared.

use super::*;
use itertools::Itertools;
use landermt_eval::langid::LanguageId;

use crate::report::{Comparison, LmRow, Report, Row, SystemInfo};

/// Each sentence's next-token loss (its mean over the sentence's predicted tokens), in order.
/// A system's training facts for the report, from its `train.json` and delta (or the delta's
/// kept hash, [`crate::kept`]).
fn system_info(cfg: &RunConfig, system: System) -> Result<SystemInfo> {
    if system.method == landermt_train::Method::None {
        return Ok(SystemInfo {
            name: system.name(),
            trainable_parameters: 0,
            trainable_share: 0.0,
            train_tokens_per_second: None,
            final_validation_loss: None,
            delta_sha256: None,
            settings: None,
            added: None,
            pairs: None,
        });
    }
    let dir = crate::kept::train_dir(cfg, system);
    let path = dir.join("train.json");
    let train: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?).with_context(|| format!("{}: not a train.json", path.display()))?;
    let delta_sha256 = crate::kept::delta_sha256(cfg, system)?.ok_or_else(|| super::train::missing_delta(cfg, system))?;
    Ok(SystemInfo {
        name: system.name(),
        trainable_parameters: train["trainable_parameters"].as_u64().unwrap_or(0) as usize,
        trainable_share: train["trainable_share"].as_f64().unwrap_or(0.0),
        train_tokens_per_second: train["tokens_per_second"].as_f64(),
        final_validation_loss: final_validation_loss(&train),
        delta_sha256: Some(delta_sha256),
        // Absent from a train.json written before settings were recorded.
        settings: serde_json::from_value(train["settings"].clone()).ok(),
        added: serde_json::from_value(train["added"].clone()).ok(),
        pairs: train["pairs"].as_u64().map(|p| p as usize),
    })
}

/// The in-context examples of `direction`: none when `n` is 0 (without reading `train.dev`).
fn read_shots(cfg: &RunConfig, direction: Direction, n: usize) -> std::result::Result<Vec<landermt_data::Pair>, landermt_data::CorpusError> {
    if n == 0 {
        return Ok(Vec::new());
    }
    read_parallel(&cfg.train.dev, direction)
}

/// What a hypothesis file was decoded from and how long it took, kept next to it as
/// `{file}.json`.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct DecodedFile {
    pub(crate) key: String,
    pub(crate) seconds: f64,
    pub(crate) generated_tokens: usize,
    /// The lines (0-based) whose decoding ran to `max_new_tokens` without stopping; absent in
    /// files decoded before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) at_limit: Option<Vec<usize>>,
}

impl DecodedFile {
    fn sidecar(hyp: &std::path::Path) -> std::path::PathBuf {
        let mut name = hyp.as_os_str().to_owned();
        name.push(".json");
        name.into()
    }

    /// The file's lines and record when both exist, were decoded from `key`, and the file
    /// holds one line per source (a file cut or edited since is decoded again).
    pub fn reuse(hyp: &std::path::Path, key: &str, sources: usize) -> Option<(Vec<String>, DecodedFile)> {
        let record: DecodedFile = serde_json::from_slice(&std::fs::read(Self::sidecar(hyp)).ok()?).ok()?;
        let text = std::fs::read_to_string(hyp).ok()?;
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        (record.key == key && lines.len() == sources).then_some((lines, record))
    }

    /// A file decoded under the first-newline cut ([`landermt_eval::decode::Newline::First`], the rule until
    /// 2026-12-06) from the same inputs, with no empty line, taken as decoded under
    /// [`landermt_eval::decode::Newline::AfterText`]: in greedy decoding the two rules stop at the same token unless the
    /// output's first line is blank, and then the old hypothesis is empty. So a trained system
    /// whose delta is gone keeps its hypotheses when none of them is empty.
    pub fn reuse_first_newline_cut(hyp: &std::path::Path, legacy_key: &str, sources: usize) -> Option<(Vec<String>, DecodedFile)> {
        let (lines, record) = Self::reuse(hyp, legacy_key, sources)?;
        lines.iter().all(|l| !l.trim().is_empty()).then_some((lines, record))
    }

    /// Written after the hypotheses, so a record never describes a file not yet written.
    fn write(&self, hyp: &std::path::Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self)?;
        landermt_model::atomic::write_atomic(&Self::sidecar(hyp), |w| w.write_all(&bytes))?;
        Ok(())
    }
}

/// One system's decoding of one (direction, test set).
struct Hypotheses {
    system: String,
    /// Index into the references.
    key: usize,
    lines: Vec<String>,
    seconds: f64,
    generated_tokens: usize,
    /// Lines that ran to `max_new_tokens` (unknown for files decoded before it was recorded).
    at_limit: Option<usize>,
    file: String,
}

/// One (direction, test set) of the evaluation: its sentence pairs.
struct TestSet {
    direction: Direction,
    name: String,
    pairs: Vec<landermt_data::Pair>,
}

/// Every evaluated direction's test sets, each cut to its `n` lines.
fn test_sets(cfg: &RunConfig, directions: &[Direction]) -> Result<Vec<TestSet>> {
    let mut sets = Vec::new();
    for &direction in directions {
        for set in cfg.eval.test_sets.iter().filter(|s| s.covers(direction)) {
            let mut pairs = read_parallel(&set.data, direction).with_context(|| format!("test set `{}`, direction {direction}", set.name))?;
            pairs.truncate(set.n);
            sets.push(TestSet { direction, name: set.name.clone(), pairs });
        }
    }
    Ok(sets)
}

/// What decoding one system produced: its training facts, LM losses and hypotheses.
struct Decoded {
    info: SystemInfo,
    lm: Vec<(LmRow, Vec<f64>)>,
    hyps: Vec<Hypotheses>,
}

/// A measured LM loss, kept as `eval/{system}/lm.{language}.json` with the key of its inputs.
#[derive(serde::Serialize, serde::Deserialize)]
struct LmRecord {
    key: String,
    sentences: usize,
    /// The mean of `losses`.
    loss: f64,
    /// Each sentence's loss, for the paired interval against the baseline (empty in records
    /// written before they were kept).
    #[serde(default)]
    losses: Vec<f64>,
}

impl LmRecord {
    fn reuse(file: &std::path::Path, key: &str) -> Option<LmRecord> {
        let record: LmRecord = serde_json::from_slice(&std::fs::read(file).ok()?).ok()?;
        (record.key == key).then_some(record)
    }
}

/// One LM-loss measurement of a system's evaluation.
struct LmJob {
    language: landermt_data::Language,
    text: Vec<String>,
    file: std::path::PathBuf,
    key: String,
    /// The record kept in `file`, if measured from the same inputs.
    kept: Option<LmRecord>,
}

/// One hypothesis file of a system's evaluation.
struct SetJob<'a> {
    /// Index into the test sets.
    key: usize,
    set: &'a TestSet,
    shots: Vec<landermt_data::Pair>,
    file: std::path::PathBuf,
    /// Everything the hypotheses depend on: an eval run again (a killed one, or one whose
    /// metric settings changed) reuses a file decoded from the same inputs.
    decode_key: String,
    /// The hypotheses kept in `file`, if decoded from the same inputs.
    kept: Option<(Vec<String>, DecodedFile)>,
}

/// Everything one system's evaluation writes, each output keyed by what it depends on.
struct Work<'a> {
    name: String,
    info: SystemInfo,
    lm: Vec<LmJob>,
    sets: Vec<SetJob<'a>>,
    /// Why a test set is left out (icl on a direction without dev pairs): said when decoding,
    /// not at every plan check.
    left_out: Vec<String>,
}

impl<'a> Work<'a> {
    fn of(cfg: &RunConfig, system: System, sets: &'a [TestSet], opts: &landermt_eval::decode::DecodeOptions, model_sha256: &str) -> Result<Self> {
        let e = &cfg.eval;
        let name = system.name();
        let info = system_info(cfg, system)?;
        let mut weights = format!("{model_sha256} {}", info.delta_sha256.as_deref().unwrap_or("-"));
        if let Some(dtype) = e.weights {
            weights.push_str(&format!(" stored in {dtype}"));
        }
        let dir = cfg.run.dir.join("eval").join(&name);
        let mut lm = Vec::new();
        for &language in &e.lm_languages {
            let mut text = read_monolingual(&e.lm_data, language)?;
            text.truncate(e.lm_n);
            let key = crate::hash::sha256(format!("{weights}\n{}\n{}\n{text:?}", language.code, e.batch_size).as_bytes());
            let file = dir.join(format!("lm.{}.json", language.code));
            // A record from before per-sentence losses were kept has no interval; an untrained
            // system's is measured again (no weights needed), a trained one's is kept until
            // its system is trained again.
            let kept = LmRecord::reuse(&file, &key).filter(|r| !r.losses.is_empty() || system.method != landermt_train::Method::None);
            lm.push(LmJob { language, file, text, key, kept });
        }
        let (mut jobs, mut left_out) = (Vec::new(), Vec::new());
        for (key, set) in sets.iter().enumerate() {
            // Another pair's direction: decoded by the transfer method only.
            if e.cross.as_ref().is_some_and(|(m, ds)| ds.contains(&set.direction) && system != System::all(*m)) {
                continue;
            }
            let n_shots = if system.icl { e.icl_shots } else { e.shots };
            let mut shots = match read_shots(cfg, set.direction, n_shots) {
                Ok(pairs) => pairs,
                // An untrained direction (`extra_directions`) may have no dev pairs to show.
                Err(err) if system.icl => {
                    left_out.push(format!("icl not decoded on {}: no in-context examples for this direction ({err})", set.direction));
                    continue;
                }
                Err(err) => return Err(err).context("in-context examples (train.dev)"),
            };
            shots.truncate(n_shots);
            let sources: Vec<&str> = set.pairs.iter().map(|p| p.src.as_str()).collect();
            let key_of = |opts: &dyn std::fmt::Debug| crate::hash::sha256(format!("{weights}\n{opts:?}\n{}\n{shots:?}\n{sources:?}", set.direction).as_bytes());
            let decode_key = key_of(opts);
            let file = dir.join(format!("{}.{}.hyp", set.name, set.direction));
            let kept = DecodedFile::reuse(&file, &decode_key, sources.len()).or_else(|| {
                let legacy = first_newline_cut(opts)?;
                DecodedFile::reuse_first_newline_cut(&file, &key_of(&legacy), sources.len())
            });
            jobs.push(SetJob { key, set, shots, file, decode_key, kept });
        }
        Ok(Work { name, info, lm, sets: jobs, left_out })
    }

    /// Whether every output is there, decoded from the same inputs.
    fn is_done(&self) -> bool {
        self.lm.iter().all(|j| j.kept.is_some()) && self.sets.iter().all(|j| j.kept.is_some())
    }
}

const LOADED: &str = "the model is loaded when an output is missing";

/// Decodes every test set with `system` and measures its LM loss on held-out text, reusing
/// every output decoded from the same inputs; the model is loaded only if one is missing.
fn decode_system(cfg: &RunConfig, system: System, sets: &[TestSet], opts: &landermt_eval::decode::DecodeOptions, model_sha256: &str) -> Result<Decoded> {
    let work = Work::of(cfg, system, sets, opts, model_sha256)?;
    work.left_out.iter().for_each(|why| tracing::warn!("{why}"));
    let model = if work.is_done() { None } else { Some(trained_model(cfg, system)?.stored_in(cfg.eval.weights.unwrap_or_default()).into_decoding()) };
    // A joint run's LANDeRMT variant reads each direction with its pair's routing.
    let routing = super::train::Routing::of(cfg, system)?;
    let mut lm = Vec::new();
    for job in &work.lm {
        let (loss, losses) = match &job.kept {
            Some(r) => (r.loss, r.losses.clone()),
            None => {
                let m = routing.for_language(model.as_ref().expect(LOADED), job.language);
                let losses = landermt_model::loss::lm_losses(&m, &job.text, cfg.eval.batch_size)?;
                let loss = losses.iter().sum::<f64>() / losses.len().max(1) as f64;
                write_json(&job.file, &LmRecord { key: job.key.clone(), sentences: job.text.len(), loss, losses: losses.clone() })?;
                (loss, losses)
            }
        };
        lm.push((LmRow { system: work.name.clone(), language: job.language.code.to_string(), sentences: job.text.len(), loss, change: None }, losses));
    }
    let hyps = hypotheses(&work.name, &work.sets, &routing, model.as_ref(), opts)?;
    Ok(Decoded { info: work.info, lm, hyps })
}

/// Every test set's hypotheses: kept where decoded from the same inputs, the others decoded
/// (`model`, loaded because some are missing) as one stream per routing.
fn hypotheses(name: &str, sets: &[SetJob], routing: &super::train::Routing, model: Option<&LanguageModel>, opts: &landermt_eval::decode::DecodeOptions) -> Result<Vec<Hypotheses>> {
    let mut hyps: Vec<Option<Hypotheses>> = Vec::new();
    let mut missing = Vec::new();
    for (i, job) in sets.iter().enumerate() {
        hyps.push(match &job.kept {
            Some((lines, kept)) => Some(reused(name, job, lines, kept)?),
            None => {
                missing.push(i);
                None
            }
        });
    }
    // The sets one routing reads decode as one stream.
    let directions: Vec<Direction> = missing.iter().map(|&i| sets[i].set.direction).collect();
    for stream in routing.streams(&directions) {
        let group: Vec<usize> = stream.into_iter().map(|j| missing[j]).collect();
        let jobs: Vec<&SetJob> = group.iter().map(|&i| &sets[i]).collect();
        let m = routing.for_direction(model.expect(LOADED), jobs[0].set.direction);
        let decoded = decode_sets(name, &landermt_eval::decode::Decoder::new(&m, opts), &jobs)?;
        for (i, h) in group.into_iter().zip(decoded) {
            hyps[i] = Some(h);
        }
    }
    Ok(hyps.into_iter().map(|h| h.expect("every set kept or decoded")).collect())
}

/// A test set's hypotheses kept from an earlier run.
fn reused(name: &str, job: &SetJob, lines: &[String], kept: &DecodedFile) -> Result<Hypotheses> {
    tracing::info!(system = %name, direction = %job.set.direction, set = job.set.name, "hypotheses current, reused");
    if kept.key != job.decode_key {
        // Taken from the first-newline cut: recorded under today's key from now on.
        DecodedFile { key: job.decode_key.clone(), ..kept.clone() }.write(&job.file)?;
    }
    let at_limit = kept.at_limit.as_ref().map(Vec::len);
    Ok(Hypotheses { system: name.to_string(), key: job.key, lines: lines.to_vec(), seconds: kept.seconds, generated_tokens: kept.generated_tokens, at_limit, file: job.file.display().to_string() })
}

/// One system's hypotheses for several test sets, decoded as one stream (the batch's
/// stragglers at the end come once, not once a set) and each written with its record. Each
/// set is credited the stream's seconds in proportion to the tokens it generated.
fn decode_sets(name: &str, decoder: &landermt_eval::decode::Decoder, jobs: &[&SetJob]) -> Result<Vec<Hypotheses>> {
    let sources: Vec<Vec<String>> = jobs.iter().map(|j| j.set.pairs.iter().map(|p| p.src.clone()).collect()).collect();
    let label = if jobs.len() == 1 { format!("{name} {} {}", jobs[0].set.direction, jobs[0].set.name) } else { format!("{name} {} test sets", jobs.len()) };
    let pb = bar(sources.iter().map(Vec::len).sum(), &label);
    let start = std::time::Instant::now();
    let stream: Vec<landermt_eval::decode::Job> = jobs.iter().zip(&sources).map(|(j, s)| landermt_eval::decode::Job { direction: j.set.direction, sources: s, shots: &j.shots }).collect();
    let outs = decoder.translate_all(&stream, &|n| pb.inc(n as u64))?;
    pb.finish();
    let seconds = start.elapsed().as_secs_f64();
    let tokens: usize = outs.iter().map(|o| o.generated_tokens).sum();
    let share = |o: &landermt_eval::decode::Decoded| if tokens == 0 { 1.0 / jobs.len() as f64 } else { o.generated_tokens as f64 / tokens as f64 };
    jobs.iter().zip(outs).map(|(job, out)| write_set(name, job, seconds * share(&out), out)).collect()
}

/// Writes one test set's hypotheses and their record.
fn write_set(name: &str, job: &SetJob, seconds: f64, out: landermt_eval::decode::Decoded) -> Result<Hypotheses> {
    let (direction, set_name, file) = (job.set.direction, &job.set.name, &job.file);
    let text = out.lines.iter().map(|l| format!("{l}\n")).collect::<String>();
    landermt_model::atomic::write_atomic(file, |w| w.write_all(text.as_bytes()))?;
    let at_limit: Vec<usize> = out.at_limit.iter().enumerate().filter(|(_, hit)| **hit).map(|(i, _)| i).collect();
    let runaway = at_limit.len();
    DecodedFile { key: job.decode_key.clone(), seconds, generated_tokens: out.generated_tokens, at_limit: Some(at_limit) }.write(file)?;
    tracing::info!(system = %name, %direction, set = set_name, seconds, tokens = out.generated_tokens, runaway, "decoded");
    Ok(Hypotheses { system: name.to_string(), key: job.key, lines: out.lines, seconds, generated_tokens: out.generated_tokens, at_limit: Some(runaway), file: file.display().to_string() })
}

/// The decoding settings of the eval stage.
fn decode_options(cfg: &RunConfig) -> landermt_eval::decode::DecodeOptions {
    let e = &cfg.eval;
    landermt_eval::decode::DecodeOptions {
        template: cfg.eval_template().clone(),
        max_new_tokens: e.max_new_tokens,
        batch_size: e.batch_size,
        newline: e.newline,
        beams: e.beams,
        length_penalty: e.length_penalty,
        no_repeat_ngram: e.no_repeat_ngram,
    }
}

/// The decoding options as they were written before `newline` replaced `stop_at_newline`
/// (2026-12-06): their `Debug` text is what hypothesis files decoded then were keyed by.
#[derive(Debug)]
#[allow(dead_code)] // read through `Debug` only
struct DecodeOptions {
    template: landermt_data::prompt::Template,
    max_new_tokens: usize,
    batch_size: usize,
    stop_at_newline: bool,
    beams: usize,
    length_penalty: f64,
}

/// `opts` under the first-newline cut, as they were keyed then, where a file decoded so can
/// stand for today's rule ([`DecodedFile::reuse_first_newline_cut`]): greedy decoding only.
fn first_newline_cut(opts: &landermt_eval::decode::DecodeOptions) -> Option<DecodeOptions> {
    (opts.newline == landermt_eval::decode::Newline::AfterText && opts.beams == 1).then(|| DecodeOptions {
        template: opts.template.clone(),
        max_new_tokens: opts.max_new_tokens,
        batch_size: opts.batch_size,
        stop_at_newline: true,
        beams: opts.beams,
        length_penalty: opts.length_penalty,
    })
}

/// The run's directions, with the other pairs' directions the transfer method is decoded on.
fn evaluated_directions(cfg: &RunConfig) -> Vec<Direction> {
    cfg.eval_directions().into_iter().chain(cfg.eval.cross.iter().flat_map(|(_, ds)| ds.iter().copied())).collect()
}

/// Whether `system`'s hypotheses and LM losses are all decoded from its current delta (or the
/// delta's kept hash) and the current settings: then the eval stage needs no weights of it.
/// A system not trained yet, or a model not fetched yet, has nothing decoded.
pub fn is_decoded(cfg: &RunConfig, system: System) -> Result<bool> {
    // The delta is hashed (where it has no record) once, by `Work::of` below.
    let trained = system.method == landermt_train::Method::None || (crate::kept::has_delta(cfg, system) && crate::kept::train_dir(cfg, system).join("train.json").exists());
    let model = match cfg.model.resolve(false) {
        Ok(path) if trained && path.exists() => path,
        _ => return Ok(false),
    };
    let sets = test_sets(cfg, &evaluated_directions(cfg))?;
    Ok(Work::of(cfg, system, &sets, &decode_options(cfg), &model_sha256(&model)?)?.is_done())
}

/// The `decode:{system}` step: decodes every output of `system` the eval stage will read, so
/// that they are kept (and its delta may go) before the next system trains.
pub fn decode(cfg: &RunConfig, system: System) -> Result<()> {
    let sets = test_sets(cfg, &evaluated_directions(cfg))?;
    let model = model_sha256(&cfg.model.resolve(true)?)?;
    decode_system(cfg, system, &sets, &decode_options(cfg), &model)?;
    Ok(())
}

/// The SHA-256 of the model's file or folder, hashed once per process for a given size and
/// modification time: a plan checks every system's outputs against it.
fn model_sha256(path: &std::path::Path) -> Result<String> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Seen = (std::path::PathBuf, u64, Option<std::time::SystemTime>);
    static HASHES: OnceLock<Mutex<HashMap<Seen, String>>> = OnceLock::new();
    let meta = std::fs::metadata(path).with_context(|| path.display().to_string())?;
    let seen = (path.to_path_buf(), meta.len(), meta.modified().ok());
    let hashes = HASHES.get_or_init(Default::default);
    if let Some(sha) = hashes.lock().expect("not poisoned").get(&seen) {
        return Ok(sha.clone());
    }
    let sha = crate::hash::sha256_path(path)?;
    hashes.lock().expect("not poisoned").insert(seen, sha.clone());
    Ok(sha)
}

/// A system's hypotheses on one test set, scored: corpus BLEU and chrF from the segment
/// statistics, and their bootstrap samples.
struct Scored<'a> {
    h: &'a Hypotheses,
    bleu: f64,
    chrf: f64,
    bleu_samples: Vec<f64>,
    chrf_samples: Vec<f64>,
}

/// The report's rows for test set `key`: every system against the baseline, and `eval.compare`
/// against every other system, all on the same resamplings.
fn score_set(cfg: &RunConfig, key: usize, set: &TestSet, hyps: &[Hypotheses], language_id: &LanguageId, rows: &mut Vec<Row>, comparisons: &mut Vec<Comparison>) {
    use landermt_eval::bootstrap::{bleu_samples, chrf_samples, estimate, paired_p_value, sample_indices};
    let e = &cfg.eval;
    let reference: Vec<String> = set.pairs.iter().map(|p| p.tgt.clone()).collect();
    let (bleu, chrf) = (landermt_eval::Bleu::for_target(set.direction.tgt.code), landermt_eval::Chrf::CHRF);
    let idx = sample_indices(reference.len(), e.n_bootstrap, 12345);
    let scored: Vec<Scored> = hyps
        .iter()
        .filter(|h| h.key == key)
        .map(|h| {
            let (bs, cs) = (bleu.all_stats(&h.lines, &reference), chrf.all_stats(&h.lines, &reference));
            Scored {
                h,
                bleu: bleu.score_stats(&landermt_eval::bleu::sum(&bs)).score,
                chrf: chrf.score_stats(&landermt_eval::chrf::sum(&cs)),
                bleu_samples: bleu_samples(&bs, &idx),
                chrf_samples: chrf_samples(&cs, &idx),
            }
        })
        .collect();
    let (direction, test_set) = (set.direction.to_string(), set.name.clone());
    let baseline = e.baseline.name();
    // Absent on another pair's direction (the transfer across pairs decodes one system there).
    let base = scored.iter().find(|s| s.h.system == baseline);
    if let Some(focus) = e.compare.and_then(|m| scored.iter().find(|s| s.h.system == m.name())) {
        for other in scored.iter().filter(|s| s.h.system != focus.h.system) {
            comparisons.push(Comparison {
                system: focus.h.system.clone(),
                against: other.h.system.clone(),
                direction: direction.clone(),
                test_set: test_set.clone(),
                bleu_delta: focus.bleu - other.bleu,
                bleu_p: paired_p_value(&other.bleu_samples, &focus.bleu_samples, other.bleu, focus.bleu, false),
                chrf_delta: focus.chrf - other.chrf,
                chrf_p: paired_p_value(&other.chrf_samples, &focus.chrf_samples, other.chrf, focus.chrf, true),
            });
        }
    }
    for s in &scored {
        let is_base = s.h.system == baseline;
        rows.push(Row {
            system: s.h.system.clone(),
            direction: direction.clone(),
            test_set: test_set.clone(),
            sentences: reference.len(),
            bleu: s.bleu,
            bleu_signature: bleu.signature(),
            bleu_ci: estimate(&s.bleu_samples, true, false),
            chrf: s.chrf,
            chrf_signature: chrf.signature(),
            chrf_ci: estimate(&s.chrf_samples, false, true),
            bleu_p: base.filter(|_| !is_base).map(|b| paired_p_value(&b.bleu_samples, &s.bleu_samples, b.bleu, s.bleu, false)),
            chrf_p: base.filter(|_| !is_base).map(|b| paired_p_value(&b.chrf_samples, &s.chrf_samples, b.chrf, s.chrf, true)),
            off_target: Some(language_id.off_target(&s.h.lines, set.direction.tgt.code)),
            at_limit: s.h.at_limit,
            sentences_per_second: reference.len() as f64 / s.h.seconds.max(1e-9),
            tokens_per_second: s.h.generated_tokens as f64 / s.h.seconds.max(1e-9),
            generated_tokens: s.h.generated_tokens,
            hypotheses: s.h.file.clone(),
        });
    }
}

/// Stage 5: decodes every test set in every evaluated direction with every system, scores it
/// as sacreBLEU would, measures the LM loss on held-out text, and writes
/// `eval/{system}/{set}.{direction}.hyp`, `report.json`, `report.md` and the transfer and
/// forgetting figures.
pub fn eval(cfg: &RunConfig) -> Result<()> {
    let e = &cfg.eval;
    let opts = decode_options(cfg);
    let evaluated = evaluated_directions(cfg);
    let sets = test_sets(cfg, &evaluated)?;
    let model_sha256 = model_sha256(&cfg.model.resolve(true)?)?;
    let (mut infos, mut lm, mut hyps) = (Vec::new(), Vec::new(), Vec::new());
    for system in cfg.systems() {
        let d = decode_system(cfg, system, &sets, &opts, &model_sha256)?;
        infos.push(d.info);
        lm.extend(d.lm);
        hyps.extend(d.hyps);
    }
    let languages: Vec<&str> = evaluated.iter().flat_map(|d| [d.src.code, d.tgt.code]).unique().collect();
    let language_id = LanguageId::new(&languages).context("the off-target rate")?;
    let (mut rows, mut comparisons) = (Vec::new(), Vec::new());
    for (key, set) in sets.iter().enumerate() {
        score_set(cfg, key, set, &hyps, &language_id, &mut rows, &mut comparisons);
    }
    let (seeds, seed_claims) = seeded(cfg, &sets, &hyps);
    let data_sha256 =
        sets.iter().map(|s| (s.name.clone(), s.direction.to_string(), crate::hash::sha256(s.pairs.iter().map(|p| format!("{}\t{}\n", p.src, p.tgt)).collect::<String>().as_bytes()))).collect();
    let report = Report {
        version: crate::report::REPORT_VERSION,
        run: cfg.run.name.clone(),
        model: cfg.model.describe(),
        shots: e.shots,
        icl_shots: e.icl_shots,
        decoding: crate::report::Decoding {
            beams: e.beams,
            length_penalty: e.length_penalty,
            max_new_tokens: e.max_new_tokens,
            stop: opts.newline.describe().into(),
            no_repeat_ngram: e.no_repeat_ngram,
            weights: e.weights.map(|d| d.to_string()),
            template: cfg.eval_template().to_string(),
        },
        baseline: e.baseline.name().to_string(),
        metrics: "BLEU and chrF computed by landermt following sacreBLEU 2.6.0's definitions; signatures as sacreBLEU prints them".into(),
        n_bootstrap: e.n_bootstrap,
        trained_directions: cfg.run.directions.iter().map(|d| d.to_string()).collect(),
        evaluated_directions: evaluated.iter().map(|d| d.to_string()).collect(),
        transfer: e.transfer.map(|m| m.name().to_string()),
        systems: infos,
        rows,
        comparisons,
        lm_loss: forgetting(lm, e.baseline.name(), e.n_bootstrap),
        seeds,
        seed_claims,
        inputs: crate::report::Inputs { model_sha256, eval_config_sha256: crate::hash::sha256(&serde_json::to_vec(e)?), data_sha256, gemm: Some(landermt_model::blas::current()) },
    };
    write_report(cfg, &report)
}

/// With `[eval] seeds`: every seeded method's BLEU over its seeds on each test set, and the
/// claims between every two of them ([`crate::seeds`]).
fn seeded(cfg: &RunConfig, sets: &[TestSet], hyps: &[Hypotheses]) -> (Vec<crate::seeds::SeedSummary>, Vec<crate::seeds::SeedClaim>) {
    let (mut summaries, mut claims) = (Vec::new(), Vec::new());
    let methods = cfg.seeded_methods();
    if methods.is_empty() {
        return (summaries, claims);
    }
    for (key, set) in sets.iter().enumerate() {
        let lines = |system: System| hyps.iter().find(|h| h.key == key && h.system == system.name()).map(|h| h.lines.as_slice());
        let seeded: Vec<crate::seeds::Seeded> = methods
            .iter()
            .map(|&m| {
                let base = cfg.train_for(m).seed;
                let seeds = std::iter::once(base).chain(cfg.eval.seeds.iter().copied().filter(|&s| s != base));
                let runs = seeds.filter_map(|s| lines(if s == base { System::all(m) } else { System::seeded(m, s) }).map(|h| (s, h))).collect();
                crate::seeds::Seeded { method: m.name().to_string(), runs }
            })
            .collect();
        let references: Vec<String> = set.pairs.iter().map(|p| p.tgt.clone()).collect();
        let (s, c) = crate::seeds::summarise(set.direction, &set.name, &references, &seeded, cfg.eval.n_bootstrap);
        summaries.extend(s);
        claims.extend(c);
    }
    (summaries, claims)
}

/// The LM-loss rows, each with its paired change against the baseline's loss on the same
/// sentences and the 95 % bootstrap interval of that change (seed 12345), where both kept their
/// per-sentence losses.
fn forgetting(lm: Vec<(LmRow, Vec<f64>)>, baseline: &str, n_bootstrap: usize) -> Vec<LmRow> {
    let base = |language: &str| lm.iter().find(|(r, _)| r.system == baseline && r.language == language).map(|(_, l)| l.as_slice());
    lm.iter()
        .map(|(row, losses)| {
            let change = base(&row.language).filter(|_| row.system != baseline).and_then(|b| landermt_eval::bootstrap::mean_change(b, losses, n_bootstrap, 12345));
            LmRow { change, ..row.clone() }
        })
        .collect()
}

/// `report.json`, `report.md` and the figures; the report is printed too.
fn write_report(cfg: &RunConfig, report: &Report) -> Result<()> {
    write_json(&cfg.run.dir.join("report.json"), report)?;
    let md = report.markdown();
    let md_path = cfg.run.dir.join("report.md");
    landermt_model::atomic::write_atomic(&md_path, |w| w.write_all(md.as_bytes()))?;
    figures(cfg);
    println!("eval: {} → {}\n\n{md}", cfg.run.dir.join("report.json").display(), md_path.display());
    Ok(())
}
