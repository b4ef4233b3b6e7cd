//! Cluster mode (DESIGN.md §9, docs/cluster.md): three daemons on a three-node
//! JetStream cluster (nats-server 2.11+, `NATS_CLUSTER_SERVER_BIN`), each with its own
//! data directory, one log. Races decided once, every write seen by every daemon, no
//! acknowledged write lost when a daemon or a NATS node dies.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::error::ProvideErrorMetadata;
use aws_sdk_cognitoidentityprovider::types::{
    AliasAttributeType, AuthFlowType, ChallengeNameType, FeatureType, MessageActionType,
    RefreshTokenRotationType, VerifiedAttributeType,
};
use cognate_testkit::{Daemon, DaemonOptions, NatsCluster, random_bytes};

use crate::common::*;
use crate::nats::Tail;

pub struct Cluster {
    pub nats: NatsCluster,
    pub daemons: Vec<Daemon>,
    pub sdks: Vec<Client>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Cluster {
    /// Three NATS nodes and `n` daemons, daemon `i` attached to node `i % 3`.
    pub async fn start(n: usize) -> Cluster {
        let nats = NatsCluster::start(3).await;
        let master = hex(&random_bytes(32));
        let creds = (
            format!("AKIA{}", hex(&random_bytes(8)).to_uppercase()),
            hex(&random_bytes(20)),
        );
        Self::start_on(nats, n, &master, &creds).await
    }

    /// `n` daemons on a running NATS cluster, with this master key and these admin
    /// credentials.
    pub async fn start_on(
        nats: NatsCluster,
        n: usize,
        master: &str,
        creds: &(String, String),
    ) -> Cluster {
        let (master, creds) = (master.to_owned(), creds.clone());
        let mut daemons = Vec::new();
        for i in 0..n {
            daemons.push(Self::daemon(&nats, i % 3, &master, &creds).await);
        }
        for d in &daemons {
            d.wait_ready(Duration::from_secs(60)).await;
        }
        let sdks = daemons.iter().map(sdk_no_retry).collect();
        Cluster {
            nats,
            daemons,
            sdks,
        }
    }

    async fn daemon(
        nats: &NatsCluster,
        node: usize,
        master: &str,
        creds: &(String, String),
    ) -> Daemon {
        let mut env = BTreeMap::new();
        env.insert("COGNATE_CLUSTER".to_owned(), "true".to_owned());
        env.insert("COGNATE_LOG_REPLICAS".to_owned(), "3".to_owned());
        Daemon::start_with(DaemonOptions {
            nats_url: Some(nats.url(node)),
            master_key: Some(master.to_owned()),
            admin_credentials: Some(creds.clone()),
            public_url: Some("http://cognate-cluster.test".to_owned()),
            env,
            ..DaemonOptions::default()
        })
        .await
    }

    pub async fn js(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(crate::nats::test_client(&self.nats.url(0)).await)
    }

    /// Stops every daemon, then checks that each one's kept projections equal a replay
    /// of its copy of the log, and that all daemons hold the same state.
    pub async fn assert_converged(&mut self) {
        for d in &mut self.daemons {
            if d.is_running() {
                d.stop().await;
            }
        }
        let t = Instant::now();
        let mut reports = Vec::new();
        for d in &self.daemons {
            reports.push(d.rebuild().await);
        }
        println!(
            "cluster: rebuilt {} daemons' projections in {:.2} s",
            reports.len(),
            t.elapsed().as_secs_f64()
        );
        let mut digests = Vec::new();
        for r in reports {
            assert!(r.success(), "rebuild: {}\n{}", r.stdout, r.stderr);
            assert_eq!(r.digest_live, r.digest_rebuilt, "{}", r.stdout);
            digests.push((r.events, r.digest_live));
        }
        for d in &digests[1..] {
            assert_eq!(d, &digests[0], "the daemons disagree: {digests:?}");
        }
    }
}

async fn pool_and_client(c: &Client) -> (String, String) {
    let pool = c
        .create_user_pool()
        .pool_name(format!("cluster-{}", cognate_testkit::unique_suffix()))
        .alias_attributes(AliasAttributeType::Email)
        .auto_verified_attributes(VerifiedAttributeType::Email)
        .send()
        .await
        .unwrap()
        .user_pool()
        .unwrap()
        .id()
        .unwrap()
        .to_owned();
    let client = create_client(c, &pool).await;
    (pool, client)
}

/// Runs `f(daemon index)` on every daemon at once and returns the outcomes in order.
async fn on_all<T, F, Fut>(sdks: &[Client], f: F) -> Vec<T>
where
    F: Fn(usize, Client) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = sdks
        .iter()
        .enumerate()
        .map(|(i, c)| tokio::spawn(f(i, c.clone())))
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn code_of<T, E: ProvideErrorMetadata>(r: &Result<T, E>) -> Option<String> {
    r.as_ref().err().map(|e| e.code().unwrap_or("?").to_owned())
}

#[tokio::test]
async fn cluster_races_have_one_winner_and_every_daemon_reads_every_write() {
    let mut cl = Cluster::start(3).await;
    let (pool, client) = pool_and_client(&cl.sdks[0]).await;
    let js = cl.js().await;
    let mut messages = Tail::messages(&js, &pool).await;

    // The same username signed up on all three daemons at once: one wins each round.
    for round in 0..15 {
        let name = format!("racer{round}");
        let outcomes = on_all(&cl.sdks, |i, c| {
            let (client, name) = (client.clone(), name.clone());
            async move {
                c.sign_up()
                    .client_id(client)
                    .username(name)
                    .password(PASSWORD)
                    .user_attributes(attr("email", &format!("d{i}@example.com")))
                    .send()
                    .await
            }
        })
        .await;
        let won = outcomes.iter().filter(|r| r.is_ok()).count();
        assert_eq!(
            won,
            1,
            "round {round}: {:?}",
            outcomes.iter().map(code_of).collect::<Vec<_>>()
        );
        for r in &outcomes {
            if let Some(code) = code_of(r) {
                assert_eq!(code, "UsernameExistsException");
            }
        }
    }

    // A confirmation code answered on all three daemons at once: one confirms.
    let code = messages.message(&pool, "racer3", "SignUp").await.code();
    let outcomes = on_all(&cl.sdks, |_, c| {
        let (client, code) = (client.clone(), code.clone());
        async move {
            c.confirm_sign_up()
                .client_id(client)
                .username("racer3")
                .confirmation_code(code)
                .send()
                .await
        }
    })
    .await;
    assert_eq!(
        outcomes.iter().filter(|r| r.is_ok()).count(),
        1,
        "{:?}",
        outcomes.iter().map(code_of).collect::<Vec<_>>()
    );

    // One challenge session (NEW_PASSWORD_REQUIRED) answered on all three at once.
    cl.sdks[0]
        .admin_create_user()
        .user_pool_id(&pool)
        .username("challenged")
        .temporary_password("Temp-Passw0rd!")
        .message_action(MessageActionType::Suppress)
        .send()
        .await
        .unwrap();
    let (session, _) = login_challenge(
        &cl.sdks[1],
        &client,
        "challenged",
        "Temp-Passw0rd!",
        ChallengeNameType::NewPasswordRequired,
    )
    .await;
    let outcomes = on_all(&cl.sdks, |i, c| {
        let (client, session) = (client.clone(), session.clone());
        async move {
            respond(
                &c,
                &client,
                ChallengeNameType::NewPasswordRequired,
                &session,
                &[
                    ("USERNAME", "challenged"),
                    ("NEW_PASSWORD", &format!("{PASSWORD}{i}")),
                ],
            )
            .await
        }
    })
    .await;
    assert_eq!(
        outcomes.iter().filter(|r| r.is_ok()).count(),
        1,
        "one answer per challenge session: {:?}",
        outcomes.iter().map(code_of).collect::<Vec<_>>()
    );

    // One refresh token rotated on all three at once (no grace period): one rotation.
    let rotating = client_builder(&cl.sdks[0], &pool)
        .refresh_token_rotation(
            RefreshTokenRotationType::builder()
                .feature(FeatureType::Enabled)
                .retry_grace_period_seconds(0)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .user_pool_client()
        .unwrap()
        .client_id()
        .unwrap()
        .to_owned();
    admin_confirmed_user(&cl.sdks[0], &pool, "rotor", &[]).await;
    let old = login(&cl.sdks[2], &rotating, "rotor", PASSWORD)
        .await
        .refresh_token()
        .unwrap()
        .to_owned();
    let outcomes = on_all(&cl.sdks, |_, c| {
        let (rotating, old) = (rotating.clone(), old.clone());
        async move {
            c.get_tokens_from_refresh_token()
                .client_id(rotating)
                .refresh_token(old)
                .send()
                .await
        }
    })
    .await;
    assert_eq!(
        outcomes.iter().filter(|r| r.is_ok()).count(),
        1,
        "one rotation of a refresh token: {:?}",
        outcomes.iter().map(code_of).collect::<Vec<_>>()
    );

    // A verified email alias claimed by three users at once, one per daemon: one keeps it.
    for round in 0..5 {
        let users: Vec<String> = (0..3).map(|i| format!("alias{round}u{i}")).collect();
        for u in &users {
            admin_confirmed_user(&cl.sdks[0], &pool, u, &[]).await;
        }
        let email = format!("shared{round}@example.com");
        let outcomes = on_all(&cl.sdks, |i, c| {
            let (pool, user, email) = (pool.clone(), users[i].clone(), email.clone());
            async move {
                c.admin_update_user_attributes()
                    .user_pool_id(pool)
                    .username(user)
                    .user_attributes(attr("email", &email))
                    .user_attributes(attr("email_verified", "true"))
                    .send()
                    .await
            }
        })
        .await;
        let won = outcomes.iter().filter(|r| r.is_ok()).count();
        assert_eq!(
            won,
            1,
            "alias round {round}: {:?}",
            outcomes.iter().map(code_of).collect::<Vec<_>>()
        );
        for r in &outcomes {
            if let Some(code) = code_of(r) {
                assert_eq!(code, "AliasExistsException");
            }
        }
        // The alias signs in on every daemon as the one winner.
        let winner = &users[outcomes.iter().position(|r| r.is_ok()).unwrap()];
        for c in &cl.sdks {
            let out = c
                .admin_get_user()
                .user_pool_id(&pool)
                .username(&email)
                .send()
                .await
                .unwrap();
            assert_eq!(out.username(), winner);
        }
    }

    // Read-your-writes: each step on the next daemon, with no wait in between.
    for round in 0..10 {
        let name = format!("ryw{round}");
        let n = cl.sdks.len();
        cl.sdks[round % n]
            .sign_up()
            .client_id(&client)
            .username(&name)
            .password(PASSWORD)
            .send()
            .await
            .unwrap();
        cl.sdks[(round + 1) % n]
            .admin_confirm_sign_up()
            .user_pool_id(&pool)
            .username(&name)
            .send()
            .await
            .unwrap();
        let tokens = cl.sdks[(round + 2) % n]
            .initiate_auth()
            .auth_flow(AuthFlowType::UserPasswordAuth)
            .client_id(&client)
            .auth_parameters("USERNAME", &name)
            .auth_parameters("PASSWORD", PASSWORD)
            .send()
            .await
            .unwrap();
        let access = tokens
            .authentication_result()
            .unwrap()
            .access_token()
            .unwrap()
            .to_owned();
        // Global sign-out on one daemon is seen by the next at once.
        cl.sdks[round % n]
            .global_sign_out()
            .access_token(&access)
            .send()
            .await
            .unwrap();
        let after = cl.sdks[(round + 1) % n]
            .get_user()
            .access_token(&access)
            .send()
            .await;
        assert_eq!(code_of(&after).as_deref(), Some("NotAuthorizedException"));
    }
    cl.assert_converged().await;
}

/// Signs up users through the daemons in turn from `writers` tasks, moving to the next
/// daemon on any failure, for `duration`; returns the acknowledged usernames.
async fn write_load(
    endpoints: Vec<Client>,
    client: String,
    writers: usize,
    until: Instant,
    tag: &str,
) -> Vec<String> {
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (sdks, client, tag) = (endpoints.clone(), client.clone(), tag.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut k = 0usize;
            let mut target = w;
            while Instant::now() < until {
                let name = format!("{tag}-{w}-{k}");
                // Retry the same sign-up on the next daemon until one acknowledges it.
                loop {
                    let r = sdks[target % sdks.len()]
                        .sign_up()
                        .client_id(&client)
                        .username(&name)
                        .password(PASSWORD)
                        .send()
                        .await;
                    match r {
                        Ok(_) => {
                            acked.push(name.clone());
                            break;
                        }
                        // A retry of a write whose answer was lost: it was stored.
                        Err(e) if e.code() == Some("UsernameExistsException") => {
                            acked.push(name.clone());
                            break;
                        }
                        Err(_) => {
                            target += 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                k += 1;
            }
            acked
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

async fn assert_all_exist(c: &Client, pool: &str, names: &[String]) {
    for name in names {
        let r = c
            .admin_get_user()
            .user_pool_id(pool)
            .username(name)
            .send()
            .await;
        assert!(
            r.is_ok(),
            "acknowledged user {name} is missing: {:?}",
            code_of(&r)
        );
    }
}

#[tokio::test]
async fn cluster_kill9_of_a_daemon_under_write_load_loses_no_acknowledged_write() {
    let mut cl = Cluster::start(3).await;
    let (pool, client) = pool_and_client(&cl.sdks[0]).await;
    let until = Instant::now() + Duration::from_secs(6);
    let load = tokio::spawn(write_load(cl.sdks.clone(), client.clone(), 6, until, "k9"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    cl.daemons[1].kill9().await;
    let acked = load.await.unwrap();
    assert!(
        acked.len() > 20,
        "too few writes to mean anything: {}",
        acked.len()
    );
    assert_all_exist(&cl.sdks[0], &pool, &acked).await;
    assert_all_exist(&cl.sdks[2], &pool, &acked).await;
    // The killed daemon comes back, catches up, and has them all too.
    cl.daemons[1].start_again().await;
    cl.daemons[1].wait_ready(Duration::from_secs(60)).await;
    let again = sdk_no_retry(&cl.daemons[1]);
    assert_all_exist(&again, &pool, &acked).await;
    cl.assert_converged().await;
}

/// The daemons' log sequence (events applied), read from `/metrics`.
async fn events_of(d: &Daemon) -> u64 {
    let text = http()
        .get(d.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("cognate_log_sequence "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no cognate_log_sequence in /metrics:\n{text}"))
}

#[tokio::test]
async fn cluster_daemon_that_missed_ten_thousand_events_catches_up_to_the_same_state() {
    let mut cl = Cluster::start(3).await;
    let (_pool, client) = pool_and_client(&cl.sdks[0]).await;
    cl.daemons[2].stop().await;
    let before = events_of(&cl.daemons[0]).await;
    let written = Instant::now();
    // Sign-ups without a code to send: one event each.
    let writers: Vec<Client> = cl.sdks[..2].to_vec();
    let mut tasks = Vec::new();
    for w in 0..40 {
        let (sdks, client) = (writers.clone(), client.clone());
        tasks.push(tokio::spawn(async move {
            for k in 0..250 {
                let pool_less = format!("miss-{w}-{k}");
                // Mostly one daemon (batches grow), some through the other.
                sdks[usize::from(k % 8 == 0)]
                    .sign_up()
                    .client_id(&client)
                    .username(&pool_less)
                    .password(PASSWORD)
                    .send()
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    println!(
        "cluster: 10,000 sign-ups written in {:.1} s",
        written.elapsed().as_secs_f64()
    );
    let missed = events_of(&cl.daemons[0]).await - before;
    assert!(missed >= 10_000, "only {missed} events written");
    let started = Instant::now();
    cl.daemons[2].start_again().await;
    cl.daemons[2].wait_ready(Duration::from_secs(120)).await;
    println!(
        "cluster: a daemon caught up with {missed} missed events in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        events_of(&cl.daemons[2]).await,
        events_of(&cl.daemons[0]).await
    );
    cl.assert_converged().await;
}

/// The name (`n<i>`) of the NATS node leading the log stream.
async fn log_leader(js: &async_nats::jetstream::Context) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut s) = js.get_stream("COGNATE_LOG").await
            && let Ok(info) = s.info().await
            && let Some(leader) = info.cluster.as_ref().and_then(|c| c.leader.clone())
        {
            return leader;
        }
        assert!(Instant::now() < deadline, "the log stream has no leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes through every daemon with retries on the next, recording when each write was
/// acknowledged; returns (usernames, longest gap between acknowledgements).
async fn timed_load(
    sdks: Vec<Client>,
    client: String,
    until: Instant,
    tag: &str,
) -> (Vec<String>, Duration) {
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(Instant, String)>::new()));
    let mut tasks = Vec::new();
    for w in 0..6 {
        let (sdks, client, tag, acked) =
            (sdks.clone(), client.clone(), tag.to_owned(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let mut k = 0usize;
            let mut target = w;
            while Instant::now() < until {
                let name = format!("{tag}-{w}-{k}");
                loop {
                    let r = sdks[target % sdks.len()]
                        .sign_up()
                        .client_id(&client)
                        .username(&name)
                        .password(PASSWORD)
                        .send()
                        .await;
                    match r {
                        Ok(_) => break,
                        Err(e) if e.code() == Some("UsernameExistsException") => break,
                        Err(_) => {
                            target += 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                acked.lock().unwrap().push((Instant::now(), name));
                k += 1;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut all = std::mem::take(&mut *acked.lock().unwrap());
    all.sort();
    let gap = all
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .max()
        .unwrap_or_default();
    (all.into_iter().map(|(_, n)| n).collect(), gap)
}

#[tokio::test]
async fn cluster_kill9_of_the_log_leader_pauses_writes_and_loses_none() {
    let mut cl = Cluster::start(3).await;
    let (pool, client) = pool_and_client(&cl.sdks[0]).await;
    let js = cl.js().await;
    let leader = log_leader(&js).await;
    let node: usize = leader.trim_start_matches('n').parse().unwrap();
    let until = Instant::now() + Duration::from_secs(12);
    let load = tokio::spawn(timed_load(cl.sdks.clone(), client.clone(), until, "lk"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    cl.nats.kill9(node).await;
    let (acked, pause) = load.await.unwrap();
    println!(
        "cluster: kill -9 of the log leader {leader}: writes paused for {:.2} s at most; {} writes acknowledged",
        pause.as_secs_f64(),
        acked.len()
    );
    let unique: std::collections::BTreeSet<&String> = acked.iter().collect();
    assert_eq!(unique.len(), acked.len(), "a write was acknowledged twice");
    let survivor = (node + 1) % 3;
    assert_all_exist(&cl.sdks[survivor], &pool, &acked).await;
    // Exactly the acknowledged users exist: nothing was applied twice or invented.
    let mut listed = 0;
    let mut token: Option<String> = None;
    loop {
        let out = cl.sdks[survivor]
            .list_users()
            .user_pool_id(&pool)
            .set_pagination_token(token.clone())
            .send()
            .await
            .unwrap();
        listed += out.users().len();
        token = out.pagination_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(listed, acked.len());
    assert!(log_leader(&js).await != leader, "a new leader was elected");
    cl.nats.start_again(node).await;
    for d in &cl.daemons {
        d.wait_ready(Duration::from_secs(60)).await;
    }
    cl.assert_converged().await;
}

#[tokio::test]
async fn cluster_cut_off_node_daemon_refuses_writes_while_the_majority_accepts_them() {
    let mut cl = Cluster::start(3).await;
    let (pool, client) = pool_and_client(&cl.sdks[0]).await;
    // Node 2 stops answering without closing a socket; daemon 2 is attached only to it.
    cl.nats.pause(2, true);
    let started = Instant::now();
    for k in 0..5 {
        for i in 0..2 {
            // If node 2 led the log, the others elect a leader first: retried meanwhile.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let r = cl.sdks[i]
                    .sign_up()
                    .client_id(&client)
                    .username(format!("majority-{i}-{k}"))
                    .password(PASSWORD)
                    .send()
                    .await;
                match r {
                    Ok(_) => break,
                    Err(e) if e.code() == Some("UsernameExistsException") => break,
                    Err(e) => {
                        assert!(
                            Instant::now() < deadline,
                            "daemon {i} refuses writes with node 2 cut off: {e:?}"
                        );
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }
    }
    println!(
        "cluster: 10 writes through the majority with one node cut off took {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let refused = cl.sdks[2]
        .sign_up()
        .client_id(&client)
        .username("minority-write")
        .password(PASSWORD)
        .send()
        .await;
    assert!(refused.is_err(), "the cut-off daemon accepted a write");
    let status = http()
        .get(cl.daemons[2].url("/readyz"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 503, "the cut-off daemon says it is ready");
    cl.nats.pause(2, false);
    cl.daemons[2].wait_ready(Duration::from_secs(120)).await;
    // Back in the cluster: it sees the majority's writes, and the refused one never
    // happened.
    assert_all_exist(&cl.sdks[2], &pool, &["majority-1-4".to_owned()]).await;
    let gone = cl.sdks[0]
        .admin_get_user()
        .user_pool_id(&pool)
        .username("minority-write")
        .send()
        .await;
    assert_eq!(code_of(&gone).as_deref(), Some("UserNotFoundException"));
    cl.assert_converged().await;
}

#[tokio::test]
async fn cluster_import_moves_a_single_node_log_into_the_cluster() {
    let master = hex(&random_bytes(32));
    let creds = (
        format!("AKIA{}", hex(&random_bytes(8)).to_uppercase()),
        hex(&random_bytes(20)),
    );
    let mut single = Daemon::start_with(DaemonOptions {
        master_key: Some(master.clone()),
        admin_credentials: Some(creds.clone()),
        ..DaemonOptions::default()
    })
    .await;
    let c = sdk(&single);
    let (pool, client) = pool_and_client(&c).await;
    admin_confirmed_user(&c, &pool, "moved", &[("email", "moved@example.com")]).await;
    admin_confirmed_user(&c, &pool, "erased", &[]).await;
    c.admin_delete_user()
        .user_pool_id(&pool)
        .username("erased")
        .send()
        .await
        .unwrap();
    single.stop().await;
    let nats = NatsCluster::start(3).await;
    let out = single
        .cli(&[
            "cluster-import",
            "--nats-url",
            &nats.url(0),
            "--log-replicas",
            "3",
        ])
        .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("erased-data-keys 1"), "{stdout}");
    let cl = Cluster::start_on(nats, 3, &master, &creds).await;
    for c in &cl.sdks {
        login(c, &client, "moved", PASSWORD).await;
        let gone = c
            .admin_get_user()
            .user_pool_id(&pool)
            .username("erased")
            .send()
            .await;
        assert_eq!(code_of(&gone).as_deref(), Some("UserNotFoundException"));
    }
    // A second import into the now busy cluster is refused.
    let again = single
        .cli(&["cluster-import", "--nats-url", &cl.nats.url(1)])
        .await;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds"));
}
