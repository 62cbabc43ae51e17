//! `forward` and `generate`: look inside a model from the command line.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Result;
use burn::tensor::Tensor;
use landermt_model::generate::{GreedyOptions, greedy};
use landermt_model::{Backend, Batch, LanguageModel, Taps};
use safetensors::{Dtype, tensor::TensorView};

fn load(model: &str, backend: Backend) -> Result<LanguageModel> {
    let path = landermt_pipeline::resolve_model(model)?;
    Ok(LanguageModel::load(&path, &landermt_pipeline::gemm_device(backend, &Default::default(), Some(&path))?)?)
}

fn floats(t: Tensor<3>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().expect("f32 tensor")
}

pub fn forward(model: &str, text: &str, out: &Path, hidden: bool, backend: Backend) -> Result<()> {
    let m = load(model, backend)?;
    let ids = m.encode(text)?;
    let batch = Batch::single(&ids);
    let (states, last) = if hidden {
        let states = m.net.hidden_states(&batch);
        let last = states.last().expect("L+1 states").clone();
        (states, last)
    } else {
        (Vec::new(), m.net.forward(&batch, None, &mut Taps::none()))
    };
    let (t, v, h, l) = (ids.len(), m.config.vocab_size, m.config.hidden_size, m.config.num_layers);

    let mut bufs: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let bytes = |xs: Vec<f32>| xs.into_iter().flat_map(f32::to_le_bytes).collect::<Vec<u8>>();
    bufs.push(("ids", Dtype::I64, vec![t], ids.iter().flat_map(|&i| (i as i64).to_le_bytes()).collect()));
    if hidden {
        let hs: Vec<f32> = states.into_iter().flat_map(floats).collect();
        bufs.push(("hidden", Dtype::F32, vec![l + 1, t, h], bytes(hs)));
    }
    bufs.push(("logits", Dtype::F32, vec![t, v], bytes(floats(m.net.logits(last)))));

    let views: HashMap<String, TensorView> = bufs.iter().map(|(n, d, s, b)| Ok((n.to_string(), TensorView::new(*d, s.clone(), b)?))).collect::<Result<_, safetensors::SafeTensorError>>()?;
    let bytes = safetensors::serialize(&views, None)?;
    landermt_model::atomic::write_atomic(out, |w| w.write_all(&bytes))?;
    println!("wrote {} ({t} tokens)", out.display());
    Ok(())
}

pub fn generate(model: &str, text: &str, max_new_tokens: usize, backend: Backend) -> Result<()> {
    let m = load(model, backend)?.into_decoding();
    let ids = m.encode(text)?;
    let opts = GreedyOptions { line_breaks: None, no_repeat_ngram: 0, max_new_tokens, stop_ids: m.config.eos_token_ids.clone(), pad_id: m.config.pad_token_id.unwrap_or(0) };
    let start = std::time::Instant::now();
    let new = greedy(&m.net, &[ids], &opts).remove(0);
    let secs = start.elapsed().as_secs_f64();
    println!("{}", m.tokenizer.decode(&new, false)?);
    println!("ids: {new:?}");
    eprintln!("{} tokens in {secs:.2}s ({:.1} tokens/s)", new.len(), new.len() as f64 / secs);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(rel: &str) -> std::path::PathBuf {
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(rel)
    }

    fn read(bytes: &[u8], name: &str) -> (Vec<usize>, Vec<u8>) {
        let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
        let v = st.tensor(name).unwrap();
        (v.shape().to_vec(), v.data().to_vec())
    }

    #[test]
    fn forward_writes_ids_logits_and_hidden_as_transformers_lays_them_out() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.safetensors");
        let model = fixture("hf-tiny/bloom-tiny");
        let text = "Le chat dort sur le canapé depuis ce matin.";
        forward(model.to_str().unwrap(), text, &out, true, Backend::Flex).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        let reference = std::fs::read(fixture("hf-tiny/bloom-tiny/reference.safetensors")).unwrap();
        // Prompt 1 of the fixture; BLOOM's tokenizer adds no special tokens.
        let (shape, ids) = read(&bytes, "ids");
        assert_eq!(ids, read(&reference, "ids_1").1);
        let t = shape[0];
        assert_eq!(read(&bytes, "logits").0, vec![t, 600]);
        let (hshape, hidden) = read(&bytes, "hidden");
        assert_eq!(hshape, vec![5, t, 64]);
        let ours: Vec<f32> = hidden.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        let want: Vec<f32> = read(&reference, "hidden_1").1.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        let err = ours.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(err < 1e-4, "hidden differs by {err}");
    }
}
