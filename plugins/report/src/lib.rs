//! `report`: turns an aggregate table (CSV) into a readable Markdown report and a JSON summary.
//!
//! Config (the step's table in the job file):
//!
//! | key | meaning |
//! |---|---|
//! | `title` | the report's heading (default: the job's name) |
//! | `input` | the table to read; default the one `.csv` file in the input directory |
//! | `sort_by` | a column to sort rows by: numbers as numbers, then text, then `NA`, empty and `NaN`; default input order |
//! | `descending` | sort largest first; default `false` |
//! | `decimals` | digits after the point for non-integers; default 2 |
//! | `max_rows` | refuse tables longer than this (a report is read by people); default 10000 |
//!
//! Writes `report.md` and `summary.json`. The whole table is held in memory to sort it, so
//! this step is for aggregated tables, not raw data: `max_rows` keeps that honest.

use std::io::Read;
use std::path::Path;

use runner_sdk::{Guest, Metric, RunContext, StepError, Summary};
use serde::Deserialize;

/// The step's config as written in the job file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Heading of the report.
    #[serde(default)]
    pub title: Option<String>,
    /// Input file name.
    #[serde(default)]
    pub input: Option<String>,
    /// Column to sort by.
    #[serde(default)]
    pub sort_by: Option<String>,
    /// Sort largest first.
    #[serde(default)]
    pub descending: bool,
    /// Digits after the decimal point.
    #[serde(default)]
    pub decimals: Option<usize>,
    /// Longest table accepted.
    #[serde(default)]
    pub max_rows: Option<usize>,
}

/// A table read from CSV.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Column names.
    pub columns: Vec<String>,
    /// Cells, row by row, as text.
    pub rows: Vec<Vec<String>>,
}

/// Identifies the run in the report's heading.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// Job name.
    pub job: String,
    /// Run id.
    pub run_id: u64,
    /// Logical time (RFC 3339).
    pub logical_time: String,
}

/// Reads a CSV table of at most `max_rows` rows.
pub fn read_table(input: impl Read, name: &Path, max_rows: usize) -> Result<Table, StepError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(input);
    let columns: Vec<String> = reader
        .headers()
        .map_err(|e| runner_sdk::csv_error(name, e))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| runner_sdk::csv_error(name, e))?;
        if rows.len() == max_rows {
            return Err(StepError::BadInput(format!(
                "`{}` has more than {max_rows} rows (`max_rows`): a report wants an aggregated table",
                name.display()
            )));
        }
        rows.push(record.iter().map(str::to_string).collect());
    }
    Ok(Table { columns, rows })
}

fn number(cell: &str) -> Option<f64> {
    cell.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

/// A cell as `sort_table` orders it.
enum SortKey<'a> {
    /// A number, infinities included.
    Number(f64),
    /// Anything else that is a value.
    Text(&'a str),
    /// `NA`, empty or `NaN`: no value, so no place among the others.
    Missing,
}

impl SortKey<'_> {
    fn rank(&self) -> u8 {
        match self {
            SortKey::Number(_) => 0,
            SortKey::Text(_) => 1,
            SortKey::Missing => 2,
        }
    }
}

fn sort_key(cell: &str) -> SortKey<'_> {
    if cell == "NA" || cell.is_empty() {
        return SortKey::Missing;
    }
    match cell.trim().parse::<f64>() {
        Ok(n) if n.is_nan() => SortKey::Missing,
        Ok(n) => SortKey::Number(n),
        Err(_) => SortKey::Text(cell),
    }
}

/// Sorts rows by `column`: numbers numerically (infinities included), then text, then
/// non-values (`NA`, empty, `NaN`), in that order whichever the direction.
pub fn sort_table(
    table: &mut Table,
    column: &str,
    descending: bool,
    name: &Path,
) -> Result<(), StepError> {
    let index = table
        .columns
        .iter()
        .position(|c| c == column)
        .ok_or_else(|| {
            StepError::MissingColumn(format!(
                "`sort_by`: `{}` has no column `{column}` (columns: {})",
                name.display(),
                table.columns.join(", ")
            ))
        })?;
    table.rows.sort_by(|a, b| {
        use std::cmp::Ordering;
        let order = match (sort_key(&a[index]), sort_key(&b[index])) {
            (SortKey::Number(p), SortKey::Number(q)) => p.total_cmp(&q),
            (SortKey::Text(p), SortKey::Text(q)) => p.cmp(q),
            (SortKey::Missing, SortKey::Missing) => return Ordering::Equal,
            // Numbers, then text, then non-values, whichever the direction.
            (p, q) => return p.rank().cmp(&q.rank()),
        };
        if descending { order.reverse() } else { order }
    });
    Ok(())
}

/// Formats a cell: numbers in a column that holds fractions get `decimals` digits, so a
/// column reads evenly; integer columns stay as they are.
fn format_cell(cell: &str, fractional_column: bool, decimals: usize) -> String {
    match number(cell) {
        Some(n) if fractional_column => format!("{n:.decimals$}"),
        Some(_) => cell.trim().to_string(),
        // A line break would end the table row.
        None => cell.replace('|', "\\|").replace(['\r', '\n'], " "),
    }
}

/// Renders the Markdown report.
pub fn markdown(table: &Table, title: &str, run: &RunInfo, decimals: usize) -> String {
    let numeric: Vec<bool> = (0..table.columns.len())
        .map(|i| {
            table.rows.iter().any(|r| number(&r[i]).is_some())
                && table
                    .rows
                    .iter()
                    .all(|r| number(&r[i]).is_some() || r[i] == "NA")
        })
        .collect();
    let mut out = format!(
        "# {}\n\nJob `{}`, run {}, for {}. {} rows.\n\n",
        // A heading is one line: a line break in the title would start more Markdown.
        title.replace(['\r', '\n'], " "),
        run.job,
        run.run_id,
        run.logical_time,
        table.rows.len()
    );
    out.push_str(&format!("| {} |\n", table.columns.join(" | ")));
    let fractional: Vec<bool> = (0..table.columns.len())
        .map(|i| {
            table
                .rows
                .iter()
                .any(|r| number(&r[i]).is_some_and(|n| n.fract() != 0.0))
        })
        .collect();
    let rule: Vec<&str> = numeric
        .iter()
        .map(|&n| if n { "---:" } else { "---" })
        .collect();
    out.push_str(&format!("|{}|\n", rule.join("|")));
    for row in &table.rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&fractional)
            .map(|(c, &f)| format_cell(c, f, decimals))
            .collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out
}

/// Renders the JSON summary: numbers as numbers, `NA` as `null`.
pub fn summary_json(table: &Table, title: &str, run: &RunInfo) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = table
        .rows
        .iter()
        .map(|row| {
            let object = table
                .columns
                .iter()
                .zip(row)
                .map(|(c, v)| {
                    let value = if v == "NA" {
                        serde_json::Value::Null
                    } else if let Ok(i) = v.trim().parse::<i64>() {
                        serde_json::json!(i)
                    } else if let Some(n) = number(v) {
                        serde_json::json!(n)
                    } else {
                        serde_json::json!(v)
                    };
                    (c.clone(), value)
                })
                .collect::<serde_json::Map<_, _>>();
            serde_json::Value::Object(object)
        })
        .collect();
    serde_json::json!({
        "title": title,
        "job": run.job,
        "run_id": run.run_id,
        "logical_time": run.logical_time,
        "columns": table.columns,
        "rows": rows,
    })
}

struct Step;

impl Guest for Step {
    fn run(ctx: RunContext) -> Result<Summary, StepError> {
        let config: Config = runner_sdk::config(&ctx)?;
        let inputs = runner_sdk::csv_inputs(&ctx, config.input.as_deref())?;
        let [name] = inputs.as_slice() else {
            return Err(StepError::BadInput(format!(
                "step `{}`: several CSV inputs ({}); name one with `input`",
                ctx.step,
                inputs.join(", ")
            )));
        };
        let path = runner_sdk::input_path(&ctx, name);
        let file = std::fs::File::open(&path).map_err(|e| runner_sdk::io_error(&path, e))?;
        let mut table = read_table(file, &path, config.max_rows.unwrap_or(10_000))?;
        if let Some(column) = &config.sort_by {
            sort_table(&mut table, column, config.descending, &path)?;
        }

        let title = config.title.clone().unwrap_or_else(|| ctx.job.clone());
        let run = RunInfo {
            job: ctx.job.clone(),
            run_id: ctx.run_id,
            logical_time: ctx.logical_time.clone(),
        };
        let report = runner_sdk::output_path(&ctx, "report.md");
        std::fs::write(
            &report,
            markdown(&table, &title, &run, config.decimals.unwrap_or(2)),
        )
        .map_err(|e| runner_sdk::io_error(&report, e))?;
        let summary = runner_sdk::output_path(&ctx, "summary.json");
        let json = serde_json::to_string_pretty(&summary_json(&table, &title, &run))
            .map_err(|e| StepError::Other(format!("encoding the summary: {e}")))?;
        std::fs::write(&summary, json).map_err(|e| runner_sdk::io_error(&summary, e))?;

        let rows = table.rows.len() as u64;
        Ok(Summary {
            rows_in: rows,
            rows_out: rows,
            metrics: vec![Metric {
                name: "columns".to_string(),
                value: table.columns.len() as f64,
            }],
        })
    }
}

runner_sdk::export!(Step);

#[cfg(test)]
mod tests {
    use super::*;

    fn table(csv: &str) -> Table {
        read_table(csv.as_bytes(), Path::new("t.csv"), 100).unwrap()
    }

    fn run() -> RunInfo {
        RunInfo {
            job: "j".into(),
            run_id: 7,
            logical_time: "2013-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn sorts_numbers_numerically_with_na_last() {
        let mut t = table("k,v\na,10\nb,NA\nc,9.5\nd,-1\n");
        sort_table(&mut t, "v", true, Path::new("t.csv")).unwrap();
        let keys: Vec<&str> = t.rows.iter().map(|r| r[0].as_str()).collect();
        assert_eq!(keys, ["a", "c", "d", "b"]);
    }

    #[test]
    fn nan_sorts_with_the_non_values_in_either_direction() {
        // Reported: with `descending`, NaN came first (`NaN 10 3 2 1 -inf NA`).
        for descending in [true, false] {
            let mut t = table("k,v\na,NaN\nb,10\nc,NA\nd,-inf\ne,2\n");
            sort_table(&mut t, "v", descending, Path::new("t.csv")).unwrap();
            let keys: Vec<&str> = t.rows.iter().map(|r| r[0].as_str()).collect();
            let numbers = if descending {
                ["b", "e", "d"]
            } else {
                ["d", "e", "b"]
            };
            assert_eq!(keys[..3], numbers, "descending {descending}");
            assert_eq!(keys[3..].len(), 2);
            assert!(keys[3..].contains(&"a") && keys[3..].contains(&"c"));
        }
    }

    #[test]
    fn line_breaks_in_a_cell_or_the_title_do_not_break_the_markdown() {
        let t = table("k,v\n\"line1\nline2\",2\n");
        let md = markdown(&t, "T\n## injected", &run(), 2);
        assert!(md.starts_with("# T ## injected\n\n"), "{md}");
        assert!(md.ends_with("| line1 line2 | 2 |\n"), "{md}");
        assert_eq!(md.lines().filter(|l| l.starts_with('#')).count(), 1);
    }

    #[test]
    fn markdown_aligns_numbers_right_and_rounds_fractions() {
        let t = table("carrier,n,mean\nAA,3,12.3456\nUA,10,NA\nB6,4,7\n");
        let md = markdown(&t, "Delays", &run(), 2);
        assert_eq!(
            md,
            "# Delays\n\nJob `j`, run 7, for 2013-01-01T00:00:00Z. 3 rows.\n\n\
             | carrier | n | mean |\n|---|---:|---:|\n| AA | 3 | 12.35 |\n| UA | 10 | NA |\n\
             | B6 | 4 | 7.00 |\n"
        );
    }

    #[test]
    fn json_summary_has_numbers_and_nulls() {
        let t = table("carrier,mean\nAA,1.5\nUA,NA\n");
        let json = summary_json(&t, "T", &run());
        assert_eq!(json["rows"][0]["mean"], serde_json::json!(1.5));
        assert_eq!(json["rows"][1]["mean"], serde_json::Value::Null);
        assert_eq!(json["rows"][1]["carrier"], serde_json::json!("UA"));
        assert_eq!(json["run_id"], serde_json::json!(7));
    }

    #[test]
    fn too_many_rows_is_refused() {
        let err = read_table("a\n1\n2\n3\n".as_bytes(), Path::new("t.csv"), 2).unwrap_err();
        assert!(matches!(err, StepError::BadInput(m) if m.contains("more than 2 rows")));
    }

    #[test]
    fn sorting_by_an_unknown_column_names_it() {
        let mut t = table("a\n1\n");
        let err = sort_table(&mut t, "zz", false, Path::new("t.csv")).unwrap_err();
        assert!(matches!(err, StepError::MissingColumn(m) if m.contains("`zz`")));
    }
}
