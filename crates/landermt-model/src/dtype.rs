//! The precision the frozen weights are stored in (`model.dtype`). `bf16` halves the memory
//! of the linear maps and the embedding; every product still runs and sums in f32, on the
//! weight widened block by block (vendored flex, `matmul_mixed`), and activations, norms,
//! biases, trained slices, LoRA weights and optimizer state stay f32.

use burn::module::Param;
use burn::tensor::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::model::Transformer;

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

/// `net` with the tensors `model.dtype` stores (the embedding, an untied head, and every block's
/// linear maps) rounded to `dtype`, to nearest even, as loading them in `dtype` would have.
/// For a model that only decodes (`eval.weights`): a system trained in f32, its delta merged,
/// is then read in half the bytes. Norms, biases, routers and adapters stay f32; `F32` and
/// tensors already in `dtype` are left as they are.
pub fn stored_in(mut net: Transformer, dtype: WeightDtype) -> Transformer {
    if dtype == WeightDtype::F32 {
        return net;
    }
    let round = |p: &mut Param<Tensor<2>>| {
        let t = p.val();
        if t.dtype() == DType::F32 && !t.is_require_grad() {
            *p = Param::initialized(p.id, t.cast(dtype.burn()));
        }
    };
    round(&mut net.embed_tokens);
    if let Some(head) = &mut net.lm_head {
        round(head);
    }
    for block in &mut net.layers {
        let (attn, mlp) = (&mut block.attn, &mut block.mlp);
        for linear in [&mut attn.q_proj, &mut attn.k_proj, &mut attn.v_proj, &mut attn.o_proj, &mut mlp.up_proj, &mut mlp.down_proj].into_iter().chain(mlp.gate_proj.as_mut()) {
            round(&mut linear.weight);
        }
    }
    net
}
