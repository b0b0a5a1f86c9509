//! Output streams of files in the output tree, counted against the quota.
//!
//! wasmtime-wasi writes a file stream's bytes on a blocking-pool thread after `write`
//! returns, so each write is charged when the guest hands it over, and the ledger is told
//! when the stream is next seen idle (ready, flushed, cancelled) that it landed. A write
//! that does not fit is refused whole, before it starts; the stream is then closed, as after
//! any failed write.

use bytes::Bytes;
use wasmtime_wasi::async_trait;
use wasmtime_wasi::p2::{DynOutputStream, OutputStream, Pollable, StreamError, StreamResult};

use super::{Inode, Reach, SharedLedger, lock};

/// A file's output stream that charges every write to the step's ledger.
pub struct CountedStream {
    inner: DynOutputStream,
    ledger: SharedLedger,
    file: Inode,
    /// Where the next write lands; `None` for a stream appending at the file's end.
    position: Option<u64>,
    /// Writes handed to `inner` not yet seen to land.
    in_flight: u32,
    /// Set by a refusal: the stream takes no more writes.
    refused: bool,
}

impl CountedStream {
    /// Counts the writes of `inner`, a stream of `file` writing at `position` (or
    /// appending).
    pub fn new(
        inner: DynOutputStream,
        ledger: SharedLedger,
        file: Inode,
        position: Option<u64>,
    ) -> CountedStream {
        CountedStream {
            inner,
            ledger,
            file,
            position,
            in_flight: 0,
            refused: false,
        }
    }

    /// Charges a write of `len` bytes about to be handed over; returns the file's count
    /// before it.
    fn charge(&mut self, len: u64) -> StreamResult<u64> {
        if self.refused {
            return Err(StreamError::Closed);
        }
        let reach = match self.position {
            Some(at) => Reach::To(at.saturating_add(len)),
            None => Reach::Append(len),
        };
        // The descriptor that made this stream put the file in the ledger, and the stream
        // holds it open, so the ledger keeps it.
        let charged = lock(&self.ledger).grow(self.file, None, reach, true);
        charged.map_err(|over| {
            self.refused = true;
            StreamError::LastOperationFailed(wasmtime::Error::new(over))
        })
    }

    /// Every write handed to `inner` has landed or failed.
    fn all_landed(&mut self) {
        if self.in_flight > 0 {
            lock(&self.ledger).landed(self.file, self.in_flight);
            self.in_flight = 0;
        }
    }

    fn advance(&mut self, len: u64) {
        if let Some(at) = &mut self.position {
            *at = at.saturating_add(len);
        }
    }
}

#[async_trait]
impl Pollable for CountedStream {
    async fn ready(&mut self) {
        self.inner.ready().await;
        self.all_landed();
    }
}

#[async_trait]
impl OutputStream for CountedStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        if bytes.is_empty() {
            return self.inner.write(bytes);
        }
        let len = bytes.len() as u64;
        let before = self.charge(len)?;
        self.in_flight += 1;
        match self.inner.write(bytes) {
            Ok(()) => {
                self.advance(len);
                Ok(())
            }
            // Refused before it started (no permit, or the stream had failed): nothing of
            // it can land.
            Err(e) => {
                self.in_flight -= 1;
                let mut ledger = lock(&self.ledger);
                ledger.landed(self.file, 1);
                ledger.settle(self.file, before, 0);
                Err(e)
            }
        }
    }

    async fn blocking_write_and_flush(&mut self, bytes: Bytes) -> StreamResult<()> {
        if bytes.is_empty() {
            return self.inner.blocking_write_and_flush(bytes).await;
        }
        let len = bytes.len() as u64;
        self.charge(len)?;
        self.in_flight += 1;
        // It waits for the writes before it, then writes and returns when done: after it
        // nothing of this stream is in flight. A failure may follow a partial write, so its
        // charge stays.
        let written = self.inner.blocking_write_and_flush(bytes).await;
        self.all_landed();
        if written.is_ok() {
            self.advance(len);
        }
        written
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.inner.flush()
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        if self.refused {
            return Err(StreamError::Closed);
        }
        self.inner.check_write()
    }

    async fn cancel(&mut self) {
        self.inner.cancel().await;
        self.all_landed();
    }
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        // The guest's drop of a stream waits for its write (`cancel`); a stream dropped
        // with one in flight is the store going away, after which nothing is counted.
        self.all_landed();
    }
}
