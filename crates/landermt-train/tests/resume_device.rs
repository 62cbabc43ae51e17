//! A checkpoint's optimizer state is restored on the trainee's device, never on
//! `Device::default()` (issue 42, item 5): in a build with a GPU backend that default is the
//! GPU whatever device training runs on. Here the default is made unusable: `BURN_DEVICE` names
//! a backend no build of ours enables, so any `Device::default()` panics, and resuming a killed
//! run must still reach the uninterrupted run's weights, for the dense optimizer (`lora`,
//! `full`) and the lazy one with Burn's beside it (`landermt` with a learned router). Its own
//! process, since it sets the environment; `.ci/run`'s `wgpu` pass runs it with wgpu built.

mod common;

use common::{delta_tensors, examples, load, stage2};
use landermt_model::nn::CarMode;
use landermt_train::{Method, Trainee};

#[test]
fn resuming_puts_the_optimizer_state_on_the_trainees_device_with_wgpu_built() {
    let (scores, neurons, languages) = stage2();
    let mut route = landermt_route::build(&neurons, &scores, [languages[0], languages[1]], &neurons.selected, CarMode::Off).unwrap();
    route.car = CarMode::Learned;
    let model = load();
    let (train, dev) = (vec![examples(&model, 8)], examples(&model, 2));
    let settings = landermt_train::Settings { lr: 1e-2, batch_size: 2, grad_accum: 1, epochs: 1, warmup_steps: 1, checkpoint_every: 1, ..Default::default() };
    // SAFETY: this test is the binary's only one, and no other thread reads the environment
    // while it is set; the model and data above are loaded on explicit devices.
    unsafe { std::env::set_var("BURN_DEVICE", "rocm") };
    assert!(std::panic::catch_unwind(burn::tensor::Device::default).is_err(), "Device::default() should be unusable here");
    for method in [Method::Lora, Method::Full, Method::Landermt] {
        let fresh = || {
            let mut m = load();
            if method == Method::Landermt {
                landermt_route::apply(&mut m, &route).unwrap();
            }
            Trainee::new(m.net, method, method.units(&route, &neurons).as_ref(), &[2, 3])
        };
        let setup = serde_json::json!({ "method": method.name(), "lr": settings.lr });
        let go = |dir: &std::path::Path, stop_after: Option<usize>| {
            let r = landermt_train::trainer::Run { settings: &settings, train: &train, dev: &dev, pad_id: 0, setup: setup.clone(), dir, stop_after, progress: &|_, _, _| {} };
            landermt_train::trainer::run(fresh(), &r).unwrap()
        };
        let (whole, killed) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (_, all) = go(whole.path(), None);
        let (_, first) = go(killed.path(), Some(2));
        assert_eq!((first.step, all.step), (2, 4), "{method:?}");
        let (_, resumed) = go(killed.path(), None);
        assert_eq!(resumed.losses, all.losses, "{method:?}: the resumed run's losses");
        assert!(delta_tensors(killed.path()) == delta_tensors(whole.path()), "{method:?}: the resumed run ends with other weights");
    }
}
