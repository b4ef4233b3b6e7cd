//! Store tests: group commit, refusal without trace, reads after acknowledged writes, and a
//! long random scenario whose rebuilt projections must equal the incrementally kept ones.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use cognate_domain::policy::PasswordPolicy;
use cognate_domain::state::{SealedKey, TimeUnit};
use cognate_domain::{
    Client, CodePurpose, Command, ErrorKind, PendingCode, Pool, Session, User, UserStatus, View,
};

use super::*;
use cognate_crypto::Keyring;

fn pool(id: &str, aliases: &[&str]) -> Pool {
    Pool {
        id: id.into(),
        name: format!("pool {id}"),
        created_at: 1,
        updated_at: 1,
        schema: cognate_domain::schema::default_schema(),
        username_attributes: vec![],
        alias_attributes: aliases.iter().map(|s| s.to_string()).collect(),
        case_sensitive: false,
        auto_verified_attributes: vec!["email".into()],
        password_policy: PasswordPolicy::default(),
        mfa_configuration: "OFF".into(),
        deletion_protection: false,
        lambda_config: BTreeMap::new(),
        settings: BTreeMap::new(),
        keys: vec![SealedKey {
            kid: "k".into(),
            sealed_pkcs8: "x".into(),
        }],
        domains: Vec::new(),
        resource_servers: BTreeMap::new(),
    }
}

fn client(id: &str, pool: &str) -> Client {
    Client {
        id: id.into(),
        pool_id: pool.into(),
        name: "c".into(),
        secret_sealed: None,
        explicit_auth_flows: vec!["ALLOW_USER_PASSWORD_AUTH".into()],
        access_token_validity: 60,
        id_token_validity: 60,
        refresh_token_validity: 30,
        access_token_unit: TimeUnit::Minutes,
        id_token_unit: TimeUnit::Minutes,
        refresh_token_unit: TimeUnit::Days,
        units_given: false,
        read_attributes: None,
        write_attributes: None,
        prevent_user_existence_errors: false,
        enable_token_revocation: true,
        auth_session_validity_minutes: 3,
        refresh_rotation: false,
        retry_grace_period_seconds: 0,
        settings: BTreeMap::new(),
        created_at: 1,
        updated_at: 1,
    }
}

fn user(name: &str, email: &str) -> User {
    let mut attributes = BTreeMap::new();
    attributes.insert("sub".to_string(), format!("sub-{name}"));
    attributes.insert("email".to_string(), email.to_string());
    User {
        username: name.into(),
        sub: format!("sub-{name}"),
        attributes,
        status: UserStatus::Unconfirmed,
        enabled: true,
        password_hash: Some("$argon2id$fake".into()),
        created_at: 1,
        updated_at: 1,
        code: Some(PendingCode {
            purpose: CodePurpose::SignUp,
            hash: format!("h-{name}"),
            expires_at: 1_000_000,
            failed_attempts: 0,
            attribute: None,
            destination: None,
        }),
        generation: 0,
        ..Default::default()
    }
}

fn ring() -> Keyring {
    Keyring::from_master_key(&[9; 32]).unwrap()
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db.redb"), ring(), WriterConfig::default()).unwrap();
    (dir, store)
}

#[tokio::test]
async fn refused_commands_leave_no_trace_and_reads_see_acknowledged_writes() {
    let (_d, s) = open();
    s.run(
        Command::CreatePool {
            pool: pool("p_1", &["email"]),
        },
        10,
    )
    .await
    .unwrap();
    s.run(
        Command::CreateClient {
            client: client("c1", "p_1"),
        },
        10,
    )
    .await
    .unwrap();
    s.run(
        Command::SignUp {
            pool_id: "p_1".into(),
            client_id: Some("c1".into()),
            user: user("Alice", "a@x.io"),
        },
        10,
    )
    .await
    .unwrap();
    let seq = s.stats().last_seq.load(Ordering::Relaxed);
    let before = s.digest().unwrap();
    // Same username in another case: the pool is case-insensitive.
    let e = s
        .run(
            Command::SignUp {
                pool_id: "p_1".into(),
                client_id: None,
                user: user("ALICE", "b@x.io"),
            },
            11,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Refused(ref d) if d.kind == ErrorKind::UsernameExists),
        "{e:?}"
    );
    assert_eq!(s.digest().unwrap(), before);
    assert_eq!(s.stats().last_seq.load(Ordering::Relaxed), seq);
    let r = s.read_now().unwrap();
    assert_eq!(
        r.user("p_1", "alice").unwrap().map(|u| u.username),
        Some("Alice".into())
    );
    assert_eq!(
        r.user_by_sub("p_1", "sub-Alice")
            .unwrap()
            .map(|u| u.username),
        Some("Alice".into())
    );
}

#[tokio::test]
async fn wrong_code_is_refused_but_recorded_and_attempts_are_bounded() {
    let (_d, s) = open();
    s.run(
        Command::CreatePool {
            pool: pool("p_1", &["email"]),
        },
        1,
    )
    .await
    .unwrap();
    s.run(
        Command::SignUp {
            pool_id: "p_1".into(),
            client_id: None,
            user: user("bob", "b@x.io"),
        },
        1,
    )
    .await
    .unwrap();
    for i in 0..5 {
        let ex = s
            .execute(
                Command::ConfirmSignUp {
                    pool_id: "p_1".into(),
                    username_key: "bob".into(),
                    code_hash: "wrong".into(),
                    force_alias: false,
                },
                2,
            )
            .await
            .unwrap();
        assert_eq!(
            ex.refusal.map(|r| r.kind),
            Some(ErrorKind::CodeMismatch),
            "attempt {i}"
        );
        assert_eq!(ex.events.len(), 1);
    }
    let e = s
        .run(
            Command::ConfirmSignUp {
                pool_id: "p_1".into(),
                username_key: "bob".into(),
                code_hash: "h-bob".into(),
                force_alias: false,
            },
            3,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Refused(ref d) if d.kind == ErrorKind::TooManyFailedAttempts),
        "{e:?}"
    );
    // A new code resets the attempts.
    let code = PendingCode {
        purpose: CodePurpose::SignUp,
        hash: "h2".into(),
        expires_at: 100,
        failed_attempts: 0,
        attribute: None,
        destination: None,
    };
    s.run(
        Command::SendCode {
            pool_id: "p_1".into(),
            username_key: "bob".into(),
            code,
        },
        4,
    )
    .await
    .unwrap();
    s.run(
        Command::ConfirmSignUp {
            pool_id: "p_1".into(),
            username_key: "bob".into(),
            code_hash: "h2".into(),
            force_alias: false,
        },
        5,
    )
    .await
    .unwrap();
    let u = s.read_now().unwrap().user("p_1", "bob").unwrap().unwrap();
    assert_eq!(u.status, UserStatus::Confirmed);
    assert!(u.attr_true("email_verified"));
    // The verified email is now a sign-in alias.
    assert_eq!(
        s.read_now()
            .unwrap()
            .alias_owner("p_1", "email", "b@x.io")
            .unwrap(),
        Some("bob".into())
    );
}

/// Pool `p_1` (no aliases) with client `c1` and the unconfirmed user `bob`.
async fn pool_with_bob(s: &Store) {
    s.run(
        Command::CreatePool {
            pool: pool("p_1", &[]),
        },
        1,
    )
    .await
    .unwrap();
    s.run(
        Command::CreateClient {
            client: client("c1", "p_1"),
        },
        1,
    )
    .await
    .unwrap();
    s.run(
        Command::SignUp {
            pool_id: "p_1".into(),
            client_id: None,
            user: user("bob", "b@x.io"),
        },
        1,
    )
    .await
    .unwrap();
}

fn sign_in(jti: &str, expires_at: i64) -> Command {
    Command::SignIn {
        pool_id: "p_1".into(),
        username_key: "bob".into(),
        session: Session {
            origin_jti: jti.into(),
            pool_id: "p_1".into(),
            username_key: "bob".into(),
            sub: "sub-bob".into(),
            client_id: "c1".into(),
            refresh_hash: format!("r-{jti}"),
            previous_hash: None,
            previous_until: 0,
            auth_time: 1,
            created_at: 1,
            expires_at,
            generation: 0,
            revoked: false,
            scope: None,
        },
        flow: "USER_PASSWORD_AUTH".into(),
    }
}

#[tokio::test]
async fn sessions_are_dropped_a_day_after_they_expire() {
    use cognate_domain::event::SESSION_GRACE_MS;
    let (_d, s) = open();
    pool_with_bob(&s).await;
    s.run(sign_in("old", 1_000), 10).await.unwrap();
    s.run(sign_in("live", 10 * SESSION_GRACE_MS), 10)
        .await
        .unwrap();
    s.run(sign_in("a", 10 * SESSION_GRACE_MS), 20)
        .await
        .unwrap();
    s.run(sign_in("b", 10 * SESSION_GRACE_MS), 30)
        .await
        .unwrap();
    let sweep = |before: i64| Command::ExpireSessions { before, max: 16 };
    // Its refresh token has expired, but an access token of it may still be valid.
    let none = s
        .run(sweep(1_000), 1_000 + SESSION_GRACE_MS - 1)
        .await
        .unwrap();
    assert!(none.is_empty(), "nothing expired before 1000: {none:?}");
    let r = s.read_now().unwrap();
    assert!(r.session("old").unwrap().is_some());
    assert_eq!(
        r.session_by_refresh("r-old").unwrap().as_deref(),
        Some("old")
    );
    drop(r);
    // A day later nothing can use it: the sweep removes it and its refresh entry, and
    // says so in an event naming it.
    let events = s
        .run(sweep(1_001), 1_000 + SESSION_GRACE_MS + 1)
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert!(matches!(
        &events[0].event,
        cognate_domain::Event::SessionsExpired { origin_jtis } if origin_jtis == &["old".to_string()]
    ));
    let r = s.read_now().unwrap();
    assert!(r.session("old").unwrap().is_none());
    assert!(r.session_by_refresh("r-old").unwrap().is_none());
    for live in ["live", "a", "b"] {
        assert!(r.session(live).unwrap().is_some(), "{live}");
        assert_eq!(
            r.session_by_refresh(&format!("r-{live}"))
                .unwrap()
                .as_deref(),
            Some(live)
        );
    }
}

fn answer(id: &str, expires_at: i64, correct: bool, single_use: bool) -> Command {
    Command::AnswerChallenge {
        pool_id: "p_1".into(),
        username_key: "bob".into(),
        session_id: id.into(),
        expires_at,
        correct,
        single_use,
    }
}

fn refused_as_spent(r: Result<Vec<cognate_domain::Envelope>>) {
    match r {
        Err(Error::Refused(e)) => {
            assert_eq!(e.kind, ErrorKind::NotAuthorized);
            assert_eq!(
                e.message,
                "Invalid session for the user, session is expired."
            );
        }
        other => panic!("expected the spent session to be refused, got {other:?}"),
    }
}

#[tokio::test]
async fn challenge_sessions_take_one_answer_or_three_wrong_codes() {
    let (_d, s) = open();
    pool_with_bob(&s).await;
    // A single-use session: the first answer, right or wrong, spends it.
    s.run(answer("a", 1_000, true, true), 10).await.unwrap();
    refused_as_spent(s.run(answer("a", 1_000, true, true), 11).await);
    s.run(answer("b", 1_000, false, true), 10).await.unwrap();
    refused_as_spent(s.run(answer("b", 1_000, true, true), 11).await);
    // An MFA session: two wrong codes leave it open, the third spends it.
    for t in 0..2 {
        s.run(answer("m", 1_000, false, false), 20 + t)
            .await
            .unwrap();
    }
    let u = s.read_now().unwrap().user("p_1", "bob").unwrap().unwrap();
    assert_eq!(u.answered_challenges["m"].failures, 2);
    assert!(!u.answered_challenges["m"].spent);
    s.run(answer("m", 1_000, false, false), 22).await.unwrap();
    refused_as_spent(s.run(answer("m", 1_000, true, false), 23).await);
    // An expired session takes no answer at all.
    refused_as_spent(s.run(answer("old", 30, true, true), 30).await);
    // Records go when their sessions expire. At most 32 unexpired ones are kept, and
    // none is evicted to make room (that would give its session fresh answers): past the
    // cap, new sessions are refused until older ones expire.
    for i in 0..40 {
        let r = s
            .run(answer(&format!("x{i}"), 2_000 + i, false, false), 1_500)
            .await;
        if i < 32 {
            r.unwrap();
        } else {
            match r {
                Err(Error::Refused(e)) => assert_eq!(e.kind, ErrorKind::LimitExceeded, "x{i}"),
                other => panic!("x{i}: {other:?}"),
            }
        }
    }
    let u = s.read_now().unwrap().user("p_1", "bob").unwrap().unwrap();
    assert!(!u.answered_challenges.contains_key("a"), "expired at 1000");
    assert_eq!(u.answered_challenges.len(), 32);
    assert!(u.answered_challenges.contains_key("x7"));
    assert!(!u.answered_challenges.contains_key("x39"));
    // A session already on record still takes its remaining answers.
    s.run(answer("x0", 2_000, false, false), 1_501)
        .await
        .unwrap();
    // Once the oldest have expired, new sessions are taken again.
    s.run(answer("late", 5_000, true, true), 2_010)
        .await
        .unwrap();
}

#[tokio::test]
async fn concurrent_writers_are_group_committed() {
    let (_d, s) = open();
    s.run(
        Command::CreatePool {
            pool: pool("p_1", &[]),
        },
        1,
    )
    .await
    .unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.run(
                Command::SignUp {
                    pool_id: "p_1".into(),
                    client_id: None,
                    user: user(&format!("u{i}"), ""),
                },
                2,
            )
            .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(s.read_now().unwrap().count_users("p_1").unwrap(), 200);
    let batches = s.stats().batches.load(Ordering::Relaxed);
    assert!(
        batches < 201,
        "every write committed alone: {batches} batches"
    );
    assert_eq!(s.read_now().unwrap().last_seq().unwrap(), 201);
}

/// xorshift: deterministic, seedable, good enough to pick operations.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[tokio::test]
async fn long_random_scenario_rebuilds_to_the_same_digest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let mut applied = 0u64;
    {
        let s = Store::open(&path, ring(), WriterConfig::default()).unwrap();
        let pools = ["p_a", "p_b", "p_c"];
        for (i, p) in pools.iter().enumerate() {
            let aliases: &[&str] = if i == 0 {
                &["email", "preferred_username"]
            } else {
                &[]
            };
            s.run(
                Command::CreatePool {
                    pool: pool(p, aliases),
                },
                1,
            )
            .await
            .unwrap();
            s.run(
                Command::CreateClient {
                    client: client(&format!("c{i}"), p),
                },
                1,
            )
            .await
            .unwrap();
        }
        let mut sessions: Vec<String> = Vec::new();
        for step in 0..3000i64 {
            let p = pools[rng.below(3) as usize];
            let name = format!("user{}", rng.below(60));
            let ci = pools.iter().position(|x| *x == p).unwrap();
            let now = 10 + step;
            let cmd = match rng.below(18) {
                0 | 1 => Command::SignUp {
                    pool_id: p.into(),
                    client_id: Some(format!("c{ci}")),
                    user: user(&name, &format!("{}@x.io", rng.below(40))),
                },
                2 => Command::ConfirmSignUp {
                    pool_id: p.into(),
                    username_key: name.clone(),
                    code_hash: if rng.below(2) == 0 {
                        format!("h-{name}")
                    } else {
                        "bad".into()
                    },
                    force_alias: rng.below(2) == 0,
                },
                3 => Command::AdminConfirmSignUp {
                    pool_id: p.into(),
                    username_key: name.clone(),
                },
                4 => Command::SetPassword {
                    pool_id: p.into(),
                    username_key: name.clone(),
                    password_hash: format!("h{step}"),
                    permanent: rng.below(2) == 0,
                    expires_at: None,
                    srp: None,
                },
                5 => Command::DeleteUser {
                    pool_id: p.into(),
                    username_key: name.clone(),
                },
                6 => {
                    let jti = format!("s{step}");
                    sessions.push(jti.clone());
                    Command::SignIn {
                        pool_id: p.into(),
                        username_key: name.clone(),
                        session: Session {
                            origin_jti: jti,
                            pool_id: p.into(),
                            username_key: name.clone(),
                            sub: format!("sub-{name}"),
                            client_id: format!("c{ci}"),
                            refresh_hash: format!("r{step}"),
                            previous_hash: None,
                            previous_until: 0,
                            auth_time: now,
                            created_at: now,
                            // Some already a day past their expiry, so that later
                            // sign-ins drop them (and the rebuild must do the same).
                            expires_at: now + 100_000
                                - if rng.below(3) == 0 { 86_500_000 } else { 0 },
                            generation: 0,
                            revoked: false,
                            scope: None,
                        },
                        flow: "USER_PASSWORD_AUTH".into(),
                    }
                }
                7 if !sessions.is_empty() => {
                    let jti = sessions[rng.below(sessions.len() as u64) as usize].clone();
                    let presented = s
                        .read_now()
                        .unwrap()
                        .session(&jti)
                        .unwrap()
                        .map(|x| x.refresh_hash)
                        .unwrap_or_default();
                    Command::Refresh {
                        origin_jti: jti,
                        presented_hash: presented,
                        new_refresh_hash: Some(format!("r{step}")),
                        grace_until: now + 5,
                    }
                }
                8 if !sessions.is_empty() => Command::RevokeSession {
                    origin_jti: sessions[rng.below(sessions.len() as u64) as usize].clone(),
                },
                9 => Command::GlobalSignOut {
                    pool_id: p.into(),
                    username_key: name.clone(),
                },
                // Domains move between pools: the domain index must rebuild too.
                12 => Command::SetDomain {
                    pool_id: p.into(),
                    domain: cognate_domain::PoolDomain {
                        domain: format!("d{}", rng.below(4)),
                        certificate_arn: None,
                        managed_login_version: 1 + rng.below(2) as i64,
                        created_at: now,
                    },
                    create: rng.below(2) == 0,
                },
                13 => Command::DeleteDomain {
                    pool_id: p.into(),
                    domain: format!("d{}", rng.below(4)),
                },
                // Branding: the pool's and clients' hosted UI CSS and logos, and managed
                // login styles created, updated and deleted.
                14 => Command::SetUiCustomization {
                    customization: cognate_domain::UiCustomization {
                        pool_id: p.into(),
                        client_id: (rng.below(2) == 0).then(|| format!("c{ci}")),
                        css: Some(format!(".banner-customizable {{ color: #{step:06}; }}")),
                        css_version: format!("v{step}"),
                        logo: (rng.below(2) == 0).then(|| cognate_domain::Logo {
                            content_type: "image/png".into(),
                            base64: format!("iVBO{step}"),
                        }),
                        created_at: now,
                        updated_at: now,
                    },
                },
                15 => Command::CreateManagedLoginBranding {
                    branding: cognate_domain::ManagedLoginBranding {
                        id: format!("b{step}"),
                        pool_id: p.into(),
                        client_id: format!("c{ci}"),
                        use_cognito_provided_values: rng.below(2) == 0,
                        settings: None,
                        assets: vec![],
                        created_at: now,
                        updated_at: now,
                    },
                },
                16 | 17 => {
                    let id = s
                        .read_now()
                        .unwrap()
                        .managed_login_branding(p, &format!("c{ci}"))
                        .unwrap()
                        .map(|b| b.id)
                        .unwrap_or_default();
                    if rng.below(2) == 0 {
                        Command::UpdateManagedLoginBranding {
                            pool_id: p.into(),
                            id,
                            use_cognito_provided_values: Some(false),
                            settings: Some(serde_json::json!({"step": step})),
                            assets: Some(vec![cognate_domain::BrandingAsset {
                                category: "FORM_LOGO".into(),
                                color_mode: ["LIGHT", "DARK"][rng.below(2) as usize].into(),
                                extension: "PNG".into(),
                                bytes: Some(format!("iVBO{step}")),
                                resource_id: None,
                            }]),
                            at: now,
                        }
                    } else {
                        Command::DeleteManagedLoginBranding {
                            pool_id: p.into(),
                            id,
                        }
                    }
                }
                11 => Command::ExpireSessions {
                    before: now + 50_000,
                    max: 1 + rng.below(4) as usize,
                },
                10 => Command::AnswerChallenge {
                    pool_id: p.into(),
                    username_key: name.clone(),
                    session_id: format!("cs{}", rng.below(8)),
                    expires_at: now + rng.below(40) as i64,
                    correct: rng.below(2) == 0,
                    single_use: rng.below(2) == 0,
                },
                _ => Command::SendCode {
                    pool_id: p.into(),
                    username_key: name.clone(),
                    code: PendingCode {
                        purpose: CodePurpose::SignUp,
                        hash: format!("h-{name}"),
                        expires_at: now + 50,
                        failed_attempts: 0,
                        attribute: None,
                        destination: None,
                    },
                },
            };
            if let Ok(ex) = s.execute(cmd, now).await {
                applied += ex.events.len() as u64;
            }
        }
        s.run(
            Command::DeletePool {
                pool_id: "p_c".into(),
            },
            99_999,
        )
        .await
        .unwrap();
        applied += 1;
        let live = s.digest().unwrap();
        assert!(applied > 500, "scenario too short: {applied}");
        s.close();
        let out = rebuild(&path, ring()).unwrap();
        assert_eq!(out.events, applied + 6);
        assert!(out.erased > 0, "deleted users' events must be unreadable");
        assert_eq!(out.live_digest, live);
        assert_eq!(out.rebuilt_digest, live);
    }
    // The rebuilt database serves reads as before.
    let s = Store::open(&path, ring(), WriterConfig::default()).unwrap();
    assert!(s.read_now().unwrap().pool("p_c").unwrap().is_none());
    assert!(s.read_now().unwrap().pool("p_a").unwrap().is_some());
    // The scenario did leave branding behind to rebuild.
    let r = s.read_now().unwrap();
    let branded = ["p_a", "p_b"].iter().any(|p| {
        r.ui_customization(p, None).unwrap().is_some()
            || !r.managed_login_brandings(p).unwrap().is_empty()
    });
    assert!(branded);
}

#[tokio::test]
async fn rebuild_detects_a_tampered_projection() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    {
        let s = Store::open(&path, ring(), WriterConfig::default()).unwrap();
        s.run(
            Command::CreatePool {
                pool: pool("p_1", &[]),
            },
            1,
        )
        .await
        .unwrap();
        s.close();
    }
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(tables::POOLS)
            .unwrap()
            .insert("p_ghost", b"{}".as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let out = rebuild(&path, ring()).unwrap();
    assert_ne!(out.live_digest, out.rebuilt_digest);
    let s = Store::open(&path, ring(), WriterConfig::default()).unwrap();
    assert_eq!(s.digest().unwrap(), out.rebuilt_digest);
}

#[tokio::test]
async fn srp_verifiers_and_devices_fold_and_rebuild() {
    use cognate_domain::{Device, SrpVerifier};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let srp = |v: &str| SrpVerifier {
        salt: "5a17".into(),
        verifier: v.into(),
    };
    let live = {
        let s = Store::open(&path, ring(), WriterConfig::default()).unwrap();
        s.run(
            Command::CreatePool {
                pool: pool("p_d", &[]),
            },
            1,
        )
        .await
        .unwrap();
        s.run(
            Command::SignUp {
                pool_id: "p_d".into(),
                client_id: None,
                user: user("dora", "d@x.io"),
            },
            2,
        )
        .await
        .unwrap();
        let add = |hash: &str, v: &str| Command::AddSrpVerifier {
            pool_id: "p_d".into(),
            username_key: "dora".into(),
            password_hash: hash.into(),
            srp: srp(v),
        };
        // A verifier for a password that is no longer the user's is not added.
        assert!(
            s.run(add("$argon2id$other", "v-stale"), 3)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            s.run(add("$argon2id$fake", "v-1"), 4).await.unwrap().len(),
            1
        );
        // Only once.
        assert!(
            s.run(add("$argon2id$fake", "v-2"), 5)
                .await
                .unwrap()
                .is_empty()
        );
        let u = s.read_now().unwrap().user("p_d", "dora").unwrap().unwrap();
        assert_eq!(u.srp, Some(srp("v-1")));
        // A new password replaces the verifier; one without clears it.
        s.run(
            Command::SetPassword {
                pool_id: "p_d".into(),
                username_key: "dora".into(),
                password_hash: "$argon2id$new".into(),
                permanent: true,
                expires_at: None,
                srp: None,
            },
            6,
        )
        .await
        .unwrap();
        let u = s.read_now().unwrap().user("p_d", "dora").unwrap().unwrap();
        assert_eq!(u.srp, None);

        let device = Device {
            key: "us-east-1_d1".into(),
            group_key: "-group".into(),
            name: Some("laptop".into()),
            remembered: true,
            srp: srp("dv"),
            created_at: 7,
            updated_at: 7,
            last_authenticated_at: 7,
        };
        s.run(
            Command::ConfirmDevice {
                pool_id: "p_d".into(),
                username_key: "dora".into(),
                device,
            },
            7,
        )
        .await
        .unwrap();
        s.run(
            Command::UpdateDeviceStatus {
                pool_id: "p_d".into(),
                username_key: "dora".into(),
                device_key: "us-east-1_d1".into(),
                remembered: false,
            },
            8,
        )
        .await
        .unwrap();
        s.run(
            Command::DeviceAuthenticated {
                pool_id: "p_d".into(),
                username_key: "dora".into(),
                device_key: "us-east-1_d1".into(),
            },
            9,
        )
        .await
        .unwrap();
        let u = s.read_now().unwrap().user("p_d", "dora").unwrap().unwrap();
        let d = &u.devices["us-east-1_d1"];
        assert!(!d.remembered);
        assert_eq!((d.updated_at, d.last_authenticated_at), (8, 9));
        let e = s
            .run(
                Command::ForgetDevice {
                    pool_id: "p_d".into(),
                    username_key: "dora".into(),
                    device_key: "us-east-1_nope".into(),
                },
                10,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(e, Error::Refused(ref d) if d.kind == ErrorKind::ResourceNotFound),
            "{e:?}"
        );
        let live = s.digest().unwrap();
        s.close();
        live
    };
    let out = rebuild(&path, ring()).unwrap();
    assert_eq!(out.live_digest, live);
    assert_eq!(out.rebuilt_digest, live);
}

/// Send limits are per purpose: a flood of ForgotPassword codes (anyone can ask for
/// them) cannot keep a user from getting sign-in (MFA) or verification codes.
#[tokio::test]
async fn code_send_limits_are_per_purpose() {
    let (_d, s) = open();
    pool_with_bob(&s).await;
    let code = |purpose: CodePurpose| PendingCode {
        purpose,
        hash: "h".into(),
        expires_at: 1_000_000,
        failed_attempts: 0,
        attribute: (purpose == CodePurpose::VerifyAttribute).then(|| "email".to_owned()),
        destination: None,
    };
    let send = |purpose: CodePurpose| Command::SendCode {
        pool_id: "p_1".into(),
        username_key: "bob".into(),
        code: code(purpose),
    };
    for t in 0..cognate_domain::command::MAX_CODE_SENDS as i64 {
        s.run(send(CodePurpose::ForgotPassword), 100 + t)
            .await
            .unwrap();
    }
    match s.run(send(CodePurpose::ForgotPassword), 200).await {
        Err(Error::Refused(e)) => assert_eq!(e.kind, ErrorKind::LimitExceeded),
        other => panic!("the sixth reset code in an hour was sent: {other:?}"),
    }
    // Other purposes have their own allowance.
    s.run(
        Command::SendChallengeCode {
            pool_id: "p_1".into(),
            username_key: "bob".into(),
            code: code(CodePurpose::Mfa),
        },
        201,
    )
    .await
    .unwrap();
    s.run(send(CodePurpose::VerifyAttribute), 202)
        .await
        .unwrap();
    // And the reset allowance comes back once the window has passed.
    s.run(
        send(CodePurpose::ForgotPassword),
        100 + cognate_domain::command::CODE_SEND_WINDOW_MS + 1,
    )
    .await
    .unwrap();
}

/// Every file of `dir`, concatenated.
fn all_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            out.extend(std::fs::read(&p).unwrap());
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn a_deleted_user_cannot_be_read_anywhere_in_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let distinctive = [
        "zelda-erasure-canary",
        "zelda.canary@example.org",
        "Zeldaname Canarysson",
        "$argon2id$zelda-hash",
    ];
    let kept = ["keeper-canary", "keeper.canary@example.org"];
    let live;
    {
        let s = Store::open(&path, ring(), WriterConfig::default()).unwrap();
        s.run(
            Command::CreatePool {
                pool: pool("p_1", &["email"]),
            },
            1,
        )
        .await
        .unwrap();
        s.run(
            Command::CreateClient {
                client: client("c1", "p_1"),
            },
            1,
        )
        .await
        .unwrap();
        // Subs, session ids and refresh hashes are random in the daemon; here they are
        // numbered, so that only the values under test carry the names.
        for (i, (name, email, full)) in [
            (distinctive[0], distinctive[1], distinctive[2]),
            (kept[0], kept[1], "Keeper"),
        ]
        .into_iter()
        .enumerate()
        {
            let mut u = user(name, email);
            u.sub = format!("sub-{i}");
            u.attributes.insert("sub".into(), u.sub.clone());
            u.attributes.insert("name".into(), full.into());
            u.attributes.insert("email_verified".into(), "true".into());
            u.password_hash = Some(format!("$argon2id${}-hash", &name[..5]));
            s.run(
                Command::SignUp {
                    pool_id: "p_1".into(),
                    client_id: Some("c1".into()),
                    user: u,
                },
                2,
            )
            .await
            .unwrap();
            s.run(
                Command::AdminConfirmSignUp {
                    pool_id: "p_1".into(),
                    username_key: name.into(),
                },
                3,
            )
            .await
            .unwrap();
            let mut session = match sign_in(&format!("jti-{i}"), 1_000_000) {
                Command::SignIn { session, .. } => session,
                _ => unreachable!(),
            };
            session.username_key = name.into();
            session.sub = format!("sub-{i}");
            session.refresh_hash = format!("r-{i}");
            s.run(
                Command::SignIn {
                    pool_id: "p_1".into(),
                    username_key: name.into(),
                    session,
                    flow: "USER_PASSWORD_AUTH".into(),
                },
                4,
            )
            .await
            .unwrap();
        }
        s.run(
            Command::CreateGroup {
                group: cognate_domain::Group {
                    pool_id: "p_1".into(),
                    name: "g".into(),
                    description: None,
                    role_arn: None,
                    precedence: None,
                    created_at: 5,
                    updated_at: 5,
                },
            },
            5,
        )
        .await
        .unwrap();
        s.run(
            Command::AddToGroup {
                pool_id: "p_1".into(),
                username_key: distinctive[0].into(),
                group: "g".into(),
            },
            6,
        )
        .await
        .unwrap();
        // Readable while the user exists: by name, alias, sub, search and history.
        let r = s.read_now().unwrap();
        assert!(r.user("p_1", distinctive[0]).unwrap().is_some());
        assert_eq!(
            r.alias_owner("p_1", "email", distinctive[1])
                .unwrap()
                .as_deref(),
            Some(distinctive[0])
        );
        let (found, _) = r.search("p_1", "email", "zelda.", true, None, 60).unwrap();
        assert_eq!(found.len(), 1);
        let (found, _) = r
            .search("p_1", "name", distinctive[2], false, None, 60)
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(
            r.members("p_1", "g", None, 10).unwrap(),
            vec![distinctive[0].to_string()]
        );
        assert!(r.history("p_1", "sub-0", None, 50).unwrap().len() >= 4);
        drop(r);
        s.run(
            Command::DeleteUser {
                pool_id: "p_1".into(),
                username_key: distinctive[0].into(),
            },
            7,
        )
        .await
        .unwrap();
        let r = s.read_now().unwrap();
        assert!(r.user("p_1", distinctive[0]).unwrap().is_none());
        assert!(r.session("jti-0").unwrap().is_none());
        assert!(r.session_by_refresh("r-0").unwrap().is_none());
        assert!(r.session("jti-1").unwrap().is_some());
        let (found, _) = r.search("p_1", "email", "zelda.", true, None, 60).unwrap();
        assert!(found.is_empty());
        let entries = r.entries(0, 1000).unwrap();
        let unreadable: Vec<_> = entries.iter().filter(|e| e.body.is_none()).collect();
        assert!(unreadable.len() >= 5, "{unreadable:?}");
        assert!(
            unreadable
                .iter()
                .any(|e| e.type_name == "user.deleted" && e.subject.as_deref() == Some("sub-0"))
        );
        live = s.digest().unwrap();
        s.close();
    }
    let bytes = all_bytes(dir.path());
    for v in distinctive {
        assert!(!contains(&bytes, v), "{v:?} is still in the data directory");
    }
    // Another user's data is untouched (and sealed at rest too).
    for v in kept {
        assert!(!contains(&bytes, v), "{v:?} is stored in plain text");
    }
    let out = rebuild(&path, ring()).unwrap();
    assert_eq!(out.live_digest, live);
    assert_eq!(out.rebuilt_digest, live);
    assert!(out.erased >= 5);
    let s = Store::open(&path, ring(), WriterConfig::default()).unwrap();
    let r = s.read_now().unwrap();
    let keeper = r.user("p_1", kept[0]).unwrap().unwrap();
    assert_eq!(keeper.attributes["email"], kept[1]);
    assert!(r.user("p_1", distinctive[0]).unwrap().is_none());
    let (found, _) = r.search("p_1", "email", "keeper", true, None, 60).unwrap();
    assert_eq!(found.len(), 1);
}

/// A database the version before sealing wrote (fixtures/unsealed-v1.redb: three users
/// signed up and signed in, two in a group, one renamed and then deleted).
#[tokio::test]
async fn seal_log_converts_an_unsealed_database_and_erases_users_deleted_before() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cognate.redb");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/unsealed-v1.redb"),
        &path,
    )
    .unwrap();
    assert!(contains(
        &std::fs::read(&path).unwrap(),
        "gone.legacy@example.org"
    ));
    // The daemon refuses to start on it, saying what to do.
    match Store::open(&path, ring(), WriterConfig::default()) {
        Err(Error::Legacy(n)) => assert!(n > 10, "{n}"),
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("an unsealed database must not be served"),
    }
    let out = seal_legacy(&path, ring(), 1_000).unwrap();
    assert!(out.events > 10);
    assert_eq!(out.erased, 1, "the deleted user's key is erased at once");
    assert_eq!(out.backup, dir.path().join("cognate.redb.unsealed"));
    assert!(
        contains(
            &std::fs::read(&out.backup).unwrap(),
            "gone.legacy@example.org"
        ),
        "the backup is the old database"
    );
    std::fs::remove_file(&out.backup).unwrap();
    let bytes = all_bytes(dir.path());
    for gone in [
        "gone-legacy-user",
        "gone.legacy@example.org",
        "Gone Legacyperson",
        "Gone Renamedperson",
        "legacy-hash-0",
    ] {
        assert!(!contains(&bytes, gone), "{gone} survived the conversion");
    }
    for sealed in [
        "stays.legacy@example.org",
        "Stays Legacyperson",
        "legacy-hash-1",
    ] {
        assert!(
            !contains(&bytes, sealed),
            "{sealed} is stored in plain text"
        );
    }
    // A second run finds nothing to do and changes nothing.
    assert!(seal_legacy(&path, ring(), 1_000).is_err());
    let s = Store::open(&path, ring(), WriterConfig::default()).unwrap();
    let r = s.read_now().unwrap();
    let stays = r.user("p_legacy", "stays-legacy-user").unwrap().unwrap();
    assert_eq!(stays.attributes["email"], "stays.legacy@example.org");
    assert!(r.user("p_legacy", "gone-legacy-user").unwrap().is_none());
    assert_eq!(
        r.members("p_legacy", "staff", None, 10).unwrap(),
        vec!["stays-legacy-user".to_string()]
    );
    assert!(r.session("jti-1").unwrap().is_some());
    assert!(r.session("jti-0").unwrap().is_none());
    assert_eq!(
        r.alias_owner("p_legacy", "email", "other.legacy@example.org")
            .unwrap()
            .as_deref(),
        Some("other-legacy-user")
    );
    let live = s.digest().unwrap();
    drop(r);
    s.close();
    let rebuilt = rebuild(&path, ring()).unwrap();
    assert_eq!(rebuilt.live_digest, live);
    assert_eq!(rebuilt.rebuilt_digest, live);
    // The converted database needs the master key it was converted with.
    assert!(
        Store::open(
            &path,
            Keyring::from_master_key(&[1; 32]).unwrap(),
            WriterConfig::default()
        )
        .is_err()
    );
}

/// An in-memory shared log and key stream with the semantics the JetStream ones have:
/// appends at an expected position, deduplication by id, erasure.
#[derive(Default)]
struct MemLog {
    messages: std::sync::Mutex<Vec<(String, Vec<u8>)>>,
    keys: std::sync::Mutex<std::collections::HashMap<u64, Option<Vec<u8>>>>,
}

impl SharedLog for MemLog {
    fn append(
        &self,
        expected: u64,
        id: &str,
        payload: &[u8],
    ) -> std::result::Result<Appended, String> {
        let mut m = self.messages.lock().unwrap();
        if let Some(i) = m.iter().position(|(x, _)| x == id) {
            return Ok(Appended::Stored(i as u64 + 1));
        }
        if m.len() as u64 != expected {
            return Ok(Appended::Conflict);
        }
        m.push((id.to_owned(), payload.to_vec()));
        Ok(Appended::Stored(m.len() as u64))
    }
    fn read(&self, from: u64, max: usize) -> std::result::Result<Vec<(u64, Vec<u8>)>, String> {
        let m = self.messages.lock().unwrap();
        Ok(m.iter()
            .enumerate()
            .skip(from.saturating_sub(1) as usize)
            .take(max)
            .map(|(i, (_, p))| (i as u64 + 1, p.clone()))
            .collect())
    }
    fn last(&self) -> std::result::Result<u64, String> {
        Ok(self.messages.lock().unwrap().len() as u64)
    }
    fn max_payload(&self) -> usize {
        1 << 20
    }
}

impl SharedKeys for MemLog {
    fn create(&self, id: u64, wrapped: &[u8]) -> std::result::Result<bool, String> {
        let mut k = self.keys.lock().unwrap();
        if k.contains_key(&id) {
            return Ok(false);
        }
        k.insert(id, Some(wrapped.to_vec()));
        Ok(true)
    }
    fn get(&self, id: u64) -> std::result::Result<Option<Vec<u8>>, String> {
        Ok(self.keys.lock().unwrap().get(&id).cloned().flatten())
    }
    fn erase(&self, id: u64) -> std::result::Result<(), String> {
        if let Some(k) = self.keys.lock().unwrap().get_mut(&id) {
            *k = None;
        }
        Ok(())
    }
}

fn open_member(dir: &std::path::Path, name: &str, log: &Arc<MemLog>) -> Store {
    Store::open_cluster(
        &dir.join(name),
        ring(),
        WriterConfig::default(),
        log.clone(),
        log.clone(),
    )
    .unwrap()
}

async fn caught_up(s: &Store, log: &MemLog) {
    let last = log.messages.lock().unwrap().len() as u64;
    assert!(
        s.wait_applied(last, std::time::Duration::from_secs(10))
            .await
    );
}

#[tokio::test]
async fn daemons_on_one_shared_log_decide_races_once_and_converge() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(MemLog::default());
    let members: Vec<Store> = (0..3)
        .map(|i| open_member(dir.path(), &format!("d{i}.redb"), &log))
        .collect();
    members[0]
        .run(
            Command::CreatePool {
                pool: pool("p_1", &["email"]),
            },
            1,
        )
        .await
        .unwrap();
    // The others have not read the log: their sign-ups conflict, catch up, decide again.
    for round in 0..20 {
        let name = format!("user{round}");
        let tasks: Vec<_> = members
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let s = s.clone();
                let u = user(&name, &format!("{name}-{i}@x.io"));
                tokio::spawn(async move {
                    s.run(
                        Command::SignUp {
                            pool_id: "p_1".into(),
                            client_id: None,
                            user: u,
                        },
                        2,
                    )
                    .await
                })
            })
            .collect();
        let mut won = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => won += 1,
                Err(Error::Refused(d)) => assert_eq!(d.kind, ErrorKind::UsernameExists),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(won, 1, "round {round}: exactly one sign-up wins");
    }
    let conflicts: u64 = members
        .iter()
        .map(|s| s.stats().conflicts.load(Ordering::Relaxed))
        .sum();
    assert!(conflicts > 0, "the race produced no conflict at all");
    for s in &members {
        caught_up(s, &log).await;
    }
    let digests: Vec<String> = members.iter().map(|s| s.digest().unwrap()).collect();
    assert_eq!(digests[0], digests[1]);
    assert_eq!(digests[0], digests[2]);
    // Every daemon reads a user another one wrote (keys from the shared stream).
    let r = members[2].read_now().unwrap();
    assert!(r.user("p_1", "user7").unwrap().is_some());
    // A daemon that starts late catches up to the same state.
    let late = open_member(dir.path(), "late.redb", &log);
    caught_up(&late, &log).await;
    assert_eq!(late.digest().unwrap(), digests[0]);
    // Erasing a user in one daemon erases the key for all.
    let sub = r.user("p_1", "user7").unwrap().unwrap().sub;
    members[1]
        .run(
            Command::DeleteUser {
                pool_id: "p_1".into(),
                username_key: "user7".into(),
            },
            3,
        )
        .await
        .unwrap();
    caught_up(&members[0], &log).await;
    assert!(
        members[0]
            .read_now()
            .unwrap()
            .user_by_sub("p_1", &sub)
            .unwrap()
            .is_none()
    );
    let erased = log
        .keys
        .lock()
        .unwrap()
        .values()
        .filter(|k| k.is_none())
        .count();
    assert!(erased >= 1, "the deleted user's key was erased");
}

#[tokio::test]
async fn a_single_node_log_moves_into_a_cluster_with_the_same_state() {
    let (dir, s) = open();
    pool_with_bob(&s).await;
    for name in ["carol", "dave"] {
        s.run(
            Command::SignUp {
                pool_id: "p_1".into(),
                client_id: None,
                user: user(name, &format!("{name}@x.io")),
            },
            2,
        )
        .await
        .unwrap();
    }
    s.run(
        Command::DeleteUser {
            pool_id: "p_1".into(),
            username_key: "carol".into(),
        },
        3,
    )
    .await
    .unwrap();
    let digest = s.digest().unwrap();
    let events = s.stats().last_seq.load(Ordering::Relaxed);
    s.close();
    let log = Arc::new(MemLog::default());
    let path = dir.path().join("db.redb");
    let moved = move_into_cluster(&path, ring(), &*log, &*log).unwrap();
    assert_eq!(moved.events, events);
    assert!(
        moved.erased_keys >= 1,
        "carol's key was erased before the move"
    );
    // Moving twice is refused: the log is no longer empty.
    assert!(move_into_cluster(&path, ring(), &*log, &*log).is_err());
    let member = open_member(dir.path(), "member.redb", &log);
    caught_up(&member, &log).await;
    assert_eq!(member.digest().unwrap(), digest);
    let r = member.read_now().unwrap();
    assert!(r.user("p_1", "dave").unwrap().is_some());
    assert!(r.user("p_1", "carol").unwrap().is_none());
    // And it goes on from there: a new user on top of the moved log.
    member
        .run(
            Command::SignUp {
                pool_id: "p_1".into(),
                client_id: None,
                user: user("erin", "e@x.io"),
            },
            4,
        )
        .await
        .unwrap();
}
