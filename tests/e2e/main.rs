//! End-to-end tests: the real `cognate` daemon, spawned per test by
//! `cognate-testkit`, driven by the official AWS SDK for Rust and by raw HTTP.
//! Build the daemon first: `cargo build --bin cognate`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

mod admin_users;
mod auth;
mod branding;
mod clients;
mod cluster;
mod console;
mod durability;
mod erasure;
mod flood;
mod groups;
mod hosted;
mod lifecycle;
mod lockout;
mod mfa;
mod nats;
mod nats_auth;
mod nats_examples;
mod nats_failures;
mod oauth;
mod ops;
mod pools;
mod search;
mod security;
mod signup;
mod sigv4;
mod srp;
mod tls;
mod tokens;
mod wire;
