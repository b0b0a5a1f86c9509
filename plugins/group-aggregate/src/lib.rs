//! `group-aggregate`: groups CSV rows by one or more columns and aggregates numeric columns.
//!
//! Config (the step's table in the job file):
//!
//! | key | meaning |
//! |---|---|
//! | `group_by` | the columns that form a group's key (one or more, required) |
//! | `aggregates` | a list of `{ column, ops }`, `ops` from `count`, `sum`, `mean`, `min`, `max` |
//! | `na` | the texts that mark a missing value; default `["NA", ""]` |
//! | `input` | the input file to read; default every `.csv` file in the input directory |
//! | `output` | the output file name; default `aggregate.csv` |
//!
//! Missing values are skipped and counted: every aggregated column gets a `<column>_na`
//! output column. `count` counts the values present. Output rows are sorted by group key.
//! Rows stream through; memory grows with the number of groups, not with the input.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{Read, Write};
use std::path::Path;

use runner_sdk::records::{Record, Records};
use runner_sdk::{Guest, Metric, RunContext, StepError, Summary};
use serde::Deserialize;

/// The step's config as written in the job file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Columns forming the group key.
    pub group_by: Vec<String>,
    /// What to compute.
    pub aggregates: Vec<Aggregate>,
    /// Texts that mark a missing value.
    #[serde(default)]
    pub na: Option<Vec<String>>,
    /// Input file (default: every `.csv` in the input directory).
    #[serde(default)]
    pub input: Option<String>,
    /// Output file name.
    #[serde(default)]
    pub output: Option<String>,
}

/// One aggregated column and the statistics wanted of it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aggregate {
    /// The numeric column.
    pub column: String,
    /// The statistics, in output order.
    pub ops: Vec<Stat>,
}

/// A statistic of a numeric column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stat {
    /// Number of values present.
    Count,
    /// Sum of the values.
    Sum,
    /// Arithmetic mean of the values.
    Mean,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
}

impl Stat {
    fn name(self) -> &'static str {
        match self {
            Stat::Count => "count",
            Stat::Sum => "sum",
            Stat::Mean => "mean",
            Stat::Min => "min",
            Stat::Max => "max",
        }
    }
}

/// Running statistics of one column within one group.
#[derive(Debug, Clone, Copy)]
struct Acc {
    count: u64,
    na: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Default for Acc {
    fn default() -> Self {
        Acc {
            count: 0,
            na: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

/// Groups and aggregates rows fed to it, then writes the table.
#[derive(Debug)]
pub struct Aggregator {
    config: Config,
    na: Vec<Vec<u8>>,
    /// Groups by key: the field itself for one group column, else encoded (see
    /// [`encode_key`]); sorted for output at write time.
    groups: HashMap<Vec<u8>, Vec<Acc>, BuildHasherDefault<KeyHasher>>,
    rows_in: u64,
    na_total: u64,
}

impl Aggregator {
    /// Checks a config; the error names the field.
    pub fn new(config: Config) -> Result<Aggregator, String> {
        if config.group_by.is_empty() {
            return Err("`group_by` must name at least one column".to_string());
        }
        if config.aggregates.is_empty() {
            return Err("`aggregates` must name at least one column".to_string());
        }
        if let Some(a) = config.aggregates.iter().find(|a| a.ops.is_empty()) {
            return Err(format!("`aggregates`: column `{}` has no `ops`", a.column));
        }
        let na = config
            .na
            .clone()
            .unwrap_or_else(|| {
                runner_sdk::DEFAULT_NA
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            })
            .into_iter()
            .map(String::into_bytes)
            .collect();
        Ok(Aggregator {
            config,
            na,
            groups: HashMap::default(),
            rows_in: 0,
            na_total: 0,
        })
    }

    /// Data rows read so far.
    pub fn rows_in(&self) -> u64 {
        self.rows_in
    }

    /// Missing values skipped so far, over all aggregated columns.
    pub fn na_skipped(&self) -> u64 {
        self.na_total
    }

    /// Number of groups so far.
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// Streams one CSV input (with a header line) into the groups. `name` names it in errors.
    pub fn feed(&mut self, input: impl Read, name: &Path) -> Result<(), StepError> {
        let mut reader = Records::new(input);
        let headers = reader.headers(name)?.clone();
        let keys = self
            .config
            .group_by
            .iter()
            .map(|c| runner_sdk::column_index(&headers, c, name))
            .collect::<Result<Vec<_>, _>>()?;
        let values = self
            .config
            .aggregates
            .iter()
            .map(|a| runner_sdk::column_index(&headers, &a.column, name))
            .collect::<Result<Vec<_>, _>>()?;
        let last = keys.iter().chain(&values).max().copied().unwrap_or(0);
        reader.keep_first(last + 1);

        let mut key: Vec<u8> = Vec::with_capacity(64);
        let mut row = 0u64;
        while let Some(record) = reader.read(name)? {
            row += 1;
            // One group column is its own key, looked up without copying it.
            let lookup = match keys.as_slice() {
                &[k] => record.get(k).unwrap_or_default(),
                _ => {
                    encode_key(&record, &keys, &mut key);
                    key.as_slice()
                }
            };
            // Look up before inserting so the common case allocates nothing.
            let accs = match self.groups.get_mut(lookup) {
                Some(accs) => accs,
                None => self
                    .groups
                    .entry(lookup.to_vec())
                    .or_insert_with(|| vec![Acc::default(); values.len()]),
            };
            for (acc, (&v, agg)) in accs
                .iter_mut()
                .zip(values.iter().zip(&self.config.aggregates))
            {
                let cell = record.get(v).unwrap_or_default();
                if self.na.iter().any(|m| same(m, cell)) {
                    acc.na += 1;
                    self.na_total += 1;
                    continue;
                }
                let value = parse_number(cell).ok_or_else(|| {
                    StepError::BadInput(format!(
                        "`{}` data row {row}: column `{}` holds `{}`, which is not a finite number",
                        name.display(),
                        agg.column,
                        String::from_utf8_lossy(cell)
                    ))
                })?;
                acc.count += 1;
                acc.sum += value;
                // Compares rather than `f64::min`/`max`, which become calls to libm in
                // WebAssembly; a NaN cell leaves both as they were, as those would.
                if value < acc.min {
                    acc.min = value;
                }
                if value > acc.max {
                    acc.max = value;
                }
            }
        }
        self.rows_in += row;
        Ok(())
    }

    /// Writes the table: group columns, then `<column>_<stat>` and `<column>_na` per
    /// aggregate, one row per group in key order. Returns the number of rows written.
    pub fn write(&self, output: impl Write, name: &Path) -> Result<u64, StepError> {
        let mut writer = csv::Writer::from_writer(output);
        let mut header: Vec<String> = self.config.group_by.clone();
        for agg in &self.config.aggregates {
            header.extend(
                agg.ops
                    .iter()
                    .map(|s| format!("{}_{}", agg.column, s.name())),
            );
            header.push(format!("{}_na", agg.column));
        }
        writer
            .write_record(&header)
            .map_err(|e| runner_sdk::csv_error(name, e))?;

        // Keys are written back byte for byte, as read (text that is not UTF-8 included),
        // and sorted by their bytes, which for UTF-8 is code point order.
        let mut groups: Vec<(Vec<&[u8]>, &Vec<Acc>)> = self
            .groups
            .iter()
            .map(|(k, accs)| match self.config.group_by.len() {
                1 => (vec![k.as_slice()], accs),
                _ => (decode_key(k), accs),
            })
            .collect();
        groups.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, accs) in groups {
            let mut row: Vec<Vec<u8>> = key.into_iter().map(<[u8]>::to_vec).collect();
            for (acc, agg) in accs.iter().zip(&self.config.aggregates) {
                row.extend(agg.ops.iter().map(|&s| stat_text(acc, s).into_bytes()));
                row.push(acc.na.to_string().into_bytes());
            }
            writer
                .write_record(&row)
                .map_err(|e| runner_sdk::csv_error(name, e))?;
        }
        writer.flush().map_err(|e| runner_sdk::io_error(name, e))?;
        Ok(self.groups.len() as u64)
    }
}

/// Encodes a row's key fields as length-prefixed bytes into `out`: unambiguous whatever the
/// fields hold, and built without allocating once `out` has grown.
fn encode_key(record: &Record<'_>, keys: &[usize], out: &mut Vec<u8>) {
    out.clear();
    for &k in keys {
        let field = record.get(k).unwrap_or_default();
        out.extend_from_slice(&(field.len() as u32).to_le_bytes());
        out.extend_from_slice(field);
    }
}

/// A multiply-and-rotate hash taken a word at a time (the scheme of rustc's FxHasher):
/// group keys are a few bytes from the step's own input, so a short hash beats the default
/// SipHash, which guards against inputs chosen to collide (at worst such an input slows
/// its own step down).
#[derive(Default)]
struct KeyHasher(u64);

impl KeyHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for KeyHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.add(u64::from_le_bytes(word.try_into().expect("eight bytes")));
        }
        // Byte by byte: a copy of a length unknown at compile time becomes a call out of
        // the guest in WebAssembly.
        let tail = words
            .remainder()
            .iter()
            .rev()
            .fold(0u64, |word, &b| word << 8 | u64::from(b));
        self.add(tail);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Byte equality that settles most unequal cells on their length and first byte, before
/// any call to `memcmp` (a byte loop in WebAssembly).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.first() == b.first() && a == b
}

/// The inverse of [`encode_key`]: the key's fields, as read.
fn decode_key(mut key: &[u8]) -> Vec<&[u8]> {
    let mut fields = Vec::new();
    while key.len() >= 4 {
        let len = u32::from_le_bytes([key[0], key[1], key[2], key[3]]) as usize;
        fields.push(&key[4..4 + len]);
        key = &key[4 + len..];
    }
    fields
}

fn parse_number(cell: &[u8]) -> Option<f64> {
    // Most cells are whole numbers: read up to 15 digits directly (exact in an f64, so the
    // same value the float parser gives) and leave everything else to it.
    let (negative, digits) = match cell {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, cell),
    };
    if !digits.is_empty() && digits.len() <= 15 && digits.iter().all(u8::is_ascii_digit) {
        let n = digits
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0')) as f64;
        return Some(if negative { -n } else { n });
    }
    // `NaN`, `inf` and numbers past f64's range (`1e400`) are refused: they would make every
    // statistic of their group meaningless. A file that marks missing values with `NaN` can
    // say so in `na`.
    let n: f64 = std::str::from_utf8(cell).ok()?.trim().parse().ok()?;
    n.is_finite().then_some(n)
}

/// A statistic as text; a group with no values present has `NA` for all but `count`.
fn stat_text(acc: &Acc, stat: Stat) -> String {
    if acc.count == 0 && stat != Stat::Count {
        return "NA".to_string();
    }
    match stat {
        Stat::Count => acc.count.to_string(),
        Stat::Sum => acc.sum.to_string(),
        Stat::Mean => (acc.sum / acc.count as f64).to_string(),
        Stat::Min => acc.min.to_string(),
        Stat::Max => acc.max.to_string(),
    }
}

struct Step;

impl Guest for Step {
    fn run(ctx: RunContext) -> Result<Summary, StepError> {
        let config: Config = runner_sdk::config(&ctx)?;
        let input = config.input.clone();
        let output_name = config
            .output
            .clone()
            .unwrap_or_else(|| "aggregate.csv".to_string());
        let mut agg = Aggregator::new(config)
            .map_err(|m| StepError::InvalidConfig(format!("step `{}`: {m}", ctx.step)))?;

        for name in runner_sdk::csv_inputs(&ctx, input.as_deref())? {
            let path = runner_sdk::input_path(&ctx, &name);
            let file = std::fs::File::open(&path).map_err(|e| runner_sdk::io_error(&path, e))?;
            agg.feed(file, &path)?;
        }
        let path = runner_sdk::output_path(&ctx, &output_name);
        let file = std::fs::File::create(&path).map_err(|e| runner_sdk::io_error(&path, e))?;
        let rows_out = agg.write(file, &path)?;
        runner_sdk::log(
            runner_sdk::Level::Info,
            &format!(
                "{} rows in {} groups; {} missing values skipped",
                agg.rows_in(),
                agg.groups(),
                agg.na_skipped()
            ),
        );
        Ok(Summary {
            rows_in: agg.rows_in(),
            rows_out,
            metrics: vec![
                Metric {
                    name: "groups".to_string(),
                    value: agg.groups() as f64,
                },
                Metric {
                    name: "na-skipped".to_string(),
                    value: agg.na_skipped() as f64,
                },
            ],
        })
    }
}

runner_sdk::export!(Step);

#[cfg(test)]
mod tests {
    use super::*;

    fn aggregate(config: &str, csv: &str) -> Result<String, StepError> {
        let config: Config = serde_json::from_str(config).unwrap();
        let mut agg = Aggregator::new(config).map_err(StepError::InvalidConfig)?;
        agg.feed(csv.as_bytes(), Path::new("t.csv"))?;
        let mut out = Vec::new();
        agg.write(&mut out, Path::new("out.csv"))?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn groups_are_sorted_and_each_statistic_is_right() {
        // Hand count: a -> 4, 2, NA (count 2, sum 6, mean 3, min 2, max 4, na 1);
        // b -> -5 (count 1); c -> NA only.
        let data = "g,x\nb,-5\na,4\nc,NA\na,2\na,NA\n";
        let out = aggregate(
            r#"{"group_by":["g"],"aggregates":[{"column":"x","ops":["count","sum","mean","min","max"]}]}"#,
            data,
        )
        .unwrap();
        assert_eq!(
            out,
            "g,x_count,x_sum,x_mean,x_min,x_max,x_na\n\
             a,2,6,3,2,4,1\n\
             b,1,-5,-5,-5,-5,0\n\
             c,0,NA,NA,NA,NA,1\n"
        );
    }

    /// `aggregate` on bytes, output as bytes.
    fn aggregate_bytes(config: &str, csv: &[u8]) -> Vec<u8> {
        let config: Config = serde_json::from_str(config).unwrap();
        let mut agg = Aggregator::new(config).unwrap();
        agg.feed(csv, Path::new("t.csv")).unwrap();
        let mut out = Vec::new();
        agg.write(&mut out, Path::new("out.csv")).unwrap();
        out
    }

    #[test]
    fn keys_that_are_not_utf8_are_kept_byte_for_byte_and_apart() {
        // Reported: `caf\xe9`, `caf\xe8` and `caf\u{fffd}` all came out as `caf\u{fffd}`, three
        // rows with one key.
        let data = b"k,v\ncaf\xe9,1\ncaf\xe8,10\ncaf\xef\xbf\xbd,100\ncaf\xe9,2\n";
        let config = r#"{"group_by":["k"],"aggregates":[{"column":"v","ops":["sum"]}]}"#;
        let expected: &[u8] = b"k,v_sum,v_na\ncaf\xe8,10,0\ncaf\xe9,3,0\ncaf\xef\xbf\xbd,100,0\n";
        assert_eq!(aggregate_bytes(config, data), expected);
        let two = r#"{"group_by":["k","k2"],"aggregates":[{"column":"v","ops":["sum"]}]}"#;
        let data = b"k,k2,v\n\xff,a,1\n\xff,a,2\n";
        assert_eq!(aggregate_bytes(two, data), b"k,k2,v_sum,v_na\n\xff,a,3,0\n");
    }

    #[test]
    fn nan_infinity_and_numbers_past_f64_are_refused_unless_named_missing() {
        let config = r#"{"group_by":["k"],"aggregates":[{"column":"v","ops":["mean"]}]}"#;
        for cell in ["NaN", "inf", "-inf", "1e400"] {
            let err = aggregate(config, &format!("k,v\na,1\na,{cell}\n")).unwrap_err();
            let expected = format!(
                "`t.csv` data row 2: column `v` holds `{cell}`, which is not a finite number"
            );
            assert!(
                matches!(&err, StepError::BadInput(m) if *m == expected),
                "{err:?}"
            );
        }
        let na =
            r#"{"group_by":["k"],"na":["NA","NaN"],"aggregates":[{"column":"v","ops":["mean"]}]}"#;
        assert_eq!(
            aggregate(na, "k,v\na,1\na,NaN\na,3\n").unwrap(),
            "k,v_mean,v_na\na,2,1\n"
        );
    }

    #[test]
    fn several_group_columns_and_aggregates() {
        let data = "o,d,x,y\nJFK,LAX,1,10\nJFK,SFO,2,20\nJFK,LAX,3,NA\nEWR,LAX,4,40\n";
        let out = aggregate(
            r#"{"group_by":["o","d"],"aggregates":[{"column":"x","ops":["mean"]},{"column":"y","ops":["max"]}]}"#,
            data,
        )
        .unwrap();
        assert_eq!(
            out,
            "o,d,x_mean,x_na,y_max,y_na\nEWR,LAX,4,0,40,0\nJFK,LAX,2,0,10,1\nJFK,SFO,2,0,20,0\n"
        );
    }

    #[test]
    fn a_missing_group_column_is_named() {
        let err = aggregate(
            r#"{"group_by":["carrier"],"aggregates":[{"column":"x","ops":["count"]}]}"#,
            "g,x\na,1\n",
        )
        .unwrap_err();
        assert!(
            matches!(&err, StepError::MissingColumn(m) if m.contains("`carrier`")),
            "{err:?}"
        );
    }

    #[test]
    fn a_text_value_in_a_numeric_column_is_bad_input() {
        let err = aggregate(
            r#"{"group_by":["g"],"aggregates":[{"column":"x","ops":["sum"]}]}"#,
            "g,x\na,1\na,oops\n",
        )
        .unwrap_err();
        assert!(
            matches!(&err, StepError::BadInput(m) if m.contains("row 2") && m.contains("`oops`")),
            "{err:?}"
        );
    }

    #[test]
    fn empty_group_by_or_ops_are_config_errors() {
        assert!(
            aggregate(
                r#"{"group_by":[],"aggregates":[{"column":"x","ops":["sum"]}]}"#,
                "x\n"
            )
            .is_err()
        );
        assert!(
            aggregate(
                r#"{"group_by":["g"],"aggregates":[{"column":"x","ops":[]}]}"#,
                "g,x\n"
            )
            .is_err()
        );
    }
}
