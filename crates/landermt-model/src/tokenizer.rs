//! Tokenizers: a Hugging Face `tokenizer.json`, or one rebuilt from GGUF metadata the way
//! transformers rebuilds it, as a `tokenizers` tokenizer either way.

use std::path::{Path, PathBuf};

use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;

#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    origin: PathBuf,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokenizer({}, {} tokens)", self.origin.display(), self.vocab_size())
    }
}

impl Tokenizer {
    pub fn from_file(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(ModelError::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, "tokenizer.json not found")));
        }
        let bad = |msg: String| ModelError::Tokenizer { path: path.into(), msg };
        let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
        // tokenizers panics on some malformed files (a syntax error inside `decoder`, found by
        // fuzzing): check the JSON first, and turn any panic left into an error.
        serde_json::from_slice::<serde_json::Value>(&bytes).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let inner = std::panic::catch_unwind(|| tokenizers::Tokenizer::from_bytes(&bytes))
            .map_err(|p| bad(format!("the tokenizers crate could not read it ({})", panic_message(&p))))?
            .map_err(|e| bad(e.to_string()))?;
        // Some inconsistencies (a template naming a special token the file does not define,
        // found by fuzzing) panic only when encoding: try once, here, where the file is named.
        let trial = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.encode("a b", true).map(|e| inner.decode(e.get_ids(), true))));
        match trial {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(bad(format!("cannot encode with it: {e}"))),
            Err(p) => return Err(bad(format!("the tokenizers crate cannot encode with it ({})", panic_message(&p)))),
        }
        Ok(Self { inner, origin: path.into() })
    }

    pub fn from_gguf(g: &GgufFile) -> Result<Self> {
        let inner = crate::gguf_tokenizer::build(g)?;
        Ok(Self { inner, origin: g.path().into() })
    }

    pub fn from_tokenizers(inner: tokenizers::Tokenizer, origin: PathBuf) -> Self {
        Self { inner, origin }
    }

    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Token ids of `text`; `add_special` adds the model's usual special tokens (e.g. BOS).
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, add_special).map_err(|e| self.error(e))?;
        Ok(enc.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner.decode(ids, skip_special).map_err(|e| self.error(e))
    }

    /// Size of the vocabulary including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    fn error(&self, e: impl std::fmt::Display) -> ModelError {
        ModelError::Tokenizer { path: self.origin.clone(), msg: e.to_string() }
    }
}

/// The text of a caught panic.
fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    payload.downcast_ref::<String>().cloned().or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_else(|| "a panic".into())
}
