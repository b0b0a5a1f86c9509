//! The main job, `daily-flights`, on the full nycflights13 table: every carrier's figures
//! must match an independent computation.

use crate::support::{Scratch, daily_flights, flights_csv, text};

/// Delayed departures (`dep_delay > 0`) by carrier: count, mean, min, max.
///
/// Obtained independently of the runner with the sqlite3 CLI over the same CSV:
///
/// ```text
/// sqlite3 f.db
/// .mode csv
/// .import ../shared/data/nycflights13/flights.csv flights
/// SELECT carrier, count(*), printf('%.10f', avg(CAST(dep_delay AS INTEGER))),
///        min(CAST(dep_delay AS INTEGER)), max(CAST(dep_delay AS INTEGER))
/// FROM flights WHERE dep_delay != 'NA' AND CAST(dep_delay AS INTEGER) > 0
/// GROUP BY carrier ORDER BY carrier;
/// ```
const EXPECTED: &[(&str, u64, f64, i64, i64)] = &[
    ("9E", 7063, 48.9200056633, 1, 747),
    ("AA", 10162, 37.1692580201, 1, 1014),
    ("AS", 226, 31.3407079646, 1, 225),
    ("B6", 21445, 39.7942177664, 1, 502),
    ("DL", 15241, 37.4002362050, 1, 960),
    ("EV", 23139, 50.3297895328, 1, 548),
    ("F9", 341, 45.1378299120, 1, 853),
    ("FL", 1654, 40.8258766626, 1, 602),
    ("HA", 69, 44.8405797101, 1, 1301),
    ("MQ", 8031, 44.9153281036, 1, 1137),
    ("OO", 9, 58.0000000000, 1, 154),
    ("UA", 27261, 29.9261949305, 1, 483),
    ("US", 4775, 33.0506806283, 1, 500),
    ("VX", 2225, 34.4548314607, 1, 653),
    ("WN", 6558, 34.8574260445, 1, 471),
    ("YV", 233, 52.9527896996, 1, 387),
];

#[test]
fn daily_flights_on_the_full_table_matches_sqlite_for_every_carrier() {
    let scratch = Scratch::new();
    scratch.job_file(&daily_flights(&flights_csv()));

    let out = scratch.runner(&["run", "daily-flights"]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "run failed:\n{stdout}\n{}",
        text(&out.stderr)
    );
    let report_line = stdout
        .lines()
        .find(|l| l.starts_with("report: "))
        .expect("prints the report");
    let report = std::path::PathBuf::from(report_line.trim_start_matches("report: "));
    assert!(report.is_file(), "{} is not a file", report.display());

    let run = scratch.show(1);
    assert_eq!(run["run"]["status"], "succeeded");
    let steps = run["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    // Row counts from the same sqlite3 import: 336,776 rows, 8,255 with dep_delay NA,
    // 128,432 with dep_delay > 0 (the sum of the counts above).
    assert_eq!(steps[0]["rows_in"], 336_776);
    assert_eq!(steps[0]["rows_out"], 128_432);
    assert_eq!(steps[0]["metrics"]["na"], 8255.0);
    assert_eq!(steps[1]["rows_in"], 128_432);
    assert_eq!(steps[1]["rows_out"], EXPECTED.len());

    // The aggregate table, as the second step wrote it.
    let aggregate =
        std::path::Path::new(steps[1]["output_dir"].as_str().unwrap()).join("aggregate.csv");
    let mut reader = csv::Reader::from_path(&aggregate).expect("aggregate.csv");
    let headers = reader.headers().unwrap().clone();
    assert_eq!(
        headers.iter().collect::<Vec<_>>(),
        [
            "carrier",
            "dep_delay_count",
            "dep_delay_mean",
            "dep_delay_min",
            "dep_delay_max",
            "dep_delay_na"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), EXPECTED.len());
    for (row, &(carrier, count, mean, min, max)) in rows.iter().zip(EXPECTED) {
        assert_eq!(&row[0], carrier);
        assert_eq!(row[1].parse::<u64>().unwrap(), count, "{carrier} count");
        let got: f64 = row[2].parse().unwrap();
        assert!((got - mean).abs() < 1e-9, "{carrier} mean: {got} vs {mean}");
        assert_eq!(row[3].parse::<f64>().unwrap(), min as f64, "{carrier} min");
        assert_eq!(row[4].parse::<f64>().unwrap(), max as f64, "{carrier} max");
        assert_eq!(&row[5], "0", "{carrier}: the filter left no NA");
    }

    // The report: worst mean first (OO, 58.00), every carrier present, means to 2 places.
    let md = std::fs::read_to_string(&report).unwrap();
    let first_row = md
        .lines()
        .find(|l| l.starts_with("| ") && !l.starts_with("| carrier"))
        .unwrap();
    assert_eq!(first_row, "| OO | 9 | 58.00 | 1 | 154 | 0 |");
    assert!(md.contains("| UA | 27261 | 29.93 | 1 | 483 | 0 |"), "{md}");
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(report.with_file_name("summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(summary["rows"].as_array().unwrap().len(), 16);
    assert_eq!(summary["rows"][0]["carrier"], "OO");
    assert_eq!(summary["rows"][0]["dep_delay_count"], 9);
}

#[test]
fn the_bundled_sample_is_january_2013() {
    // 27,004 January rows and 9,662 of them delayed: sqlite3 over the full table with
    // `WHERE month = '1'` (and `AND dep_delay != 'NA' AND CAST(dep_delay AS INTEGER) > 0`).
    let sample =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/flights-2013-01.csv");
    let mut reader = csv::Reader::from_path(&sample).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 27_004);
    assert!(rows.iter().all(|r| &r[0] == "2013" && &r[1] == "1"));
    let delayed = rows
        .iter()
        .filter(|r| r[5].parse::<i64>().is_ok_and(|d| d > 0))
        .count();
    assert_eq!(delayed, 9_662);
}
