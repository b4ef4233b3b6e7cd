//! Reconciler scenarios: the Kubernetes API is kube's mock service (tower-test) behind a
//! small fake API server that records and answers every request; the daemon is the real
//! `cognate` binary, started per test by the testkit, so what the operator does to pools
//! and clients is checked in the daemon itself.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cognate_crds::{AppClient, UserPool};
use cognate_operator::admin::{AdminClient, AdminError, Credentials};
use cognate_operator::{Context, DaemonDefaults, Error, appclient, userpool};
use cognate_testkit::Daemon;
use http::{Method, Request, Response};
use kube::ResourceExt;
use kube::client::Body;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

const NS: &str = "shop";

/// One request the operator made to the API server.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    path: String,
    body: Value,
}

/// A fake API server: objects by path, every request recorded.
#[derive(Clone, Default)]
struct FakeApi {
    objects: Arc<Mutex<BTreeMap<String, Value>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// How many of the next status writes fail (as a lost connection or a 500 would).
    failing_status_writes: Arc<Mutex<u32>>,
}

fn not_found() -> (u16, Value) {
    (
        404,
        json!({"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404,"message":"not found"}),
    )
}

impl FakeApi {
    fn put(&self, path: &str, obj: Value) {
        self.objects.lock().unwrap().insert(path.to_owned(), obj);
    }

    fn answer(&self, method: &Method, path: &str, body: &Value) -> (u16, Value) {
        let mut objects = self.objects.lock().unwrap();
        if path.ends_with("/events") && method == Method::POST {
            return (201, body.clone());
        }
        if let Some(base) = path.strip_suffix("/status") {
            let mut failing = self.failing_status_writes.lock().unwrap();
            if *failing > 0 {
                *failing -= 1;
                return (
                    500,
                    json!({"kind":"Status","apiVersion":"v1","status":"Failure","reason":"InternalError","code":500,"message":"etcdserver: request timed out"}),
                );
            }
            let Some(obj) = objects.get_mut(base) else {
                return not_found();
            };
            obj["status"] = body["status"].clone();
            return (200, obj.clone());
        }
        match *method {
            Method::GET => objects
                .get(path)
                .cloned()
                .map(|o| (200, o))
                .unwrap_or_else(not_found),
            Method::PATCH if path.contains("/secrets/") => {
                objects.insert(path.to_owned(), body.clone());
                (200, body.clone())
            }
            Method::PATCH => {
                let Some(obj) = objects.get_mut(path) else {
                    return not_found();
                };
                // The finalizer helper sends JSON patches on metadata.finalizers.
                if let Some(ops) = body.as_array() {
                    for op in ops {
                        if op["path"] == "/metadata/finalizers" && op["op"] != "test" {
                            obj["metadata"]["finalizers"] = op["value"].clone();
                        }
                        if op["op"] == "remove"
                            && op["path"]
                                .as_str()
                                .unwrap_or("")
                                .starts_with("/metadata/finalizers")
                        {
                            obj["metadata"]["finalizers"] = json!([]);
                        }
                        if op["op"] == "add" && op["path"] == "/metadata/finalizers/-" {
                            let mut f = obj["metadata"]["finalizers"]
                                .as_array()
                                .cloned()
                                .unwrap_or_default();
                            f.push(op["value"].clone());
                            obj["metadata"]["finalizers"] = Value::from(f);
                        }
                    }
                }
                (200, obj.clone())
            }
            _ => not_found(),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Bodies of status patches to `path`'s status, oldest first.
    fn statuses(&self, kind_plural: &str, name: &str) -> Vec<Value> {
        let p = format!("/apis/cognate.io/v1alpha1/namespaces/{NS}/{kind_plural}/{name}/status");
        self.seen()
            .into_iter()
            .filter(|s| s.path == p && s.method == Method::PATCH)
            .map(|s| s.body["status"].clone())
            .collect()
    }

    fn event_reasons(&self) -> Vec<String> {
        self.seen()
            .into_iter()
            .filter(|s| s.path.ends_with("/events"))
            .map(|s| s.body["reason"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    fn client(&self) -> kube::Client {
        let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let me = self.clone();
        tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                let method = req.method().clone();
                let path = req.uri().path().to_owned();
                let bytes = req.into_body().collect_bytes().await.unwrap();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let (code, out) = me.answer(&method, &path, &body);
                me.seen.lock().unwrap().push(Seen { method, path, body });
                send.send_response(
                    Response::builder()
                        .status(code)
                        .header("content-type", "application/json")
                        .body(Body::from(serde_json::to_vec(&out).unwrap()))
                        .unwrap(),
                );
            }
        });
        kube::Client::new(svc, NS)
    }
}

fn defaults(d: &Daemon) -> DaemonDefaults {
    DaemonDefaults {
        endpoint: d.endpoint().to_owned(),
        public_url: None,
        region: d.region(),
        credentials: Credentials {
            access_key_id: d.admin_access_key().to_owned(),
            secret_access_key: d.admin_secret().to_owned(),
        },
    }
}

fn admin(d: &Daemon) -> AdminClient {
    AdminClient::new(d.endpoint(), &d.region(), defaults(d).credentials).unwrap()
}

fn pool_path(name: &str) -> String {
    format!("/apis/cognate.io/v1alpha1/namespaces/{NS}/userpools/{name}")
}

fn client_path(name: &str) -> String {
    format!("/apis/cognate.io/v1alpha1/namespaces/{NS}/appclients/{name}")
}

/// The example pool as stored by the API server: finalizer present, uid, generation.
fn pool_object(name: &str, generation: i64) -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/k8s/userpool.yaml"
    ))
    .unwrap();
    let mut v: Value = serde_yaml::from_str(&text).unwrap();
    // Round-trip through the type so that defaults are filled in, as the API server does.
    let up: UserPool = serde_json::from_value(v.clone()).unwrap();
    v["spec"] = serde_json::to_value(&up.spec).unwrap();
    v["metadata"] = json!({
        "name": name, "namespace": NS, "uid": format!("uid-{name}"),
        "generation": generation, "finalizers": ["cognate.io/cleanup"],
    });
    v
}

struct Harness {
    api: FakeApi,
    ctx: Arc<Context>,
}

fn harness(daemon: Option<&Daemon>) -> Harness {
    let api = FakeApi::default();
    let client = api.client();
    let ctx = Context::new(client, daemon.map(defaults), None);
    Harness {
        api,
        ctx: Arc::new(ctx),
    }
}

impl Harness {
    async fn reconcile_pool(&self, obj: &Value) -> Result<Action, Error> {
        let name = obj["metadata"]["name"].as_str().unwrap();
        // The stored object has whatever status the operator last wrote.
        let mut stored = obj.clone();
        if let Some(prev) = self.api.objects.lock().unwrap().get(&pool_path(name))
            && obj.get("status").is_none()
        {
            stored["status"] = prev["status"].clone();
        }
        self.api.put(&pool_path(name), stored.clone());
        let up: UserPool = serde_json::from_value(stored).unwrap();
        userpool::reconcile(Arc::new(up), self.ctx.clone()).await
    }

    fn stored_pool(&self, name: &str) -> Value {
        self.api.objects.lock().unwrap()[&pool_path(name)].clone()
    }

    fn last_status(&self, name: &str) -> Value {
        self.api
            .statuses("userpools", name)
            .last()
            .cloned()
            .expect("a status patch")
    }
}

fn condition(status: &Value, type_: &str) -> Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

async fn describe(d: &Daemon, id: &str) -> Result<Value, AdminError> {
    let v: Value = admin(d)
        .call("DescribeUserPool", &json!({ "UserPoolId": id }))
        .await?;
    Ok(v["UserPool"].clone())
}

/// Creates the example pool through the operator; returns harness, object and pool id.
async fn created(d: &Daemon, name: &str) -> (Harness, Value, String) {
    let h = harness(Some(d));
    let obj = pool_object(name, 1);
    let action = h.reconcile_pool(&obj).await.unwrap();
    assert_eq!(action, Action::requeue(h.ctx.resync));
    let st = h.last_status(name);
    let id = st["poolId"].as_str().unwrap().to_owned();
    let mut obj = obj;
    obj["status"] = st;
    (h, obj, id)
}

#[tokio::test]
async fn create_pool_then_nothing_to_do() {
    let d = Daemon::start().await;
    let (h, obj, id) = created(&d, "shop").await;
    let st = h.last_status("shop");
    assert_eq!(st["issuerUrl"], d.issuer(&id));
    assert_eq!(st["observedGeneration"], 1);
    assert_eq!(condition(&st, "Ready")["status"], "True");
    assert_eq!(condition(&st, "SchemaAccepted")["status"], "True");
    assert!(h.api.event_reasons().contains(&"Created".to_owned()));

    let pool = describe(&d, &id).await.unwrap();
    assert_eq!(pool["Name"], "shop-customers");
    assert_eq!(pool["UsernameAttributes"], json!(["email"]));
    assert_eq!(pool["MfaConfiguration"], "OPTIONAL");
    assert_eq!(pool["Policies"]["PasswordPolicy"]["MinimumLength"], 10);
    assert_eq!(
        pool["LambdaConfig"]["PreSignUp"]
            .as_str()
            .map(|s| s.starts_with("arn:")),
        Some(true)
    );
    assert_eq!(pool["UserPoolTags"]["cognate.io/uid"], "uid-shop");
    let attrs = pool["SchemaAttributes"].as_array().unwrap();
    let tenant = attrs.iter().find(|a| a["Name"] == "custom:tenant").unwrap();
    assert_eq!(tenant["Mutable"], false);

    // A second pass with the status in place finds nothing to change.
    h.reconcile_pool(&obj).await.unwrap();
    assert_eq!(h.ctx.metrics.daemon_calls("UpdateUserPool", "ok"), 0);
    assert_eq!(h.ctx.metrics.daemon_calls("CreateUserPool", "ok"), 1);
    let ready = condition(&h.last_status("shop"), "Ready");
    assert_eq!(ready["status"], "True", "{ready}");
}

#[tokio::test]
async fn lost_status_adopts_the_pool_instead_of_creating_another() {
    let d = Daemon::start().await;
    let (h, obj, id) = created(&d, "shop").await;
    let mut lost = obj.clone();
    lost.as_object_mut().unwrap().remove("status");
    h.api
        .objects
        .lock()
        .unwrap()
        .get_mut(&pool_path("shop"))
        .unwrap()["status"] = Value::Null;
    h.reconcile_pool(&lost).await.unwrap();
    assert_eq!(h.last_status("shop")["poolId"], id.as_str());
    assert_eq!(h.ctx.metrics.daemon_calls("CreateUserPool", "ok"), 1);
    assert!(h.api.event_reasons().contains(&"Adopted".to_owned()));
}

#[tokio::test]
async fn mutable_change_is_applied_and_custom_attribute_added() {
    let d = Daemon::start().await;
    let (h, mut obj, id) = created(&d, "shop").await;
    obj["metadata"]["generation"] = json!(2);
    obj["spec"]["passwordPolicy"]["minimumLength"] = json!(14);
    obj["spec"]["mfa"] = json!("OFF");
    obj["spec"]["schema"].as_array_mut().unwrap().push(json!({
        "name": "plan", "attributeDataType": "String", "required": false, "mutable": true, "developerOnly": false
    }));
    h.reconcile_pool(&obj).await.unwrap();
    let pool = describe(&d, &id).await.unwrap();
    assert_eq!(pool["Policies"]["PasswordPolicy"]["MinimumLength"], 14);
    assert_eq!(pool["MfaConfiguration"], "OFF");
    assert!(
        pool["SchemaAttributes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["Name"] == "custom:plan")
    );
    let st = h.last_status("shop");
    assert_eq!(st["observedGeneration"], 2);
    assert_eq!(condition(&st, "Ready")["status"], "True");
    let reasons = h.api.event_reasons();
    assert!(
        reasons.contains(&"Updated".to_owned()) && reasons.contains(&"AttributesAdded".to_owned()),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn immutable_change_is_refused_and_nothing_applied() {
    let d = Daemon::start().await;
    let (h, obj, id) = created(&d, "shop").await;
    // As if CEL had not run: an attribute made mutable, usernames switched, and a
    // mutable edit in the same change, which must not be applied either.
    let mut bad = obj.clone();
    bad["metadata"]["generation"] = json!(2);
    bad["spec"]["schema"][1]["mutable"] = json!(true);
    bad["spec"]["usernameAttributes"] = json!(["phone_number"]);
    bad["spec"]["passwordPolicy"]["minimumLength"] = json!(20);
    h.reconcile_pool(&bad).await.unwrap();

    let st = h.last_status("shop");
    let sa = condition(&st, "SchemaAccepted");
    assert_eq!(sa["status"], "False");
    assert_eq!(sa["reason"], "ImmutableFieldChanged");
    let msg = sa["message"].as_str().unwrap();
    assert!(
        msg.contains("custom:tenant") && msg.contains("usernameAttributes"),
        "{msg}"
    );
    assert_eq!(condition(&st, "Ready")["status"], "False");
    assert_eq!(st["observedGeneration"], 2);
    assert!(
        h.api
            .event_reasons()
            .contains(&"ImmutableFieldChanged".to_owned())
    );

    let pool = describe(&d, &id).await.unwrap();
    assert_eq!(pool["Policies"]["PasswordPolicy"]["MinimumLength"], 10);
    assert_eq!(pool["UsernameAttributes"], json!(["email"]));
    assert_eq!(h.ctx.metrics.daemon_calls("UpdateUserPool", "ok"), 0);

    // Reverting the edit makes the pool acceptable again.
    let mut good = obj.clone();
    good["metadata"]["generation"] = json!(3);
    good["status"] = st;
    h.reconcile_pool(&good).await.unwrap();
    assert_eq!(
        condition(&h.last_status("shop"), "SchemaAccepted")["status"],
        "True"
    );
}

#[tokio::test]
async fn drift_in_the_daemon_is_repaired() {
    let d = Daemon::start().await;
    let (h, obj, id) = created(&d, "shop").await;
    // Someone changes the pool behind the operator's back.
    let _: Value = admin(&d)
        .call(
            "UpdateUserPool",
            &json!({
                "UserPoolId": id, "MfaConfiguration": "OFF", "DeletionProtection": "ACTIVE",
                "Policies": { "PasswordPolicy": { "MinimumLength": 6 } },
            }),
        )
        .await
        .unwrap();
    let pool = describe(&d, &id).await.unwrap();
    assert_eq!(pool["MfaConfiguration"], "OFF");

    h.reconcile_pool(&obj).await.unwrap();
    let pool = describe(&d, &id).await.unwrap();
    assert_eq!(pool["MfaConfiguration"], "OPTIONAL");
    assert_eq!(pool["DeletionProtection"], "INACTIVE");
    assert_eq!(pool["Policies"]["PasswordPolicy"]["MinimumLength"], 10);
    assert!(pool["LambdaConfig"]["PostConfirmation"].as_str().is_some());
    assert!(h.api.event_reasons().contains(&"DriftRepaired".to_owned()));
}

fn deleting(mut obj: Value) -> Value {
    obj["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
    obj
}

fn finalizer_removed(h: &Harness, name: &str) -> bool {
    h.stored_pool(name)["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| f.is_empty())
}

#[tokio::test]
async fn delete_with_retain_keeps_the_pool() {
    let d = Daemon::start().await;
    let (h, obj, id) = created(&d, "shop").await;
    h.reconcile_pool(&deleting(obj)).await.unwrap();
    assert!(finalizer_removed(&h, "shop"));
    assert_eq!(describe(&d, &id).await.unwrap()["Id"], id.as_str());
    assert!(h.api.event_reasons().contains(&"Retained".to_owned()));
}

#[tokio::test]
async fn delete_with_delete_removes_the_pool() {
    let d = Daemon::start().await;
    let (h, mut obj, id) = created(&d, "shop").await;
    obj["spec"]["deletionPolicy"] = json!("Delete");
    h.reconcile_pool(&deleting(obj)).await.unwrap();
    assert!(finalizer_removed(&h, "shop"));
    let err = describe(&d, &id).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[tokio::test]
async fn delete_is_held_while_deletion_protection_is_on() {
    let d = Daemon::start().await;
    let h = harness(Some(&d));
    let mut obj = pool_object("vault", 1);
    obj["spec"]["deletionPolicy"] = json!("Delete");
    obj["spec"]["deletionProtection"] = json!(true);
    h.reconcile_pool(&obj).await.unwrap();
    let st = h.last_status("vault");
    let id = st["poolId"].as_str().unwrap().to_owned();
    assert_eq!(
        describe(&d, &id).await.unwrap()["DeletionProtection"],
        "ACTIVE"
    );
    obj["status"] = st;

    let err = h.reconcile_pool(&deleting(obj.clone())).await.unwrap_err();
    assert!(matches!(err, Error::DeletionProtected(_)), "{err}");
    assert!(!finalizer_removed(&h, "vault"));
    assert_eq!(describe(&d, &id).await.unwrap()["Id"], id.as_str());
    assert_eq!(
        condition(&h.last_status("vault"), "Ready")["reason"],
        "DeletionProtected"
    );

    // Turning protection off in the spec lets the deletion finish.
    obj["spec"]["deletionProtection"] = json!(false);
    // The daemon still has protection on (apply does not run while deleting), so it refuses too.
    let err = h.reconcile_pool(&deleting(obj)).await.unwrap_err();
    assert!(matches!(err, Error::Daemon { .. }), "{err}");
    assert!(!finalizer_removed(&h, "vault"));
}

#[tokio::test]
async fn unreachable_daemon_backs_off_with_a_clear_condition() {
    // A port nothing listens on: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let api = FakeApi::default();
    let ctx = Context::new(
        api.client(),
        Some(DaemonDefaults {
            endpoint: format!("http://127.0.0.1:{port}"),
            public_url: None,
            region: "us-east-1".into(),
            credentials: Credentials {
                access_key_id: "AKIAX".into(),
                secret_access_key: "s".into(),
            },
        }),
        None,
    );
    let h = Harness {
        api,
        ctx: Arc::new(ctx),
    };
    let obj = pool_object("shop", 1);
    let err = h.reconcile_pool(&obj).await.unwrap_err();
    assert!(matches!(err, Error::DaemonUnreachable(_)), "{err}");
    let ready = condition(&h.last_status("shop"), "Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "DaemonUnreachable");
    assert!(
        ready["message"]
            .as_str()
            .unwrap()
            .contains(&port.to_string())
    );

    let up: Arc<UserPool> = Arc::new(serde_json::from_value(obj).unwrap());
    let a1 = userpool::error_policy(up.clone(), &err, h.ctx.clone());
    let a2 = userpool::error_policy(up.clone(), &err, h.ctx.clone());
    let a3 = userpool::error_policy(up.clone(), &err, h.ctx.clone());
    assert_eq!(a1, Action::requeue(Duration::from_secs(5)));
    assert_eq!(a2, Action::requeue(Duration::from_secs(10)));
    assert_eq!(a3, Action::requeue(Duration::from_secs(20)));
    assert_eq!(h.ctx.backoff(30), Duration::from_secs(300));
}

#[tokio::test]
async fn first_reconcile_only_adds_the_finalizer() {
    let h = harness(None);
    let mut obj = pool_object("shop", 1);
    obj["metadata"]["finalizers"] = json!([]);
    let action = h.reconcile_pool(&obj).await.unwrap();
    assert_eq!(action, Action::await_change());
    assert_eq!(
        h.stored_pool("shop")["metadata"]["finalizers"],
        json!(["cognate.io/cleanup"])
    );
    assert!(h.api.statuses("userpools", "shop").is_empty());
}

// ------------------------------------------------------------------ AppClient

fn client_object(name: &str) -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/k8s/appclient.yaml"
    ))
    .unwrap();
    let v: Value = serde_yaml::from_str(&text).unwrap();
    let ac: AppClient = serde_json::from_value(v.clone()).unwrap();
    let mut v = v;
    v["spec"] = serde_json::to_value(&ac.spec).unwrap();
    v["metadata"] = json!({
        "name": name, "namespace": NS, "uid": format!("uid-{name}"),
        "generation": 1, "finalizers": ["cognate.io/cleanup"],
    });
    v
}

#[tokio::test]
async fn app_client_gets_a_secret_with_its_credentials() {
    let d = Daemon::start().await;
    // This pool names its daemon explicitly, with credentials in a Secret.
    let h = harness(None);
    let mut pool = pool_object("shop", 1);
    pool["spec"]["daemon"] = json!({
        "endpoint": d.endpoint(), "region": d.region(), "publicUrl": "https://id.example.com",
        "credentialsSecret": { "name": "admin", "accessKeyIdKey": "accessKeyId", "secretAccessKeyKey": "secretAccessKey" },
    });
    h.api.put(
        &format!("/api/v1/namespaces/{NS}/secrets/admin"),
        json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "admin", "namespace": NS },
            "data": {
                "accessKeyId": b64(d.admin_access_key()),
                "secretAccessKey": b64(d.admin_secret()),
            }
        }),
    );
    h.reconcile_pool(&pool).await.unwrap();
    let pool_status = h.last_status("shop");
    let pool_id = pool_status["poolId"].as_str().unwrap().to_owned();
    assert_eq!(
        pool_status["issuerUrl"],
        format!("https://id.example.com/{pool_id}")
    );
    pool["status"] = pool_status;
    h.api.put(&pool_path("shop"), pool);

    let ac_obj = client_object("shop-web");
    h.api.put(&client_path("shop-web"), ac_obj.clone());
    let ac: AppClient = serde_json::from_value(ac_obj.clone()).unwrap();
    appclient::reconcile(Arc::new(ac), h.ctx.clone())
        .await
        .unwrap();

    let st = h
        .api
        .statuses("appclients", "shop-web")
        .last()
        .cloned()
        .unwrap();
    let client_id = st["clientId"].as_str().unwrap().to_owned();
    assert_eq!(condition(&st, "Ready")["status"], "True");
    let secret =
        h.api.objects.lock().unwrap()[&format!("/api/v1/namespaces/{NS}/secrets/shop-web")].clone();
    let data = &secret["stringData"];
    assert_eq!(data["COGNITO_CLIENT_ID"], client_id.as_str());
    assert_eq!(data["COGNITO_USER_POOL_ID"], pool_id.as_str());
    assert_eq!(
        data["COGNITO_ISSUER_URL"],
        format!("https://id.example.com/{pool_id}")
    );
    assert_eq!(data["COGNITO_ENDPOINT"], d.endpoint());
    let owner = &secret["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "AppClient");
    assert_eq!(owner["uid"], "uid-shop-web");
    assert_eq!(owner["controller"], true);

    let described: Value = admin(&d)
        .call(
            "DescribeUserPoolClient",
            &json!({ "UserPoolId": pool_id, "ClientId": client_id }),
        )
        .await
        .unwrap();
    let c = &described["UserPoolClient"];
    assert_eq!(data["COGNITO_CLIENT_SECRET"], c["ClientSecret"]);
    assert!(c["ClientSecret"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(c["AccessTokenValidity"], 30);
    // The pool's tokenDefaults fill what the client leaves unset.
    assert_eq!(c["RefreshTokenValidity"], 30);

    // Someone widens the client's auth flows; the next pass puts them back.
    let _: Value = admin(&d)
        .call(
            "UpdateUserPoolClient",
            &json!({
                "UserPoolId": pool_id, "ClientId": client_id,
                "ExplicitAuthFlows": ["ALLOW_ADMIN_USER_PASSWORD_AUTH"],
            }),
        )
        .await
        .unwrap();
    let mut again = ac_obj.clone();
    again["status"] = st;
    let ac: AppClient = serde_json::from_value(again.clone()).unwrap();
    appclient::reconcile(Arc::new(ac), h.ctx.clone())
        .await
        .unwrap();
    let described: Value = admin(&d)
        .call(
            "DescribeUserPoolClient",
            &json!({ "UserPoolId": pool_id, "ClientId": client_id }),
        )
        .await
        .unwrap();
    let mut flows: Vec<String> =
        serde_json::from_value(described["UserPoolClient"]["ExplicitAuthFlows"].clone()).unwrap();
    flows.sort();
    assert_eq!(
        flows,
        vec!["ALLOW_REFRESH_TOKEN_AUTH", "ALLOW_USER_PASSWORD_AUTH"]
    );

    // Deleting the AppClient deletes the client in the daemon.
    again["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
    h.api.put(&client_path("shop-web"), again.clone());
    let ac: AppClient = serde_json::from_value(again).unwrap();
    assert_eq!(ac.name_any(), "shop-web");
    appclient::reconcile(Arc::new(ac), h.ctx.clone())
        .await
        .unwrap();
    let err = admin(&d)
        .call::<_, Value>(
            "DescribeUserPoolClient",
            &json!({ "UserPoolId": pool_id, "ClientId": client_id }),
        )
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[tokio::test]
async fn app_client_waits_for_its_pool() {
    let h = harness(None);
    let ac_obj = client_object("early");
    h.api.put(&client_path("early"), ac_obj.clone());
    let ac: AppClient = serde_json::from_value(ac_obj).unwrap();
    let action = appclient::reconcile(Arc::new(ac), h.ctx.clone())
        .await
        .unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(10)));
    let st = h
        .api
        .statuses("appclients", "early")
        .last()
        .cloned()
        .unwrap();
    assert_eq!(condition(&st, "Ready")["reason"], "PoolNotReady");
}

/// The example pool created through the operator and stored with its status, so that
/// AppClients find it ready. Returns the pool id.
async fn ready_pool(h: &Harness) -> String {
    let mut pool = pool_object("shop", 1);
    h.reconcile_pool(&pool).await.unwrap();
    let st = h.last_status("shop");
    let id = st["poolId"].as_str().unwrap().to_owned();
    pool["status"] = st;
    h.api.put(&pool_path("shop"), pool);
    id
}

impl Harness {
    /// Stores `obj` (keeping the status last written unless `obj` has one) and reconciles it.
    async fn reconcile_client(&self, obj: &Value) -> Result<Action, Error> {
        let name = obj["metadata"]["name"].as_str().unwrap();
        let mut stored = obj.clone();
        if let Some(prev) = self.api.objects.lock().unwrap().get(&client_path(name))
            && obj.get("status").is_none()
        {
            stored["status"] = prev["status"].clone();
        }
        self.api.put(&client_path(name), stored.clone());
        let ac: AppClient = serde_json::from_value(stored).unwrap();
        appclient::reconcile(Arc::new(ac), self.ctx.clone()).await
    }

    fn secret(&self, name: &str) -> Value {
        self.api.objects.lock().unwrap()[&format!("/api/v1/namespaces/{NS}/secrets/{name}")]
            ["stringData"]
            .clone()
    }
}

async fn pool_tags(d: &Daemon, pool_id: &str) -> Value {
    describe(d, pool_id).await.unwrap()["UserPoolTags"].clone()
}

async fn clients_named(d: &Daemon, pool_id: &str, name: &str) -> Vec<String> {
    let v: Value = admin(d)
        .call(
            "ListUserPoolClients",
            &json!({ "UserPoolId": pool_id, "MaxResults": 60 }),
        )
        .await
        .unwrap();
    v["UserPoolClients"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ClientName"] == name)
        .map(|c| c["ClientId"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn lost_status_write_after_create_adopts_the_client_instead_of_creating_another() {
    let d = Daemon::start().await;
    let h = harness(Some(&d));
    let pool_id = ready_pool(&h).await;
    let obj = client_object("shop-web");

    // The client is created and tagged, then the status write is lost.
    *h.api.failing_status_writes.lock().unwrap() = 1;
    let err = h.reconcile_client(&obj).await.unwrap_err();
    assert!(matches!(err, Error::Kube(_)), "{err}");
    assert_eq!(h.ctx.metrics.daemon_calls("CreateUserPoolClient", "ok"), 1);
    let stored = h.api.objects.lock().unwrap()[&client_path("shop-web")].clone();
    assert!(stored["status"]["clientId"].is_null(), "{stored}");
    let created = clients_named(&d, &pool_id, "shop-web").await;
    assert_eq!(created.len(), 1);
    assert_eq!(
        pool_tags(&d, &pool_id).await["cognate.io/appclient-uid-shop-web"],
        created[0].as_str()
    );

    // The retry, still without a client id in its status, adopts that client.
    h.reconcile_client(&obj).await.unwrap();
    assert_eq!(h.ctx.metrics.daemon_calls("CreateUserPoolClient", "ok"), 1);
    assert_eq!(clients_named(&d, &pool_id, "shop-web").await, created);
    let st = h
        .api
        .statuses("appclients", "shop-web")
        .last()
        .cloned()
        .unwrap();
    assert_eq!(st["clientId"], created[0].as_str());
    assert_eq!(condition(&st, "Ready")["status"], "True");
    assert_eq!(
        h.secret("shop-web")["COGNITO_CLIENT_ID"],
        created[0].as_str()
    );
    assert!(h.api.event_reasons().contains(&"Adopted".to_owned()));

    // The pool's own reconcile repairs its settings without dropping the client's tag.
    let _: Value = admin(&d)
        .call(
            "UpdateUserPool",
            &json!({ "UserPoolId": pool_id, "MfaConfiguration": "OFF",
                     "UserPoolTags": { "cognate.io/appclient-uid-shop-web": created[0] } }),
        )
        .await
        .unwrap();
    let pool = h.stored_pool("shop");
    h.reconcile_pool(&pool).await.unwrap();
    let tags = pool_tags(&d, &pool_id).await;
    assert_eq!(
        tags["cognate.io/appclient-uid-shop-web"],
        created[0].as_str()
    );
    assert_eq!(tags["cognate.io/uid"], "uid-shop");

    // Deleting the AppClient removes the client and its tag.
    let mut gone = obj.clone();
    gone["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
    h.reconcile_client(&gone).await.unwrap();
    assert!(clients_named(&d, &pool_id, "shop-web").await.is_empty());
    assert!(pool_tags(&d, &pool_id).await["cognate.io/appclient-uid-shop-web"].is_null());
}

#[tokio::test]
async fn crash_between_create_and_tag_adopts_the_untagged_client_with_the_name() {
    let d = Daemon::start().await;
    let h = harness(Some(&d));
    let pool_id = ready_pool(&h).await;
    let create = |secret: bool| {
        let a = admin(&d);
        let pool_id = pool_id.clone();
        async move {
            let v: Value = a
                .call(
                    "CreateUserPoolClient",
                    &json!({ "UserPoolId": pool_id, "ClientName": "shop-web", "GenerateSecret": secret }),
                )
                .await
                .unwrap();
            v["UserPoolClient"]["ClientId"].as_str().unwrap().to_owned()
        }
    };
    // Another AppClient's client of the same name (tagged), one without the secret the
    // spec asks for, and the one this AppClient made before it died (untagged).
    let others = create(true).await;
    let arn = describe(&d, &pool_id).await.unwrap()["Arn"].clone();
    let _: Value = admin(&d)
        .call(
            "TagResource",
            &json!({ "ResourceArn": arn, "Tags": { "cognate.io/appclient-uid-other": others } }),
        )
        .await
        .unwrap();
    let _public = create(false).await;
    let mine = create(true).await;

    h.reconcile_client(&client_object("shop-web"))
        .await
        .unwrap();
    assert_eq!(h.ctx.metrics.daemon_calls("CreateUserPoolClient", "ok"), 0);
    let st = h
        .api
        .statuses("appclients", "shop-web")
        .last()
        .cloned()
        .unwrap();
    assert_eq!(st["clientId"], mine.as_str());
    let tags = pool_tags(&d, &pool_id).await;
    assert_eq!(tags["cognate.io/appclient-uid-shop-web"], mine.as_str());
    assert_eq!(tags["cognate.io/appclient-uid-other"], others.as_str());
    assert_eq!(clients_named(&d, &pool_id, "shop-web").await.len(), 3);
}

#[tokio::test]
async fn oauth_settings_are_applied_repaired_and_the_secret_has_the_endpoints() {
    let d = Daemon::start().await;
    let h = harness(Some(&d));
    let pool_id = ready_pool(&h).await;
    let pool_status = h.last_status("shop");
    assert_eq!(pool_status["domain"], "shop");
    let obj = client_object("shop-web");
    h.reconcile_client(&obj).await.unwrap();
    let st = h
        .api
        .statuses("appclients", "shop-web")
        .last()
        .cloned()
        .unwrap();
    let id = st["clientId"].as_str().unwrap().to_owned();
    let get = || async {
        let v: Value = admin(&d)
            .call(
                "DescribeUserPoolClient",
                &json!({ "UserPoolId": pool_id, "ClientId": id }),
            )
            .await
            .unwrap();
        v["UserPoolClient"].clone()
    };
    let c = get().await;
    assert_eq!(c["AllowedOAuthFlows"], json!(["code"]));
    assert_eq!(c["AllowedOAuthFlowsUserPoolClient"], true);
    assert_eq!(
        c["AllowedOAuthScopes"], obj["spec"]["allowedOAuthScopes"],
        "{c}"
    );
    assert_eq!(c["DefaultRedirectURI"], obj["spec"]["defaultRedirectUri"]);
    assert_eq!(c["SupportedIdentityProviders"], json!(["COGNITO"]));

    let secret = h.secret("shop-web");
    let base = format!("{}/domains/shop", d.endpoint());
    assert_eq!(secret["COGNITO_DOMAIN"], "shop");
    assert_eq!(secret["COGNITO_DOMAIN_URL"], base.as_str());
    assert_eq!(
        secret["COGNITO_AUTHORIZE_URL"],
        format!("{base}/oauth2/authorize")
    );
    assert_eq!(secret["COGNITO_TOKEN_URL"], format!("{base}/oauth2/token"));
    assert_eq!(secret["COGNITO_ISSUER_URL"], d.issuer(&pool_id));

    // Someone turns the code flow into implicit and drops the default redirect.
    let _: Value = admin(&d)
        .call(
            "UpdateUserPoolClient",
            &json!({ "UserPoolId": pool_id, "ClientId": id, "ClientName": "shop-web",
                     "AllowedOAuthFlows": ["implicit"], "AllowedOAuthScopes": ["openid"],
                     "AllowedOAuthFlowsUserPoolClient": true,
                     "CallbackURLs": ["https://evil.example.com/"],
                     "ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"] }),
        )
        .await
        .unwrap();
    h.reconcile_client(&obj).await.unwrap();
    let c = get().await;
    assert_eq!(c["AllowedOAuthFlows"], json!(["code"]));
    assert_eq!(c["CallbackURLs"], obj["spec"]["callbackUrls"]);
    assert_eq!(c["DefaultRedirectURI"], obj["spec"]["defaultRedirectUri"]);
    assert!(h.api.event_reasons().contains(&"Updated".to_owned()));

    // Settings the spec drops are reset in the daemon too.
    let mut plain = obj.clone();
    for k in [
        "allowedOAuthFlows",
        "allowedOAuthScopes",
        "defaultRedirectUri",
        "supportedIdentityProviders",
    ] {
        plain["spec"].as_object_mut().unwrap().remove(k);
    }
    plain["spec"]["allowedOAuthFlowsUserPoolClient"] = json!(false);
    h.reconcile_client(&plain).await.unwrap();
    let c = get().await;
    assert!(
        c["AllowedOAuthFlows"].as_array().is_none_or(Vec::is_empty),
        "{c}"
    );
    assert!(c["DefaultRedirectURI"].is_null(), "{c}");
    assert_eq!(c["AllowedOAuthFlowsUserPoolClient"], false);
}

async fn list_servers(d: &Daemon, pool_id: &str) -> Vec<Value> {
    let v: Value = admin(d)
        .call(
            "ListResourceServers",
            &json!({ "UserPoolId": pool_id, "MaxResults": 50 }),
        )
        .await
        .unwrap();
    v["ResourceServers"].as_array().unwrap().clone()
}

async fn describe_domain(d: &Daemon, domain: &str) -> Value {
    let v: Value = admin(d)
        .call("DescribeUserPoolDomain", &json!({ "Domain": domain }))
        .await
        .unwrap();
    v["DomainDescription"].clone()
}

#[tokio::test]
async fn domain_and_resource_servers_follow_the_spec() {
    let d = Daemon::start().await;
    let (h, obj, id) = created(&d, "shop").await;
    let pool = describe(&d, &id).await.unwrap();
    assert_eq!(pool["Domain"], "shop");
    assert_eq!(describe_domain(&d, "shop").await["ManagedLoginVersion"], 1);
    let servers = list_servers(&d, &id).await;
    assert_eq!(servers.len(), 1);
    let api_id = obj["spec"]["resourceServers"][0]["identifier"].clone();
    assert_eq!(servers[0]["Identifier"], api_id);
    assert_eq!(servers[0]["Scopes"].as_array().unwrap().len(), 2);
    let st = h.last_status("shop");
    assert_eq!(st["domain"], "shop");
    assert_eq!(st["resourceServers"], json!([api_id]));

    // Drift: a scope removed and the domain switched to managed login behind our back.
    let _: Value = admin(&d)
        .call(
            "UpdateResourceServer",
            &json!({ "UserPoolId": id, "Identifier": api_id, "Name": "x", "Scopes": [] }),
        )
        .await
        .unwrap();
    let _: Value = admin(&d)
        .call(
            "UpdateUserPoolDomain",
            &json!({ "UserPoolId": id, "Domain": "shop", "ManagedLoginVersion": 2 }),
        )
        .await
        .unwrap();
    let mut obj = obj;
    obj["status"] = st;
    h.reconcile_pool(&obj).await.unwrap();
    assert_eq!(
        list_servers(&d, &id).await[0]["Scopes"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(describe_domain(&d, "shop").await["ManagedLoginVersion"], 1);
    assert!(h.api.event_reasons().contains(&"DriftRepaired".to_owned()));

    // A new prefix replaces the old one; a second server is added; then a custom domain.
    obj["metadata"]["generation"] = json!(2);
    obj["spec"]["domain"] = json!({ "prefix": "shop-two", "managedLoginVersion": 2 });
    obj["spec"]["resourceServers"].as_array_mut().unwrap().push(json!({
        "identifier": "billing", "name": "billing", "scopes": [{ "name": "pay", "description": "Pay" }]
    }));
    h.reconcile_pool(&obj).await.unwrap();
    let pool = describe(&d, &id).await.unwrap();
    assert_eq!(pool["Domain"], "shop-two");
    assert_eq!(
        describe_domain(&d, "shop-two").await["ManagedLoginVersion"],
        2
    );
    assert!(describe_domain(&d, "shop").await["UserPoolId"].is_null());
    assert_eq!(list_servers(&d, &id).await.len(), 2);
    obj["status"] = h.last_status("shop");
    assert_eq!(obj["status"]["domain"], "shop-two");

    obj["metadata"]["generation"] = json!(3);
    obj["spec"]["domain"] = json!({ "customDomain": {
        "domain": "auth.shop.example.com",
        "certificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/abc"
    }});
    h.reconcile_pool(&obj).await.unwrap();
    let pool = describe(&d, &id).await.unwrap();
    assert_eq!(pool["CustomDomain"], "auth.shop.example.com");
    assert!(pool["Domain"].is_null(), "{pool}");
    obj["status"] = h.last_status("shop");

    // Removed from the spec: the domain and the servers this resource made are deleted;
    // a server someone else made stays.
    let _: Value = admin(&d)
        .call(
            "CreateResourceServer",
            &json!({ "UserPoolId": id, "Identifier": "theirs", "Name": "theirs" }),
        )
        .await
        .unwrap();
    obj["metadata"]["generation"] = json!(4);
    obj["spec"].as_object_mut().unwrap().remove("domain");
    obj["spec"]["resourceServers"] = json!([]);
    h.reconcile_pool(&obj).await.unwrap();
    let pool = describe(&d, &id).await.unwrap();
    assert!(
        pool["CustomDomain"].is_null() && pool["Domain"].is_null(),
        "{pool}"
    );
    let left: Vec<Value> = list_servers(&d, &id)
        .await
        .iter()
        .map(|s| s["Identifier"].clone())
        .collect();
    assert_eq!(left, vec![json!("theirs")]);
    let st = h.last_status("shop");
    assert!(
        st["domain"].is_null() && st["resourceServers"].is_null(),
        "{st}"
    );
}

#[tokio::test]
async fn a_domain_of_another_pool_is_refused_without_touching_ours() {
    let d = Daemon::start().await;
    let (h, obj, id) = created(&d, "shop").await;
    let other: Value = admin(&d)
        .call("CreateUserPool", &json!({ "PoolName": "other" }))
        .await
        .unwrap();
    let other = other["UserPool"]["Id"].as_str().unwrap().to_owned();
    let _: Value = admin(&d)
        .call(
            "CreateUserPoolDomain",
            &json!({ "UserPoolId": other, "Domain": "taken" }),
        )
        .await
        .unwrap();
    let mut obj = obj;
    obj["metadata"]["generation"] = json!(2);
    obj["spec"]["domain"] = json!({ "prefix": "taken" });
    let err = h.reconcile_pool(&obj).await.unwrap_err();
    assert!(err.to_string().contains("taken"), "{err}");
    assert_eq!(describe(&d, &id).await.unwrap()["Domain"], "shop");
    let ready = condition(&h.last_status("shop"), "Ready");
    assert_eq!(ready["status"], "False");
    assert!(
        ready["message"].as_str().unwrap().contains(&other),
        "{ready}"
    );
}

fn b64(s: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ------------------------------------------------------------------ admin client

#[tokio::test]
async fn admin_client_signs_like_an_sdk() {
    let d = Daemon::start().await;
    let ok: Value = admin(&d)
        .call("ListUserPools", &json!({ "MaxResults": 10 }))
        .await
        .unwrap();
    assert!(ok["UserPools"].is_array(), "{ok}");

    let wrong = AdminClient::new(
        d.endpoint(),
        &d.region(),
        Credentials {
            access_key_id: d.admin_access_key().to_owned(),
            secret_access_key: "not-the-secret".into(),
        },
    )
    .unwrap();
    let err = wrong
        .call::<_, Value>("ListUserPools", &json!({ "MaxResults": 10 }))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Some("InvalidSignatureException"), "{err}");
    assert!(!err.is_unreachable());

    let err = admin(&d)
        .call::<_, Value>(
            "DescribeUserPool",
            &json!({ "UserPoolId": "us-east-1_nothere00" }),
        )
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");

    let err = admin(&d)
        .call::<_, Value>(
            "UpdateUserPool",
            &json!({ "UserPoolId": "us-east-1_nothere00", "UsernameAttributes": ["email"] }),
        )
        .await
        .unwrap_err();
    assert!(err.kind().is_some(), "{err}");
}

/// A fake API server for Leases alone, with resourceVersion checks like the real one:
/// a write carrying a stale version gets 409 Conflict. `race` makes the next write lose
/// as if another replica had written in between.
#[derive(Clone, Default)]
struct LeaseApi {
    lease: Arc<Mutex<Option<Value>>>,
    version: Arc<Mutex<u64>>,
    race: Arc<Mutex<bool>>,
}

impl LeaseApi {
    fn conflict() -> (u16, Value) {
        (
            409,
            json!({"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Conflict","code":409,"message":"the object has been modified"}),
        )
    }

    fn answer(&self, method: &Method, body: &Value) -> (u16, Value) {
        let mut lease = self.lease.lock().unwrap();
        let mut version = self.version.lock().unwrap();
        let raced = matches!(*method, Method::PUT | Method::POST)
            && std::mem::take(&mut *self.race.lock().unwrap());
        match *method {
            Method::GET => lease.clone().map(|l| (200, l)).unwrap_or_else(not_found),
            Method::POST if lease.is_some() || raced => Self::conflict(),
            Method::PUT => {
                let Some(current) = lease.as_ref() else {
                    return not_found();
                };
                if raced
                    || body["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"]
                {
                    return Self::conflict();
                }
                *version += 1;
                let mut next = body.clone();
                next["metadata"]["resourceVersion"] = Value::from(version.to_string());
                *lease = Some(next.clone());
                (200, next)
            }
            Method::POST => {
                *version += 1;
                let mut next = body.clone();
                next["metadata"]["resourceVersion"] = Value::from(version.to_string());
                *lease = Some(next.clone());
                (201, next)
            }
            _ => not_found(),
        }
    }

    fn client(&self) -> kube::Client {
        let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let me = self.clone();
        tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                let method = req.method().clone();
                let bytes = req.into_body().collect_bytes().await.unwrap();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let (code, out) = me.answer(&method, &body);
                send.send_response(
                    Response::builder()
                        .status(code)
                        .header("content-type", "application/json")
                        .body(Body::from(serde_json::to_vec(&out).unwrap()))
                        .unwrap(),
                );
            }
        });
        kube::Client::new(svc, NS)
    }

    fn holder(&self) -> Value {
        self.lease
            .lock()
            .unwrap()
            .as_ref()
            .map(|l| l["spec"]["holderIdentity"].clone())
            .unwrap_or(Value::Null)
    }
}

#[tokio::test]
async fn lease_leader_election_gives_one_leader_and_hands_over() {
    use cognate_operator::lease::LeaseLock;
    use k8s_openapi::api::coordination::v1::Lease;
    let api = LeaseApi::default();
    let lease = |who: &str| {
        LeaseLock::new(
            kube::Api::<Lease>::namespaced(api.client(), NS),
            "cognate-operator",
            who,
            Duration::from_secs(15),
        )
    };
    let (a, b) = (lease("replica-a"), lease("replica-b"));

    // The first replica creates the Lease; the second finds it held and stands by.
    assert!(a.try_acquire_or_renew().await.unwrap());
    assert!(!b.try_acquire_or_renew().await.unwrap());
    assert_eq!(api.holder(), "replica-a");
    // The holder renews.
    assert!(a.try_acquire_or_renew().await.unwrap());
    assert!(!b.try_acquire_or_renew().await.unwrap());

    // The holder stops renewing: once the Lease expired the standby takes it over.
    {
        let mut l = api.lease.lock().unwrap();
        l.as_mut().unwrap()["spec"]["renewTime"] = Value::from("2020-01-01T00:00:00.000000Z");
    }
    assert!(b.try_acquire_or_renew().await.unwrap());
    assert_eq!(api.holder(), "replica-b");
    assert_eq!(
        api.lease.lock().unwrap().as_ref().unwrap()["spec"]["leaseTransitions"],
        1
    );
    // The old leader, back, no longer leads.
    assert!(!a.try_acquire_or_renew().await.unwrap());

    // Two replicas racing for an expired Lease: the one whose write conflicts loses.
    {
        let mut l = api.lease.lock().unwrap();
        l.as_mut().unwrap()["spec"]["renewTime"] = Value::from("2020-01-01T00:00:00.000000Z");
    }
    *api.race.lock().unwrap() = true;
    assert!(
        !a.try_acquire_or_renew().await.unwrap(),
        "a conflicting write must not lead"
    );
    assert_eq!(api.holder(), "replica-b");

    // A leader that shuts down releases the Lease; the standby takes it at once.
    assert!(b.try_acquire_or_renew().await.unwrap());
    b.release().await.unwrap();
    assert!(api.holder().is_null());
    assert!(a.try_acquire_or_renew().await.unwrap());
    assert_eq!(api.holder(), "replica-a");
}
