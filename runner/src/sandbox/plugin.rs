//! What a plugin is once loaded, and every way loading one can fail.
//!
//! Loading checks the file before the compiler sees it (is it WebAssembly, is it a
//! component, does it match its pin), so each refusal says what to do about it.

use std::path::{Path, PathBuf};

use super::bindings::StepPre;
use super::{EngineKey, StepState};

/// Why a plugin could not be loaded. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// No file at the path.
    #[error("plugin `{path}` does not exist")]
    NotFound {
        /// The path.
        path: PathBuf,
    },
    /// The file could not be read.
    #[error("cannot read plugin `{path}`: {reason}")]
    Read {
        /// The path.
        path: PathBuf,
        /// What the OS said.
        reason: std::io::Error,
    },
    /// The file is not WebAssembly at all.
    #[error("plugin `{path}` is not a WebAssembly file (it does not start with `\\0asm`)")]
    NotWasm {
        /// The path.
        path: PathBuf,
    },
    /// A core module where a component is needed.
    #[error(
        "plugin `{path}` is a core WebAssembly module, not a component: build it for the \
         `wasm32-wasip2` target with the runner SDK"
    )]
    CoreModule {
        /// The path.
        path: PathBuf,
    },
    /// The pinned digest does not match.
    #[error("plugin `{path}` has sha256 `{actual}`, but the job pins `{expected}`")]
    DigestMismatch {
        /// The path.
        path: PathBuf,
        /// The pinned digest.
        expected: String,
        /// The file's digest.
        actual: String,
    },
    /// wasmtime could not compile it.
    #[error("plugin `{path}` does not compile: {message}")]
    Compile {
        /// The path.
        path: PathBuf,
        /// wasmtime's reason.
        message: String,
    },
    /// It is a component, but not of the `runner:step/step` world.
    #[error("plugin `{path}` is not a component of world `runner:step/step@0.1.0`: {message}")]
    WrongWorld {
        /// The path.
        path: PathBuf,
        /// What does not fit.
        message: String,
    },
}

/// A compiled plugin, ready to instantiate.
pub struct Plugin {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// Hex sha256 of the file's bytes.
    pub sha256: String,
    /// The engine it was compiled for.
    pub(super) engine_key: EngineKey,
    pub(super) engine: wasmtime::Engine,
    pub(super) pre: StepPre<StepState>,
}

/// Tells a core module from a component before handing the bytes to the compiler, so the
/// error says what to do.
pub(super) fn check_layer(path: &Path, bytes: &[u8]) -> Result<(), PluginError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(PluginError::NotWasm {
            path: path.to_path_buf(),
        });
    }
    // Bytes 4..8 are version and layer: a core module is `01 00 00 00`, a component has
    // layer 1 in bytes 6..8.
    if bytes[6..8] == [0, 0] {
        return Err(PluginError::CoreModule {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}
