//! wasmtime's resource limiter for one step: caps linear memory, table size and the
//! number of instances, tables and memories, and remembers which cap refused the guest so
//! the outcome can say so.

use super::limits::Effective;

/// Which cap, if any, refused a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refusals {
    /// A memory grow past the memory cap.
    pub memory: bool,
    /// A table grow past the table-elements cap.
    pub table: bool,
}

/// The limiter kept in a step's store.
#[derive(Debug)]
pub struct StepLimiter {
    memory_cap: usize,
    table_cap: usize,
    count_cap: usize,
    /// What was refused.
    pub refused: Refusals,
    /// The largest linear memory granted, in bytes.
    pub memory_peak: usize,
}

impl StepLimiter {
    /// A limiter enforcing `limits`.
    pub fn new(limits: &Effective) -> StepLimiter {
        StepLimiter {
            memory_cap: usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX),
            table_cap: usize::try_from(limits.table_elements).unwrap_or(usize::MAX),
            count_cap: usize::try_from(limits.instances).unwrap_or(usize::MAX),
            refused: Refusals::default(),
            memory_peak: 0,
        }
    }
}

impl wasmtime::ResourceLimiter for StepLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.refused.memory = true;
            return Ok(false);
        }
        self.memory_peak = self.memory_peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_cap {
            self.refused.table = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.count_cap
    }

    fn tables(&self) -> usize {
        self.count_cap
    }

    fn memories(&self) -> usize {
        self.count_cap
    }
}

#[cfg(test)]
mod tests {
    use wasmtime::ResourceLimiter;

    use super::*;
    use crate::sandbox::Limits;

    #[test]
    fn a_grow_past_the_memory_cap_is_refused_and_remembered() {
        let limits = Limits {
            memory_mib: Some(1),
            ..Limits::default()
        };
        let mut limiter = StepLimiter::new(&limits.effective());
        assert!(limiter.memory_growing(0, 1 << 20, None).unwrap());
        assert!(!limiter.refused.memory);
        assert!(
            !limiter
                .memory_growing(1 << 20, (1 << 20) + 65536, None)
                .unwrap()
        );
        assert!(limiter.refused.memory);
        assert_eq!(limiter.memory_peak, 1 << 20);
    }
}
