//! Local stand-ins for the cloud services the federated invoker talks to.
//!
//! The invoker's tests need the whole cross-cloud path without a cloud: an EC2 metadata
//! service that hands out instance-role credentials ([`Imds`]), AWS STS issuing web identity
//! tokens and the OIDC issuer that publishes their keys ([`Sts`]), Microsoft Entra exchanging
//! such a token for an access token ([`Entra`]) and an Azure Function behind App Service
//! authentication ([`FunctionApp`]). Each speaks the real wire format described in
//! `shared/CLOUD.md`, listens on `127.0.0.1` with an OS-chosen port, runs on the caller's tokio
//! runtime and stops when dropped.
//!
//! A typical test starts them in dependency order:
//!
//! ```no_run
//! # async fn demo() -> Result<(), standins::StartError> {
//! use standins::{AppRegistration, Entra, EntraConfig, FederatedCredential, FunctionApp,
//!     FunctionConfig, Imds, Sts, StsConfig};
//!
//! let imds = Imds::start().await?;
//! let sts = Sts::start(StsConfig::new(imds.credentials().clone())).await?;
//! let app = AppRegistration::new("11111111-2222-3333-4444-555555555555")
//!     .with_credential(FederatedCredential::new(sts.issuer(), sts.role_arn()));
//! let entra = Entra::start(EntraConfig::new(vec![app])).await?;
//! let function = FunctionApp::start(FunctionConfig::trusting(&entra, "api://downstream")).await?;
//! # let _ = function;
//! # Ok(())
//! # }
//! ```
//!
//! Nothing here logs a token or a secret: events carry request ids and key ids only.

mod entra;
mod function;
mod imds;
mod keys;
mod random;
mod server;
mod sts;

pub use entra::{
    AppRegistration, Entra, EntraConfig, EntraRequest, FederatedCredential, TOKEN_EXCHANGE_AUDIENCE,
};
pub use function::{CallOutcome, Fault, FunctionApp, FunctionCall, FunctionConfig};
pub use imds::{AwsCredentials, Imds, ImdsConfig};
pub use keys::{Jwk, JwkSet};
pub use sts::{Sts, StsConfig, StsMode, StsRequest, TokenSigning};

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Why a stand-in could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The loopback listener could not be bound.
    #[error("failed to bind a loopback listener for the {server} stand-in")]
    Bind {
        /// Which stand-in was starting.
        server: &'static str,
        /// The underlying socket error.
        #[source]
        source: std::io::Error,
    },
    /// The RSA signing key could not be generated.
    #[error("failed to generate an RSA signing key: {0}")]
    KeyGeneration(String),
    /// The HTTP client Entra uses to reach the issuer could not be built.
    #[error("failed to build the HTTP client for issuer discovery")]
    HttpClient(#[source] reqwest::Error),
}

/// Locks a recorder, carrying on after a panic elsewhere: the records stay readable and a
/// test that panicked has already failed on its own.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
