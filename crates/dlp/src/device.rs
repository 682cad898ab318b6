//! The `device:` and `threads:` settings.

use candle_core::Device;

/// A device named in the config (`device:`), parsed once when the config is read and
/// written back as the same word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceSpec {
    /// The CPU.
    #[default]
    Cpu,
    /// CUDA GPU number `n`.
    Cuda(usize),
    /// The Metal GPU.
    Metal,
}

/// A `device:` value that names no device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected cpu, cuda, cuda:<n> or metal, got {0:?}")]
pub struct UnknownDevice(pub String);

/// Parses `cpu`, `cuda`, `cuda:<n>` or `metal`.
pub fn parse(s: &str) -> Result<DeviceSpec, UnknownDevice> {
    match s {
        "cpu" => Ok(DeviceSpec::Cpu),
        "cuda" => Ok(DeviceSpec::Cuda(0)),
        "metal" => Ok(DeviceSpec::Metal),
        _ => s
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .map(DeviceSpec::Cuda)
            .ok_or_else(|| UnknownDevice(s.to_string())),
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = UnknownDevice;
    fn try_from(s: String) -> Result<Self, UnknownDevice> {
        parse(&s)
    }
}

impl From<DeviceSpec> for String {
    fn from(d: DeviceSpec) -> String {
        d.to_string()
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
            DeviceSpec::Metal => f.write_str("metal"),
        }
    }
}

impl DeviceSpec {
    /// Opens the device, with a clear error when this build cannot.
    pub fn open(self) -> anyhow::Result<Device> {
        let hint = |feature: &str, e: candle_core::Error| {
            anyhow::anyhow!(
                "device {feature}: {e} (a GPU build needs `cargo build --release -p dlp --features {feature}`)"
            )
        };
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(n) => Device::new_cuda(n).map_err(|e| hint("cuda", e)),
            DeviceSpec::Metal => Device::new_metal(0).map_err(|e| hint("metal", e)),
        }
    }
}

/// Sets the number of CPU threads the tensor kernels use (0: every core, rayon's default).
/// Must run before any tensor work starts, while the process has a single thread.
///
/// Unless `CANDLE_NUM_THREADS` is set, candle's element-wise ops stay on the calling thread:
/// its element-wise pool spin-waits up to 25,000 times after every op, taking a core from the
/// matrix multiplies and the `kernels` ops that do the heavy work (on 2 cores this halved MNIST
/// training throughput; see docs/benchmarks.md).
#[allow(unsafe_code, reason = "set_var before any other thread exists, as its safety contract asks")]
pub fn set_threads(threads: usize) {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: called from `dlp`'s command dispatch before any thread has been spawned.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    }
    if threads == 0 {
        // candle reads RAYON_NUM_THREADS before every matrix multiply; without it, it counts the
        // physical cores by parsing /proc/cpuinfo each time (a third of a small GAN's step time
        // went to that). Pin it to the count rayon's global pool uses by default.
        if std::env::var_os("RAYON_NUM_THREADS").is_none() {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            // SAFETY: called from `dlp`'s command dispatch before any thread has been spawned.
            unsafe { std::env::set_var("RAYON_NUM_THREADS", n.to_string()) };
        }
        return;
    }
    // candle reads RAYON_NUM_THREADS for its matrix multiplications; rayon's global pool
    // serves its element-wise kernels.
    // SAFETY: called from `dlp`'s command dispatch before any thread has been spawned.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
    let _ = rayon::ThreadPoolBuilder::new().num_threads(threads).build_global();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_names() {
        assert_eq!(parse("cpu"), Ok(DeviceSpec::Cpu));
        assert_eq!(parse("cuda:1"), Ok(DeviceSpec::Cuda(1)));
        assert_eq!(parse("gpu").unwrap_err().to_string(), "expected cpu, cuda, cuda:<n> or metal, got \"gpu\"");
        assert!(DeviceSpec::Cpu.open().is_ok());
        for name in ["cpu", "cuda:0", "cuda:3", "metal"] {
            assert_eq!(parse(name).unwrap().to_string(), name, "written back as read");
        }
        assert_eq!(parse("cuda").unwrap().to_string(), "cuda:0");
    }
}
