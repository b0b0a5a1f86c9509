//! Bounded capture of what a step prints: stdout, stderr and the log import share one
//! buffer, in the order they were written, up to a byte cap.
//!
//! A step that prints more is not failed for it: the excess is counted and dropped, and the
//! recorded log ends with a visible marker saying how much was cut.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// The shared log buffer of one step.
#[derive(Debug, Clone)]
pub struct LogCapture {
    inner: Arc<Mutex<Buffer>>,
}

#[derive(Debug)]
struct Buffer {
    cap: usize,
    bytes: Vec<u8>,
    dropped: u64,
}

impl LogCapture {
    /// A buffer that keeps at most `cap` bytes.
    pub fn new(cap: usize) -> LogCapture {
        LogCapture {
            inner: Arc::new(Mutex::new(Buffer {
                cap,
                bytes: Vec::new(),
                dropped: 0,
            })),
        }
    }

    /// Appends bytes, keeping what fits.
    pub fn append(&self, data: &[u8]) {
        let mut b = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let room = b.cap.saturating_sub(b.bytes.len());
        let keep = room.min(data.len());
        b.bytes.extend_from_slice(&data[..keep]);
        b.dropped += (data.len() - keep) as u64;
    }

    /// Appends one line from the log import.
    pub fn line(&self, level: &str, message: &str) {
        self.append(format!("[{level}] {message}\n").as_bytes());
    }

    /// The text so far and whether anything was cut; a cut log ends with a marker line.
    pub fn finish(&self) -> (String, bool) {
        let b = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut text = String::from_utf8_lossy(&b.bytes).into_owned();
        if b.dropped > 0 {
            if !text.ends_with('\n') && !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&format!(
                "[runner] log truncated: {} more bytes were dropped (cap {} bytes)\n",
                b.dropped, b.cap
            ));
        }
        (text, b.dropped > 0)
    }
}

impl IsTerminal for LogCapture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogCapture {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for LogCapture {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        // Accept everything so the guest never blocks or fails on output; `append` keeps
        // what fits and counts the rest.
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_up_to_the_cap_and_marks_the_cut() {
        let log = LogCapture::new(10);
        log.append(b"12345678");
        log.append(b"abcdef");
        let (text, cut) = log.finish();
        assert!(cut);
        assert!(text.starts_with("12345678ab\n"), "{text}");
        assert!(
            text.contains("4 more bytes were dropped (cap 10 bytes)"),
            "{text}"
        );
    }

    #[test]
    fn an_uncut_log_has_no_marker() {
        let log = LogCapture::new(100);
        log.line("info", "hello");
        assert_eq!(log.finish(), ("[info] hello\n".to_string(), false));
    }
}
