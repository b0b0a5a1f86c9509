//! The output-directory quota: bytes and entries a step may leave in its output directory.
//!
//! Granularity, honestly: the quota is not checked on every write. The epoch callback,
//! which runs while the guest executes wasm, walks the output directory every
//! [`CHECK_EVERY_TICKS`] epoch ticks (50 ms) and interrupts the guest once it is over; a
//! final walk after the guest returns catches the rest. So a step can overshoot by what it
//! writes in about 50 ms (on this class of machine, up to some hundreds of MiB into the page
//! cache) before it is stopped, and the overshoot stays on disk until the run directory is
//! cleaned. A filesystem quota or a size-limited mount is the tool for a hard bound.
//!
//! Bytes are file lengths (a sparse file counts at its length); entries are files,
//! directories and links. Links are counted, never followed.

use std::path::{Path, PathBuf};

/// Epoch ticks between two walks of the output directory while the guest runs.
pub const CHECK_EVERY_TICKS: u64 = 5;

/// What a step has written so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Sum of the lengths of the regular files.
    pub bytes: u64,
    /// Files, directories and links.
    pub entries: u64,
}

/// The quota of one step's output directory.
#[derive(Debug, Clone)]
pub struct Quota {
    dir: PathBuf,
    max_bytes: u64,
    max_entries: u64,
}

impl Quota {
    /// A quota of `max_bytes` and `max_entries` on `dir`.
    pub fn new(dir: &Path, max_bytes: u64, max_entries: u64) -> Quota {
        Quota {
            dir: dir.to_path_buf(),
            max_bytes,
            max_entries,
        }
    }

    /// `None` while within the quota, else what was exceeded, in words. The walk stops as
    /// soon as the quota is passed, so a directory flooded with files is not walked whole.
    pub fn check(&self) -> Option<String> {
        let usage = self.walk();
        if usage.bytes > self.max_bytes {
            return Some(format!(
                "output directory holds over {} bytes, above its quota of {} bytes",
                usage.bytes, self.max_bytes
            ));
        }
        if usage.entries > self.max_entries {
            return Some(format!(
                "output directory holds over {} entries, above its quota of {} entries",
                usage.entries, self.max_entries
            ));
        }
        None
    }

    fn walk(&self) -> Usage {
        let mut usage = Usage::default();
        let mut stack = vec![self.dir.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                usage.entries += 1;
                let Ok(meta) = entry.path().symlink_metadata() else {
                    continue;
                };
                if meta.is_dir() {
                    stack.push(entry.path());
                } else if meta.is_file() {
                    usage.bytes += meta.len();
                }
                if usage.bytes > self.max_bytes || usage.entries > self.max_entries {
                    return usage;
                }
            }
        }
        usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_in_subdirectories_count_and_the_first_excess_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a"), [0u8; 600]).unwrap();
        std::fs::write(dir.path().join("b"), [0u8; 500]).unwrap();
        // Three entries (sub, sub/a, b) and 1100 bytes.
        assert_eq!(Quota::new(dir.path(), 1100, 3).check(), None);
        assert_eq!(
            Quota::new(dir.path(), 1100, 2).check().unwrap(),
            "output directory holds over 3 entries, above its quota of 2 entries"
        );
        assert!(
            Quota::new(dir.path(), 1099, 3)
                .check()
                .unwrap()
                .contains("above its quota of 1099 bytes")
        );
    }
}
