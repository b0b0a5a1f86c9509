//! The host side of `wit/step.wit`: the one `bindgen!` of the runner.
//!
//! Exports are called asynchronously so that a step's deadline can interrupt it even while
//! it waits inside a WASI call (the future is dropped). The log import is synchronous: it
//! only appends to a bounded buffer.

// Generated code: its documentation is the WIT file's.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "step",
    exports: { default: async },
});

pub use runner::step::log::Level;
pub use runner::step::types::Metric;
