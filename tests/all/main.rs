//! Integration tests of the runner: the binary as a user runs it, and the library where a
//! test needs to look inside one process.
//!
//! Plugins are built once per test run, before the tests, by `cargo plugins` (see the
//! README); [`support`] finds them and fails with that instruction if they are missing.

mod bad_input;
mod cli;
mod cloud;
mod compile_cache;
mod federation_errors;
mod flights;
mod history;
mod host;
mod hostile;
mod invoker;
mod invoker_batch;
mod invoker_guards;
mod invoker_tokens;
mod isolation;
mod limits;
mod quota;
mod recovery;
mod resume;
mod sandbox;
mod schedule;
mod serve;
mod store;
mod support;
