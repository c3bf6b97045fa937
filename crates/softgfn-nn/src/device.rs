//! Where tensors live.

use std::fmt;
use std::str::FromStr;

use crate::NnError;

/// Where a model's tensors live and its kernels run.
///
/// [`Device::Cpu`] is always available. [`Device::Cuda`] needs a build with the `cuda` cargo
/// feature (`cargo build --release -p softgfn-cli --features cuda`), the NVIDIA driver and a GPU
/// with that ordinal; a CPU-only build can still name it (e.g. in a config file) and reports
/// [`NnError::DeviceUnavailable`] when it is used. In text (CLI flags, config files, serde) a
/// device is written `cpu`, `cuda` (meaning `cuda:0`) or `cuda:<index>`.
///
/// Serde uses that text form. Deserializing only checks the syntax, so a config file naming a
/// CUDA device can still be read by a CPU-only build; [`Device::parse`] and
/// [`Model::mlp`](crate::Model::mlp) check that the device is actually available.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(into = "String", try_from = "String")]
pub enum Device {
    /// The host CPU (dfdx's `Cpu` device; matmuls use rayon's global thread pool).
    #[default]
    Cpu,
    /// A CUDA GPU, by ordinal.
    Cuda(usize),
}

impl Device {
    /// Parses `cpu`, `cuda` or `cuda:<index>` (case-insensitive, surrounding spaces ignored) and
    /// checks that the device is usable in this build.
    ///
    /// # Errors
    /// [`NnError::UnknownDevice`] for any other string; [`NnError::DeviceUnavailable`] for a
    /// CUDA device that this build cannot use: without the `cuda` feature the message says how to
    /// rebuild (`--features cuda`); with it, it says why the driver or the ordinal is unusable.
    pub fn parse(s: &str) -> Result<Device, NnError> {
        let device = Self::parse_syntax(s)?;
        device.check_available()?;
        Ok(device)
    }

    /// Whether this build can run models on this device.
    pub fn is_available(&self) -> bool {
        self.check_available().is_ok()
    }

    /// Parses the text form without checking availability.
    fn parse_syntax(s: &str) -> Result<Device, NnError> {
        let lower = s.trim().to_ascii_lowercase();
        let unknown = || NnError::UnknownDevice {
            input: s.to_string(),
        };
        match lower.as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            other => {
                let index = other.strip_prefix("cuda:").ok_or_else(unknown)?;
                if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(unknown());
                }
                index
                    .parse::<usize>()
                    .map(Device::Cuda)
                    .map_err(|_| unknown())
            }
        }
    }

    /// Ok when the device can be used by this build (and, for CUDA, on this machine).
    pub(crate) fn check_available(&self) -> Result<(), NnError> {
        match self {
            Device::Cpu => Ok(()),
            #[cfg(feature = "cuda")]
            Device::Cuda(ordinal) => {
                cuda_probe::check(*ordinal).map_err(|reason| NnError::DeviceUnavailable {
                    requested: self.to_string(),
                    reason,
                })
            }
            #[cfg(not(feature = "cuda"))]
            Device::Cuda(_) => Err(NnError::DeviceUnavailable {
                requested: self.to_string(),
                reason: "cuda support is not compiled into this build of softgfn; rebuild with \
                         `--features cuda` (`cargo build --release -p softgfn-cli --features \
                         cuda`, which needs the CUDA toolkit) or use `cpu`"
                    .to_string(),
            }),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl FromStr for Device {
    type Err = NnError;

    /// Same as [`Device::parse`] (checks availability).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Device::parse(s)
    }
}

impl From<Device> for String {
    fn from(d: Device) -> String {
        d.to_string()
    }
}

impl TryFrom<String> for Device {
    type Error = NnError;

    /// Syntax-only parse used by serde: accepts `cuda:<index>` even in a CPU-only build.
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Device::parse_syntax(&s)
    }
}

/// Evaluates `$body` with `$dev` bound to the dfdx device of `$device` (a [`Device`] that passed
/// [`Device::check_available`]); the body must produce the same type for every device. This is
/// the one place that maps a [`Device`] to a dfdx device type.
macro_rules! with_device {
    ($device:expr, $dev:ident => $body:expr) => {
        match $device {
            $crate::Device::Cpu => {
                let $dev = dfdx::tensor::Cpu::default();
                $body
            }
            #[cfg(feature = "cuda")]
            $crate::Device::Cuda(ordinal) => {
                let $dev = $crate::device::cuda_device(ordinal)?;
                $body
            }
            #[cfg(not(feature = "cuda"))]
            other @ $crate::Device::Cuda(_) => {
                other.check_available()?;
                return Err($crate::NnError::Backend("cuda backend missing".into()));
            }
        }
    };
}
pub(crate) use with_device;

/// The dfdx CUDA device for `ordinal`, after [`cuda_probe::check`] has made sure that the driver
/// loads and the ordinal exists (dfdx 0.13's `Cuda::try_build` panics instead of returning an
/// error in those two cases).
#[cfg(feature = "cuda")]
pub(crate) fn cuda_device(ordinal: usize) -> Result<dfdx::tensor::Cuda, NnError> {
    let unavailable = |reason: String| NnError::DeviceUnavailable {
        requested: Device::Cuda(ordinal).to_string(),
        reason,
    };
    cuda_probe::check(ordinal).map_err(unavailable)?;
    // The seed only feeds dfdx's on-device random ops, which softgfn does not use (parameters
    // are initialized on the host).
    dfdx::tensor::Cuda::try_build(ordinal, 0).map_err(|e| {
        unavailable(format!(
            "the CUDA driver found the GPU but could not set it up ({e}); this usually means \
             the GPU is out of memory or in exclusive use by another process (check \
             `nvidia-smi`), or that the CUDA libraries (cuBLAS) do not match the driver"
        ))
    })
}

/// `Send`/`Sync` of the networks in a CUDA build.
///
/// dfdx 0.13's `Cuda` device, and so every tensor and network on it, is neither `Send` nor
/// `Sync` only because cudarc 0.9's `CudaStream` (dfdx keeps one as `Cuda::par_stream`) holds a
/// raw `CUstream` without the `Send`/`Sync` impls that cudarc gives its `CudaDevice`,
/// `CudaSlice`, `CudaFunction` and `CudaBlas` (later cudarc versions add them). An explicit impl
/// for `NetBackend<Cuda>` switches off the automatic ones of every `NetBackend<D>`, so the CPU
/// backend's are restated here too.
#[cfg(feature = "cuda")]
#[allow(unsafe_code)]
mod thread_safety {
    use crate::backend::NetBackend;
    use dfdx::tensor::{Cpu, Cuda};

    // SAFETY: a CUDA stream handle may be used from any thread: the driver API is thread-safe,
    // and cudarc binds the device's context to the calling thread before each call. The rest of
    // the backend is `Send + Sync` (the dfdx tapes, which are not, never live in it; see
    // `graph_slot` in backend.rs).
    unsafe impl Send for NetBackend<Cuda> {}
    // SAFETY: as for `Send`; `&self` methods only read tensors and enqueue work on the device,
    // whose shared state (allocation cache, workspace) dfdx guards with locks.
    unsafe impl Sync for NetBackend<Cuda> {}
    // SAFETY: these are the impls the compiler derives for `NetBackend<Cpu>` in a build without
    // the `cuda` feature (where it checks them: `Model` must be `Send + Sync`).
    unsafe impl Send for NetBackend<Cpu> {}
    // SAFETY: as above.
    unsafe impl Sync for NetBackend<Cpu> {}
}

/// Minimal direct use of the CUDA driver API, to report a missing GPU, a missing or stub driver
/// or an out-of-range ordinal as an error (cudarc 0.9, under dfdx 0.13, `unwrap`s these).
///
/// The CUDA build links `libcuda.so.1` (the driver library) at load time, so when this code
/// runs the library is present; it may still be the toolkit's stub, or find no GPU.
#[cfg(feature = "cuda")]
#[allow(unsafe_code)]
mod cuda_probe {
    use std::ffi::c_int;
    use std::sync::OnceLock;

    // The driver API entry points used here (cuda.h); `CUresult` is a C enum, i.e. an `int`.
    #[link(name = "cuda")]
    unsafe extern "C" {
        fn cuInit(flags: u32) -> c_int;
        fn cuDeviceGetCount(count: *mut c_int) -> c_int;
    }

    /// Number of CUDA devices, or why the driver cannot be used (probed once per process).
    fn device_count() -> &'static Result<usize, String> {
        static COUNT: OnceLock<Result<usize, String>> = OnceLock::new();
        COUNT.get_or_init(|| {
            // SAFETY: `cuInit` takes a flags word (must be 0) and is thread-safe.
            let rc = unsafe { cuInit(0) };
            if rc != 0 {
                return Err(init_failure(rc));
            }
            let mut count: c_int = 0;
            // SAFETY: `count` is a valid, writable `int` for the duration of the call.
            let rc = unsafe { cuDeviceGetCount(&mut count) };
            if rc != 0 {
                return Err(format!(
                    "the CUDA driver could not count the GPUs ({}); check `nvidia-smi`",
                    describe(rc)
                ));
            }
            Ok(usize::try_from(count).unwrap_or(0))
        })
    }

    /// Ok when `cuda:<ordinal>` can be opened; otherwise a user-facing reason.
    pub(super) fn check(ordinal: usize) -> Result<(), String> {
        let count = device_count().clone()?;
        if count == 0 {
            return Err("the CUDA driver loaded but reports no GPU (check `nvidia-smi`)".into());
        }
        if ordinal >= count {
            return Err(format!(
                "this machine has {count} CUDA device{} (`cuda:0`{}); there is no `cuda:{ordinal}`",
                if count == 1 { "" } else { "s" },
                if count == 1 {
                    String::new()
                } else {
                    format!(" to `cuda:{}`", count - 1)
                }
            ));
        }
        Ok(())
    }

    /// Why `cuInit` failed, with what to do about it.
    fn init_failure(rc: c_int) -> String {
        let hint = match rc {
            100 => "no CUDA-capable GPU was found on this machine (check `nvidia-smi`); use `cpu`"
                .to_string(),
            34 => "the `libcuda.so.1` that was loaded is the CUDA toolkit's link-time stub, not \
                   the NVIDIA driver; install the NVIDIA driver, or remove the `stubs` folder \
                   from `LD_LIBRARY_PATH`"
                .to_string(),
            46 => "every GPU is busy or in exclusive-process mode (check `nvidia-smi`); use \
                   `cpu` or wait"
                .to_string(),
            803 => "the NVIDIA kernel module and the user-space driver library have different \
                    versions (typically after a driver update without a reboot)"
                .to_string(),
            _ => "the CUDA driver could not be initialized; check that the NVIDIA driver is \
                  installed and a GPU is visible (`nvidia-smi`)"
                .to_string(),
        };
        format!(
            "{hint} [cuInit: {}]. This build of softgfn has CUDA support compiled in and links \
             the CUDA libraries (driver, cuBLAS, NVRTC); `cpu` works without a GPU",
            describe(rc)
        )
    }

    /// `NAME (code)` for the `CUresult` codes users are likely to meet.
    fn describe(rc: c_int) -> String {
        let name = match rc {
            1 => "CUDA_ERROR_INVALID_VALUE",
            2 => "CUDA_ERROR_OUT_OF_MEMORY",
            3 => "CUDA_ERROR_NOT_INITIALIZED",
            4 => "CUDA_ERROR_DEINITIALIZED",
            34 => "CUDA_ERROR_STUB_LIBRARY",
            46 => "CUDA_ERROR_DEVICE_UNAVAILABLE",
            100 => "CUDA_ERROR_NO_DEVICE",
            101 => "CUDA_ERROR_INVALID_DEVICE",
            304 => "CUDA_ERROR_OPERATING_SYSTEM",
            803 => "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH",
            804 => "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE",
            999 => "CUDA_ERROR_UNKNOWN",
            _ => "CUresult",
        };
        format!("{name} ({rc})")
    }
}
