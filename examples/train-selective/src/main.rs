//! Stages 3 and 4 on any model: from stage 2's `neurons.*` (the score-neurons example writes
//! them), a `route.json` for one language pair (built here unless one is given), then a few
//! steps of LANDeRMT's selective fine-tuning: only the selected layers' general and
//! pair-specific FFN units move, every other weight stays bit-identical (METHOD.md stage 4).
//!
//!     cargo run -- MODEL_DIR NEURONS_DIR FLORES_DIR [STEPS] [LAYER ...]
//!
//! Reads NEURONS_DIR/route.json if it is there; otherwise routes the first two scored
//! languages over LAYERs (default: the last two blocks) with Taylor CAR and writes it there.
//! Trains on FLORES lines 1–8 of the first language into the second, batch 4, lr 1e-3.

use std::error::Error;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use landermt_data::{Direction, ParallelSource, prompt::Template};
use landermt_model::LanguageModel;
use landermt_model::nn::CarMode;
use landermt_route::Route;
use landermt_score::{Neurons, Scores};
use landermt_train::Method;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model_dir, neurons_dir, flores, rest @ ..] = &args[..] else {
        return Err("usage: train-selective-example MODEL_DIR NEURONS_DIR FLORES_DIR [STEPS] [LAYER ...]".into());
    };
    let steps: usize = rest.first().map_or(Ok(3), |n| n.parse()).map_err(|e| format!("STEPS `{}`: {e}", rest[0]))?;
    let dir = Path::new(neurons_dir);
    let neurons: Neurons = serde_json::from_str(&std::fs::read_to_string(dir.join("neurons.json"))?)?;
    let mut model = LanguageModel::load(model_dir, &Device::flex().autodiff())?;
    let route = route(dir, &neurons, &model, &rest[rest.len().min(1)..])?;
    let layers: Vec<usize> = route.layers.iter().map(|l| l.layer).collect();

    // Stage 3: the routers go into the model; stage 4: only LANDeRMT's units of the pair train.
    landermt_route::apply(&mut model, &route)?;
    let units = Method::Landermt.units(&route, &neurons);
    let mut trainee = landermt_train::Trainee::new(model.net.clone(), Method::Landermt, units.as_ref(), &layers);
    println!("training {} entries of layers {layers:?} for {}–{}", trainee.delta.num_entries(), route.pair[0], route.pair[1]);

    let direction = Direction { src: route.pair[0], tgt: route.pair[1] };
    let source = ParallelSource::Flores { dir: PathBuf::from(flores), first: 1, last: 8 };
    let examples: Vec<_> = landermt_data::read_parallel(&source, direction)?
        .iter()
        .filter_map(|pair| landermt_train::example(&model, direction, pair, &Template::default(), 128).transpose())
        .collect::<Result<_, _>>()?;
    let pad = model.config.pad_token_id.unwrap_or(0);
    let mut optim = landermt_train::adamw(0.01);
    for step in 0..steps {
        let batch: Vec<_> = examples.iter().cycle().skip(4 * step).take(4).collect();
        let loss;
        (trainee, loss) = landermt_train::step(trainee, &mut optim, 1e-3, &batch, pad);
        println!("step {}: loss {loss:.4}", step + 1);
    }
    Ok(())
}

/// `dir/route.json`, or one built from stage 2's artifacts and written there.
fn route(dir: &Path, neurons: &Neurons, model: &LanguageModel, layers: &[String]) -> Result<Route, Box<dyn Error>> {
    let path = dir.join("route.json");
    if path.exists() {
        println!("routing from {}", path.display());
        return Ok(serde_json::from_str(&std::fs::read_to_string(&path)?)?);
    }
    let scores = Scores::read(&dir.join("neurons.safetensors"))?;
    let last = model.config.num_layers;
    let layers: Vec<usize> = if layers.is_empty() { vec![last - 2, last - 1] } else { layers.iter().map(|l| l.parse()).collect::<Result<_, _>>()? };
    let pair = match neurons.languages[..] {
        [a, b, ..] => [a, b],
        _ => return Err(format!("{}: two scored languages are needed for a pair", dir.join("neurons.json").display()).into()),
    };
    let route = landermt_route::build(neurons, &scores, pair, &layers, CarMode::Taylor)?;
    std::fs::write(&path, serde_json::to_string_pretty(&route)?)?;
    println!("wrote {}", path.display());
    Ok(route)
}
