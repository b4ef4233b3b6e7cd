//! The existence-oracle phase: with PreventUserExistenceErrors on, a caller must not
//! tell a real user from an unknown one by how long an answer takes. For SignUp,
//! ForgotPassword, ConfirmForgotPassword (wrong code) and InitiateAuth (wrong password)
//! it times requests for known and unknown usernames, interleaved one by one on a
//! daemon with production argon2 settings, and reports the median of each and their
//! ratio (target: within 0.9-1.1).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::{Api, Creds, PASSWORD, load, procs, text};

pub struct Setup<'a> {
    pub daemon_bin: &'a Path,
    pub dir: &'a Path,
    pub creds: &'a Creds,
    /// Requests of each kind per operation.
    pub samples: usize,
}

/// Latencies of one operation for known and unknown users.
pub struct Pair {
    pub op: &'static str,
    pub known: Vec<Duration>,
    pub unknown: Vec<Duration>,
}

impl Pair {
    pub fn median_known(&self) -> Option<Duration> {
        median(&self.known)
    }
    pub fn median_unknown(&self) -> Option<Duration> {
        median(&self.unknown)
    }
    /// Median for known users over median for unknown ones.
    pub fn ratio(&self) -> f64 {
        match (self.median_known(), self.median_unknown()) {
            (Some(k), Some(u)) if !u.is_zero() => k.as_secs_f64() / u.as_secs_f64(),
            _ => 0.0,
        }
    }
}

fn median(xs: &[Duration]) -> Option<Duration> {
    let mut v = xs.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

/// Times one unsigned call; any answer counts (most of these are errors on purpose).
async fn timed(api: &Api, op: &str, body: Value) -> Result<Duration> {
    let t = Instant::now();
    let (status, reply) = load::one(api.addr, api.unsigned(op, &body)).await?;
    let took = t.elapsed();
    if status >= 500 {
        bail!("{op}: HTTP {status}: {}", String::from_utf8_lossy(&reply));
    }
    Ok(took)
}

pub async fn run(s: Setup<'_>) -> Result<Vec<Pair>> {
    let daemon = procs::start_daemon(
        s.daemon_bin,
        &s.dir.join("oracle-data"),
        &s.dir.join("oracle.log"),
        &s.creds.access_key,
        &s.creds.secret,
        &[],
    )
    .await?;
    let api = Api::new(daemon.addr, s.creds);
    let pool = api
        .admin(
            "CreateUserPool",
            json!({"PoolName": "oracle", "AutoVerifiedAttributes": ["email"]}),
        )
        .await?;
    let pool_id = text(&pool, &["UserPool", "Id"])?;
    let client = api
        .admin(
            "CreateUserPoolClient",
            json!({
                "UserPoolId": pool_id,
                "ClientName": "oracle",
                "PreventUserExistenceErrors": "ENABLED",
                "ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
            }),
        )
        .await?;
    let client_id = text(&client, &["UserPoolClient", "ClientId"])?;
    // One known user per sample, so no user reaches a lockout or a send limit (which
    // would change what is measured).
    for i in 0..s.samples {
        let name = format!("known{i}");
        api.admin(
            "AdminCreateUser",
            json!({
                "UserPoolId": pool_id, "Username": name, "MessageAction": "SUPPRESS",
                "UserAttributes": [
                    {"Name": "email", "Value": format!("{name}@example.com")},
                    {"Name": "email_verified", "Value": "true"},
                ],
            }),
        )
        .await?;
        api.admin(
            "AdminSetUserPassword",
            json!({"UserPoolId": pool_id, "Username": name, "Password": PASSWORD, "Permanent": true}),
        )
        .await?;
    }
    let ops: [(&'static str, &'static str); 4] = [
        ("SignUp (username taken / new)", "SignUp"),
        ("InitiateAuth, wrong password", "InitiateAuth"),
        ("ForgotPassword", "ForgotPassword"),
        ("ConfirmForgotPassword, wrong code", "ConfirmForgotPassword"),
    ];
    let mut out = Vec::new();
    for (label, op) in ops {
        let mut pair = Pair {
            op: label,
            known: Vec::with_capacity(s.samples),
            unknown: Vec::with_capacity(s.samples),
        };
        for i in 0..s.samples {
            let known = format!("known{i}");
            // SignUp's unknown names must stay unknown for the operations after it.
            let unknown = if op == "SignUp" {
                format!("fresh{i}")
            } else {
                format!("ghost{i}")
            };
            let body = |user: &str| match op {
                "SignUp" => json!({
                    "ClientId": client_id, "Username": user, "Password": PASSWORD,
                    "UserAttributes": [{"Name": "email", "Value": format!("{user}@example.com")}],
                }),
                "InitiateAuth" => json!({
                    "ClientId": client_id, "AuthFlow": "USER_PASSWORD_AUTH",
                    "AuthParameters": {"USERNAME": user, "PASSWORD": "Wrong-passw0rd"},
                }),
                "ForgotPassword" => json!({"ClientId": client_id, "Username": user}),
                _ => json!({
                    "ClientId": client_id, "Username": user,
                    "ConfirmationCode": "000000", "Password": PASSWORD,
                }),
            };
            // Alternate which goes first, so drift in the machine's load cancels out.
            if i % 2 == 0 {
                pair.known.push(timed(&api, op, body(&known)).await?);
                pair.unknown.push(timed(&api, op, body(&unknown)).await?);
            } else {
                pair.unknown.push(timed(&api, op, body(&unknown)).await?);
                pair.known.push(timed(&api, op, body(&known)).await?);
            }
        }
        out.push(pair);
    }
    daemon.stop().await;
    Ok(out)
}
