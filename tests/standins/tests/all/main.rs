//! Integration tests of the stand-ins: each server driven over HTTP and its wire format checked,
//! plus the real AWS SDK against the IMDS and STS stand-ins.

mod aws_sdk;
mod entra;
mod function;
mod imds;
mod sigv4;
mod sts;
mod support;
