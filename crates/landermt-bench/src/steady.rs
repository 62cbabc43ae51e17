//! Steady-state timing (issue 42): on a GPU the first rounds of a workload pay for autotune
//! trials and fusion's kernel compilation, and a kernel launch returns before the kernel ends.
//! So [`steady`] runs warm-up rounds until two in a row agree within 10 %, synchronises the
//! device before and after every timed round, and reports the median of at least five rounds
//! with their spread, and the first round's time so that the warm-up's effect can be seen.

use std::time::Instant;

use burn::tensor::Device;

/// The timings of one workload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// Median seconds of the timed rounds.
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub rounds: usize,
    /// Warm-up rounds run before timing (the first included).
    pub warmups: usize,
    /// Seconds of the very first round, cold.
    pub first: f64,
}

impl Timing {
    /// The timed rounds' spread, (max − min) / median.
    pub fn spread(&self) -> f64 {
        (self.max - self.min) / self.median
    }

    /// For a report's note, e.g. "median of 5 after 3 warm-ups (first 2.1 s), spread 4 %".
    pub fn describe(&self) -> String {
        format!("median of {} after {} warm-ups (first {:.3} s), spread {:.0} %", self.rounds, self.warmups, self.first, 100.0 * self.spread())
    }
}

/// The most warm-up rounds before timing anyway (a workload that never settles).
const MAX_WARMUPS: usize = 10;
/// Timed rounds.
const ROUNDS: usize = 5;

fn timed(device: &Device, round: &mut dyn FnMut()) -> f64 {
    sync(device);
    let start = Instant::now();
    round();
    sync(device);
    start.elapsed().as_secs_f64()
}

fn sync(device: &Device) {
    // A backend that cannot sync has failed a kernel: the timing would be meaningless.
    device.sync().expect("the device failed while timing");
}

/// Times `round` on `device` in steady state (see the module's documentation).
pub fn steady(device: &Device, round: &mut dyn FnMut()) -> Timing {
    let first = timed(device, round);
    let (mut previous, mut warmups) = (first, 1);
    while warmups < MAX_WARMUPS {
        let t = timed(device, round);
        warmups += 1;
        let settled = (t - previous).abs() <= 0.1 * t.max(previous);
        previous = t;
        if settled {
            break;
        }
    }
    let mut times: Vec<f64> = (0..ROUNDS).map(|_| timed(device, round)).collect();
    times.sort_by(f64::total_cmp);
    Timing { median: times[ROUNDS / 2], min: times[0], max: times[ROUNDS - 1], rounds: ROUNDS, warmups, first }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A round whose first calls are slow (as compilation makes them) is warmed up until two
    /// rounds agree, and the slow calls stay out of the median.
    #[test]
    fn slow_first_rounds_are_warmed_up_and_left_out() {
        let device = Device::flex();
        let mut calls = 0;
        let mut round = || {
            calls += 1;
            let ms = match calls {
                1 => 120,
                2 => 60,
                _ => 10,
            };
            std::thread::sleep(std::time::Duration::from_millis(ms));
        };
        let t = steady(&device, &mut round);
        assert!(t.first >= 0.12 && t.warmups >= 3, "{t:?}");
        assert!(t.median < 0.03 && t.rounds == 5 && t.spread() < 1.0, "{t:?}");
    }

    /// On wgpu (lavapipe under CI) the first product compiles its shaders: the warm-up takes it
    /// out of the median.
    #[test]
    fn on_wgpu_the_first_rounds_shader_compilation_is_left_out() {
        let Some(device) = landermt_model::Backend::Wgpu.test_device("on_wgpu_the_first_rounds_shader_compilation_is_left_out") else { return };
        use burn::tensor::{Distribution, Tensor};
        let a = Tensor::<2>::random([256, 256], Distribution::Normal(0.0, 1.0), &device);
        let b = Tensor::<2>::random([256, 256], Distribution::Normal(0.0, 1.0), &device);
        let mut round = || drop(a.clone().matmul(b.clone()).exp());
        let t = steady(&device, &mut round);
        assert!(t.first > t.median, "the cold round was not slower: {t:?}");
        assert!(t.rounds == 5 && t.min <= t.median && t.median <= t.max, "{t:?}");
    }
}
