//! Turning how a guest ended into a named [`Outcome`] and words: the summary check, the
//! step's own errors, and traps told apart by what stopped them.

use std::time::Duration;

use super::bindings;
use super::limiter::Refusals;
use super::limits::Effective;
use super::outcome::{Outcome, StepSummary};

/// What the host saw while the guest ran, beyond the error wasmtime returned.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Caps the resource limiter refused.
    pub refused: Refusals,
    /// Set by the epoch callback when it stopped the guest for the output quota.
    pub quota: Option<String>,
}

/// Names the way a guest stopped from the error wasmtime gave and what the host observed.
/// A limit the host saw being hit wins over the trap it caused: a refused memory grow
/// shows up in the guest as an abort, which is not the guest's fault to explain.
pub fn classify_trap(
    err: &wasmtime::Error,
    seen: &Observed,
    limits: &Effective,
) -> (Outcome, String) {
    if let Some(why) = &seen.quota {
        return (Outcome::OutputQuota, why.clone());
    }
    if err
        .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
        .is_some()
    {
        return (
            Outcome::LoadError,
            format!(
                "no instance slot free: more steps are running at once than the pool holds ({})",
                first_line(err)
            ),
        );
    }
    if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return (
            Outcome::Trap,
            format!("the step called exit with code {}", exit.0),
        );
    }
    match err.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => (
            Outcome::Timeout,
            timeout_message(Duration::from_secs_f64(limits.timeout_secs)),
        ),
        Some(wasmtime::Trap::OutOfFuel) => (
            Outcome::FuelExhausted,
            format!(
                "CPU budget of {} fuel units used up",
                limits.fuel.unwrap_or(u64::MAX)
            ),
        ),
        Some(wasmtime::Trap::StackOverflow) => (
            Outcome::StackOverflow,
            format!("wasm stack overflow (cap {} KiB)", limits.stack_bytes >> 10),
        ),
        _ if seen.refused.memory => (
            Outcome::MemoryLimit,
            format!(
                "linear memory cap of {} MiB refused a grow; then: {}",
                limits.memory_bytes >> 20,
                first_line(err)
            ),
        ),
        _ if seen.refused.table => (
            Outcome::ResourceLimit,
            format!(
                "table cap of {} elements refused a grow; then: {}",
                limits.table_elements,
                first_line(err)
            ),
        ),
        // wasmtime reports a count cap only in words; this is the phrase its limiter
        // errors share ("instance count too high", "table count too high", ...).
        _ if first_line(err).contains("count too high") => (
            Outcome::ResourceLimit,
            format!(
                "instance, table or memory count over the cap of {}: {}",
                limits.instances,
                first_line(err)
            ),
        ),
        _ => (Outcome::Trap, first_line(err)),
    }
}

pub(super) fn timeout_message(timeout: Duration) -> String {
    format!("deadline of {:.3} s passed", timeout.as_secs_f64())
}

/// Rejects summaries the runner cannot record faithfully.
pub(super) fn check_summary(summary: bindings::Summary) -> Result<StepSummary, String> {
    let mut metrics = Vec::with_capacity(summary.metrics.len());
    for m in summary.metrics {
        if !m.value.is_finite() {
            return Err(format!(
                "malformed summary: metric `{}` is `{}`",
                m.name, m.value
            ));
        }
        if m.name.is_empty() || m.name.len() > 128 {
            return Err("malformed summary: a metric name is empty or over 128 bytes".into());
        }
        metrics.push((m.name, m.value));
    }
    if metrics.len() > 256 {
        return Err(format!(
            "malformed summary: {} metrics (at most 256)",
            metrics.len()
        ));
    }
    Ok(StepSummary {
        rows_in: summary.rows_in,
        rows_out: summary.rows_out,
        metrics,
    })
}

pub(super) fn describe_step_error(e: &bindings::StepError) -> String {
    use bindings::StepError as E;
    match e {
        E::InvalidConfig(m) => format!("invalid config: {m}"),
        E::MissingColumn(m) => format!("missing column: {m}"),
        E::BadInput(m) => format!("bad input: {m}"),
        E::Io(m) => format!("i/o: {m}"),
        E::Other(m) => m.clone(),
    }
}

/// The error's chain on one line, without the wasm backtrace.
pub(super) fn first_line(err: &wasmtime::Error) -> String {
    let mut text: String = err
        .chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ");
    if let Some(i) = text.find("\nwasm backtrace") {
        text.truncate(i);
    }
    let text = text.replace('\n', " ");
    if text.len() > 2000 {
        format!("{}…", &text[..text.floor_char_boundary(2000)])
    } else {
        text
    }
}
