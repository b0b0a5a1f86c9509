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
    /// The output quota's first refusal, if the guest met its quota.
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

/// The most of a plugin's own error text the runner keeps.
const MAX_GUEST_TEXT: usize = 4096;

/// A plugin's text made fit for the history and a terminal: control characters (escape
/// sequences, carriage returns, line breaks) written out as escapes, and at most
/// [`MAX_GUEST_TEXT`] bytes, with a marker saying how much was cut.
pub(super) fn plain(text: &str) -> String {
    let cut = text.len() > MAX_GUEST_TEXT;
    let kept = &text[..text.floor_char_boundary(MAX_GUEST_TEXT.min(text.len()))];
    let mut out = crate::plain::spelled_out(kept, &[]);
    if cut {
        out.push_str(&format!(" … ({} bytes cut)", text.len() - kept.len()));
    }
    out
}

/// Rejects summaries the runner cannot record faithfully.
pub(super) fn check_summary(summary: bindings::Summary) -> Result<StepSummary, String> {
    for (what, rows) in [("rows-in", summary.rows_in), ("rows-out", summary.rows_out)] {
        if i64::try_from(rows).is_err() {
            return Err(format!(
                "malformed summary: {what} is `{rows}`, more than the history can hold (2^63 - 1)"
            ));
        }
    }
    let mut metrics: Vec<(String, f64)> = Vec::with_capacity(summary.metrics.len());
    for m in summary.metrics {
        if m.name.is_empty() || m.name.len() > 128 {
            return Err("malformed summary: a metric name is empty or over 128 bytes".into());
        }
        if !m.value.is_finite() {
            return Err(format!(
                "malformed summary: metric `{}` is `{}`",
                plain(&m.name),
                m.value
            ));
        }
        if metrics.iter().any(|(name, _)| *name == m.name) {
            return Err(format!(
                "malformed summary: metric `{}` is given twice",
                plain(&m.name)
            ));
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
        E::InvalidConfig(m) => format!("invalid config: {}", plain(m)),
        E::MissingColumn(m) => format!("missing column: {}", plain(m)),
        E::BadInput(m) => format!("bad input: {}", plain(m)),
        E::Io(m) => format!("i/o: {}", plain(m)),
        E::Other(m) => plain(m),
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
    // A trap's message can carry the guest's own text (a panic message).
    plain(&text.replace('\n', " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(rows_in: u64, metrics: &[(&str, f64)]) -> bindings::Summary {
        bindings::Summary {
            rows_in,
            rows_out: 0,
            metrics: metrics
                .iter()
                .map(|(name, value)| bindings::Metric {
                    name: name.to_string(),
                    value: *value,
                })
                .collect(),
        }
    }

    #[test]
    fn a_guests_text_loses_its_control_characters_and_its_excess() {
        assert_eq!(
            plain("line1\nline2\r\u{1b}[2J\u{7}spoof"),
            "line1\\nline2\\r\\u{1b}[2J\\u{7}spoof"
        );
        let long = "é".repeat(3000); // 6,000 bytes
        let kept = plain(&long);
        assert!(
            kept.starts_with(&"é".repeat(2048)),
            "cut on a char boundary"
        );
        assert!(
            kept.ends_with(" … (1904 bytes cut)"),
            "{}",
            &kept[kept.len() - 30..]
        );
    }

    #[test]
    fn row_counts_the_history_cannot_hold_and_repeated_metrics_are_malformed() {
        assert!(check_summary(summary(i64::MAX as u64, &[])).is_ok());
        let err = check_summary(summary(1 << 63, &[])).unwrap_err();
        assert!(err.contains("rows-in is `9223372036854775808`"), "{err}");
        let err = check_summary(summary(1, &[("a", 1.0), ("a", 2.0)])).unwrap_err();
        assert_eq!(err, "malformed summary: metric `a` is given twice");
    }
}
