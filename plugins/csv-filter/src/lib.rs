//! `csv-filter`: keeps the rows of a CSV file whose column compares to a value.
//!
//! Config (the step's table in the job file):
//!
//! | key | meaning |
//! |---|---|
//! | `column` | the column to test (required) |
//! | `op` | `=`, `!=`, `<`, `<=`, `>`, `>=`, `is-na`, `is-not-na` (required) |
//! | `value` | what to compare with (required unless `op` is `is-na` / `is-not-na`) |
//! | `compare` | `number` or `text`; default `number` when `value` parses as a number |
//! | `na` | the texts that mark a missing value; default `["NA", ""]` |
//! | `input` | the input file to read; default every `.csv` file in the input directory |
//!
//! A missing value never satisfies a comparison (as SQL's NULL), so `dep_delay > 0` drops
//! the rows whose `dep_delay` is `NA`. Rows stream through: memory does not grow with input.

use std::io::{Read, Write};

use runner_sdk::{Guest, Metric, RunContext, StepError, Summary};
use serde::Deserialize;

/// The step's config as written in the job file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Column to test.
    pub column: String,
    /// Comparison operator.
    pub op: Op,
    /// Value to compare with.
    #[serde(default)]
    pub value: Option<ValueText>,
    /// How to compare: as numbers or as text.
    #[serde(default)]
    pub compare: Option<Compare>,
    /// Texts that mark a missing value.
    #[serde(default)]
    pub na: Option<Vec<String>>,
    /// Input file to read (default: every `.csv` in the input directory).
    #[serde(default)]
    pub input: Option<String>,
}

/// A comparison value as written: TOML lets users write `0` or `"0"`.
#[derive(Debug, Clone)]
pub enum ValueText {
    /// Written as a number.
    Number(f64),
    /// Written as text.
    Text(String),
}

// By hand rather than `#[serde(untagged)]`, whose error for anything else ("did not match
// any variant of untagged enum") names neither the field nor the value.
impl<'de> Deserialize<'de> for ValueText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::Number(n) => n
                .as_f64()
                .map(ValueText::Number)
                .ok_or_else(|| D::Error::custom(format!("`value` `{n}` is out of range"))),
            serde_json::Value::String(t) => Ok(ValueText::Text(t)),
            other => Err(D::Error::custom(format!(
                "`value` must be a number or a text, not `{other}`"
            ))),
        }
    }
}

/// The comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Op {
    /// Equal.
    #[serde(rename = "=", alias = "==")]
    Eq,
    /// Not equal.
    #[serde(rename = "!=")]
    Ne,
    /// Less than.
    #[serde(rename = "<")]
    Lt,
    /// Less than or equal.
    #[serde(rename = "<=")]
    Le,
    /// Greater than.
    #[serde(rename = ">")]
    Gt,
    /// Greater than or equal.
    #[serde(rename = ">=")]
    Ge,
    /// The value is missing.
    #[serde(rename = "is-na")]
    IsNa,
    /// The value is present.
    #[serde(rename = "is-not-na")]
    IsNotNa,
}

/// How values are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compare {
    /// As 64-bit floating-point numbers.
    Number,
    /// As text, byte by byte.
    Text,
}

/// A config checked and ready to apply.
#[derive(Debug, Clone)]
pub struct Filter {
    column: String,
    op: Op,
    target: Target,
    na: Vec<String>,
}

#[derive(Debug, Clone)]
enum Target {
    None,
    Number(f64),
    Text(String),
}

/// What a filter pass counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Data rows read.
    pub rows_in: u64,
    /// Data rows written.
    pub rows_out: u64,
    /// Rows whose column held a missing value.
    pub na: u64,
}

impl Filter {
    /// Checks a config; the error names the field and the value.
    pub fn new(config: &Config) -> Result<Filter, String> {
        let na = config.na.clone().unwrap_or_else(|| {
            runner_sdk::DEFAULT_NA
                .iter()
                .map(|s| s.to_string())
                .collect()
        });
        let needs_value = !matches!(config.op, Op::IsNa | Op::IsNotNa);
        let target = match (&config.value, needs_value) {
            (None, false) => Target::None,
            (Some(_), false) => {
                let op = if config.op == Op::IsNa {
                    "is-na"
                } else {
                    "is-not-na"
                };
                return Err(format!("`value` is not used with op `{op}`: remove it"));
            }
            (None, true) => return Err("`value` is required with this `op`".to_string()),
            (Some(v), true) => {
                let text = match v {
                    ValueText::Number(n) => n.to_string(),
                    ValueText::Text(t) => t.clone(),
                };
                let as_number = text.trim().parse::<f64>().ok();
                match (config.compare, as_number) {
                    (Some(Compare::Text), _) => Target::Text(text),
                    (Some(Compare::Number) | None, Some(n)) => Target::Number(n),
                    (None, None) => Target::Text(text),
                    (Some(Compare::Number), None) => {
                        return Err(format!(
                            "`value` `{text}` is not a number but `compare` is `number`"
                        ));
                    }
                }
            }
        };
        Ok(Filter {
            column: config.column.clone(),
            op: config.op,
            target,
            na,
        })
    }

    /// Streams `input` to `output`, keeping the header and the rows that match.
    /// `name` names the input in errors.
    pub fn apply(
        &self,
        input: impl Read,
        output: impl Write,
        name: &std::path::Path,
    ) -> Result<Counts, StepError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(input);
        let mut writer = csv::Writer::from_writer(output);
        let headers = reader
            .headers()
            .map_err(|e| runner_sdk::csv_error(name, e))?
            .clone();
        let index = runner_sdk::column_index(&headers, &self.column, name)?;
        writer
            .write_record(&headers)
            .map_err(|e| runner_sdk::csv_error(name, e))?;

        let mut counts = Counts::default();
        let mut record = csv::ByteRecord::new();
        while reader
            .read_byte_record(&mut record)
            .map_err(|e| runner_sdk::csv_error(name, e))?
        {
            counts.rows_in += 1;
            let cell = record.get(index).unwrap_or_default();
            let is_na = self.na.iter().any(|m| m.as_bytes() == cell);
            if is_na {
                counts.na += 1;
            }
            if self.keeps(cell, is_na, counts.rows_in, name)? {
                counts.rows_out += 1;
                writer
                    .write_byte_record(&record)
                    .map_err(|e| runner_sdk::csv_error(name, e))?;
            }
        }
        writer.flush().map_err(|e| runner_sdk::io_error(name, e))?;
        Ok(counts)
    }

    fn keeps(
        &self,
        cell: &[u8],
        is_na: bool,
        row: u64,
        name: &std::path::Path,
    ) -> Result<bool, StepError> {
        match self.op {
            Op::IsNa => return Ok(is_na),
            Op::IsNotNa => return Ok(!is_na),
            _ if is_na => return Ok(false),
            _ => {}
        }
        let ordering = match &self.target {
            Target::None => unreachable!("ops other than is-na/is-not-na always carry a value"),
            Target::Text(t) => cell.cmp(t.as_bytes()),
            Target::Number(n) => {
                let text = std::str::from_utf8(cell).unwrap_or("").trim();
                let value: f64 = text.parse().map_err(|_| {
                    StepError::BadInput(format!(
                        "`{}` data row {row}: column `{}` holds `{}`, which is not a number",
                        name.display(),
                        self.column,
                        String::from_utf8_lossy(cell)
                    ))
                })?;
                match value.partial_cmp(n) {
                    Some(o) => o,
                    None => return Ok(false),
                }
            }
        };
        use std::cmp::Ordering::*;
        Ok(match self.op {
            Op::Eq => ordering == Equal,
            Op::Ne => ordering != Equal,
            Op::Lt => ordering == Less,
            Op::Le => ordering != Greater,
            Op::Gt => ordering == Greater,
            Op::Ge => ordering != Less,
            Op::IsNa | Op::IsNotNa => unreachable!("handled above"),
        })
    }
}

struct Step;

impl Guest for Step {
    fn run(ctx: RunContext) -> Result<Summary, StepError> {
        let config: Config = runner_sdk::config(&ctx)?;
        let filter = Filter::new(&config)
            .map_err(|m| StepError::InvalidConfig(format!("step `{}`: {m}", ctx.step)))?;

        let mut total = Counts::default();
        for name in runner_sdk::csv_inputs(&ctx, config.input.as_deref())? {
            let input = runner_sdk::input_path(&ctx, &name);
            let output = runner_sdk::output_path(&ctx, &name);
            let reader =
                std::fs::File::open(&input).map_err(|e| runner_sdk::io_error(&input, e))?;
            let writer =
                std::fs::File::create(&output).map_err(|e| runner_sdk::io_error(&output, e))?;
            let counts = filter.apply(reader, writer, &input)?;
            runner_sdk::log(
                runner_sdk::Level::Info,
                &format!(
                    "{name}: kept {} of {} rows",
                    counts.rows_out, counts.rows_in
                ),
            );
            total.rows_in += counts.rows_in;
            total.rows_out += counts.rows_out;
            total.na += counts.na;
        }
        Ok(Summary {
            rows_in: total.rows_in,
            rows_out: total.rows_out,
            metrics: vec![Metric {
                name: "na".to_string(),
                value: total.na as f64,
            }],
        })
    }
}

runner_sdk::export!(Step);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_that_is_neither_number_nor_text_is_named() {
        // Reported: `value = true` gave "did not match any variant of untagged enum
        // ValueText".
        let err = serde_json::from_str::<Config>(r#"{"column":"x","op":"=","value":true}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("`value` must be a number or a text, not `true`"),
            "{err}"
        );
        let ok: Config = serde_json::from_str(r#"{"column":"x","op":"=","value":"0"}"#).unwrap();
        assert!(matches!(ok.value, Some(ValueText::Text(t)) if t == "0"));
        let ok: Config = serde_json::from_str(r#"{"column":"x","op":"=","value":-2.5}"#).unwrap();
        assert!(matches!(ok.value, Some(ValueText::Number(n)) if n == -2.5));
    }

    #[test]
    fn is_na_with_a_value_names_the_op_as_written() {
        let config: Config =
            serde_json::from_str(r#"{"column":"x","op":"is-na","value":1}"#).unwrap();
        assert_eq!(
            Filter::new(&config).unwrap_err(),
            "`value` is not used with op `is-na`: remove it"
        );
    }

    fn run(config: &str, csv: &str) -> Result<(Counts, String), StepError> {
        let config: Config = serde_json::from_str(config).unwrap();
        let filter = Filter::new(&config).map_err(StepError::InvalidConfig)?;
        let mut out = Vec::new();
        let counts = filter.apply(csv.as_bytes(), &mut out, std::path::Path::new("t.csv"))?;
        Ok((counts, String::from_utf8(out).unwrap()))
    }

    const DATA: &str = "k,v\na,3\nb,NA\nc,-1\nd,10\ne,\n";

    #[test]
    fn numeric_greater_than_drops_missing_values() {
        let (counts, out) = run(r#"{"column":"v","op":">","value":0}"#, DATA).unwrap();
        assert_eq!(out, "k,v\na,3\nd,10\n");
        assert_eq!(
            counts,
            Counts {
                rows_in: 5,
                rows_out: 2,
                na: 2
            }
        );
    }

    #[test]
    fn numbers_compare_as_numbers_not_text() {
        // As text "10" < "3"; as numbers it is not.
        let (_, out) = run(r#"{"column":"v","op":"<","value":"5"}"#, DATA).unwrap();
        assert_eq!(out, "k,v\na,3\nc,-1\n");
    }

    #[test]
    fn text_comparison_when_configured() {
        let (_, out) = run(
            r#"{"column":"v","op":"<","value":"5","compare":"text"}"#,
            DATA,
        )
        .unwrap();
        // Byte order: "-1" < "10" < "3" < "5"; NA and empty are missing and never match.
        assert_eq!(out, "k,v\na,3\nc,-1\nd,10\n");
    }

    #[test]
    fn equality_inequality_and_bounds() {
        let eq = run(r#"{"column":"k","op":"=","value":"c"}"#, DATA)
            .unwrap()
            .1;
        assert_eq!(eq, "k,v\nc,-1\n");
        let ne = run(r#"{"column":"v","op":"!=","value":3}"#, DATA)
            .unwrap()
            .1;
        assert_eq!(ne, "k,v\nc,-1\nd,10\n");
        let le = run(r#"{"column":"v","op":"<=","value":3}"#, DATA)
            .unwrap()
            .1;
        assert_eq!(le, "k,v\na,3\nc,-1\n");
        let ge = run(r#"{"column":"v","op":">=","value":3}"#, DATA)
            .unwrap()
            .1;
        assert_eq!(ge, "k,v\na,3\nd,10\n");
    }

    #[test]
    fn is_na_and_is_not_na() {
        let (c, na) = run(r#"{"column":"v","op":"is-na"}"#, DATA).unwrap();
        assert_eq!(na, "k,v\nb,NA\ne,\n");
        assert_eq!(c.rows_out, 2);
        let (c, present) = run(r#"{"column":"v","op":"is-not-na","na":["NA"]}"#, DATA).unwrap();
        // With only "NA" as the marker, the empty cell counts as present.
        assert_eq!(c.rows_out, 4);
        assert!(present.ends_with("c,-1\nd,10\ne,\n"), "{present}");
    }

    #[test]
    fn missing_column_names_the_column_and_what_is_there() {
        let err = run(r#"{"column":"nope","op":"is-na"}"#, DATA).unwrap_err();
        match err {
            StepError::MissingColumn(m) => {
                assert!(m.contains("`nope`") && m.contains("k, v"), "{m}")
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_non_numeric_cell_is_bad_input_naming_row_and_value() {
        let err = run(r#"{"column":"k","op":">","value":1}"#, DATA).unwrap_err();
        match err {
            StepError::BadInput(m) => assert!(m.contains("row 1") && m.contains("`a`"), "{m}"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_value_with_is_na_or_none_with_a_comparison_is_rejected() {
        assert!(run(r#"{"column":"v","op":"is-na","value":1}"#, DATA).is_err());
        assert!(run(r#"{"column":"v","op":">"}"#, DATA).is_err());
        assert!(
            run(
                r#"{"column":"v","op":">","value":"x","compare":"number"}"#,
                DATA
            )
            .is_err()
        );
    }
}
