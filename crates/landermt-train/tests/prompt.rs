//! Training examples split at `{tgt}` on real tokenizers: the prompt's ids are exactly those a
//! decoder is given at test time, and the target's ids, after them, spell the translation.

use std::path::PathBuf;

use burn::tensor::Device;
use landermt_data::Pair;
use landermt_data::prompt::{Template, mixed};
use landermt_model::LanguageModel;
use landermt_train::example;

fn fixture(name: &str) -> LanguageModel {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/hf-tiny");
    LanguageModel::load(root.join(name), &Device::flex()).unwrap()
}

#[test]
fn the_target_span_starts_exactly_at_tgt() {
    let direction = "en-fr".parse().unwrap();
    let pair = Pair { src: "The cat sleeps.".into(), tgt: "Le chat dort.".into() };
    // llama-tiny prepends `▁` to a text (SentencePiece style), bloom-tiny is byte-level BPE,
    // gemma3-tiny and qwen2-tiny neither: tokenizing `" Le chat"` alone would differ between them.
    for name in ["llama-tiny", "bloom-tiny", "gemma3-tiny", "qwen2-tiny"] {
        let model = fixture(name);
        for template in [Template::default(), mixed()[2].clone()] {
            let (prompt_text, target_text) = (template.prompt(direction, &pair.src), template.target(direction, &pair.src, &pair.tgt));
            let ex = example(&model, direction, &pair, &template, 256).unwrap().unwrap();
            let (prompt, target) = ex.ids.split_at(ex.ids.len() - ex.target_len);
            let (target, eos) = target.split_at(target.len() - 1);
            assert_eq!(prompt, model.encode(&prompt_text).unwrap(), "{name}: the prompt differs from the test-time prompt");
            assert_eq!(eos, [model.config.eos_token_ids[0]], "{name}");
            assert_eq!([prompt, target].concat(), model.encode(&format!("{prompt_text}{target_text}")).unwrap(), "{name}: not the text's own tokens");
            assert_eq!(model.tokenizer.decode(target, true).unwrap().trim_start(), "Le chat dort.", "{name}: {template}");
        }
    }
}

#[test]
fn a_long_prompt_is_cut_at_its_start_and_a_long_target_is_skipped() {
    let model = fixture("llama-tiny");
    let direction = "en-fr".parse().unwrap();
    let pair = Pair { src: "A long sentence with many words in it, far too many to fit.".into(), tgt: "Court.".into() };
    let full = example(&model, direction, &pair, &Template::default(), 1024).unwrap().unwrap();
    let cut = example(&model, direction, &pair, &Template::default(), 20).unwrap().unwrap();
    assert_eq!(cut.ids.len(), 20);
    assert_eq!(cut.target_len, full.target_len);
    assert_eq!(cut.ids[..], full.ids[full.ids.len() - 20..]);
    assert!(example(&model, direction, &pair, &Template::default(), full.target_len).unwrap().is_none());
}
