//! End-to-end tests: the real `cognate` daemon, spawned per test by
//! `cognate-testkit`, driven by the official AWS SDK for Rust and by raw HTTP.
//! Build the daemon first: `cargo build --bin cognate`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

mod auth;
mod clients;
mod durability;
mod ops;
mod pools;
mod signup;
mod sigv4;
mod tokens;
mod wire;
