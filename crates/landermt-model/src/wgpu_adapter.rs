//! Which wgpu adapter `backend = "wgpu"` runs on.
//!
//! wgpu's own default picks a "high-power" GPU and does not offer a software adapter such as
//! Mesa's lavapipe, so on a CPU-only machine the default device fails at the first kernel, with
//! a panic. We list the adapters ourselves, prefer a real GPU, fall back to a software one, and
//! say clearly when there is none. `LANDERMT_WGPU_DEVICE` names one instead.

use burn::tensor::DeviceKind;

use crate::{ModelError, Result};

/// The variable that names an adapter kind: `discrete`, `integrated`, `virtual` or `cpu`,
/// optionally with an index among the adapters of that kind (`discrete:1`).
pub const ENV: &str = "LANDERMT_WGPU_DEVICE";

/// The adapter wgpu will run on, logged once with its name and driver.
pub fn device_kind() -> Result<DeviceKind> {
    let adapters = adapters();
    let named = std::env::var(ENV).ok();
    let kind = match &named {
        Some(named) => parse(named)?,
        None => preferred(adapters).ok_or_else(no_adapter)?,
    };
    // Always found for the preferred kind; a named one may be absent.
    let Some(chosen) = adapters.iter().filter(|a| matches(a.device_type, &kind)).nth(index(&kind)) else {
        let found: Vec<String> = adapters.iter().map(|a| format!("{} ({:?})", a.name, a.device_type)).collect();
        let found = if found.is_empty() { "none".into() } else { found.join(", ") };
        return Err(ModelError::Input(format!("{ENV}={} names no adapter of this machine; it has: {found}", named.unwrap_or_default())));
    };
    static LOGGED: std::sync::Once = std::sync::Once::new();
    LOGGED.call_once(|| tracing::info!(adapter = %chosen.name, driver = %chosen.driver, api = ?chosen.backend, "wgpu adapter"));
    Ok(kind)
}

fn index(kind: &DeviceKind) -> usize {
    match kind {
        DeviceKind::DiscreteGpu(i) | DeviceKind::IntegratedGpu(i) | DeviceKind::VirtualGpu(i) => *i,
        _ => 0,
    }
}

/// The adapters of the primary graphics APIs (Vulkan, Metal, DX12; OpenGL's EGL probing prints
/// errors on a headless machine). An API whose driver is missing (no `libvulkan.so`) lists
/// nothing rather than failing. Listed once per process: each listing creates an instance and
/// probes every driver.
fn adapters() -> &'static [wgpu::AdapterInfo] {
    static ADAPTERS: std::sync::OnceLock<Vec<wgpu::AdapterInfo>> = std::sync::OnceLock::new();
    ADAPTERS.get_or_init(|| {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor { backends: wgpu::Backends::PRIMARY, ..wgpu::InstanceDescriptor::new_without_display_handle() });
        futures_lite::future::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY)).iter().map(wgpu::Adapter::get_info).collect()
    })
}

/// A discrete GPU, else an integrated or virtual one, else a software (CPU) adapter.
fn preferred(adapters: &[wgpu::AdapterInfo]) -> Option<DeviceKind> {
    use wgpu::DeviceType as T;
    let order = [(T::DiscreteGpu, DeviceKind::DiscreteGpu(0)), (T::IntegratedGpu, DeviceKind::IntegratedGpu(0)), (T::VirtualGpu, DeviceKind::VirtualGpu(0)), (T::Cpu, DeviceKind::Cpu)];
    order.into_iter().find(|(t, _)| adapters.iter().any(|a| a.device_type == *t)).map(|(_, kind)| kind)
}

fn matches(device_type: wgpu::DeviceType, kind: &DeviceKind) -> bool {
    use wgpu::DeviceType as T;
    matches!(
        (device_type, kind),
        (T::DiscreteGpu, DeviceKind::DiscreteGpu(_)) | (T::IntegratedGpu, DeviceKind::IntegratedGpu(_)) | (T::VirtualGpu, DeviceKind::VirtualGpu(_)) | (T::Cpu, DeviceKind::Cpu)
    )
}

/// `discrete`, `integrated:1`, `cpu`, …
pub fn parse(named: &str) -> Result<DeviceKind> {
    let (kind, index) = named.split_once(':').unwrap_or((named, "0"));
    let index: usize = index.parse().map_err(|_| ModelError::Input(format!("{ENV}={named}: the index after `:` must be a number")))?;
    match kind {
        "discrete" => Ok(DeviceKind::DiscreteGpu(index)),
        "integrated" => Ok(DeviceKind::IntegratedGpu(index)),
        "virtual" => Ok(DeviceKind::VirtualGpu(index)),
        "cpu" if index == 0 => Ok(DeviceKind::Cpu),
        _ => Err(ModelError::Input(format!("{ENV}={named}: expected discrete, integrated, virtual or cpu, optionally with `:N`"))),
    }
}

fn no_adapter() -> ModelError {
    ModelError::Input(
        "backend `wgpu`: no GPU or software adapter found (is a Vulkan driver installed? On a CPU-only Debian or Ubuntu machine: `apt install mesa-vulkan-drivers libvulkan1` gives lavapipe); or use backend = \"flex\"".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapter_names_parse_and_bad_ones_are_refused() {
        assert_eq!(parse("discrete").unwrap(), DeviceKind::DiscreteGpu(0));
        assert_eq!(parse("integrated:2").unwrap(), DeviceKind::IntegratedGpu(2));
        assert_eq!(parse("cpu").unwrap(), DeviceKind::Cpu);
        for bad in ["gpu", "discrete:x", "cpu:1", ""] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(ENV), "{bad}: {e}");
        }
    }
}
