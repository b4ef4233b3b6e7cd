//! The fuzz targets under `cargo test`: every committed seed, then a fixed number of
//! random mutations of the seeds (a small xorshift mutator, fixed seed, so a failure
//! reproduces). Coverage-guided runs are `scripts/fuzz.sh`; this keeps the targets and
//! their invariants compiling and passing between those runs.

use std::path::PathBuf;

use super::TARGETS;

/// Mutated inputs per target per `cargo test`.
const CASES: usize = 2_000;

/// The committed seeds of a target and the inputs of its past findings
/// (`fuzz/regressions/<target>/`, see docs/fuzzing.md).
fn corpus(target: &str) -> Vec<Vec<u8>> {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let dir = fuzz.join("corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {}: {e}", dir.display()))
        .chain(
            std::fs::read_dir(fuzz.join("regressions").join(target))
                .into_iter()
                .flatten(),
        )
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A few byte-level edits in the style of libFuzzer's mutators, biased towards the
/// bytes that matter to text formats.
fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    const INTERESTING: &[&[u8]] = &[
        b"\"",
        b"\\",
        b"=",
        b"^=",
        b".",
        b",",
        b";",
        b"/",
        b"\n",
        b"\n\n",
        b" ",
        b"%",
        b"{",
        b"}",
        b"[]",
        b"null",
        b"-1",
        b"4294967297",
        b"18446744073709551616",
        b"\xff",
        b"\xc3\xa9",
    ];
    let mut data = seeds[rng.below(seeds.len())].clone();
    for _ in 0..=rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(6) {
            0 if !data.is_empty() => {
                let end = (at + 1 + rng.below(8)).min(data.len());
                data.drain(at.min(end)..end);
            }
            1 if at < data.len() => data[at] ^= 1 << rng.below(8),
            2 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                data.splice(at..at, piece.iter().copied());
            }
            3 if at < data.len() => {
                // Duplicate a slice: grows repeated structure (nesting, lists).
                let end = (at + 1 + rng.below(32)).min(data.len());
                let piece = data[at..end].to_vec();
                data.splice(at..at, piece);
            }
            4 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len());
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
            _ => data.insert(at, rng.next() as u8),
        }
    }
    data
}

#[test]
fn every_target_survives_its_seeds_and_mutations() {
    for &(name, target) in TARGETS {
        let seeds = corpus(name);
        for seed in &seeds {
            target(seed);
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
        for _ in 0..CASES {
            target(&mutate(&mut rng, &seeds));
        }
    }
}

#[test]
fn every_target_has_a_fuzz_target_file() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/fuzz_targets");
    for &(name, _) in TARGETS {
        let file = dir.join(format!("{name}.rs"));
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            text.contains(&format!("cognate_fuzz::{name}(")),
            "{} does not call cognate_fuzz::{name}",
            file.display()
        );
    }
}

#[test]
fn the_jwt_seed_verifies_with_the_fuzz_key() {
    let seed = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/jwt/token"),
    )
    .unwrap();
    let key = super::jwt_key();
    assert!(cognate_crypto::jwt::verify(seed.trim_end(), std::slice::from_ref(&key)).is_ok());
}

#[test]
fn the_sigv4_seeds_verify() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/sigv4");
    for file in std::fs::read_dir(dir).unwrap() {
        let seed = std::fs::read(file.unwrap().path()).unwrap();
        let raw = super::parse_raw_request(&seed);
        if raw.headers.iter().any(|(n, _)| n == "Authorization") {
            let req = cognate_crypto::sigv4::Request {
                method: &raw.method,
                path: &raw.path,
                query: &raw.query,
                headers: &raw.headers,
                body: &raw.body,
            };
            let got = cognate_crypto::sigv4::verify(
                &req,
                super::SIGV4_NOW,
                super::SIGV4_REGION,
                super::SIGV4_SERVICE,
                super::sigv4_secret,
            );
            assert_eq!(
                got.as_deref(),
                Ok(super::SIGV4_ACCESS_KEY),
                "{}",
                String::from_utf8_lossy(&seed)
            );
        }
    }
}

/// Writes the seeds that need a key or the encoder to make: signed SigV4 requests, JWTs
/// signed by the fuzz key, current-version events. Run after changing one of those
/// formats: `cargo test -p cognate-fuzz -- --ignored regenerate_seeds`.
#[test]
#[ignore = "rewrites fuzz/corpus; run by hand"]
fn regenerate_seeds() {
    use cognate_domain::event::{Envelope, Event};
    use serde_json::json;

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };

    // SigV4: requests as the AWS SDKs send them, signed at SIGV4_NOW.
    let bodies: &[(&str, &str, &str)] = &[
        (
            "admin-create-user",
            "AdminCreateUser",
            r#"{"UserPoolId":"us-east-1_AbCdEf123","Username":"alice","UserAttributes":[{"Name":"email","Value":"alice@example.com"}]}"#,
        ),
        (
            "list-users",
            "ListUsers",
            r#"{"UserPoolId":"us-east-1_AbCdEf123","Filter":"email ^= \"ali\"","Limit":10}"#,
        ),
    ];
    for (file, op, body) in bodies {
        let headers = vec![
            (
                "content-type".to_owned(),
                "application/x-amz-json-1.1".to_owned(),
            ),
            (
                "x-amz-target".to_owned(),
                format!("AWSCognitoIdentityProviderService.{op}"),
            ),
            (
                "user-agent".to_owned(),
                "aws-sdk-rust/1.3  os/linux".to_owned(),
            ),
        ];
        let host = "cognito-idp.us-east-1.amazonaws.com";
        let signed = cognate_crypto::sigv4::sign(
            "POST",
            host,
            "/",
            "",
            &headers,
            body.as_bytes(),
            super::SIGV4_NOW,
            super::SIGV4_REGION,
            super::SIGV4_SERVICE,
            super::SIGV4_ACCESS_KEY,
            super::SIGV4_SECRET,
        );
        let mut text = String::from("POST /\n");
        text.push_str(&format!("Host: {host}\n"));
        for (n, v) in headers.iter().chain(&signed) {
            let n = match n.as_str() {
                "authorization" => "Authorization",
                "x-amz-date" => "X-Amz-Date",
                other => other,
            };
            text.push_str(&format!("{n}: {v}\n"));
        }
        text.push('\n');
        text.push_str(body);
        write("sigv4", file, text.as_bytes());
    }

    // JWT: an access token as the daemon issues it, and claims to sign.
    let claims = json!({
        "sub": "0d4a9c9e-6c1f-4a53-9b4e-2b2f0c5a7e11",
        "iss": "http://localhost:9229/us-east-1_AbCdEf123",
        "client_id": "abcdefghijklmnopqrstuvwxyz",
        "origin_jti": "5b0c4f1e-9a0e-4d5e-8f0a-1c2b3d4e5f60",
        "event_id": "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f",
        "token_use": "access",
        "scope": "aws.cognito.signin.user.admin",
        "auth_time": 1_764_000_000,
        "exp": 1_764_003_600,
        "iat": 1_764_000_000,
        "jti": "1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d",
        "username": "alice"
    });
    let key = super::jwt_key();
    write("jwt", "token", key.sign(&claims).unwrap().as_bytes());
    write("jwt", "claims", claims.to_string().as_bytes());

    // Events: the v1 fixture upcast and re-encoded, as the log holds it today.
    let v1 = include_bytes!("../../cognate-domain/fixtures/user.signed_up.v1.json");
    let env = Envelope::decode(v1).unwrap();
    write("event", "user.signed_up.v2", &env.encode().unwrap());
    let pool = cognate_domain::Pool {
        id: "us-east-1_AbCdEf123".into(),
        name: "fuzz".into(),
        created_at: 1_764_000_000_000,
        updated_at: 1_764_000_000_000,
        schema: vec![],
        username_attributes: vec!["email".into()],
        alias_attributes: vec![],
        case_sensitive: false,
        auto_verified_attributes: vec!["email".into()],
        password_policy: Default::default(),
        mfa_configuration: "OPTIONAL".into(),
        deletion_protection: false,
        lambda_config: [("PreSignUp".to_owned(), "cognate.pre_sign_up".to_owned())].into(),
        settings: [(
            "EmailConfiguration".to_owned(),
            json!({"EmailSendingAccount": "COGNITO_DEFAULT"}),
        )]
        .into(),
        keys: vec![],
        domains: Vec::new(),
        resource_servers: Default::default(),
    };
    let created = Envelope {
        seq: 1,
        at: 1_764_000_000_000,
        pool: pool.id.clone(),
        aggregate: pool.id.clone(),
        v: 1,
        actor: Some("admin:AKIDEXAMPLE".into()),
        event: Event::PoolCreated { pool },
    };
    write("event", "pool.created.v1", &created.encode().unwrap());
}

/// The request target decodes exactly the operations the daemon decodes: the arms of
/// `wire::dispatch` (read from its source, so a new operation there fails this test
/// until it is added to `decode_ops!`).
#[test]
fn request_target_covers_every_dispatched_operation() {
    let wire = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../cognate-server/src/wire.rs"),
    )
    .unwrap();
    let mut dispatched: Vec<&str> = wire
        .split("O::")
        .skip(1)
        .filter_map(|rest| {
            let name = rest.split(|c: char| !c.is_ascii_alphanumeric()).next()?;
            rest[name.len()..]
                .trim_start()
                .starts_with("=>")
                .then_some(name)
        })
        .collect();
    dispatched.sort_unstable();
    dispatched.dedup();
    let mut decoded: Vec<&str> = super::DECODED.iter().map(|o| o.name()).collect();
    decoded.sort_unstable();
    assert_eq!(decoded, dispatched);
}
