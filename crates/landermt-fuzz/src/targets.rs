//! The fuzz targets: each a parser fed one input, and the valid files it starts from.

use std::path::Path;

use landermt_data::{Direction, MonoSource, ParallelSource, read_monolingual, read_parallel};
use landermt_model::gguf::{GgmlType, GgufFile};

use crate::checkpoint;

/// One parser under fuzzing.
pub struct Target {
    pub name: &'static str,
    pub about: &'static str,
    /// Valid inputs, read or built under the repository root.
    pub seeds: fn(&Path) -> std::io::Result<Vec<Vec<u8>>>,
    /// Parses one input; `work` is a scratch folder for parsers that read files.
    pub run: fn(&Path, &[u8]),
    pub tokens: &'static [&'static str],
}

const JSON: &[&str] = &[",", ":", "null", "[]", "{}", "\"", "1e999", "-1", "18446744073709551616", "\"\\u0000\"", "[[[[", "}", "NaN"];
const TOML: &[&str] = &["[", "]", "=", "\"", "\n", "{", "}", "#", "1e400", "-1", "nan", "[[x]]", "\"\"\"", "0x", "\t", "[train.methods.lora]", "\u{feff}"];
const TEXT: &[&str] = &["\t", "\n", "\r\n", "\u{feff}", "\u{0}", "\t\t", "  ", "\u{2028}", "\u{fffd}"];

pub fn targets() -> Vec<Target> {
    vec![
        Target { name: "gguf", about: "GGUF header, metadata, tensor directory, dequantisation of every type, config and tokenizer from metadata", seeds: gguf_seeds, run: gguf, tokens: &[] },
        Target { name: "safetensors", about: "a safetensors checkpoint: header, offsets, dtypes (f32, f16, bf16) to f32", seeds: safetensors_seeds, run: safetensors, tokens: JSON },
        Target { name: "safetensors-index", about: "a sharded checkpoint's model.safetensors.index.json", seeds: index_seeds, run: index, tokens: JSON },
        Target { name: "hf-config", about: "a Hugging Face config.json of each architecture", seeds: hf_config_seeds, run: hf_config, tokens: JSON },
        Target { name: "tokenizer-json", about: "a Hugging Face tokenizer.json, then encoding and decoding a sentence", seeds: tokenizer_seeds, run: tokenizer, tokens: JSON },
        Target { name: "run-config", about: "a run config (TOML) with every check of RunConfig::parse", seeds: run_config_seeds, run: run_config, tokens: TOML },
        Target { name: "corpus", about: "TSV, aligned files, FLORES, OPUS and monolingual readers", seeds: corpus_seeds, run: corpus, tokens: TEXT },
        Target {
            name: "neurons-safetensors",
            about: "stage 2's neurons.safetensors: S, G and σ² per layer, site and language, named by the documented scheme",
            seeds: neurons_seeds,
            run: neurons,
            tokens: JSON,
        },
        Target {
            name: "checkpoint",
            about: "stage 4's checkpoint.safetensors and delta.safetensors (tiny LLaMA, `layers`): checksum, state, trained tensors' names and shapes, Burn's optimizer record; each mutant also with its checksum made right",
            seeds: checkpoint::seeds,
            run: checkpoint::run,
            tokens: JSON,
        },
        Target {
            name: "artifacts",
            about: "layers.json, neurons.json, route.json, report.json (one pair and joint, rendered), train.json, score partials, .hyp.json sidecars",
            seeds: artifact_seeds,
            run: artifacts,
            tokens: JSON,
        },
    ]
}

fn read_all(root: &Path, files: &[&str]) -> std::io::Result<Vec<Vec<u8>>> {
    files.iter().map(|f| std::fs::read(root.join(f))).collect()
}

/// A GGUF of one tensor per quantisation type (and metadata of every value type), and the
/// tiny fixtures' headers with their metadata (config and vocabulary) but no tensors.
fn gguf_seeds(root: &Path) -> std::io::Result<Vec<Vec<u8>>> {
    use landermt_model::gguf::write;
    let types: Vec<(u32, GgmlType)> = (0..40).filter_map(|id| GgmlType::from_id(id).map(|t| (id, t))).collect();
    let kv = [("general.architecture", 8, write::string("llama")), ("llama.block_count", 4, 2u32.to_le_bytes().to_vec()), ("tokenizer.ggml.tokens", 9, write::string_array(&["a", "b"]))];
    let names: Vec<String> = types.iter().map(|(id, _)| format!("t{id}")).collect();
    let mut offset = 0u64;
    let mut tensors = Vec::new();
    for ((id, t), name) in types.iter().zip(&names) {
        tensors.push((name.as_str(), vec![t.block_len() as u64], *id, offset));
        offset += (t.block_bytes() as u64).div_ceil(32) * 32;
    }
    let mut g = write::header(&kv, &tensors);
    g.resize(g.len().div_ceil(32) * 32 + offset as usize, 0x3c);
    let mut seeds = vec![g];
    for f in ["tests/fixtures/gguf/llama-tiny-q8_0.gguf", "tests/fixtures/gguf/bloom-tiny.gguf"] {
        let bytes = std::fs::read(root.join(f))?;
        let file = GgufFile::from_bytes(f, bytes.clone()).map_err(std::io::Error::other)?;
        let data_start = file.tensors.values().map(|t| t.offset).min().unwrap_or(bytes.len());
        let mut header = bytes[..data_start].to_vec();
        header[8..16].copy_from_slice(&0u64.to_le_bytes());
        seeds.push(header);
    }
    Ok(seeds)
}

fn gguf(_: &Path, input: &[u8]) {
    let Ok(g) = GgufFile::from_bytes("fuzz.gguf", input.to_vec()) else { return };
    for name in g.tensors.keys() {
        let _ = g.tensor_f32(name);
    }
    let _ = landermt_model::arch::config_from_gguf(&g);
    let _ = landermt_model::Tokenizer::from_gguf(&g);
}

fn small_safetensors(metadata: Option<std::collections::HashMap<String, String>>) -> Vec<u8> {
    use safetensors::tensor::{Dtype, TensorView};
    let (a, b, c) = (vec![0x3fu8; 24], vec![0x3cu8; 8], vec![0x40u8; 8]);
    let views = vec![
        ("a".to_string(), TensorView::new(Dtype::F32, vec![2, 3], &a).expect("valid")),
        ("b".to_string(), TensorView::new(Dtype::F16, vec![4], &b).expect("valid")),
        ("c".to_string(), TensorView::new(Dtype::BF16, vec![2, 2], &c).expect("valid")),
    ];
    safetensors::serialize(views, metadata).expect("valid")
}

fn safetensors_seeds(_: &Path) -> std::io::Result<Vec<Vec<u8>>> {
    Ok(vec![small_safetensors(None), small_safetensors(Some([("format".to_string(), "pt".to_string())].into()))])
}

fn safetensors(work: &Path, input: &[u8]) {
    let path = work.join("model.safetensors");
    std::fs::write(&path, input).expect("scratch folder");
    let Ok(w) = landermt_model::Weights::open(&path) else { return };
    for name in ["a", "b", "c"] {
        let _ = w.get(name);
    }
}

fn index_seeds(_: &Path) -> std::io::Result<Vec<Vec<u8>>> {
    Ok(vec![br#"{"metadata": {"total_size": 40}, "weight_map": {"a": "one.safetensors", "b": "two.safetensors", "c": "two.safetensors"}}"#.to_vec()])
}

fn index(work: &Path, input: &[u8]) {
    let dir = work.join("sharded");
    if !dir.join("two.safetensors").exists() {
        std::fs::create_dir_all(&dir).expect("scratch folder");
        std::fs::write(dir.join("one.safetensors"), small_safetensors(None)).expect("scratch folder");
        std::fs::write(dir.join("two.safetensors"), small_safetensors(None)).expect("scratch folder");
    }
    std::fs::write(dir.join("model.safetensors.index.json"), input).expect("scratch folder");
    let Ok(w) = landermt_model::Weights::open(&dir) else { return };
    for name in ["a", "b", "c"] {
        let _ = w.get(name);
    }
}

const TINY: [&str; 4] = ["llama-tiny", "bloom-tiny", "gemma3-tiny", "qwen2-tiny"];

fn hf_config_seeds(root: &Path) -> std::io::Result<Vec<Vec<u8>>> {
    TINY.iter().map(|m| std::fs::read(root.join("tests/fixtures/hf-tiny").join(m).join("config.json"))).collect()
}

fn hf_config(work: &Path, input: &[u8]) {
    let path = work.join("config.json");
    std::fs::write(&path, input).expect("scratch folder");
    let _ = landermt_model::arch::config_from_hf(&path);
}

fn tokenizer_seeds(root: &Path) -> std::io::Result<Vec<Vec<u8>>> {
    ["gemma3-tiny", "qwen2-tiny", "bloom-tiny"].iter().map(|m| std::fs::read(root.join("tests/fixtures/hf-tiny").join(m).join("tokenizer.json"))).collect()
}

fn tokenizer(work: &Path, input: &[u8]) {
    let path = work.join("tokenizer.json");
    std::fs::write(&path, input).expect("scratch folder");
    let Ok(t) = landermt_model::Tokenizer::from_file(&path) else { return };
    if let Ok(ids) = t.encode("Translate this from English to French: the cat.", true) {
        let _ = t.decode(&ids, true);
    }
}

fn run_config_seeds(root: &Path) -> std::io::Result<Vec<Vec<u8>>> {
    read_all(root, &["configs/en-fr.toml", "configs/quick.toml", "configs/paper.toml", "configs/en-fr-study.toml", "configs/paper-cpu.toml"])
}

fn run_config(_: &Path, input: &[u8]) {
    let _ = landermt_pipeline::RunConfig::parse(&String::from_utf8_lossy(input), Path::new("fuzz.toml"));
}

fn corpus_seeds(root: &Path) -> std::io::Result<Vec<Vec<u8>>> {
    let tsv = std::fs::read_to_string(root.join("data/corpus/dev.en-fr.tsv"))?;
    let flores = std::fs::read_to_string(root.join("data/flores200-devtest/eng_Latn.devtest"))?;
    Ok(vec![tsv.lines().take(12).collect::<Vec<_>>().join("\n").into_bytes(), flores.lines().take(8).collect::<Vec<_>>().join("\n").into_bytes()])
}

fn corpus(work: &Path, input: &[u8]) {
    let write = |rel: &str, bytes: &[u8]| {
        let p = work.join(rel);
        std::fs::create_dir_all(p.parent().expect("a file")).expect("scratch folder");
        std::fs::write(&p, bytes).expect("scratch folder");
        p
    };
    let other = b"un\ndeux\ntrois\nquatre\ncinq\nsix\n";
    let tsv = write("c.tsv", input);
    for d in ["en-fr", "fr-en"] {
        let d: Direction = d.parse().expect("valid");
        let _ = read_parallel(&ParallelSource::Tsv { path: tsv.clone(), src_lang: "en".into(), tgt_lang: "fr".into() }, d);
    }
    let en_fr: Direction = "en-fr".parse().expect("valid");
    let src = write("files/src.txt", input);
    let _ = read_parallel(&ParallelSource::Files { src, tgt: write("files/tgt.txt", other) }, en_fr);
    write("flores/eng_Latn.devtest", input);
    write("flores/fra_Latn.devtest", other);
    let _ = read_parallel(&ParallelSource::Flores { dir: work.join("flores"), first: 2, last: 5 }, en_fr);
    write("opus/en-fr/test.en", input);
    write("opus/en-fr/test.fr", other);
    let _ = read_parallel(&ParallelSource::Opus { dir: work.join("opus") }, en_fr);
    let _ = read_monolingual(&MonoSource::Files { files: [("en".to_string(), work.join("c.tsv"))].into() }, en_fr.src);
}

fn artifact_seeds(root: &Path) -> std::io::Result<Vec<Vec<u8>>> {
    let names = ["layers.json", "neurons.json", "route.json", "report.json", "report-joint.json", "train.json", "hyp-sidecar.json", "score-partial.json"];
    names.iter().map(|n| std::fs::read(root.join("tests/fuzz-seeds").join(n))).collect()
}

fn artifacts(work: &Path, input: &[u8]) {
    let _ = serde_json::from_slice::<landermt_probe::Layers>(input);
    let _ = serde_json::from_slice::<landermt_score::Neurons>(input);
    let _ = serde_json::from_slice::<landermt_route::Route>(input);
    if let Ok(r) = serde_json::from_slice::<landermt_pipeline::Report>(input) {
        let _ = r.markdown();
    }
    if let Ok(r) = serde_json::from_slice::<landermt_pipeline::table::JointReport>(input) {
        let _ = r.markdown();
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(input) {
        let _ = landermt_pipeline::stages::final_validation_loss(&v);
    }
    let partial = work.join("partial.json");
    std::fs::write(&partial, input).expect("scratch folder");
    let key = serde_json::from_slice::<serde_json::Value>(input).ok().and_then(|v| v["key"].as_str().map(str::to_string)).unwrap_or_default();
    let _ = landermt_score::Partial::load(&partial, &key);
    // A hypothesis file's sidecar (`{file}.hyp.json`), beside a three-line hypothesis file.
    let hyp = work.join("t.hyp");
    std::fs::write(&hyp, "un\ndeux\ntrois\n").expect("scratch folder");
    std::fs::write(work.join("t.hyp.json"), input).expect("scratch folder");
    let _ = landermt_pipeline::stages::DecodedFile::reuse(&hyp, &key, 3);
}

fn neurons_seeds(_: &Path) -> std::io::Result<Vec<Vec<u8>>> {
    use landermt_model::Site;
    use landermt_score::{ModuleScores, Scores};
    let languages = ["en", "fr", "de"].iter().map(|c| c.parse().expect("a language code")).collect();
    let module = |k: f64| ModuleScores { s: vec![vec![k, 2.0, 0.5]; 3], g: vec![vec![0.5, k, 1.0]; 3], var: vec![k * k, 1.0, 0.0] };
    let scores = Scores { languages, modules: [((0, Site::AttnQ), module(1.0)), ((1, Site::FfnAct), module(-7.5))].into() };
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("neurons.safetensors");
    scores.write(&path).map_err(std::io::Error::other)?;
    Ok(vec![std::fs::read(&path)?])
}

fn neurons(work: &Path, input: &[u8]) {
    let path = work.join("neurons.safetensors");
    std::fs::write(&path, input).expect("scratch folder");
    if let Ok(scores) = landermt_score::Scores::read(&path) {
        let _ = scores.num_layers();
    }
}
