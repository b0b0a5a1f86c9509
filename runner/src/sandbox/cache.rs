//! On-disk cache of compiled components, so a restart does not recompile every plugin.
//!
//! An entry is keyed by the component's sha256, the engine's compatibility hash (its
//! settings, target and features) and the wasmtime version, so a changed plugin, a changed
//! setting or an upgrade each miss instead of loading stale code. Entries are written to a
//! temporary name and renamed into place, so a crash never leaves half an entry under a
//! real name.
//!
//! Trust: deserialising a compiled artifact runs its machine code without any checks, so
//! the cache reads only from the runner's own cache directory (under its data directory),
//! never from a plugin path or anywhere a job file names. Whoever can write the cache
//! directory can run code as the runner; it is created owner-only.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

/// Compiled components on disk, for one engine.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
    engine_key: String,
}

impl CompileCache {
    /// A cache in `dir` (created if missing) for components compiled by `engine`.
    pub fn open(dir: &Path, engine: &Engine) -> std::io::Result<CompileCache> {
        std::fs::create_dir_all(dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        // The compatibility hash covers the wasmtime version (its module-version setting)
        // as well as the target, compiler flags, tunables and wasm features.
        let engine_key = format!("engine-{:016x}", hasher.finish());
        Ok(CompileCache {
            dir: dir.to_path_buf(),
            engine_key,
        })
    }

    /// Where the entry for a component digest lives.
    pub fn entry(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
    }

    /// The cached compilation of the component with this digest, if there is a usable one.
    /// A corrupt or incompatible entry is logged, removed and reported as a miss.
    pub fn load(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.entry(sha256);
        if !path.is_file() {
            return None;
        }
        // SAFETY: `path` is inside the runner's own cache directory, which only the runner
        // writes (see the module docs); entries are whole files written by `store` from
        // wasmtime's own serialisation. wasmtime still checks the header and the engine
        // compatibility and fails on a mismatch.
        #[allow(unsafe_code)] // Deserialising compiled code is unsafe by nature; see above.
        let loaded = unsafe { Component::deserialize_file(engine, &path) };
        match loaded {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(
                    entry = %path.display(),
                    error = %format!("{e:#}"),
                    "unusable compile-cache entry; recompiling"
                );
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Saves a compiled component. A failure only costs a recompile later, so it is
    /// logged, not returned.
    pub fn store(&self, sha256: &str, component: &Component) {
        let path = self.entry(sha256);
        let tmp = self
            .dir
            .join(format!(".{sha256}.{}.tmp", std::process::id()));
        let write = || -> anyhow::Result<()> {
            let bytes = component.serialize().map_err(super::wasm_error)?;
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, &path)?;
            Ok(())
        };
        if let Err(e) = write() {
            // A half-written file (a full disk) would otherwise stay behind at every start.
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(entry = %path.display(), error = %format!("{e:#}"), "cannot write compile-cache entry");
        }
    }
}
