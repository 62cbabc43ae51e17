//! The GPU kernels a pass issues, counted by name (cubecl's launch observer). On a GPU a
//! kernel launch costs microseconds whatever it computes, so a training step of many small
//! kernels is slow however little arithmetic it does: this is how the GPU bench and the tests
//! see that. A build without `wgpu` or `cuda` launches no GPU kernel, and counts none.

use std::collections::BTreeMap;

/// Launches per kernel name (shortened the way cubecl's profiling log does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Launches(pub BTreeMap<String, usize>);

impl Launches {
    pub fn total(&self) -> usize {
        self.0.values().sum()
    }
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
#[derive(Default)]
struct Count(std::sync::Mutex<BTreeMap<&'static str, usize>>);

#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl cubecl_runtime::logging::LaunchObserver for Count {
    fn launched(&self, kernel: &'static str) {
        *self.0.lock().expect("not poisoned").entry(kernel).or_default() += 1;
    }
}

/// `f()`, and the kernels issued while it ran, on every thread and device of the process (the
/// observer is process-wide: count in a process, or a test binary, that runs nothing else at
/// the same time). `device` is synchronised first and last, so that with fusion the launches
/// of operations queued before `f` are left out and those `f` queued are counted.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub fn counted<R>(device: &burn::tensor::Device, f: impl FnOnce() -> R) -> (R, Launches) {
    let _ = device.sync();
    let count = std::sync::Arc::new(Count::default());
    let watching = cubecl_runtime::logging::LaunchObservation::new(count.clone());
    let out = f();
    let _ = device.sync();
    drop(watching);
    let by_name = count.0.lock().expect("not poisoned").iter().map(|(k, v)| (short(k), *v)).fold(BTreeMap::new(), |mut m, (k, v)| {
        *m.entry(k).or_insert(0) += v;
        m
    });
    (out, Launches(by_name))
}

/// `f()`; a build without a GPU backend has no kernels to count.
#[cfg(not(any(feature = "wgpu", feature = "cuda")))]
pub fn counted<R>(_device: &burn::tensor::Device, f: impl FnOnce() -> R) -> (R, Launches) {
    (f(), Launches::default())
}

/// A kernel's type name without its module paths and generic arguments.
#[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code))]
fn short(name: &str) -> String {
    let base = name.split('<').next().unwrap_or(name);
    base.rsplit("::").next().unwrap_or(base).to_string()
}

#[cfg(test)]
mod tests {
    use super::short;

    #[test]
    fn names_lose_their_paths_and_generics() {
        assert_eq!(short("burn_cubecl::kernel::binary::BinaryOp<f32, Add>"), "BinaryOp");
        assert_eq!(short("matmul"), "matmul");
    }
}
