//! Steps running at the same time in one process do not affect each other: the
//! daily-flights job gives the same bytes alone and while hostile steps run beside it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::host::{Host, job};
use crate::support::daily_flights;

/// Every file under each step's output directory, by step and relative path.
async fn outputs(host: &Host, run_id: i64) -> BTreeMap<String, Vec<u8>> {
    let (_, steps) = host.runner.store.run_detail(run_id).await.unwrap();
    assert_eq!(steps.len(), 3);
    let mut files = BTreeMap::new();
    for step in steps {
        assert_eq!(step.outcome.as_deref(), Some("succeeded"), "{step:?}");
        let dir = PathBuf::from(step.output_dir.unwrap());
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            files.insert(format!("{}/{}", step.name, name(&path)), bytes);
        }
    }
    files
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// The report names its run id; everything else in it must match to the byte.
fn without_run_id(files: &mut BTreeMap<String, Vec<u8>>, run_id: i64) {
    for (path, bytes) in files.iter_mut() {
        if path.starts_with("report/") {
            let text = String::from_utf8(bytes.clone()).unwrap();
            *bytes = text
                .replace(&format!(", run {run_id}, for"), ", run #, for")
                .replace(&format!("\"run_id\": {run_id}"), "\"run_id\": #")
                .replace(&format!("\"run_id\":{run_id}"), "\"run_id\":#")
                .into_bytes();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_flights_gives_the_same_bytes_alone_and_beside_hostile_steps() {
    let january = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/flights-2013-01.csv");
    let hostile = [
        job("loop", "hostile-loop", "{}", "{ timeout_secs = 1.0 }"),
        job("alloc", "hostile-alloc", "{}", "{ memory_mib = 64 }"),
        job("spew", "hostile-spew", "{ mib = 4 }", "{ log_kib = 16 }"),
        job("fill", "hostile-fill", "{}", "{ output_mib = 8 }"),
        job("panic", "hostile-panic", "{}", "{}"),
        job("sleep", "hostile-sleep", "{}", "{ timeout_secs = 1.0 }"),
    ];
    let jobs = daily_flights(&january) + &hostile.concat();
    let host = Arc::new(Host::new(&jobs).await);
    let logical_time = chrono::Utc::now();

    let alone = host.run_for("daily-flights", logical_time).await;
    let mut expected = outputs(&host, alone.run_id).await;
    without_run_id(&mut expected, alone.run_id);
    assert_eq!(expected.len(), 4, "{:?}", expected.keys());

    let mut tasks = Vec::new();
    for name in [
        "loop",
        "alloc",
        "daily-flights",
        "spew",
        "fill",
        "panic",
        "sleep",
    ] {
        let host = host.clone();
        tasks.push(tokio::spawn(async move {
            (name, host.run_for(name, logical_time).await)
        }));
    }
    let mut outcomes = BTreeMap::new();
    let mut beside = None;
    for task in tasks {
        let (name, result) = task.await.expect("no run panics the host");
        if name == "daily-flights" {
            beside = Some(result.run_id);
        }
        let (_, steps) = host.runner.store.run_detail(result.run_id).await.unwrap();
        outcomes.insert(name, steps.last().unwrap().outcome.clone().unwrap());
    }
    let beside = beside.unwrap();
    let mut got = outputs(&host, beside).await;
    without_run_id(&mut got, beside);
    assert!(got == expected, "outputs differ beside hostile steps");

    // Each hostile step ended its own way, side by side, as it does alone.
    let outcomes: Vec<(&str, &str)> = outcomes.iter().map(|(n, o)| (*n, o.as_str())).collect();
    assert_eq!(
        outcomes,
        [
            ("alloc", "memory-limit"),
            ("daily-flights", "succeeded"),
            ("fill", "output-quota"),
            ("loop", "timeout"),
            ("panic", "trap"),
            ("sleep", "timeout"),
            ("spew", "succeeded"),
        ]
    );
}
