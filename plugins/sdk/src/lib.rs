//! The guest side of the runner's step contract, shared by every plugin.
//!
//! This crate owns the one `wit_bindgen::generate!` for plugins, so each step crate only
//! implements [`Guest`] and calls [`export!`]. The helpers here cover what every step needs:
//! reading its config, finding its input files and naming its output files, and reporting
//! errors that name the thing and the value.

// The bindings generated from the WIT contain the canonical-ABI glue, which is unsafe code.
#![allow(unsafe_code)]

pub mod records;

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// Bindings generated from `wit/step.wit`.
// Generated code: the docs live in the WIT file, and the canonical-ABI glue has the
// argument counts the ABI gives it.
#[allow(missing_docs, clippy::too_many_arguments)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "step",
        pub_export_macro: true,
        default_bindings_module: "runner_sdk::bindings",
    });
}

pub use bindings::Guest;
pub use bindings::export;
pub use bindings::runner::step::log::Level;
pub use bindings::runner::step::types::{Metric, RunContext, StepError, Summary};

/// The text that marks a missing value when a step's config does not say otherwise.
pub const DEFAULT_NA: &[&str] = &["NA", ""];

/// Writes one message into the step's log, kept by the host with the run.
pub fn log(level: Level, message: &str) {
    bindings::runner::step::log::log(level, message);
}

/// Parses the step's config (the JSON the host made of the job file's table) into `T`.
///
/// The error names the step and what serde found wrong, so a user can find the field.
pub fn config<T: DeserializeOwned>(ctx: &RunContext) -> Result<T, StepError> {
    serde_json::from_str(&ctx.config)
        .map_err(|e| StepError::InvalidConfig(format!("step `{}`: config: {e}", ctx.step)))
}

/// The guest path of a file in the input directory.
pub fn input_path(ctx: &RunContext, name: &str) -> PathBuf {
    PathBuf::from(&ctx.input_dir).join(name)
}

/// The guest path of a file in the output directory.
pub fn output_path(ctx: &RunContext, name: &str) -> PathBuf {
    PathBuf::from(&ctx.output_dir).join(name)
}

/// The input files a step should read: the one named in its config, or every `.csv` file
/// in its input directory when the config names none.
pub fn csv_inputs(ctx: &RunContext, named: Option<&str>) -> Result<Vec<String>, StepError> {
    if let Some(name) = named {
        if !ctx.inputs.iter().any(|i| i == name) {
            return Err(StepError::BadInput(format!(
                "input file `{name}` is not in the input directory (it holds: {})",
                list_or_nothing(&ctx.inputs)
            )));
        }
        return Ok(vec![name.to_string()]);
    }
    let found: Vec<String> = ctx
        .inputs
        .iter()
        .filter(|i| i.ends_with(".csv"))
        .cloned()
        .collect();
    if found.is_empty() {
        return Err(StepError::BadInput(format!(
            "no `.csv` file in the input directory (it holds: {})",
            list_or_nothing(&ctx.inputs)
        )));
    }
    Ok(found)
}

fn list_or_nothing(names: &[String]) -> String {
    if names.is_empty() {
        "nothing".to_string()
    } else {
        names.join(", ")
    }
}

/// Maps an I/O error on `path` into a step error that names the file.
pub fn io_error(path: &Path, err: impl std::fmt::Display) -> StepError {
    StepError::Io(format!("`{}`: {err}", path.display()))
}

/// Maps a CSV error on `path` into a step error that names the file and the line.
pub fn csv_error(path: &Path, err: csv::Error) -> StepError {
    match err.kind() {
        csv::ErrorKind::Io(e) => io_error(path, e),
        _ => StepError::BadInput(format!("`{}`: {err}", path.display())),
    }
}

/// Opens a CSV input file (with a header line) for streaming.
pub fn open_csv(path: &Path) -> Result<csv::Reader<File>, StepError> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    Ok(csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(file))
}

/// Creates a CSV output file for streaming.
pub fn create_csv(path: &Path) -> Result<csv::Writer<File>, StepError> {
    let file = File::create(path).map_err(|e| io_error(path, e))?;
    Ok(csv::Writer::from_writer(file))
}

/// The index of `column` in a CSV header, or a `missing-column` error naming the file,
/// the column and the columns that are there.
pub fn column_index(
    headers: &csv::StringRecord,
    column: &str,
    path: &Path,
) -> Result<usize, StepError> {
    let mut found = headers
        .iter()
        .enumerate()
        .filter(|(_, h)| *h == column)
        .map(|(i, _)| i);
    let first = found.next().ok_or_else(|| {
        StepError::MissingColumn(format!(
            "`{}` has no column `{column}` (columns: {})",
            path.display(),
            headers.iter().collect::<Vec<_>>().join(", ")
        ))
    })?;
    // Which of two same-named columns the config means cannot be known: refuse to guess.
    if let Some(second) = found.next() {
        return Err(StepError::BadInput(format!(
            "`{}` has column `{column}` more than once (columns {} and {})",
            path.display(),
            first + 1,
            second + 1
        )));
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_column_named_twice_is_refused_rather_than_guessed() {
        // Reported: with headers `k,v,v`, the first `v` was used silently.
        let headers = csv::StringRecord::from(vec!["k", "v", "v"]);
        let path = Path::new("in.csv");
        assert_eq!(column_index(&headers, "k", path).unwrap(), 0);
        match column_index(&headers, "v", path) {
            Err(StepError::BadInput(m)) => assert_eq!(
                m,
                "`in.csv` has column `v` more than once (columns 2 and 3)"
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            column_index(&headers, "x", path),
            Err(StepError::MissingColumn(_))
        ));
    }
}
