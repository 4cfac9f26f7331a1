//! Where the model runs (`--device auto|gpu|cuda|wgpu|cpu`).
//!
//! Three backends, all burn's, chosen at run time through one [`Device`] type:
//! - **CUDA** (this crate's `cuda` feature): burn's cubecl backend on NVIDIA GPUs, kernels
//!   compiled by NVRTC, tensor cores for f16/bf16 products. The build needs no CUDA toolkit:
//!   cudarc (`fallback-dynamic-loading`) opens the driver (`libcuda.so`, `libcuda.so.1`) and
//!   NVRTC (`libnvrtc.so`, `libnvrtc.so.12`, ...: `cudarc::get_lib_name_candidates`) when a
//!   device is first used, NCCL (`libnccl.so`) only for collectives, and cubecl-cuda passes
//!   the CUDA headers under `$CUDA_PATH/include` (else `/usr/local/cuda`, `/opt/cuda`, or
//!   `/usr` when `/usr/bin/nvcc` exists: `cubecl_cuda::install::cuda_path`) to NVRTC.
//! - **wgpu** (`wgpu` feature): the same cubecl backend over Vulkan, Metal or DX12, for any
//!   GPU. Software adapters (Mesa's lavapipe/llvmpipe, which report no physical card) are not
//!   GPUs here: burn's kernels on them are an order of magnitude slower than the flex CPU
//!   backend and the first step spends minutes compiling kernels.
//! - **flex**: burn's pure-Rust CPU backend, the fastest CPU backend of burn 0.22 on LLaMA
//!   training here.
//!
//! `auto` and `gpu` prefer CUDA (on an NVIDIA GPU, CUDA's kernels use tensor cores and launch
//! about 60 times faster than wgpu's, burn issue #3317), then a physical wgpu adapter; `auto`
//! falls back to flex, `gpu` fails.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use burn::tensor::Device;

/// Which kind of device to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The first of CUDA, a physical wgpu GPU and the CPU that this build and machine have.
    Auto,
    /// CUDA, else a physical wgpu GPU, else an error.
    Gpu,
    /// An NVIDIA GPU through CUDA or an error.
    Cuda,
    /// A physical GPU through wgpu or an error.
    Wgpu,
    /// The CPU (burn's flex backend).
    Cpu,
}

impl DeviceChoice {
    /// Every choice, as the config and the command line spell them.
    pub const ALL: [DeviceChoice; 5] = [Self::Auto, Self::Gpu, Self::Cuda, Self::Wgpu, Self::Cpu];

    /// `auto`, `gpu`, `cuda`, `wgpu` or `cpu`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Gpu => "gpu",
            Self::Cuda => "cuda",
            Self::Wgpu => "wgpu",
            Self::Cpu => "cpu",
        }
    }
}

impl FromStr for DeviceChoice {
    type Err = DeviceError;
    fn from_str(s: &str) -> Result<Self, DeviceError> {
        Self::ALL
            .into_iter()
            .find(|choice| choice.name() == s)
            .ok_or_else(|| DeviceError::Unknown(s.to_string()))
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The backend a [`SelectedDevice`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// burn's cubecl backend on CUDA.
    Cuda,
    /// burn's cubecl backend on wgpu.
    Wgpu,
    /// burn's flex CPU backend.
    Flex,
}

impl BackendKind {
    /// Whether this is a GPU backend (cubecl): kernels compiled and tuned per shape, so the
    /// trainer pads batches to fixed shapes ([`crate::shapes`]) and may compute in bf16.
    pub fn is_gpu(self) -> bool {
        self != Self::Flex
    }

    /// `cuda`, `wgpu` or `flex`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cuda => "cuda",
            Self::Wgpu => "wgpu",
            Self::Flex => "flex",
        }
    }
}

/// Why no device of the asked kind can be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DeviceError {
    /// Not one of [`DeviceChoice::ALL`].
    #[error("unknown device {0:?}; expected auto, gpu, cuda, wgpu or cpu")]
    Unknown(String),
    /// A GPU backend asked of a build without it.
    #[error(
        "device {choice}: this build has no {backend} backend; build with \
         `cargo build --release -p trainer --features {feature}`, or use device cpu or auto"
    )]
    NotBuilt {
        /// The choice as given.
        choice: DeviceChoice,
        /// `CUDA`, `wgpu` or `GPU`.
        backend: &'static str,
        /// The trainer's cargo feature that adds it.
        feature: &'static str,
    },
    /// `cuda` (or `gpu`) where the CUDA driver library cannot be opened or reports no GPU.
    #[error("device {choice}: no CUDA GPU: {reason}; use device wgpu, cpu or auto")]
    NoCuda {
        /// The choice as given.
        choice: DeviceChoice,
        /// The driver's answer, e.g. `libcuda.so not found (is the NVIDIA driver installed?)`.
        reason: String,
    },
    /// `wgpu` (or `gpu`) on a machine without a physical adapter.
    #[error(
        "device {choice}: wgpu found no physical GPU (adapters: {found}); use device cpu or auto"
    )]
    NoWgpu {
        /// The choice as given.
        choice: DeviceChoice,
        /// The adapters wgpu did find, by name (software ones included), or `none`.
        found: String,
    },
}

/// A chosen device and how to describe it to the user.
#[derive(Debug, Clone)]
pub struct SelectedDevice {
    /// The plain (non-autodiff) device; call `.autodiff()` on it to train.
    pub device: Device,
    /// The backend behind `device`.
    pub backend: BackendKind,
    /// E.g. `gpu NVIDIA H100 (cuda)` or `cpu (flex, 2 threads)`.
    pub description: String,
}

/// The device for `choice` (module docs: CUDA before wgpu before flex).
///
/// # Errors
/// [`DeviceError::NotBuilt`], [`DeviceError::NoCuda`] or [`DeviceError::NoWgpu`] when the
/// asked GPU backend is not in this build or finds no GPU; `auto` never fails.
pub fn select_device(choice: DeviceChoice) -> Result<SelectedDevice, DeviceError> {
    match choice {
        DeviceChoice::Cpu => Ok(cpu()),
        DeviceChoice::Cuda => cuda(choice),
        DeviceChoice::Wgpu => wgpu(choice),
        DeviceChoice::Gpu | DeviceChoice::Auto => {
            let gpu = cuda(choice).or_else(|cuda_error| {
                wgpu(choice).map_err(|wgpu_error| telling_error(cuda_error, wgpu_error))
            });
            match gpu {
                Err(_) if choice == DeviceChoice::Auto => Ok(cpu()),
                gpu => gpu,
            }
        }
    }
}

/// Why neither CUDA nor wgpu gave a GPU: the error of a backend this build has (it says why
/// the machine has no such GPU) before one about a backend left out of the build, and for a
/// build with neither, one error naming both features.
fn telling_error(cuda: DeviceError, wgpu: DeviceError) -> DeviceError {
    match (cuda, wgpu) {
        (DeviceError::NotBuilt { choice, .. }, DeviceError::NotBuilt { .. }) => {
            DeviceError::NotBuilt {
                choice,
                backend: "GPU",
                feature: "cuda (NVIDIA) or gpu (wgpu)",
            }
        }
        (DeviceError::NotBuilt { .. }, wgpu) => wgpu,
        (cuda, _) => cuda,
    }
}

fn cpu() -> SelectedDevice {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    SelectedDevice {
        device: Device::flex(),
        backend: BackendKind::Flex,
        description: format!("cpu (flex, {threads} threads)"),
    }
}

/// The first CUDA device, after checking that the driver library opens and reports a GPU
/// (cubecl-cuda panics where it does not).
#[cfg(feature = "cuda")]
fn cuda(choice: DeviceChoice) -> Result<SelectedDevice, DeviceError> {
    use cudarc::driver::{result, sys};

    let no_cuda = |reason: String| DeviceError::NoCuda { choice, reason };
    // SAFETY: only tries to open the library by its usual names; nothing of it is called.
    if !unsafe { sys::is_culib_present() } {
        return Err(no_cuda(
            "libcuda.so not found (is the NVIDIA driver installed?)".into(),
        ));
    }
    result::init().map_err(|e| no_cuda(format!("cuInit failed: {e}")))?;
    let count = result::device::get_count()
        .map_err(|e| no_cuda(format!("cuDeviceGetCount failed: {e}")))?;
    if count < 1 {
        return Err(no_cuda("the driver reports no device".into()));
    }
    // cubecl-cuda panics at its first kernel compilation without the headers.
    if burn::cubecl::cuda::install::cuda_path().is_none() {
        return Err(no_cuda(
            "no CUDA headers for NVRTC (set CUDA_PATH to a folder with include/cuda.h, \
             else /usr/local/cuda or /opt/cuda is read)"
                .into(),
        ));
    }
    let device = Device::cuda(0);
    let name = device
        .identity()
        .map_or_else(|| "CUDA device 0".to_string(), |id| id.name);
    Ok(SelectedDevice {
        device,
        backend: BackendKind::Cuda,
        description: format!("gpu {name} (cuda)"),
    })
}

#[cfg(not(feature = "cuda"))]
fn cuda(choice: DeviceChoice) -> Result<SelectedDevice, DeviceError> {
    Err(DeviceError::NotBuilt {
        choice,
        backend: "CUDA",
        feature: "cuda",
    })
}

/// The first wgpu adapter on a physical card (burn reports none for software rasterisers).
#[cfg(feature = "wgpu")]
fn wgpu(choice: DeviceChoice) -> Result<SelectedDevice, DeviceError> {
    use burn::tensor::DeviceType;

    let adapters: Vec<_> = Device::enumerate(DeviceType::Wgpu)
        .into_iter()
        .map(|device| {
            let identity = device.identity();
            (device, identity)
        })
        .collect();
    if let Some((device, Some(identity))) = adapters
        .iter()
        .find(|(_, id)| id.as_ref().is_some_and(|id| id.physical.is_some()))
    {
        return Ok(SelectedDevice {
            device: device.clone(),
            backend: BackendKind::Wgpu,
            description: format!("gpu {} (wgpu)", identity.name),
        });
    }
    let found: Vec<String> = adapters
        .iter()
        .filter_map(|(_, id)| id.as_ref().map(|id| format!("{} (software)", id.name)))
        .collect();
    Err(DeviceError::NoWgpu {
        choice,
        found: if found.is_empty() {
            "none".into()
        } else {
            found.join(", ")
        },
    })
}

#[cfg(not(feature = "wgpu"))]
fn wgpu(choice: DeviceChoice) -> Result<SelectedDevice, DeviceError> {
    Err(DeviceError::NotBuilt {
        choice,
        backend: "wgpu",
        feature: "gpu",
    })
}

/// Keeps cubecl's store of autotune results and compiled kernels in `dir` (created if
/// missing): `dir/default.db`, read and extended by every later process pointed at the same
/// folder, so a run's second stage, a resumed run or the next run with the same folder skips
/// the tuning and compilation of the shapes it has already met. Without this, cubecl keeps
/// the store under the outermost `Cargo.toml` above the working directory (`target/`), or in
/// the user's cache folder. Call it before the first GPU operation; does nothing in builds
/// without a GPU backend, where there is no such store.
///
/// # Errors
/// The folder cannot be created.
pub fn use_kernel_cache(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(feature = "cube")]
    burn::cubecl::environment::set_root(dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse_and_print() {
        for choice in DeviceChoice::ALL {
            assert_eq!(choice.to_string().parse::<DeviceChoice>(), Ok(choice));
        }
        assert_eq!(
            "tpu".parse::<DeviceChoice>(),
            Err(DeviceError::Unknown("tpu".into()))
        );
    }

    fn not_built(backend: &'static str) -> DeviceError {
        DeviceError::NotBuilt {
            choice: DeviceChoice::Gpu,
            backend,
            feature: "x",
        }
    }

    #[test]
    fn the_telling_error_is_kept() {
        let no_cuda = || DeviceError::NoCuda {
            choice: DeviceChoice::Gpu,
            reason: "libcuda.so not found".into(),
        };
        let no_wgpu = || DeviceError::NoWgpu {
            choice: DeviceChoice::Gpu,
            found: "none".into(),
        };
        // A cuda build on a machine without the driver says so, not that wgpu is missing.
        assert_eq!(telling_error(no_cuda(), not_built("wgpu")), no_cuda());
        assert_eq!(telling_error(not_built("CUDA"), no_wgpu()), no_wgpu());
        assert_eq!(telling_error(no_cuda(), no_wgpu()), no_cuda());
        let neither = telling_error(not_built("CUDA"), not_built("wgpu"));
        assert!(
            neither
                .to_string()
                .contains("--features cuda (NVIDIA) or gpu (wgpu)"),
            "{neither}"
        );
    }

    #[test]
    fn cpu_is_flex_and_auto_falls_back_to_it_without_a_gpu() {
        let cpu = select_device(DeviceChoice::Cpu).unwrap();
        assert!(cpu.description.starts_with("cpu (flex"));
        assert_eq!(cpu.backend, BackendKind::Flex);
        #[cfg(not(feature = "cube"))]
        {
            assert_eq!(
                select_device(DeviceChoice::Auto).unwrap().backend,
                BackendKind::Flex
            );
            assert!(matches!(
                select_device(DeviceChoice::Cuda).unwrap_err(),
                DeviceError::NotBuilt {
                    backend: "CUDA",
                    ..
                }
            ));
            assert!(matches!(
                select_device(DeviceChoice::Gpu).unwrap_err(),
                DeviceError::NotBuilt { backend: "GPU", .. }
            ));
        }
    }

    /// A CUDA build on a machine without the NVIDIA driver (CI's): `cuda` fails with the
    /// reason and `auto` takes the CPU, instead of cubecl-cuda's panic.
    #[cfg(feature = "cuda")]
    #[test]
    fn a_cuda_build_without_the_driver_falls_back_to_the_cpu() {
        // SAFETY: as in `cuda`.
        if unsafe { cudarc::driver::sys::is_culib_present() } {
            eprintln!(
                "skipped: llama::device::tests::a_cuda_build_without_the_driver_falls_back_to_the_cpu \
                 (this machine has libcuda)"
            );
            return;
        }
        let error = select_device(DeviceChoice::Cuda).unwrap_err();
        assert!(
            error.to_string().contains("libcuda.so not found"),
            "{error}"
        );
        #[cfg(not(feature = "wgpu"))]
        assert_eq!(
            select_device(DeviceChoice::Auto).unwrap().backend,
            BackendKind::Flex
        );
    }
}
