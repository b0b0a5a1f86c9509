//! The output-directory quota: bytes and entries a step may leave in its output directory,
//! enforced at the WASI call that would pass it.
//!
//! Every `wasi:filesystem/types` call goes through [`fs`], which hands it to wasmtime-wasi
//! and, when it changes the output tree (the only writable preopen), asks the step's
//! [`Ledger`] first. A write, resize, file or directory creation or link that would take
//! the directory past its quota is refused with `error-code::quota` before anything reaches
//! the disk; the first refusal is kept, and the step is recorded as `output-quota` whatever
//! the guest does after it. Writes through output streams are counted by [`stream`]; a
//! refused one fails as a stream error, for which `filesystem-error-code` answers `quota`
//! (wasi-libc does not ask, and reports EIO).
//!
//! What counts: bytes are the lengths of the regular files, each file once however many
//! hard links it has, a sparse file at its full length; entries are files, directories and
//! links (symbolic and hard), never followed. A file whose last link is removed while the
//! guest still holds it open keeps its bytes until its last handle is gone: it still takes
//! disk space and can still grow.
//!
//! Where exactness would mean winning a race, the ledger counts more than the disk holds,
//! never less: a stream write is counted when the guest hands it over, before it lands; a
//! truncation while a stream write to the same file is in flight, or a stream write that
//! fails after part of it landed, leaves the file counted high until the ledger next sees
//! its length with nothing in flight (at an open, a positioned write or a resize).

pub mod fs;
mod stream;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use cap_primitives::fs::MetadataExt as _;

/// What a step's output directory holds, as the ledger counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Sum of the regular files' lengths, each file once.
    pub bytes: u64,
    /// Files, directories and links.
    pub entries: u64,
}

/// A file's identity: its hard links share it and a rename keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Inode {
    dev: u64,
    ino: u64,
}

impl Inode {
    /// The identity in metadata from a sandboxed look-up or a descriptor.
    pub fn of(meta: &cap_primitives::fs::Metadata) -> Inode {
        Inode {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// How far a write or resize reaches into a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Up to this offset: the end of a positioned write, or a new length.
    To(u64),
    /// This many bytes past the file's end, wherever that is when it lands.
    Append(u64),
}

/// A refusal, with the words the step's record gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverQuota(pub String);

impl std::fmt::Display for OverQuota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OverQuota {}

/// One regular file of the output tree.
#[derive(Debug)]
struct Tracked {
    /// Its length once every write in flight has landed: what it counts for.
    bound: u64,
    /// Stream writes handed to the OS and not yet seen to land.
    in_flight: u32,
    /// Whether a name in the tree still points at it.
    linked: bool,
    /// The open files of wasmtime-wasi descriptors (and the streams cloned from them);
    /// while one lives, an unlinked file keeps its bytes.
    handles: Vec<Weak<std::fs::File>>,
}

impl Tracked {
    fn new(len: u64) -> Tracked {
        Tracked {
            bound: len,
            in_flight: 0,
            linked: true,
            handles: Vec::new(),
        }
    }

    fn held(&mut self) -> bool {
        self.handles.retain(|h| h.strong_count() > 0);
        !self.handles.is_empty()
    }
}

/// The running count of one step's output directory against its quota.
#[derive(Debug)]
pub struct Ledger {
    max_bytes: u64,
    max_entries: u64,
    usage: Usage,
    files: HashMap<Inode, Tracked>,
    refused: Option<OverQuota>,
}

/// A ledger shared by the step's filesystem calls and its output streams.
pub type SharedLedger = Arc<Mutex<Ledger>>;

/// Locks a shared ledger; a panic elsewhere leaves the counts as they were, still usable.
pub fn lock(ledger: &SharedLedger) -> MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(|p| p.into_inner())
}

impl Ledger {
    /// A ledger of `max_bytes` and `max_entries` over what `dir` already holds (a fresh
    /// directory holds nothing; a walk of it is one empty listing).
    pub fn open(dir: &Path, max_bytes: u64, max_entries: u64) -> Ledger {
        let mut ledger = Ledger {
            max_bytes,
            max_entries,
            usage: Usage::default(),
            files: HashMap::new(),
            refused: None,
        };
        let mut stack = vec![dir.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                ledger.usage.entries += 1;
                let Ok(meta) = entry.path().symlink_metadata() else {
                    continue;
                };
                if meta.is_dir() {
                    stack.push(entry.path());
                } else if meta.is_file() {
                    let meta = cap_primitives::fs::Metadata::from_just_metadata(meta);
                    ledger.track(Inode::of(&meta), meta.len());
                }
            }
        }
        ledger
    }

    /// What the directory holds, as counted.
    #[cfg(test)]
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// The first refusal, if the step met its quota.
    pub fn refusal(&self) -> Option<&OverQuota> {
        self.refused.as_ref()
    }

    /// Whether one more entry fits.
    pub fn entry_fits(&self) -> bool {
        self.usage.entries < self.max_entries
    }

    /// Refuses one more entry, for a call that would create one at the quota.
    pub fn refuse_entry(&mut self) -> OverQuota {
        self.refuse(format!(
            "a new entry would take the output directory to {} entries, above its quota of {} \
             entries",
            self.usage.entries + 1,
            self.max_entries
        ))
    }

    /// Counts an entry the guest made; the caller checked [`Ledger::entry_fits`] first.
    pub fn entry_made(&mut self) {
        self.usage.entries += 1;
    }

    /// Gives back an entry the guest removed.
    pub fn entry_removed(&mut self) {
        self.usage.entries = self.usage.entries.saturating_sub(1);
    }

    /// Charges a write or resize of `file` before it is made, and returns the file's count
    /// before it, for [`Ledger::settle`]. `len` is the file's length just read from its
    /// descriptor, if the caller has it. `in_flight` marks a stream write, whose landing is
    /// reported by [`Ledger::landed`].
    pub fn grow(
        &mut self,
        file: Inode,
        len: Option<u64>,
        reach: Reach,
        in_flight: bool,
    ) -> Result<u64, OverQuota> {
        if let Some(len) = len {
            self.track(file, len);
            self.seen(file, len);
        }
        let before = self.track(file, 0);
        let after = match reach {
            Reach::To(end) => before.max(end),
            Reach::Append(n) => before.saturating_add(n),
        };
        let more = after - before;
        if !self.bytes_fit(more) {
            self.reclaim();
            if !self.bytes_fit(more) {
                return Err(self.refuse(format!(
                    "a write would take the output directory to {} bytes, above its quota of {} \
                     bytes",
                    self.usage.bytes.saturating_add(more),
                    self.max_bytes
                )));
            }
        }
        self.usage.bytes += more;
        let tracked = self.files.entry(file).or_insert_with(|| Tracked::new(0));
        tracked.bound = after;
        tracked.in_flight += u32::from(in_flight);
        Ok(before)
    }

    /// After a write or resize made in the call that charged it: the file reaches
    /// `landed` (0 when the call failed), so the count falls back to what is true, unless a
    /// stream write to the same file is still in flight.
    pub fn settle(&mut self, file: Inode, before: u64, landed: u64) {
        if let Some(tracked) = self.files.get_mut(&file)
            && tracked.in_flight == 0
        {
            let now = before.max(landed);
            if now < tracked.bound {
                self.usage.bytes -= tracked.bound - now;
                tracked.bound = now;
            }
        }
    }

    /// `writes` stream writes to `file` have landed (or failed).
    pub fn landed(&mut self, file: Inode, writes: u32) {
        if let Some(tracked) = self.files.get_mut(&file) {
            tracked.in_flight = tracked.in_flight.saturating_sub(writes);
        }
    }

    /// `file` was just seen to be `len` bytes long (after a truncation, or on its
    /// descriptor): unless a stream write to it is in flight, which may still lengthen it,
    /// that is its count. This corrects what a truncation during a stream write or a write
    /// that failed part way left counted.
    pub fn seen(&mut self, file: Inode, len: u64) {
        if let Some(tracked) = self.files.get_mut(&file)
            && tracked.in_flight == 0
        {
            self.usage.bytes = self.usage.bytes - tracked.bound + len;
            tracked.bound = len;
        }
    }

    /// A descriptor of `file`, `len` bytes long, was opened and holds `handle`. Returns
    /// whether the file is new to the ledger (so, created by this open).
    pub fn opened(&mut self, file: Inode, len: u64, handle: &Arc<std::fs::File>) -> bool {
        let new = !self.files.contains_key(&file);
        self.track(file, len);
        self.seen(file, len);
        if let Some(tracked) = self.files.get_mut(&file) {
            tracked.held();
            tracked.handles.push(Arc::downgrade(handle));
        }
        new
    }

    /// The last name of `file` is gone. Its bytes come back now, or when its last open
    /// handle is gone.
    pub fn unlinked(&mut self, file: Inode) {
        if let Some(tracked) = self.files.get_mut(&file) {
            if tracked.held() {
                tracked.linked = false;
            } else {
                self.usage.bytes -= tracked.bound;
                self.files.remove(&file);
            }
        }
    }

    /// Starts counting `file` at `len` bytes if the ledger has not met it; returns its
    /// count.
    fn track(&mut self, file: Inode, len: u64) -> u64 {
        match self.files.entry(file) {
            Entry::Occupied(tracked) => tracked.get().bound,
            Entry::Vacant(slot) => {
                self.usage.bytes = self.usage.bytes.saturating_add(len);
                slot.insert(Tracked::new(len));
                len
            }
        }
    }

    fn bytes_fit(&self, more: u64) -> bool {
        self.usage
            .bytes
            .checked_add(more)
            .is_some_and(|b| b <= self.max_bytes)
    }

    /// Gives back the bytes of unlinked files no handle holds any more.
    fn reclaim(&mut self) {
        let usage = &mut self.usage;
        self.files.retain(|_, tracked| {
            let gone = !tracked.linked && !tracked.held();
            if gone {
                usage.bytes -= tracked.bound;
            }
            !gone
        });
    }

    fn refuse(&mut self, why: String) -> OverQuota {
        let over = OverQuota(why);
        self.refused.get_or_insert_with(|| over.clone());
        over
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inode(ino: u64) -> Inode {
        Inode { dev: 1, ino }
    }

    fn handle() -> Arc<std::fs::File> {
        Arc::new(tempfile::tempfile().unwrap())
    }

    #[test]
    fn what_the_directory_already_holds_counts_each_file_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a"), [0u8; 600]).unwrap();
        std::fs::write(dir.path().join("b"), [0u8; 500]).unwrap();
        std::fs::hard_link(dir.path().join("b"), dir.path().join("b2")).unwrap();
        let ledger = Ledger::open(dir.path(), 1100, 4);
        // Four entries (sub, sub/a, b, b2), and b's 500 bytes once.
        assert_eq!(
            ledger.usage(),
            Usage {
                bytes: 1100,
                entries: 4
            }
        );
        assert!(!ledger.entry_fits());
    }

    #[test]
    fn a_write_past_the_quota_is_refused_whole_and_the_first_refusal_is_kept() {
        let mut ledger = Ledger::open(Path::new("/nonexistent"), 1000, 10);
        assert_eq!(ledger.grow(inode(1), None, Reach::To(600), false), Ok(0));
        let over = ledger
            .grow(inode(1), None, Reach::Append(401), false)
            .unwrap_err();
        assert_eq!(
            over.0,
            "a write would take the output directory to 1001 bytes, above its quota of 1000 bytes"
        );
        assert_eq!(ledger.usage().bytes, 600);
        // A sparse write far out counts at the length it would give the file.
        assert!(
            ledger
                .grow(inode(2), None, Reach::To(1 << 40), false)
                .is_err()
        );
        assert_eq!(ledger.usage().bytes, 600);
        // Up to the quota exactly is fine; the record keeps the first refusal's words.
        assert_eq!(
            ledger.grow(inode(1), None, Reach::Append(400), false),
            Ok(600)
        );
        assert_eq!(ledger.usage().bytes, 1000);
        assert_eq!(ledger.refusal(), Some(&over));
    }

    #[test]
    fn a_failed_or_short_write_settles_to_what_landed() {
        let mut ledger = Ledger::open(Path::new("/nonexistent"), 1000, 10);
        let before = ledger
            .grow(inode(1), Some(100), Reach::To(700), false)
            .unwrap();
        assert_eq!(before, 100);
        ledger.settle(inode(1), before, 0);
        assert_eq!(ledger.usage().bytes, 100);
        let before = ledger
            .grow(inode(1), Some(100), Reach::To(700), false)
            .unwrap();
        ledger.settle(inode(1), before, 400);
        assert_eq!(ledger.usage().bytes, 400);
    }

    #[test]
    fn a_length_seen_while_a_stream_write_is_in_flight_changes_nothing() {
        let mut ledger = Ledger::open(Path::new("/nonexistent"), 1000, 10);
        ledger.grow(inode(1), None, Reach::To(800), true).unwrap();
        ledger.seen(inode(1), 0);
        assert_eq!(ledger.usage().bytes, 800);
        ledger.landed(inode(1), 1);
        ledger.seen(inode(1), 0);
        assert_eq!(ledger.usage().bytes, 0);
    }

    #[test]
    fn an_unlinked_file_keeps_its_bytes_while_a_handle_holds_it() {
        let mut ledger = Ledger::open(Path::new("/nonexistent"), 1000, 10);
        let held = handle();
        assert!(ledger.opened(inode(1), 0, &held));
        assert!(!ledger.opened(inode(1), 0, &held));
        ledger.grow(inode(1), None, Reach::To(900), false).unwrap();
        ledger.unlinked(inode(1));
        assert_eq!(ledger.usage().bytes, 900);
        assert!(ledger.grow(inode(2), None, Reach::To(200), false).is_err());
        // Once the handle is gone, the next charge that does not fit reclaims it.
        drop(held);
        assert_eq!(ledger.grow(inode(2), None, Reach::To(200), false), Ok(0));
        assert_eq!(ledger.usage().bytes, 200);
        // With no handle at all, unlinking gives the bytes back at once.
        ledger.unlinked(inode(2));
        assert_eq!(ledger.usage().bytes, 0);
    }

    #[test]
    fn entries_are_refused_at_the_quota_with_the_value_named() {
        let mut ledger = Ledger::open(Path::new("/nonexistent"), 1000, 2);
        ledger.entry_made();
        ledger.entry_made();
        assert!(!ledger.entry_fits());
        assert_eq!(
            ledger.refuse_entry().0,
            "a new entry would take the output directory to 3 entries, above its quota of 2 \
             entries"
        );
        ledger.entry_removed();
        assert!(ledger.entry_fits());
    }
}
