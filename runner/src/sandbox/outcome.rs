//! How a step ended, as recorded in the run history.
//!
//! A step's own error (returned through the WIT `step-error`) is data about the input or
//! config; a trap, a deadline or a limit is the sandbox stopping the guest. They are kept
//! apart so an operator can tell "your data lacks a column" from "the plugin crashed".

use std::time::Duration;

use serde::Serialize;

use super::limits::Effective;

/// The named ways a step can end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The step returned a summary.
    Succeeded,
    /// The step returned its own typed error.
    GuestError,
    /// The guest trapped (panic, unreachable, bad memory access, ...).
    Trap,
    /// The wall-clock deadline passed.
    Timeout,
    /// The step's CPU budget (fuel) ran out.
    FuelExhausted,
    /// The guest asked for more linear memory than its cap.
    MemoryLimit,
    /// The guest went over its table, instance or memory-count cap.
    ResourceLimit,
    /// The guest overflowed its wasm stack.
    StackOverflow,
    /// The step wrote more bytes or files into its output directory than its quota.
    OutputQuota,
    /// The plugin could not be loaded or instantiated.
    LoadError,
    /// The runner stopped while the step ran.
    Interrupted,
}

impl Outcome {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::GuestError => "guest-error",
            Outcome::Trap => "trap",
            Outcome::Timeout => "timeout",
            Outcome::FuelExhausted => "fuel-exhausted",
            Outcome::MemoryLimit => "memory-limit",
            Outcome::ResourceLimit => "resource-limit",
            Outcome::StackOverflow => "stack-overflow",
            Outcome::OutputQuota => "output-quota",
            Outcome::LoadError => "load-error",
            Outcome::Interrupted => "interrupted",
        }
    }

    /// Whether the step counts as done.
    pub fn is_success(self) -> bool {
        self == Outcome::Succeeded
    }
}

/// A step's summary as the host records it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StepSummary {
    /// Data rows read.
    pub rows_in: u64,
    /// Data rows written.
    pub rows_out: u64,
    /// Named figures, in the order the step gave them.
    pub metrics: Vec<(String, f64)>,
}

/// Everything the sandbox knows about one finished step attempt.
#[derive(Debug, Clone)]
pub struct StepReport {
    /// How it ended.
    pub outcome: Outcome,
    /// The summary, when it succeeded.
    pub summary: Option<StepSummary>,
    /// What went wrong, in words, when it did not.
    pub error: Option<String>,
    /// Captured stdout, stderr and log messages.
    pub log: String,
    /// Whether the log was cut at its cap.
    pub log_truncated: bool,
    /// Wall-clock time from instantiation to the end.
    pub duration: Duration,
    /// The largest linear memory the guest grew to, in bytes.
    pub memory_peak_bytes: u64,
    /// Fuel the step burned, when it had a CPU budget.
    pub fuel_consumed: Option<u64>,
    /// The limits it ran under, when it got as far as the sandbox.
    pub limits: Option<Effective>,
}

impl StepReport {
    /// The report of a step that ended before its guest ran (or was cut off from outside).
    pub fn early(outcome: Outcome, error: String) -> StepReport {
        StepReport {
            outcome,
            summary: None,
            error: Some(error),
            log: String::new(),
            log_truncated: false,
            duration: Duration::ZERO,
            memory_peak_bytes: 0,
            fuel_consumed: None,
            limits: None,
        }
    }
}
