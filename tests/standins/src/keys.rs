//! RSA signing keys and their public halves in JWK form.
//!
//! STS and Entra each generate a key when they start, so no private key ever sits in the
//! repository and every test run signs with keys nobody else has seen.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use serde::{Deserialize, Serialize};

use crate::StartError;

/// Key size of every generated key: what the real services use for RS256.
const KEY_BITS: usize = 2048;

/// A public RSA key as a JWKS lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type, always `RSA` here.
    pub kty: String,
    /// Modulus, base64url without padding.
    pub n: String,
    /// Public exponent, base64url without padding.
    pub e: String,
    /// Key id, matched against a token header's `kid`.
    pub kid: String,
    /// Algorithm the key signs with, `RS256`.
    pub alg: String,
    /// Intended use, `sig`.
    #[serde(rename = "use")]
    pub key_use: String,
}

impl Jwk {
    /// The key in the form `jsonwebtoken` verifies with.
    pub fn decoding_key(&self) -> Result<DecodingKey, jsonwebtoken::errors::Error> {
        DecodingKey::from_rsa_components(&self.n, &self.e)
    }
}

/// A JSON Web Key Set, the document behind a `jwks_uri`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    /// The published keys.
    pub keys: Vec<Jwk>,
}

impl JwkSet {
    /// The key with this `kid`, if published.
    pub fn find(&self, kid: &str) -> Option<&Jwk> {
        self.keys.iter().find(|key| key.kid == kid)
    }
}

/// A private RSA key with its key id, ready to sign RS256 tokens.
pub(crate) struct SigningKey {
    encoding: EncodingKey,
    public: Jwk,
}

impl SigningKey {
    /// Generates a fresh key on a blocking thread; key generation takes a noticeable moment in
    /// debug builds and must not stall the runtime.
    pub(crate) async fn generate() -> Result<Self, StartError> {
        tokio::task::spawn_blocking(Self::generate_blocking)
            .await
            .map_err(|error| StartError::KeyGeneration(error.to_string()))?
    }

    fn generate_blocking() -> Result<Self, StartError> {
        let failed = |error: &dyn std::fmt::Display| StartError::KeyGeneration(error.to_string());
        let private = rsa::PrivateKey::new(&mut rand::rng(), KEY_BITS).map_err(|e| failed(&e))?;
        let der = private.to_pkcs1_der().map_err(|e| failed(&e))?;
        let public = Jwk {
            kty: "RSA".to_owned(),
            n: URL_SAFE_NO_PAD.encode(private.n_bytes()),
            e: URL_SAFE_NO_PAD.encode(private.e_bytes()),
            kid: crate::random::uuid(),
            alg: "RS256".to_owned(),
            key_use: "sig".to_owned(),
        };
        Ok(Self {
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            public,
        })
    }

    /// The public half, as published in a JWKS.
    pub(crate) fn jwk(&self) -> &Jwk {
        &self.public
    }

    /// Signs `claims` as an RS256 JWT whose header names `kid`.
    pub(crate) fn sign_as<T: Serialize>(
        &self,
        kid: &str,
        claims: &T,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("JWT".to_owned());
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding)
    }

    /// Signs `claims` under this key's own key id.
    pub(crate) fn sign<T: Serialize>(
        &self,
        claims: &T,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        self.sign_as(&self.public.kid, claims)
    }
}
