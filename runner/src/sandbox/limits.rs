//! Per-step sandbox limits: what a job file may set under `[job.step.limits]` and the
//! defaults when it does not.
//!
//! Every limit has a safe default, so a job that sets nothing still runs bounded.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default wall-clock deadline of a step.
pub const DEFAULT_TIMEOUT_SECS: f64 = 600.0;
/// Default cap on a step's linear memory.
pub const DEFAULT_MEMORY_MIB: u64 = 512;
/// Default cap on a step's captured log (stdout, stderr and log messages together).
pub const DEFAULT_LOG_KIB: u64 = 256;
/// Default cap on the bytes a step may leave in its output directory.
pub const DEFAULT_OUTPUT_MIB: u64 = 1024;
/// Default cap on the entries (files, directories, links) in a step's output directory.
pub const DEFAULT_OUTPUT_FILES: u64 = 1000;
/// Default cap on the elements of any one table (function references).
pub const DEFAULT_TABLE_ELEMENTS: u64 = 100_000;
/// Default cap on the core instances, tables and memories a step's component may create.
pub const DEFAULT_INSTANCES: u64 = 64;
/// Default cap on a step's wasm stack, in KiB.
pub const DEFAULT_STACK_KIB: u64 = 512;
/// The largest linear memory a step may be given: the whole 32-bit address space.
pub const MAX_MEMORY_MIB: u64 = 4096;

/// Limits of one step, as written under `[job.step.limits]`; unset fields take defaults.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock deadline in seconds.
    #[serde(default)]
    pub timeout_secs: Option<f64>,
    /// CPU budget in wasmtime fuel units (about one per wasm instruction); none by default.
    #[serde(default)]
    pub fuel: Option<u64>,
    /// Linear-memory cap in MiB.
    #[serde(default)]
    pub memory_mib: Option<u64>,
    /// Cap on the elements of any one table.
    #[serde(default)]
    pub table_elements: Option<u64>,
    /// Cap on the core instances (and, each, on tables and memories) of the step.
    #[serde(default)]
    pub instances: Option<u64>,
    /// Cap on the bytes in the output directory, in MiB.
    #[serde(default)]
    pub output_mib: Option<u64>,
    /// Cap on the entries in the output directory.
    #[serde(default)]
    pub output_files: Option<u64>,
    /// Wasm stack cap in KiB.
    #[serde(default)]
    pub stack_kib: Option<u64>,
    /// Captured-log cap in KiB.
    #[serde(default)]
    pub log_kib: Option<u64>,
}

/// Every limit of a step with the defaults filled in: what the sandbox enforces and what
/// is recorded with the step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Effective {
    /// Wall-clock deadline in seconds.
    pub timeout_secs: f64,
    /// CPU budget in fuel units, if any.
    pub fuel: Option<u64>,
    /// Linear-memory cap in bytes.
    pub memory_bytes: u64,
    /// Table elements cap.
    pub table_elements: u64,
    /// Instance, table and memory count cap.
    pub instances: u64,
    /// Output-directory byte cap.
    pub output_bytes: u64,
    /// Output-directory entry cap.
    pub output_files: u64,
    /// Captured-log cap in bytes.
    pub log_bytes: u64,
    /// Wasm stack cap in bytes.
    pub stack_bytes: u64,
}

impl Limits {
    /// The limits with defaults filled in.
    pub fn effective(&self) -> Effective {
        Effective {
            timeout_secs: self.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS),
            fuel: self.fuel,
            memory_bytes: self.memory_mib.unwrap_or(DEFAULT_MEMORY_MIB) << 20,
            table_elements: self.table_elements.unwrap_or(DEFAULT_TABLE_ELEMENTS),
            instances: self.instances.unwrap_or(DEFAULT_INSTANCES),
            output_bytes: self.output_mib.unwrap_or(DEFAULT_OUTPUT_MIB) << 20,
            output_files: self.output_files.unwrap_or(DEFAULT_OUTPUT_FILES),
            log_bytes: self.log_kib.unwrap_or(DEFAULT_LOG_KIB) << 10,
            stack_bytes: self.stack_kib.unwrap_or(DEFAULT_STACK_KIB) << 10,
        }
    }

    /// The deadline.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.effective().timeout_secs)
    }

    /// The memory cap in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.effective().memory_bytes as usize
    }

    /// The log cap in bytes.
    pub fn log_bytes(&self) -> usize {
        self.effective().log_bytes as usize
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
        let mut range = |name: &str, value: Option<u64>, min: u64, max: u64| {
            if let Some(v) = value
                && !(min..=max).contains(&v)
            {
                out.push(format!("`{name}` = `{v}`: must be {min} to {max}"));
            }
        };
        range("fuel", self.fuel, 1, u64::MAX);
        range("memory_mib", self.memory_mib, 1, MAX_MEMORY_MIB);
        range("table_elements", self.table_elements, 1, 10_000_000);
        range("instances", self.instances, 1, 1000);
        range("output_mib", self.output_mib, 0, 1 << 20);
        range("output_files", self.output_files, 0, 10_000_000);
        range("stack_kib", self.stack_kib, 64, 16_384);
        range("log_kib", self.log_kib, 1, 1_048_576);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_limits_table_gets_every_default() {
        let e = Limits::default().effective();
        assert_eq!(e.timeout_secs, 600.0);
        assert_eq!(e.fuel, None);
        assert_eq!(e.memory_bytes, 512 * 1024 * 1024);
        assert_eq!(e.output_bytes, 1024 * 1024 * 1024);
        assert_eq!(e.output_files, 1000);
        assert_eq!(e.log_bytes, 256 * 1024);
        assert_eq!(e.stack_bytes, 512 * 1024);
    }

    #[test]
    fn out_of_range_values_are_named_with_their_value() {
        let limits: Limits =
            toml::from_str("memory_mib = 5000\ninstances = 0\ntimeout_secs = -1.0\n").unwrap();
        assert_eq!(
            limits.problems(),
            [
                "`timeout_secs` = `-1`: must be above 0 and at most 604800 (7 days)",
                "`memory_mib` = `5000`: must be 1 to 4096",
                "`instances` = `0`: must be 1 to 1000",
            ]
        );
    }

    #[test]
    fn an_unknown_limit_is_refused() {
        let err = toml::from_str::<Limits>("cpu_percent = 50\n").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `cpu_percent`"),
            "{err}"
        );
    }
}
