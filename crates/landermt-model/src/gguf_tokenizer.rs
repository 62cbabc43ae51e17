//! Rebuilds a `tokenizers` tokenizer from GGUF metadata exactly as transformers 5.23 does
//! (`integrations/gguf/gguf_tokenizer_mapping.py`), so ids match transformers loading the same
//! file:
//! - `tokenizer.ggml.model = "llama"` (SentencePiece-style BPE with byte fallback): merges from
//!   the file, or derived from the vocabulary ranked by token score (`generate_merges`); Gemma
//!   files rank by token position instead and respell all-space tokens as `▁` runs.
//! - `"gpt2"` (byte-level BPE): tokens respelled into the byte alphabet, merges from the file.
//! - Control tokens become special added tokens, user-defined ones plain added tokens; BOS is
//!   prepended when `add_bos_token` says so (default on for SentencePiece vocabularies).

use serde_json::json;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::{AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper};

use crate::error::{ModelError, Result};
use crate::gguf::{GgufFile, Value};

const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;

/// transformers' `_LLAMA3_SPLIT`, used by several `tokenizer.ggml.pre` names.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const LLAMA3_PRE: &[&str] = &["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano", "dbrx", "smaug-bpe"];

struct Meta<'a> {
    g: &'a GgufFile,
}

impl Meta<'_> {
    fn err(&self, msg: impl Into<String>) -> ModelError {
        ModelError::Tokenizer { path: self.g.path().into(), msg: msg.into() }
    }
    fn str(&self, key: &str) -> Option<&str> {
        self.g.get(key).and_then(Value::as_str)
    }
    fn strings(&self, key: &str) -> Result<Option<Vec<String>>> {
        let Some(v) = self.g.get(key) else { return Ok(None) };
        let items = v.as_array().ok_or_else(|| self.err(format!("`{key}` is not an array")))?;
        items.iter().map(|x| x.as_str().map(str::to_owned).ok_or_else(|| self.err(format!("`{key}` holds a non-string")))).collect::<Result<Vec<_>>>().map(Some)
    }
    fn numbers(&self, key: &str) -> Option<Vec<f64>> {
        self.g.get(key)?.as_array()?.iter().map(Value::as_f64).collect()
    }
    fn bool(&self, key: &str) -> Option<bool> {
        match self.g.get(key) {
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }
}

fn wrapper<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("tokenizer component JSON is well-formed")
}

pub(crate) fn build(g: &GgufFile) -> Result<tokenizers::Tokenizer> {
    let m = Meta { g };
    let kind = m.str("tokenizer.ggml.model").ok_or_else(|| m.err("no `tokenizer.ggml.model` in the metadata"))?;
    let arch = m.str("general.architecture").unwrap_or("");
    let tokens = m.strings("tokenizer.ggml.tokens")?.ok_or_else(|| m.err("no `tokenizer.ggml.tokens`"))?;
    let types: Vec<i64> = match m.numbers("tokenizer.ggml.token_type") {
        Some(t) => t.into_iter().map(|x| x as i64).collect(),
        None => Vec::new(),
    };
    let file_merges = m.strings("tokenizer.ggml.merges")?;
    let (mut tok, byte_level) = match kind {
        "llama" => (sentencepiece(&m, &tokens, file_merges.as_deref(), matches!(arch, "gemma" | "gemma2" | "gemma3"))?, false),
        "gpt2" => (byte_level_bpe(&m, &tokens, file_merges.as_deref())?, true),
        other => return Err(ModelError::unsupported(g.path(), format!("GGUF tokenizer model `{other}` (llama and gpt2 are implemented)"))),
    };
    add_vocabulary_tokens(&mut tok, &tokens, &types, byte_level);

    // transformers assumes BOS for SentencePiece vocabularies that do not say otherwise.
    let add_bos = m.bool("tokenizer.ggml.add_bos_token").unwrap_or(kind == "llama");
    let add_eos = m.bool("tokenizer.ggml.add_eos_token").unwrap_or(false);
    let special = |key: &str| -> Result<Option<(String, u32)>> {
        match g.get(key).and_then(Value::as_u64) {
            None => Ok(None),
            Some(id) => tokens.get(id as usize).map(|t| Some((t.clone(), id as u32))).ok_or_else(|| m.err(format!("`{key}` = {id} is outside the vocabulary"))),
        }
    };
    let bos = if add_bos { special("tokenizer.ggml.bos_token_id")? } else { None };
    let eos = if add_eos { special("tokenizer.ggml.eos_token_id")? } else { None };
    if bos.is_some() || eos.is_some() {
        tok.with_post_processor(Some(template(bos, eos)));
    }
    Ok(tok)
}

/// `tokenizer.ggml.model = "llama"`: SentencePiece-style BPE with byte fallback. Gemma files
/// rank merges by token position and respell all-space tokens as `▁` runs.
fn sentencepiece(m: &Meta, tokens: &[String], file_merges: Option<&[String]>, gemma: bool) -> Result<tokenizers::Tokenizer> {
    let spelled: Vec<String> =
        if gemma { tokens.iter().map(|t| if t.contains(' ') && t.trim().is_empty() { "\u{2581}".repeat(t.chars().count()) } else { t.clone() }).collect() } else { tokens.to_vec() };
    let merges = match file_merges {
        Some(ms) => split_merges(m, ms)?,
        None if gemma => generate_merges(&spelled, |_, i| -(i as f64)),
        None => {
            let scores = m.numbers("tokenizer.ggml.scores").ok_or_else(|| m.err("neither merges nor scores"))?;
            if scores.len() != spelled.len() {
                return Err(m.err(format!("tokenizer.ggml.scores has {} entries for {} tokens", scores.len(), spelled.len())));
            }
            generate_merges(&spelled, |_, i| scores[i])
        }
    };
    let mut bpe = BPE::builder().vocab_and_merges(vocab_of(&spelled), merges).fuse_unk(true).byte_fallback(true);
    if gemma {
        bpe = bpe.unk_token("<unk>".into());
    }
    let mut t = tokenizers::Tokenizer::new(bpe.build().map_err(|e| m.err(e.to_string()))?);
    if gemma {
        t.with_normalizer(Some(wrapper::<NormalizerWrapper>(json!({"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"}))));
        t.with_pre_tokenizer(Some(wrapper::<PreTokenizerWrapper>(json!({"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious", "invert": false}))));
        t.with_decoder(Some(wrapper::<DecoderWrapper>(json!({"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}]}))));
    } else {
        // LlamaTokenizer(vocab, merges): add_prefix_space = True, legacy = False → "first".
        t.with_pre_tokenizer(Some(wrapper::<PreTokenizerWrapper>(json!({"type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": "first", "split": false}))));
        t.with_decoder(Some(wrapper::<DecoderWrapper>(json!({"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}))));
    }
    Ok(t)
}

/// `tokenizer.ggml.model = "gpt2"`: byte-level BPE, tokens respelled into the byte alphabet,
/// merges from the file, the pre-tokenizer named by `tokenizer.ggml.pre`.
fn byte_level_bpe(m: &Meta, tokens: &[String], file_merges: Option<&[String]>) -> Result<tokenizers::Tokenizer> {
    let alphabet = byte_alphabet();
    let spelled: Vec<String> = tokens.iter().map(|t| if t.chars().all(|c| alphabet.contains(&c)) { t.clone() } else { t.bytes().map(|b| alphabet[b as usize]).collect() }).collect();
    let merges = split_merges(m, file_merges.ok_or_else(|| m.err("a gpt2 tokenizer without `tokenizer.ggml.merges`"))?)?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab_of(&spelled), merges)
        .continuing_subword_prefix(String::new())
        .end_of_word_suffix(String::new())
        .fuse_unk(false)
        .build()
        .map_err(|e| m.err(e.to_string()))?;
    let mut t = tokenizers::Tokenizer::new(bpe);
    let pre = match m.str("tokenizer.ggml.pre") {
        Some(p) if LLAMA3_PRE.contains(&p) => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]}),
        None | Some("default") | Some("bloom") | Some("gpt-2") | Some("gpt2") => {
            json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true})
        }
        Some(other) => return Err(m.err(format!("pre-tokenizer `{other}` is not implemented"))),
    };
    t.with_pre_tokenizer(Some(wrapper::<PreTokenizerWrapper>(pre)));
    t.with_decoder(Some(wrapper::<DecoderWrapper>(json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}))));
    Ok(t)
}

/// Control tokens (special) and user-defined tokens (plain) are matched whole in the text.
fn add_vocabulary_tokens(tok: &mut tokenizers::Tokenizer, tokens: &[String], types: &[i64], byte_level: bool) {
    let alphabet = byte_alphabet();
    let control: Vec<AddedToken> = tokens
        .iter()
        .zip(types)
        .filter(|(t, ty)| **ty == CONTROL && (!byte_level || t.chars().all(|c| alphabet.contains(&c))))
        .map(|(t, _)| AddedToken::from(t.clone(), true).normalized(false))
        .collect();
    tok.add_special_tokens(&control);
    let user: Vec<AddedToken> =
        tokens.iter().zip(types).filter(|(t, ty)| **ty == USER_DEFINED && tok.token_to_id(t).is_some()).map(|(t, _)| AddedToken::from(t.clone(), false).normalized(false)).collect();
    tok.add_tokens(&user);
}

/// `<bos> $A <eos>` (each part optional), for single sequences and pairs.
fn template(bos: Option<(String, u32)>, eos: Option<(String, u32)>) -> PostProcessorWrapper {
    let piece = |t: &Option<(String, u32)>, type_id: u32| t.as_ref().map(|(s, _)| json!({"SpecialToken": {"id": s, "type_id": type_id}}));
    let seq = |id: &str, type_id: u32| json!({"Sequence": {"id": id, "type_id": type_id}});
    let single: Vec<_> = [piece(&bos, 0), Some(seq("A", 0)), piece(&eos, 0)].into_iter().flatten().collect();
    let mut pair = single.clone();
    pair.extend([piece(&bos, 1), Some(seq("B", 1)), piece(&eos, 1)].into_iter().flatten());
    let specials: serde_json::Map<String, serde_json::Value> = [bos, eos].into_iter().flatten().map(|(s, id)| (s.clone(), json!({"id": s, "ids": [id], "tokens": [s]}))).collect();
    wrapper(json!({"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": specials}))
}

/// token → id, later duplicates winning (a Python dict comprehension over the list).
fn vocab_of(tokens: &[String]) -> Vocab {
    tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect()
}

fn split_merges(m: &Meta, merges: &[String]) -> Result<Vec<(String, String)>> {
    merges.iter().map(|s| s.split_once(' ').map(|(a, b)| (a.to_owned(), b.to_owned())).ok_or_else(|| m.err(format!("merge `{s}` has no space")))).collect()
}

/// transformers' `generate_merges(vocab, vocab_scores)`: every split of every token into two
/// vocabulary pieces, ranked by the token's score (best first), then by longer left piece,
/// then longer right piece; ties keep the dictionary's order. `score(token, index)` receives
/// the token's last index, as a Python dict built from the list would hold it.
fn generate_merges(tokens: &[String], score: impl Fn(&str, usize) -> f64) -> Vec<(String, String)> {
    let vocab = vocab_of(tokens);
    let mut seen = std::collections::HashSet::with_capacity(tokens.len());
    let mut merges: Vec<(String, String, f64, usize, usize)> = Vec::new();
    for token in tokens {
        if !seen.insert(token.as_str()) {
            continue; // dict order is first insertion
        }
        let s = score(token, vocab[token] as usize);
        let start = merges.len();
        for (i, _) in token.char_indices().skip(1) {
            let (l, r) = token.split_at(i);
            if vocab.contains_key(l) && vocab.contains_key(r) {
                merges.push((l.to_owned(), r.to_owned(), s, l.chars().count(), r.chars().count()));
            }
        }
        merges[start..].sort_by_key(|(l, r, ..)| (vocab[l], vocab[r]));
    }
    merges.sort_by(|a, b| b.2.total_cmp(&a.2).then(b.3.cmp(&a.3)).then(b.4.cmp(&a.4)));
    merges.into_iter().map(|(l, r, ..)| (l, r)).collect()
}

/// GPT-2's `bytes_to_unicode`: printable bytes map to themselves, the others to 256 + n.
fn byte_alphabet() -> Vec<char> {
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut n = 0;
    (0..256u32)
        .map(|b| {
            if printable(b) {
                char::from_u32(b).unwrap()
            } else {
                n += 1;
                char::from_u32(255 + n).unwrap()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_rank_by_score_then_longer_left_piece() {
        let tokens: Vec<String> = ["a", "b", "ab", "abb", "bb"].iter().map(|s| s.to_string()).collect();
        // Scores by position, best (least negative) first: ab (2) before abb (3) before bb (4);
        // abb splits as (ab, b) and (a, bb): the longer left piece comes first.
        let merges = generate_merges(&tokens, |_, i| -(i as f64));
        let want = [("a", "b"), ("ab", "b"), ("a", "bb"), ("b", "b")];
        assert_eq!(merges, want.map(|(l, r)| (l.to_string(), r.to_string())));
    }

    #[test]
    fn byte_alphabet_is_gpt2s() {
        let a = byte_alphabet();
        assert_eq!(a[b'A' as usize], 'A');
        assert_eq!(a[b' ' as usize], '\u{120}'); // Ġ
        assert_eq!(a[b'\n' as usize], '\u{10a}'); // Ċ
    }
}
