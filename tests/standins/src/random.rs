//! Random values the stand-ins hand out: ids, key ids and credential material.
//!
//! Credentials change on every start so a test can search logs and databases for them and
//! know that any hit came from this run.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::RngExt as _;

const UPPER_DIGITS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A string of `len` characters drawn from `alphabet`.
fn from_alphabet(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

/// Upper-case letters and digits, the alphabet of AWS access key ids.
pub(crate) fn upper_alnum(len: usize) -> String {
    from_alphabet(UPPER_DIGITS, len)
}

/// Mixed-case letters and digits, as in AWS secret keys and IMDS session tokens.
pub(crate) fn alnum(len: usize) -> String {
    from_alphabet(ALNUM, len)
}

/// `len` random bytes in standard base64, shaped like an STS session token.
pub(crate) fn base64_bytes(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    rand::fill(&mut bytes[..]);
    STANDARD.encode(bytes)
}

/// A fresh request, trace or token id.
pub(crate) fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}
