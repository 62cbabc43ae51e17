//! The part of a trained network that a plain checkpoint cannot hold: token-dependent CAR
//! (`taylor`, `learned`) and bottleneck adapters. They are exported as transformers remote code,
//! `modeling_landermt.py`, which wraps the base architecture's FFN in the listed layers and
//! reads its routing constants from the checkpoint (`mlp.car_*`, `mlp.adapter_*`). Loading
//! then needs `trust_remote_code=True`; the folder's own `model_type` makes a loader without it
//! refuse the folder rather than run the unrouted base model.

use serde_json::{Value, json};

use super::host;
use crate::Transformer;
use crate::error::{ModelError, Result};
use crate::nn::CarMode;

/// The remote code's file name.
pub const FILE: &str = "modeling_landermt.py";
const TEMPLATE: &str = include_str!("modeling_landermt.py");

/// The layers that need the remote code, with their tensors.
pub struct Modeling {
    /// `layer → {car, start, constant, adapter}`: `config.json`'s `landermt.layers`.
    layers: serde_json::Map<String, Value>,
    /// (name, shape, values), under the base architecture's layer prefix.
    pub tensors: super::Tensors,
}

impl Modeling {
    /// `None` when every layer is plain (after folding constant CAR into the weights).
    pub fn of(net: &Transformer) -> Option<Self> {
        let mut m = Modeling { layers: serde_json::Map::new(), tensors: Vec::new() };
        for (i, block) in net.layers.iter().enumerate() {
            let p = format!("{}.mlp", super::block_prefix(net.config.architecture, i));
            let mut spec = serde_json::Map::new();
            if let Some(r) = block.mlp.router.as_ref().filter(|r| r.constant_shares().is_none()) {
                let k = &r.masks;
                let column = |t: &burn::tensor::Tensor<2>| host(t.clone().reshape([t.dims()[0]]));
                let units = k.specific.dims()[0];
                m.tensors.push((format!("{p}.car_specific"), vec![units], host(k.specific.clone())));
                m.tensors.push((format!("{p}.car_general"), vec![units], column(&k.general_weight)));
                m.tensors.push((format!("{p}.car_scored"), vec![units], column(&k.scored_weight)));
                if r.mode() == CarMode::Learned {
                    let w = r.w.as_ref().expect("learned routers have w").val();
                    m.tensors.push((format!("{p}.car_w"), w.dims().to_vec(), host(w)));
                    m.tensors.push((format!("{p}.car_b"), vec![1], host(r.b.as_ref().expect("learned routers have b").val())));
                }
                if let Some(l) = &r.lambda {
                    m.tensors.push((format!("{p}.car_lambda"), vec![1], host(l.val())));
                }
                spec.insert("car".into(), serde_json::to_value(r.mode()).expect("plain enum"));
                spec.insert("start".into(), if r.lambda.is_some() { "identity" } else { "paper" }.into());
                spec.insert("constant".into(), k.constant.into());
            }
            if let Some(a) = &block.mlp.adapter {
                let [hidden, size] = a.down.dims();
                m.tensors.push((format!("{p}.adapter_down.weight"), vec![size, hidden], host(a.down.val().transpose())));
                m.tensors.push((format!("{p}.adapter_up.weight"), vec![hidden, size], host(a.up.val().transpose())));
                spec.insert("adapter".into(), size.into());
            }
            if !spec.is_empty() {
                m.layers.insert(i.to_string(), Value::Object(spec));
            }
        }
        (!m.layers.is_empty()).then_some(m)
    }

    /// Points `config` (transformers' `config.json` of the base) at the remote code and
    /// returns the code, for the base architecture `config` names.
    pub fn apply(&self, config: &mut Value) -> Result<String> {
        let base = config["architectures"][0].as_str().map(str::to_owned);
        let base = base.ok_or_else(|| ModelError::Input("config.json names no `architectures`, so the routed export cannot name its base class".into()))?;
        if !base.ends_with("ForCausalLM") || !base.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(ModelError::Input(format!("config.json's architecture `{base}` is not a transformers causal LM class")));
        }
        let base_model_type = config["model_type"].clone();
        config["landermt"] = json!({ "version": 1, "base": base, "base_model_type": base_model_type, "layers": self.layers });
        config["model_type"] = "landermt".into();
        config["architectures"] = json!(["LandermtForCausalLM"]);
        config["auto_map"] = json!({
            "AutoConfig": "modeling_landermt.LandermtConfig",
            "AutoModelForCausalLM": "modeling_landermt.LandermtForCausalLM",
        });
        Ok(TEMPLATE.replace("transformers.BASE_CLASS", &format!("transformers.{base}")).replace("transformers.BASE_CONFIG", "Base.config_class"))
    }
}
