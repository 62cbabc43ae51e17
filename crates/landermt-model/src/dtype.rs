//! The precision the frozen weights are stored in (`model.dtype`). `bf16` halves the memory
//! of the linear maps and the embedding; every product still runs and sums in f32, on the
//! weight widened block by block (vendored flex, `matmul_mixed`), and activations, norms,
//! biases, trained slices, LoRA weights and optimizer state stay f32.

use burn::tensor::DType;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightDtype {
    #[default]
    F32,
    Bf16,
}

impl WeightDtype {
    /// Burn's element type for tensors of this precision.
    pub fn burn(self) -> DType {
        match self {
            WeightDtype::F32 => DType::F32,
            WeightDtype::Bf16 => DType::BF16,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            WeightDtype::F32 => "f32",
            WeightDtype::Bf16 => "bf16",
        }
    }
}

impl std::fmt::Display for WeightDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for WeightDtype {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(WeightDtype::F32),
            "bf16" => Ok(WeightDtype::Bf16),
            other => Err(format!("unknown weight dtype `{other}` (f32 or bf16)")),
        }
    }
}
