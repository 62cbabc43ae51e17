//! Kernel launches of one training step on wgpu, per method (issue 42, item 7). On a GPU each
//! launch costs microseconds whatever it computes, so a selective step must not issue more
//! kernels than a full fine-tuning step: no per-unit or per-step-growing work. Alone in its
//! binary: cubecl's launch observer counts the whole process's launches.

mod common;

use common::{examples, load_on, stage2};
use landermt_model::nn::CarMode;
use landermt_train::{Example, Method, Trainee, adamw, step};

// The tiny LLaMA (4 blocks, 2 selected). Measured on lavapipe without fusion: full 1381,
// lora 1314, landermt 978 launches a step (1225, 1186, 922 on the first, before AdamW's
// moments exist); BENCHMARKS.md, "GPU", has them by kernel.
#[test]
fn launches_per_training_step_on_wgpu() {
    let Some(gpu) = landermt_model::Backend::Wgpu.test_device("launches_per_training_step_on_wgpu") else { return };
    let gpu = gpu.autodiff();
    let (scores, neurons, languages) = stage2();
    let route = landermt_route::build(&neurons, &scores, [languages[0], languages[1]], &neurons.selected, CarMode::Taylor).unwrap();
    let mut totals = Vec::new();
    for method in [Method::Full, Method::Lora, Method::Landermt] {
        let mut model = load_on(&gpu);
        if method == Method::Landermt {
            landermt_route::apply(&mut model, &route).unwrap();
        }
        let exs = examples(&model, 4);
        let batch: Vec<&Example> = exs.iter().collect();
        let units = method.units(&route, &neurons);
        let sizes = landermt_train::added::AddedSettings { lora_rank: 4, ..Default::default() };
        let mut trainee = Trainee::with_added(model.net.clone(), method, units.as_ref(), &[2, 3], &sizes, 7);
        let mut optim = adamw(0.1);
        let mut per_step = Vec::new();
        for _ in 0..3 {
            let ((t, _), launches) = landermt_model::launches::counted(&gpu, || step(trainee, &mut optim, 1e-3, &batch, 0));
            trainee = t;
            per_step.push(launches);
        }
        eprintln!("{method:?}: {:?} launches in steps 1-3; step 3 by kernel:", per_step.iter().map(|l| l.total()).collect::<Vec<_>>());
        per_step[2].0.iter().for_each(|(name, n)| eprintln!("  {n:5} {name}"));
        assert_eq!(per_step[1], per_step[2], "{method:?}: the second and third steps issue different kernels");
        totals.push(per_step[2].total());
    }
    let [full, lora, landermt] = totals[..] else { unreachable!() };
    assert!(landermt <= full, "a landermt step issues {landermt} kernels, a full step {full}");
    assert!(lora <= full, "a lora step issues {lora} kernels, a full step {full}");
}
