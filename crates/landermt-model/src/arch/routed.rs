//! Our own routed export read back: a folder whose `config.json` has model type `landermt`
//! (written by `export::modeling`) is its base architecture plus, in the layers
//! `landermt.layers` lists, CAR routers and bottleneck adapters whose constants are tensors of
//! the checkpoint. Loading them here makes the export a model this crate runs too.

use burn::module::Param;
use burn::tensor::{Tensor, TensorData};
use serde_json::Value;

use super::Loader;
use crate::error::{ModelError, Result};
use crate::export::block_prefix;
use crate::model::Transformer;
use crate::nn::{Adapter, CarMode, Router, RouterMasks};

/// The `landermt` section of a routed export's `config.json`, if it is one.
pub fn spec(config: &Value) -> Option<&Value> {
    (config.get("model_type").and_then(Value::as_str) == Some("landermt")).then(|| config.get("landermt")).flatten()
}

fn vector(l: &Loader, name: &str, n: usize) -> Result<Tensor<1>> {
    let t = l.get(name, &[n])?;
    Ok(Tensor::from_data(TensorData::new(t.data, [n]), l.device))
}

/// Puts the routers and adapters of `spec` into `net`.
pub(crate) fn install(l: &Loader, spec: &Value, net: &mut Transformer) -> Result<()> {
    let path = l.weights.origin().to_path_buf();
    let bad = |what: String| ModelError::config(&path, format!("landermt.layers: {what}"));
    let layers = spec.get("layers").and_then(Value::as_object).ok_or_else(|| bad("missing".into()))?;
    let (hidden, units) = (l.cfg.hidden_size, l.cfg.intermediate_size);
    for (layer, s) in layers {
        let i: usize = layer.parse().ok().filter(|&i| i < net.layers.len()).ok_or_else(|| bad(format!("`{layer}` is not a layer of the model")))?;
        let p = format!("{}.mlp", block_prefix(l.cfg.architecture, i));
        if let Some(car) = s.get("car").and_then(Value::as_str) {
            let mode: CarMode = serde_json::from_value(car.into()).map_err(|_| bad(format!("layer {i}: CAR mode `{car}`")))?;
            let constant = s.get("constant").and_then(Value::as_f64).ok_or_else(|| bad(format!("layer {i}: no `constant`")))? as f32;
            let masks = RouterMasks {
                mode,
                specific: vector(l, &format!("{p}.car_specific"), units)?,
                general_weight: vector(l, &format!("{p}.car_general"), units)?.reshape([units, 1]),
                scored_weight: vector(l, &format!("{p}.car_scored"), units)?.reshape([units, 1]),
                constant,
            };
            let learned = mode == CarMode::Learned;
            let w = if learned { Some(Param::from_tensor(vector(l, &format!("{p}.car_w"), hidden)?)) } else { None };
            let b = if learned { Some(Param::from_tensor(vector(l, &format!("{p}.car_b"), 1)?)) } else { None };
            let lambda = if s.get("start").and_then(Value::as_str) == Some("identity") { Some(Param::from_tensor(vector(l, &format!("{p}.car_lambda"), 1)?)) } else { None };
            net.layers[i].mlp.router = Some(Router { w, b, lambda, masks });
        }
        if let Some(size) = s.get("adapter").and_then(Value::as_u64) {
            let size = size as usize;
            let matrix = |name: &str, shape: [usize; 2]| -> Result<Param<Tensor<2>>> {
                let t = l.get(name, &shape)?;
                // transformers' `[out, in]`, ours `[in, out]`.
                Ok(Param::from_tensor(Tensor::<2>::from_data(TensorData::new(t.data, shape), l.device).transpose()))
            };
            let down = matrix(&format!("{p}.adapter_down.weight"), [size, hidden])?;
            let up = matrix(&format!("{p}.adapter_up.weight"), [hidden, size])?;
            net.layers[i].mlp.adapter = Some(Adapter { down, up });
        }
    }
    Ok(())
}
