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
use cognate_bus::{OutboxEntry, OutboxSource, Publication};
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
        }
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
                    });
                }
                Err(e) => {
                    tracing::error!(seq = env.seq, error = %e, "queued message cannot be opened; skipped")
                }
            }
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
        match self.state.store().cursor(CURSOR).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the outbox cursor; starting from the beginning");
                0
            }
        }
    }

    async fn save_cursor(&self, seq: u64) {
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
                for env in r.events(seq + 1, limit)? {
                    let publications = this.publications(&env, r, &mut pools)?;
                    entries.push(OutboxEntry {
                        seq: env.seq,
                        at_ms: Some(env.at.max(0) as u64),
                        publications,
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

    async fn wait_for_new(&self, after: u64) {
        let stats = self.state.store().stats().clone();
        while stats.last_seq.load(Ordering::Acquire) <= after {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
