//! The output quota is kept at the call that would pass it: `hostile-fill` writes, grows
//! and creates entries in every way WASI allows, and each test checks the exact refusal
//! recorded, what the guest saw, and that nothing past the quota is left on disk. Under the
//! old 50 ms directory walk every one of these left more than the quota behind.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::host::{Host, job};

/// A deadline far beyond what any of these needs, so a quota that never refuses fails the
/// test as a timeout rather than filling the disk.
const LIMITS_TAIL: &str = "timeout_secs = 60";

/// Runs `hostile-fill` with `config` under `limits` (a TOML inline table's contents),
/// checks the host still serves, and returns the step record and what its output directory
/// holds (bytes, entries).
async fn fill(config: &str, limits: &str) -> (Value, (u64, u64)) {
    let limits = format!("{{ {limits}, {LIMITS_TAIL} }}");
    let host = Host::new(&job("hostile", "hostile-fill", config, &limits)).await;
    let step = host.run_one("hostile").await;
    host.assert_still_serves().await;
    let dir = PathBuf::from(step["output_dir"].as_str().unwrap());
    let held = on_disk(&dir);
    (step, held)
}

/// Bytes (file lengths) and entries in `dir`, walked as any tool would.
fn on_disk(dir: &Path) -> (u64, u64) {
    let (mut bytes, mut entries) = (0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.path().symlink_metadata().unwrap();
            entries += 1;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                bytes += meta.len();
            }
        }
    }
    (bytes, entries)
}

/// What the guest's libc makes of a refused stream write (Rust's std writes files through
/// output streams): wasi-libc reports any failed stream write as EIO, without asking the
/// host's `filesystem-error-code`, which would say `quota`.
const STREAM_REFUSED: &str = "Uncategorized, I/O error (os error 29)";

/// What the guest sees of a refused filesystem call: `error-code::quota`, EDQUOT.
const CALL_REFUSED: &str = "QuotaExceeded, Quota exceeded (os error 19)";

fn assert_quota(step: &Value, error: &str, guest_saw: &str) {
    assert_eq!(step["outcome"], "output-quota", "{step:#}");
    assert_eq!(step["error"], error, "{step:#}");
    let log = step["log"].as_str().unwrap();
    assert!(log.contains(guest_saw), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writing_bytes_until_refused_leaves_exactly_the_quota() {
    let (step, held) = fill(r#"{ mode = "bytes" }"#, "output_mib = 1").await;
    // Sixteen 64 KiB writes fit in 1 MiB; the seventeenth is refused whole.
    assert_quota(
        &step,
        "a write would take the output directory to 1114112 bytes, above its quota of 1048576 \
         bytes",
        &format!("refused after 1048576 bytes: {STREAM_REFUSED}"),
    );
    assert_eq!(held, (1 << 20, 1));
    assert_eq!(step["output_bytes"], 1 << 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_write_far_larger_than_the_quota_stops_at_the_quota() {
    let (step, held) = fill(r#"{ mode = "burst", mib = 64 }"#, "output_mib = 1").await;
    assert_quota(
        &step,
        "a write would take the output directory to 1114112 bytes, above its quota of 1048576 \
         bytes",
        &format!("refused after 0 bytes: {STREAM_REFUSED}"),
    );
    assert_eq!(held, (1 << 20, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appending_until_refused_leaves_exactly_the_quota() {
    let (step, held) = fill(r#"{ mode = "append" }"#, "output_mib = 1").await;
    assert_quota(
        &step,
        "a write would take the output directory to 1114112 bytes, above its quota of 1048576 \
         bytes",
        &format!("refused after 1048576 bytes: {STREAM_REFUSED}"),
    );
    assert_eq!(held, (1 << 20, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_byte_write_a_tebibyte_out_is_refused_before_the_file_grows() {
    // The file would be 1 TiB + 1 byte long: a sparse file counts at its length.
    let error = "a write would take the output directory to 1099511627777 bytes, above its \
                 quota of 1048576 bytes";
    let (step, held) = fill(r#"{ mode = "sparse" }"#, "output_mib = 1").await;
    assert_quota(
        &step,
        error,
        &format!("refused after 0 bytes: {CALL_REFUSED}"),
    );
    assert_eq!(held, (0, 1));

    // The same after a seek, through an output stream.
    let (step, held) = fill(r#"{ mode = "sparse-stream" }"#, "output_mib = 1").await;
    assert_quota(
        &step,
        error,
        &format!("refused after 0 bytes: {STREAM_REFUSED}"),
    );
    assert_eq!(held, (0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setting_a_file_length_past_the_quota_is_refused() {
    let (step, held) = fill(r#"{ mode = "grow" }"#, "output_mib = 1").await;
    assert_quota(
        &step,
        "a write would take the output directory to 1099511627776 bytes, above its quota of \
         1048576 bytes",
        &format!("refused after 0 bytes: {CALL_REFUSED}"),
    );
    assert_eq!(held, (0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_entry_is_refused_at_the_entry_quota() {
    // The hard links share one (empty) file, `a`, which is the first of the 50 entries.
    for (mode, made) in [
        ("files", 50),
        ("dirs", 50),
        ("symlinks", 50),
        ("hard-links", 49),
    ] {
        let (step, held) = fill(&format!(r#"{{ mode = "{mode}" }}"#), "output_files = 50").await;
        assert_quota(
            &step,
            "a new entry would take the output directory to 51 entries, above its quota of 50 \
             entries",
            &format!("refused after {made} {mode}: {CALL_REFUSED}"),
        );
        assert_eq!(held, (0, 50), "{mode}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_files_gives_their_bytes_back() {
    // Twenty 1 MiB files written and removed one after another: 20 MiB written in all,
    // never more than 1 MiB held, under a 2 MiB quota.
    let (step, held) = fill(
        r#"{ mode = "churn", mib = 1, rounds = 20 }"#,
        "output_mib = 2",
    )
    .await;
    assert_eq!(step["outcome"], "succeeded", "{step:#}");
    assert_eq!(step["rows_out"], 20);
    assert_eq!(held, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_file_still_open_keeps_its_bytes_until_closed() {
    let (step, held) = fill(r#"{ mode = "held" }"#, "output_mib = 1").await;
    assert_quota(
        &step,
        "a write would take the output directory to 1114112 bytes, above its quota of 1048576 \
         bytes",
        &format!("refused after 1048576 bytes: {STREAM_REFUSED}"),
    );
    let log = step["log"].as_str().unwrap();
    assert!(
        log.contains("while the removed file is open: Err(Uncategorized)"),
        "{log}"
    );
    assert!(log.contains("once it is closed: Ok(())"), "{log}");
    assert_eq!(held, (64 << 10, 1));
}
