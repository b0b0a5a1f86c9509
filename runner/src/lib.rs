//! The runner: a job runner whose steps are untrusted WebAssembly components.
//!
//! Jobs come from a TOML job file ([`config`]), fire on crontab schedules in a time zone
//! ([`schedule`], [`serve`]), run step by step in a deny-by-default sandbox ([`sandbox`],
//! [`pipeline`]) and are recorded in SQLite ([`store`]); a run's end triggers downstream Azure
//! Functions through AWS-to-Entra federation ([`invoker`]). [`validate`] checks a job file
//! without running it, and [`cli`] is the command line over all of it.

pub mod cli;
pub mod config;
pub mod invoker;
pub mod pipeline;
pub mod plain;
pub mod sandbox;
pub mod schedule;
pub mod serve;
pub mod store;
pub mod validate;
