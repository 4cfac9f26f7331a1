//! Where the model runs (`--device auto|gpu|cpu`).
//!
//! A GPU is a physical adapter reached through wgpu (Vulkan, Metal, DX12), in builds with this
//! crate's `wgpu` feature. Software adapters (Mesa's lavapipe/llvmpipe, which report
//! `DeviceType::Cpu`) are not GPUs here: burn's WGSL kernels on them are an order of magnitude
//! slower than the flex CPU backend and the first step spends minutes compiling kernels, so
//! `auto` falls back to the CPU rather than to them. The CPU is burn's pure-Rust flex backend,
//! the fastest CPU backend of burn 0.22 on LLaMA training here.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

/// Which kind of device to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// A physical GPU when this build has a GPU backend and the machine has one, else the CPU.
    Auto,
    /// A physical GPU or an error.
    Gpu,
    /// The CPU (burn's flex backend).
    Cpu,
}

impl FromStr for DeviceChoice {
    type Err = DeviceError;
    fn from_str(s: &str) -> Result<Self, DeviceError> {
        match s {
            "auto" => Ok(Self::Auto),
            "gpu" => Ok(Self::Gpu),
            "cpu" => Ok(Self::Cpu),
            other => Err(DeviceError::Unknown(other.to_string())),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Gpu => "gpu",
            Self::Cpu => "cpu",
        })
    }
}

/// Why no device of the asked kind can be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DeviceError {
    /// Not `auto`, `gpu` or `cpu`.
    #[error("unknown device {0:?}; expected auto, gpu or cpu")]
    Unknown(String),
    /// `gpu` in a build without the `wgpu` feature.
    #[error(
        "device gpu: this build has no GPU backend; build with the GPU feature \
         (`cargo build --release -p trainer --features gpu`) or use device cpu or auto"
    )]
    NoGpuBackend,
    /// `gpu` on a machine without a physical adapter.
    #[error("device gpu: wgpu found no physical GPU (adapters: {found}); use device cpu or auto")]
    NoGpu {
        /// The adapters wgpu did find, by name (software ones included), or `none`.
        found: String,
    },
}

/// A chosen device and how to describe it to the user.
#[derive(Debug, Clone)]
pub struct SelectedDevice {
    /// The plain (non-autodiff) device; call `.autodiff()` on it to train.
    pub device: Device,
    /// E.g. `gpu NVIDIA H100 (wgpu)` or `cpu (flex, 2 threads)`.
    pub description: String,
}

/// The device for `choice`: the first physical GPU wgpu reports for `auto` and `gpu` (in a build
/// with the `wgpu` feature), the flex CPU backend for `cpu` and for `auto` without a GPU.
///
/// # Errors
/// [`DeviceError::NoGpuBackend`] / [`DeviceError::NoGpu`] for `gpu` when there is none.
pub fn select_device(choice: DeviceChoice) -> Result<SelectedDevice, DeviceError> {
    if choice == DeviceChoice::Cpu {
        return Ok(cpu());
    }
    match physical_gpu() {
        Ok(gpu) => Ok(gpu),
        Err(error) if choice == DeviceChoice::Gpu => Err(error),
        Err(_) => Ok(cpu()),
    }
}

fn cpu() -> SelectedDevice {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    SelectedDevice {
        device: Device::flex(),
        description: format!("cpu (flex, {threads} threads)"),
    }
}

#[cfg(feature = "wgpu")]
fn physical_gpu() -> Result<SelectedDevice, DeviceError> {
    use burn::tensor::DeviceType;

    // Adapters without a physical card (software rasterisers) are left out by burn.
    if let Some(gpu) = Device::enumerate_physical().into_iter().next()
        && let Some(device) = gpu.devices.into_vec().into_iter().next()
    {
        return Ok(SelectedDevice {
            device,
            description: format!("gpu {} (wgpu)", gpu.name),
        });
    }
    let found: Vec<String> = Device::enumerate(DeviceType::Wgpu)
        .into_vec()
        .iter()
        .filter_map(|d| d.identity().map(|id| format!("{} (software)", id.name)))
        .collect();
    Err(DeviceError::NoGpu {
        found: if found.is_empty() {
            "none".into()
        } else {
            found.join(", ")
        },
    })
}

#[cfg(not(feature = "wgpu"))]
fn physical_gpu() -> Result<SelectedDevice, DeviceError> {
    Err(DeviceError::NoGpuBackend)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse_and_print() {
        for choice in [DeviceChoice::Auto, DeviceChoice::Gpu, DeviceChoice::Cpu] {
            assert_eq!(choice.to_string().parse::<DeviceChoice>(), Ok(choice));
        }
        assert_eq!(
            "tpu".parse::<DeviceChoice>(),
            Err(DeviceError::Unknown("tpu".into()))
        );
    }

    #[test]
    fn cpu_is_flex_and_auto_falls_back_to_it_without_a_gpu() {
        assert!(
            select_device(DeviceChoice::Cpu)
                .unwrap()
                .description
                .starts_with("cpu (flex")
        );
        #[cfg(not(feature = "wgpu"))]
        {
            assert!(
                select_device(DeviceChoice::Auto)
                    .unwrap()
                    .description
                    .starts_with("cpu (flex")
            );
            assert_eq!(
                select_device(DeviceChoice::Gpu).unwrap_err(),
                DeviceError::NoGpuBackend
            );
        }
    }
}
