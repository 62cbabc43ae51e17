//! Stage 2 on any model: the language awareness of every FFN unit in every block (Taylor
//! scores, METHOD.md eq. 2–3), split into language-general and language-specific units, written
//! as landermt's own artifacts `neurons.safetensors` and `neurons.json`.
//!
//!     cargo run -- MODEL_DIR FLORES_DIR OUT_DIR [SENTENCES] [LANGUAGE ...]
//!
//! MODEL_DIR: a Hugging Face folder (config.json, safetensors, tokenizer.json) of a BLOOM,
//! LLaMA-family or Gemma 3 model. FLORES_DIR: FLORES-200 devtest files (`eng_Latn.devtest`, …).
//! Defaults: 20 sentences of English and French.

use std::error::Error;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use landermt_data::{Language, MonoSource};
use landermt_model::LanguageModel;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model_dir, flores, out, rest @ ..] = &args[..] else {
        return Err("usage: score-neurons-example MODEL_DIR FLORES_DIR OUT_DIR [SENTENCES] [LANGUAGE ...]".into());
    };
    let sentences: usize = rest.first().map_or(Ok(20), |n| n.parse()).map_err(|e| format!("SENTENCES `{}`: {e}", rest[0]))?;
    let mut languages: Vec<Language> = rest.iter().skip(1).map(|l| l.parse()).collect::<Result<_, _>>()?;
    if languages.is_empty() {
        languages = vec!["en".parse()?, "fr".parse()?];
    }

    // Scores are read through gradients: the model runs on an autodiff backend, weights frozen.
    let model = landermt_score::frozen(LanguageModel::load(model_dir, &Device::flex().autodiff())?);
    let data = MonoSource::Flores { dir: PathBuf::from(flores), first: 1, last: sentences };
    let mut awareness = Vec::new();
    for &language in &languages {
        let ids = landermt_data::read_monolingual(&data, language)?.iter().map(|s| model.encode(s)).collect::<Result<Vec<_>, _>>()?;
        awareness.push(landermt_score::awareness(&model, &ids, 4, &|_| {}));
        println!("{language}: {} sentences scored", ids.len());
    }

    let num_layers = model.config.num_layers;
    let settings = landermt_score::Settings { model: model_dir.clone(), languages: languages.clone(), data, epsilon: 0.9, num_layers, selected: (0..num_layers).collect() };
    let (scores, neurons) = landermt_score::neurons(&settings, &awareness)?;
    std::fs::create_dir_all(out)?;
    scores.write(&Path::new(out).join("neurons.safetensors"))?;
    std::fs::write(Path::new(out).join("neurons.json"), serde_json::to_string_pretty(&neurons)?)?;

    for layer in &neurons.layers {
        let ffn = &layer.modules["ffn_act"];
        let specific: Vec<String> = languages.iter().map(|l| format!("{l} {}", ffn.counts[l.code])).collect();
        println!("layer {:>2}: {} general FFN units; specific: {}", layer.layer, ffn.counts["general"], specific.join(", "));
    }
    println!("wrote {out}/neurons.safetensors and {out}/neurons.json");
    Ok(())
}
