//! `meta.json`: where, how and with what a run was produced.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub runner_version: String,
    /// Commit of the runner build, with `-dirty` for uncommitted changes; empty if unknown.
    pub git_commit: String,
    pub dfdx_version: String,
    pub rustc_version: String,
    pub host: String,
    pub os: String,
    pub arch: String,
    pub cpu_model: String,
    /// The kernels' path (`avx512`, `avx2`: the same bits; `generic` on CPUs without AVX2 and
    /// FMA, whose bits may differ); empty in runs made before it was recorded.
    #[serde(default)]
    pub kernels: String,
    pub threads: usize,
    /// Whether subnormal floats were flushed to zero (see `RUNNER_FLUSH_DENORMALS`).
    pub flush_denormals: bool,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub command: Vec<String>,
    /// The directory the command ran in (its relative paths are relative to it); empty in runs
    /// made before it was recorded.
    #[serde(default)]
    pub cwd: String,
    pub data_dir: String,
    /// Whether the dataset checksums were enforced (the vendored copy) or only recorded.
    pub data_checksums_enforced: bool,
    /// `file -> sha256 of the decompressed content`.
    pub data_checksums: std::collections::BTreeMap<String, String>,
    pub data_digest: String,
    pub parameter_count: usize,
    /// `(safetensors name, shape)` of every parameter tensor.
    pub parameters: Vec<(String, Vec<usize>)>,
    /// Each time the run was continued from a checkpoint.
    #[serde(default)]
    pub resumed: Vec<Resumed>,
}

/// One continuation of a run from its checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resumed {
    pub at: String,
    pub after_step: u64,
    pub threads: usize,
    /// The kernels' path of this continuation (see [`Meta::kernels`]).
    #[serde(default)]
    pub kernels: String,
    pub command: Vec<String>,
}

pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_default()
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default()
}

/// The kernels' path this process runs (`RUNNER_ISA` or the CPU's best; see `gemm::isa`).
pub fn kernels() -> String {
    gemm::isa::selected()
        .map_or("generic", |isa| isa.name())
        .to_string()
}

pub fn now() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
}

pub fn build_facts() -> (String, String, String, String) {
    (
        env!("CARGO_PKG_VERSION").to_string(),
        env!("RUNNER_GIT_COMMIT").to_string(),
        env!("RUNNER_DFDX_VERSION").to_string(),
        env!("RUNNER_RUSTC_VERSION").to_string(),
    )
}
