//! Per-step sandbox limits: what a job file may set and the defaults when it does not.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default wall-clock deadline of a step.
pub const DEFAULT_TIMEOUT_SECS: f64 = 600.0;
/// Default cap on a step's linear memory.
pub const DEFAULT_MEMORY_MIB: u64 = 512;
/// Default cap on a step's captured log (stdout, stderr and log messages together).
pub const DEFAULT_LOG_KIB: u64 = 256;

/// Limits of one step, as written under `[job.step.limits]`; unset fields take defaults.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock deadline in seconds.
    #[serde(default)]
    pub timeout_secs: Option<f64>,
    /// Linear-memory cap in MiB.
    #[serde(default)]
    pub memory_mib: Option<u64>,
    /// Captured-log cap in KiB.
    #[serde(default)]
    pub log_kib: Option<u64>,
}

impl Limits {
    /// The deadline.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS))
    }

    /// The memory cap in bytes.
    pub fn memory_bytes(&self) -> usize {
        (self.memory_mib.unwrap_or(DEFAULT_MEMORY_MIB) as usize).saturating_mul(1 << 20)
    }

    /// The log cap in bytes.
    pub fn log_bytes(&self) -> usize {
        (self.log_kib.unwrap_or(DEFAULT_LOG_KIB) as usize).saturating_mul(1 << 10)
    }

    /// Problems with the values, each naming the field and the value.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(t) = self.timeout_secs
            && !(t.is_finite() && t > 0.0 && t <= 7.0 * 86_400.0)
        {
            out.push(format!(
                "`timeout_secs` = `{t}`: must be above 0 and at most 604800 (7 days)"
            ));
        }
        if let Some(m) = self.memory_mib
            && !(1..=65_536).contains(&m)
        {
            out.push(format!("`memory_mib` = `{m}`: must be 1 to 65536"));
        }
        if let Some(l) = self.log_kib
            && !(1..=1_048_576).contains(&l)
        {
            out.push(format!("`log_kib` = `{l}`: must be 1 to 1048576"));
        }
        out
    }
}
