//! Hostile test step: fills its output directory until the host refuses, in the way its
//! `mode` says, and logs the refusal it saw (`refused after <n> <what>: <io error kind>`)
//! before it fails. The host must refuse the call that would pass the output quota and
//! record `output-quota`.
//!
//! Modes: `bytes` (the default; one file grown in 64 KiB writes), `burst` (one write of
//! `mib` MiB), `sparse` (one byte written with `pwrite` at `offset`, by default 1 TiB),
//! `sparse-stream` (the same after a seek, so through an output stream), `grow` (a file's
//! length set to `offset`), `append` (64 KiB appends), `files`, `dirs`, `symlinks` and
//! `hard-links` (entries without end), `churn` (a file of `mib` MiB written and removed
//! `rounds` times, which must all fit) and `held` (a file filled to the quota, removed while
//! still open, then a second file written: refused until the first is closed).

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use runner_sdk::{Guest, Level, RunContext, StepError, Summary};

#[derive(serde::Deserialize)]
struct Config {
    mode: Option<String>,
    mib: Option<u64>,
    offset: Option<u64>,
    rounds: Option<u64>,
}

static BLOCK: [u8; 64 * 1024] = [0x5A; 64 * 1024];

struct Step;

impl Guest for Step {
    fn run(ctx: RunContext) -> Result<Summary, StepError> {
        let config: Config = runner_sdk::config(&ctx)?;
        let out = |name: &str| runner_sdk::output_path(&ctx, name);
        let mib = config.mib.unwrap_or(4);
        let done = match config.mode.as_deref().unwrap_or("bytes") {
            "bytes" => fill(&mut create(&out("fill.bin"))?, &out("fill.bin")),
            "burst" => {
                let burst = vec![0x5Au8; (mib << 20) as usize];
                let written = create(&out("fill.bin"))?.write_all(&burst);
                written
                    .map(|()| mib << 20)
                    .map_err(|e| refused(0, "bytes", e))
            }
            "sparse" => {
                let file = create(&out("sparse.bin"))?;
                let written = pwrite(&file, b"x", config.offset.unwrap_or(1 << 40));
                written.map(|()| 1).map_err(|e| refused(0, "bytes", e))
            }
            "sparse-stream" => {
                let mut file = create(&out("sparse.bin"))?;
                let at = config.offset.unwrap_or(1 << 40);
                let written = file
                    .seek(SeekFrom::Start(at))
                    .and_then(|_| file.write_all(b"x"));
                written.map(|()| 1).map_err(|e| refused(0, "bytes", e))
            }
            "grow" => {
                let len = config.offset.unwrap_or(1 << 40);
                let grown = create(&out("grown.bin"))?.set_len(len);
                grown.map(|()| len).map_err(|e| refused(0, "bytes", e))
            }
            "append" => {
                let path = out("append.bin");
                let opened = OpenOptions::new().append(true).create(true).open(&path);
                fill(
                    &mut opened.map_err(|e| runner_sdk::io_error(&path, e))?,
                    &path,
                )
            }
            "files" => entries("files", |i| File::create(out(&format!("f{i}"))).map(drop)),
            "dirs" => entries("dirs", |i| std::fs::create_dir(out(&format!("d{i}")))),
            "symlinks" => entries("symlinks", |i| symlink("nowhere", &out(&format!("l{i}")))),
            "hard-links" => {
                create(&out("a"))?;
                entries("hard-links", |i| {
                    std::fs::hard_link(out("a"), out(&format!("h{i}")))
                })
            }
            "churn" => {
                let block = vec![0x5Au8; (mib << 20) as usize];
                for round in 0..config.rounds.unwrap_or(10) {
                    let written = std::fs::write(out("churn.bin"), &block)
                        .and_then(|()| std::fs::remove_file(out("churn.bin")));
                    written.map_err(|e| refused(round, "rounds", e))?;
                }
                Ok(config.rounds.unwrap_or(10))
            }
            "held" => held(&out("a.bin"), &out("b.bin")),
            other => return Err(StepError::InvalidConfig(format!("no mode `{other}`"))),
        }?;
        Ok(Summary {
            rows_in: 0,
            rows_out: done,
            metrics: vec![],
        })
    }
}

/// Logs the refusal the guest saw and makes it the step's error.
fn refused(n: u64, what: &str, e: std::io::Error) -> StepError {
    let line = format!("refused after {n} {what}: {:?}, {e}", e.kind());
    runner_sdk::log(Level::Warn, &line);
    StepError::Io(line)
}

fn create(path: &Path) -> Result<File, StepError> {
    File::create(path).map_err(|e| runner_sdk::io_error(path, e))
}

/// Writes 64 KiB blocks until refused.
fn fill(file: &mut File, path: &Path) -> Result<u64, StepError> {
    let mut written = 0;
    loop {
        file.write_all(&BLOCK)
            .map_err(|e| refused(written, "bytes", e))?;
        written += BLOCK.len() as u64;
        if written > 1 << 40 {
            return Err(runner_sdk::io_error(
                path,
                "a TiB written and never refused",
            ));
        }
    }
}

/// Makes entries with `make` until refused.
fn entries(what: &str, mut make: impl FnMut(u64) -> std::io::Result<()>) -> Result<u64, StepError> {
    for i in 0.. {
        make(i).map_err(|e| refused(i, what, e))?;
    }
    unreachable!("u64 entries")
}

/// Fills `a` to the quota, removes it while it is still open, then writes `b`: the disk
/// still holds `a`, so `b` is refused; once `a` is closed, `b` (opened again: a refused
/// write closes the stream it went to, as any failed WASI write does) fits.
fn held(a: &Path, b: &Path) -> Result<u64, StepError> {
    let mut first = create(a)?;
    let filled = fill(&mut first, a);
    std::fs::remove_file(a).map_err(|e| runner_sdk::io_error(a, e))?;
    let while_open = create(b)?.write_all(&BLOCK);
    runner_sdk::log(
        Level::Info,
        &format!(
            "while the removed file is open: {:?}",
            while_open.map_err(|e| e.kind())
        ),
    );
    drop(first);
    let after_close = create(b)?.write_all(&BLOCK);
    runner_sdk::log(
        Level::Info,
        &format!("once it is closed: {:?}", after_close.map_err(|e| e.kind())),
    );
    filled
}

/// A symbolic link, through wasi-libc: Rust's std has none for WASI yet.
fn symlink(target: &str, link: &Path) -> std::io::Result<()> {
    // WASI paths are UTF-8 without NUL, as the host made them.
    let target = std::ffi::CString::new(target).map_err(std::io::Error::other)?;
    let link =
        std::ffi::CString::new(link.to_string_lossy().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: two NUL-terminated strings that live across the call, which only reads them.
    #[allow(
        unsafe_code,
        reason = "wasi-libc's symlink is the only way to make one"
    )]
    let made = unsafe { wasi_libc::symlink(target.as_ptr(), link.as_ptr()) };
    os_result(made == 0)
}

/// A positioned write, through wasi-libc (`descriptor.write`, where Rust's std writes
/// through an output stream): std's `write_at` is unstable on WASI.
fn pwrite(file: &File, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: the buffer lives across the call, which only reads `bytes.len()` bytes of it.
    #[allow(
        unsafe_code,
        reason = "wasi-libc's pwrite is the only stable way to call it"
    )]
    let written = unsafe {
        wasi_libc::pwrite(
            file.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            offset as i64,
        )
    };
    os_result(written == bytes.len() as isize)
}

fn os_result(ok: bool) -> std::io::Result<()> {
    if ok {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[allow(unsafe_code, reason = "declares two wasi-libc functions")]
mod wasi_libc {
    use std::ffi::{c_char, c_int, c_void};

    unsafe extern "C" {
        pub fn symlink(target: *const c_char, link: *const c_char) -> c_int;
        pub fn pwrite(fd: c_int, buf: *const c_void, len: usize, offset: i64) -> isize;
    }
}

runner_sdk::export!(Step);
