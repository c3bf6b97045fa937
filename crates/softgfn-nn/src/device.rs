//! Where tensors live.

use std::fmt;
use std::str::FromStr;

use crate::NnError;

/// Where a model's tensors live and its kernels run.
///
/// Only [`Device::Cpu`] is compiled in today; [`Device::Cuda`] exists so that configurations can
/// already name it. In text (CLI flags, config files, serde) a device is written `cpu`, `cuda`
/// (meaning `cuda:0`) or `cuda:<index>`.
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
    /// CUDA device, since CUDA support is not compiled in (the message says to rebuild with
    /// `--features cuda`).
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

    /// Ok when the device can be used by this build.
    pub(crate) fn check_available(&self) -> Result<(), NnError> {
        match self {
            Device::Cpu => Ok(()),
            Device::Cuda(_) => Err(NnError::DeviceUnavailable {
                requested: self.to_string(),
                reason: "cuda support is not compiled into this build of softgfn; rebuild with \
                         `--features cuda` or use `cpu`"
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
