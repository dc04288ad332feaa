//! Where models run: `cpu` (the default) or `cuda` / `cuda:N` in a build with the `cuda` feature.
//!
//! Each `candle_core::Device::new_cuda` call opens a device with its own stream, and tensors of two
//! such devices do not mix, so every model of a process that names `cuda:N` (the fine-tuned one
//! and its base for KL, the two sides of a compare) gets the one [`Device`] opened for `N`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use candle_core::Device;
use serde::{Deserialize, Serialize};

/// A device named on the command line, in a config file or in `SFT_EVAL_DEVICE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum DeviceSpec {
    #[default]
    Cpu,
    /// CUDA device ordinal
    Cuda(usize),
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("device `{0}`: expected cpu, cuda or cuda:N (N a GPU ordinal)")]
    Parse(String),
    #[error(
        "device `{0}`: this sft-eval was built without the `cuda` feature (build it with \
         `cargo build --release --features cuda`; it needs the CUDA toolkit's nvcc)"
    )]
    NotBuilt(DeviceSpec),
    #[error("device `{spec}`: {source}")]
    Open {
        spec: DeviceSpec,
        source: candle_core::Error,
    },
}

impl DeviceSpec {
    pub fn is_cpu(&self) -> bool {
        *self == DeviceSpec::Cpu
    }

    /// The device, opened once per process for each CUDA ordinal.
    pub fn open(&self) -> Result<Device, DeviceError> {
        let ordinal = match *self {
            DeviceSpec::Cpu => return Ok(Device::Cpu),
            DeviceSpec::Cuda(n) => n,
        };
        if !cfg!(feature = "cuda") {
            return Err(DeviceError::NotBuilt(*self));
        }
        static OPEN: Mutex<BTreeMap<usize, Device>> = Mutex::new(BTreeMap::new());
        let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = open.get(&ordinal) {
            return Ok(d.clone());
        }
        let d = Device::new_cuda(ordinal).map_err(|source| DeviceError::Open {
            spec: *self,
            source,
        })?;
        open.insert(ordinal, d.clone());
        Ok(d)
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => t
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(|| DeviceError::Parse(s.to_string())),
        }
    }
}

impl Serialize for DeviceSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeviceSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for (text, spec) in [
            ("cpu", DeviceSpec::Cpu),
            ("CPU", DeviceSpec::Cpu),
            ("cuda", DeviceSpec::Cuda(0)),
            ("cuda:1", DeviceSpec::Cuda(1)),
        ] {
            assert_eq!(text.parse::<DeviceSpec>().unwrap(), spec);
        }
        assert_eq!(DeviceSpec::Cuda(0).to_string(), "cuda:0");
        assert_eq!(DeviceSpec::Cpu.to_string(), "cpu");
        for bad in ["", "cuda:", "cuda:x", "metal", "cuda:-1"] {
            let e = bad.parse::<DeviceSpec>().unwrap_err().to_string();
            assert!(e.contains("expected cpu, cuda or cuda:N"), "{bad}: {e}");
        }
        let json = serde_json::to_string(&DeviceSpec::Cuda(2)).unwrap();
        assert_eq!(json, "\"cuda:2\"");
        assert_eq!(
            serde_json::from_str::<DeviceSpec>(&json).unwrap(),
            DeviceSpec::Cuda(2)
        );
    }

    #[test]
    fn cpu_opens_everywhere_and_cuda_needs_the_feature() {
        assert!(DeviceSpec::Cpu.open().unwrap().is_cpu());
        if !cfg!(feature = "cuda") {
            let e = DeviceSpec::Cuda(0).open().unwrap_err().to_string();
            assert!(e.contains("without the `cuda` feature"), "{e}");
        }
    }
}
