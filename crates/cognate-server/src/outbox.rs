//! The daemon's side of the outbox: reads the event log from the persisted cursor and
//! says what each entry publishes — the domain event (secrets removed) on
//! `cognate.events.<pool>.<type>`, the asynchronous triggers (PostConfirmation,
//! PostAuthentication) on `cognate.triggers.<pool>.<Trigger>`, and queued messages
//! (opened with the master key) on `cognate.messages.<pool>.<channel>`. Every
//! publication's `Nats-Msg-Id` is `<pool>:<seq>` plus a suffix, so republishing after a
//! crash is deduplicated by JetStream.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use cognate_bus::{OutboxEntry, OutboxSource, Publication, Published};
use cognate_domain::{Envelope, Event, Pool, View};
use cognate_proto::messages::{Channel, subjects};
use serde_json::{Value, json};

use crate::state::AppState;

const CURSOR: &str = "outbox";

/// The app client a user's own request came through (recorded as the event's actor);
/// administrators' actions have none, as in Cognito.
fn client_of(env: &Envelope) -> &str {
    env.actor
        .as_deref()
        .and_then(|a| a.strip_prefix("client:"))
        .unwrap_or("CLIENT_ID_NOT_APPLICABLE")
}

/// The owner id of what is published about a user: `pool/H(sub)` (the stored
/// aggregate); a pool's deletion erases everything under `pool/`.
fn owner_id(pool: &str, stored_aggregate: &str) -> String {
    format!("{pool}/{stored_aggregate}")
}

#[derive(Clone)]
pub struct LogSource {
    state: AppState,
    prefix: String,
}

impl LogSource {
    pub fn new(state: AppState, prefix: &str) -> Self {
        Self {
            state,
            prefix: prefix.to_owned(),
        }
    }

    fn event_publication(&self, env: &Envelope) -> Publication {
        let public = env.event.public_json();
        let payload = json!({
            "seq": env.seq,
            "at": env.at,
            "pool": env.pool,
            "aggregate": env.aggregate,
            "type": env.event.type_name(),
            "v": env.v,
            "actor": env.actor,
            "data": public.get("data").cloned().unwrap_or(Value::Null),
        });
        Publication {
            subject: subjects::event(&self.prefix, &env.pool, env.event.type_name()),
            msg_id: format!("{}:{}", env.pool, env.seq),
            payload: Bytes::from(payload.to_string()),
            owner: None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn trigger_event(
        &self,
        pool: &Pool,
        env: &Envelope,
        name: &str,
        source: &str,
        username: &str,
        client: &str,
        request: Value,
    ) -> Publication {
        let event = json!({
            "version": "1",
            "triggerSource": source,
            "region": self.state.config().region,
            "userPoolId": pool.id,
            "userName": username,
            "callerContext": { "awsSdkVersion": "cognate", "clientId": client },
            "request": request,
            "response": {},
        });
        Publication {
            subject: subjects::trigger(&self.prefix, &pool.id, name),
            msg_id: format!("{}:{}:{name}", env.pool, env.seq),
            payload: Bytes::from(event.to_string()),
            owner: None,
        }
    }

    /// The deletion of a user whose key is already erased, as subscribers need it to
    /// erase their own copies: the sub, the pool and when.
    fn erased_publication(&self, entry: &cognate_store::LogEntry) -> Option<Publication> {
        if entry.type_name != "user.deleted" {
            return None;
        }
        let sub = entry.subject.as_deref()?;
        let payload = json!({
            "seq": entry.seq,
            "at": entry.at,
            "pool": entry.pool,
            "aggregate": sub,
            "type": entry.type_name,
            "v": 1,
            "actor": null,
            "data": {},
        });
        Some(Publication {
            subject: subjects::event(&self.prefix, &entry.pool, &entry.type_name),
            msg_id: format!("{}:{}", entry.pool, entry.seq),
            payload: Bytes::from(payload.to_string()),
            owner: None,
        })
    }

    /// Publications of one entry; `pools` caches pools across a batch.
    fn publications(
        &self,
        env: &Envelope,
        r: &cognate_store::Reader,
        pools: &mut HashMap<String, Option<Pool>>,
    ) -> cognate_store::Result<Vec<Publication>> {
        let mut out = Vec::new();
        if let Event::MessageQueued { channel, sealed } = &env.event {
            match self.state.keyring().open(sealed) {
                Ok(bytes) => {
                    let ch = if channel == "sms" {
                        Channel::Sms
                    } else {
                        Channel::Email
                    };
                    out.push(Publication {
                        subject: subjects::message(&self.prefix, &env.pool, ch),
                        msg_id: format!("{}:{}", env.pool, env.seq),
                        payload: Bytes::from(bytes),
                        owner: None,
                    });
                }
                Err(e) => {
                    tracing::error!(seq = env.seq, error = %e, "queued message cannot be opened; skipped")
                }
            }
            return Ok(out);
        }
        if matches!(env.event, Event::SessionsExpired { .. }) {
            // Housekeeping, not news.
            return Ok(out);
        }
        out.push(self.event_publication(env));
        if !pools.contains_key(&env.pool) {
            pools.insert(env.pool.clone(), r.pool(&env.pool)?);
        }
        let Some(pool) = pools.get(&env.pool).cloned().flatten() else {
            return Ok(out);
        };
        let wants = |t: &str| pool.lambda_config.contains_key(t);
        match &env.event {
            Event::UserConfirmed { username_key, .. } if wants("PostConfirmation") => {
                if let Some(u) = r.user(&pool.id, username_key)? {
                    let req = json!({ "userAttributes": crate::triggers::user_attributes(&u), "clientMetadata": {} });
                    out.push(self.trigger_event(
                        &pool,
                        env,
                        "PostConfirmation",
                        "PostConfirmation_ConfirmSignUp",
                        &u.username,
                        client_of(env),
                        req,
                    ));
                }
            }
            Event::UserPasswordSet {
                username_key,
                via: Some(via),
                ..
            } if via == "forgot_password" && wants("PostConfirmation") => {
                if let Some(u) = r.user(&pool.id, username_key)? {
                    let req = json!({ "userAttributes": crate::triggers::user_attributes(&u), "clientMetadata": {} });
                    out.push(self.trigger_event(
                        &pool,
                        env,
                        "PostConfirmation",
                        "PostConfirmation_ConfirmForgotPassword",
                        &u.username,
                        client_of(env),
                        req,
                    ));
                }
            }
            Event::UserSignedIn {
                username_key,
                session,
                ..
            } if wants("PostAuthentication") => {
                if let Some(u) = r.user(&pool.id, username_key)? {
                    let req = json!({ "newDeviceUsed": false, "userAttributes": crate::triggers::user_attributes(&u), "clientMetadata": {} });
                    out.push(self.trigger_event(
                        &pool,
                        env,
                        "PostAuthentication",
                        "PostAuthentication_Authentication",
                        &u.username,
                        &session.client_id,
                        req,
                    ));
                }
            }
            _ => {}
        }
        Ok(out)
    }
}

impl OutboxSource for LogSource {
    async fn load_cursor(&self) -> u64 {
        if let Some(link) = self.state.cluster() {
            // A cluster's outbox runs on one daemon at a time from one shared cursor.
            loop {
                match link.cursor(CURSOR).await {
                    Ok(c) => return c,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the cluster's outbox cursor; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }
        match self.state.store().cursor(CURSOR).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the outbox cursor; starting from the beginning");
                0
            }
        }
    }

    async fn save_cursor(&self, seq: u64) {
        if let Some(link) = self.state.cluster() {
            if let Err(e) = link.save_cursor(CURSOR, seq).await {
                tracing::error!(error = %e, seq, "cannot save the cluster's outbox cursor; events may be published again (deduplicated)");
            }
            return;
        }
        if let Err(e) = self.state.store().save_cursor(CURSOR, seq).await {
            tracing::error!(error = %e, seq, "cannot save the outbox cursor; events may be published again (deduplicated)");
        }
    }

    async fn batch_after(&self, seq: u64, limit: usize) -> Vec<OutboxEntry> {
        let this = LogSource {
            state: self.state.clone(),
            prefix: self.prefix.clone(),
        };
        let result = self
            .state
            .store()
            .read(move |r| {
                let mut pools = HashMap::new();
                let mut entries = Vec::new();
                for entry in r.entries(seq + 1, limit)? {
                    let mut publications = match &entry.body {
                        Some(env) => this.publications(env, r, &mut pools)?,
                        // An erased user's event: nothing of it can be read, nothing is
                        // published, except that the user is gone.
                        None => this.erased_publication(&entry).into_iter().collect(),
                    };
                    // Whatever a user's event publishes is about the user: recorded, so
                    // that the user's erasure can delete it from the streams.
                    if entry.key.is_some() && entry.type_name != "user.deleted" {
                        let owner = owner_id(&entry.pool, &entry.aggregate);
                        for p in &mut publications {
                            p.owner = Some(owner.clone());
                        }
                    }
                    let erase = match entry.type_name.as_str() {
                        "user.deleted" => Some(owner_id(&entry.pool, &entry.aggregate)),
                        "pool.deleted" => Some(format!("{}/", entry.pool)),
                        _ => None,
                    };
                    entries.push(OutboxEntry {
                        seq: entry.seq,
                        at_ms: Some(entry.at.max(0) as u64),
                        publications,
                        erase,
                    });
                }
                Ok(entries)
            })
            .await;
        match result {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the event log for the outbox");
                Vec::new()
            }
        }
    }

    async fn record_published(&self, records: Vec<Published>) {
        let n = records.len();
        let records = records
            .into_iter()
            .map(|p| (p.owner, p.stream, p.seq))
            .collect();
        let now = crate::util::now_ms().max(0) as u64;
        let recorded = match self.state.cluster() {
            Some(link) => link.record_published(records).await,
            None => self
                .state
                .store()
                .record_published(records, now)
                .await
                .map_err(|e| e.to_string()),
        };
        if let Err(e) = recorded {
            // The messages stay until their stream's age limit removes them.
            tracing::error!(error = %e, messages = n, "cannot record published messages; an erasure will not find them");
        }
    }

    async fn published_of(&self, owner: &str) -> Vec<Published> {
        let found = match self.state.cluster() {
            Some(link) => link.published_of(owner).await,
            None => self
                .state
                .store()
                .published_of(owner)
                .await
                .map_err(|e| e.to_string()),
        };
        match found {
            Ok(list) => list
                .into_iter()
                .map(|(owner, stream, seq)| Published { owner, stream, seq })
                .collect(),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the published messages of an erased user");
                Vec::new()
            }
        }
    }

    async fn forget_published(&self, owner: &str) {
        let forgotten = match self.state.cluster() {
            Some(link) => link.forget_published(owner).await,
            None => self
                .state
                .store()
                .forget_published(owner)
                .await
                .map_err(|e| e.to_string()),
        };
        if let Err(e) = forgotten {
            tracing::error!(error = %e, "cannot forget an erased user's published messages");
        }
    }

    async fn wait_for_new(&self, after: u64) {
        let stats = self.state.store().stats().clone();
        while stats.last_seq.load(Ordering::Acquire) <= after {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
