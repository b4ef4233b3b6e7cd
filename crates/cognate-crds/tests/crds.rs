//! The generated CRDs: committed copies are current, CEL rules allow and refuse the
//! right edits, and the example manifests conform to the generated schemas.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use cognate_crds::*;
use kube::CustomResourceExt;
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn committed_crds_match_the_generated_ones() {
    let mut stale = vec![];
    for (path, contents) in generated_files().unwrap() {
        let current = std::fs::read_to_string(root().join(path)).unwrap_or_default();
        if current != contents {
            stale.push(path);
        }
    }
    assert!(
        stale.is_empty(),
        "{stale:?} differ from the generated CRDs; run `cargo run -p cognate-crds --bin crdgen`"
    );
}

#[test]
fn yaml_1_1_booleans_are_quoted() {
    assert_eq!(quote_yaml11_bools("  default: OFF"), "  default: 'OFF'");
    assert_eq!(quote_yaml11_bools("    - ON"), "    - 'ON'");
    assert_eq!(quote_yaml11_bools("    - OPTIONAL"), "    - OPTIONAL");
    assert_eq!(quote_yaml11_bools("  default: false"), "  default: false");
    let up = userpool_yaml().unwrap();
    assert!(up.contains("- 'OFF'") && !up.contains("- OFF\n"));
}

#[test]
fn crds_have_the_contracted_names_and_status_subresource() {
    let up = UserPool::crd();
    assert_eq!(up.metadata.name.as_deref(), Some("userpools.cognate.io"));
    assert_eq!(up.spec.versions[0].name, "v1alpha1");
    assert!(
        up.spec.versions[0]
            .subresources
            .as_ref()
            .unwrap()
            .status
            .is_some()
    );
    let ac = AppClient::crd();
    assert_eq!(ac.metadata.name.as_deref(), Some("appclients.cognate.io"));
    let text = serde_json::to_string(&up).unwrap();
    assert!(text.contains(r#""x-kubernetes-list-map-keys":["type"]"#));
}

// ------------------------------------------------------------------ CEL

fn example(file: &str) -> Value {
    let text = std::fs::read_to_string(root().join("examples/k8s").join(file)).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

fn pool() -> UserPool {
    serde_json::from_value(example("userpool.yaml")).unwrap()
}

fn client() -> AppClient {
    serde_json::from_value(example("appclient.yaml")).unwrap()
}

fn refused_with(new: &UserPool, old: &UserPool, words: &str) {
    let err = new
        .validate_cel_update(old)
        .expect_err("the edit should be refused");
    let text = err.to_string();
    assert!(text.contains(words), "{words:?} not in {text}");
}

#[test]
fn cel_allows_mutable_edits() {
    let old = pool();
    let mut new = old.clone();
    new.spec.pool_name = Some("renamed".into());
    new.spec.mfa = MfaConfiguration::Off;
    new.spec.deletion_protection = true;
    new.spec.password_policy.as_mut().unwrap().minimum_length = 12;
    new.spec.triggers = None;
    new.validate_cel_update(&old).unwrap();
}

#[test]
fn cel_allows_adding_a_non_required_custom_attribute() {
    let old = pool();
    let mut new = old.clone();
    new.spec.schema.push(SchemaAttribute {
        name: "plan".into(),
        attribute_data_type: AttributeDataType::String,
        required: false,
        mutable: true,
        developer_only: false,
        string_constraints: None,
        number_constraints: None,
    });
    new.validate_cel_update(&old).unwrap();
}

#[test]
fn cel_refuses_changing_an_existing_attribute() {
    let old = pool();
    let mut new = old.clone();
    new.spec.schema[1].mutable = true;
    refused_with(&new, &old, "existing attributes are immutable");
    let mut new = old.clone();
    new.spec.schema[2].number_constraints = Some(NumberConstraints {
        min_value: Some(0),
        max_value: Some(5),
    });
    refused_with(&new, &old, "existing attributes are immutable");
    let mut new = old.clone();
    new.spec.schema[0].attribute_data_type = AttributeDataType::Number;
    refused_with(&new, &old, "existing attributes are immutable");
}

#[test]
fn cel_refuses_removing_an_attribute() {
    let old = pool();
    let mut new = old.clone();
    new.spec.schema.remove(1);
    refused_with(&new, &old, "existing attributes are immutable");
}

#[test]
fn cel_refuses_adding_required_or_standard_attributes() {
    let old = pool();
    let mut new = old.clone();
    let mut extra = old.spec.schema[1].clone();
    extra.name = "plan".into();
    extra.required = true;
    new.spec.schema.push(extra.clone());
    refused_with(&new, &old, "must be custom and not required");
    let mut new = old.clone();
    extra.name = "phone_number".into();
    extra.required = false;
    new.spec.schema.push(extra);
    refused_with(&new, &old, "must be custom and not required");
}

#[test]
fn cel_refuses_username_alias_and_case_changes() {
    let old = pool();
    let mut new = old.clone();
    new.spec.username_attributes = vec![UsernameAttribute::PhoneNumber];
    refused_with(&new, &old, "spec.usernameAttributes is immutable");
    let mut new = old.clone();
    new.spec.case_sensitive = true;
    refused_with(&new, &old, "spec.caseSensitive is immutable");

    let mut old_alias = old.clone();
    old_alias.spec.username_attributes = vec![];
    old_alias.spec.alias_attributes = vec![AliasAttribute::Email];
    let mut new = old_alias.clone();
    new.spec.alias_attributes = vec![AliasAttribute::Email, AliasAttribute::PreferredUsername];
    refused_with(&new, &old_alias, "spec.aliasAttributes is immutable");
}

#[test]
fn cel_refuses_username_attributes_together_with_aliases() {
    let mut p = pool();
    p.spec.alias_attributes = vec![AliasAttribute::PreferredUsername];
    let err = p.validate_cel().unwrap_err().to_string();
    assert!(err.contains("mutually exclusive"), "{err}");
    pool().validate_cel().unwrap();
}

#[test]
fn cel_guards_app_client_secret_generation_and_pool() {
    let old = client();
    let mut new = old.clone();
    new.spec.explicit_auth_flows.pop();
    new.spec
        .callback_urls
        .push("https://shop.example.com/other".into());
    new.validate_cel_update(&old).unwrap();
    let mut new = old.clone();
    new.spec.generate_secret = false;
    let err = new.validate_cel_update(&old).unwrap_err().to_string();
    assert!(err.contains("spec.generateSecret is immutable"), "{err}");
    let mut new = old.clone();
    new.spec.user_pool_ref.name = "other".into();
    let err = new.validate_cel_update(&old).unwrap_err().to_string();
    assert!(err.contains("spec.userPoolRef is immutable"), "{err}");
}

// ------------------------------------------------------------------ examples vs schema

/// A strict check of an object against a structural OpenAPI v3 schema, covering what
/// the generated CRDs use: types, unknown fields, required, enums, bounds.
fn check(schema: &Value, v: &Value, path: &str, errs: &mut Vec<String>) {
    if let Some(en) = schema.get("enum").and_then(Value::as_array)
        && !en.contains(v)
    {
        errs.push(format!("{path}: {v} not one of {en:?}"));
    }
    if v.is_null() && schema.get("nullable") == Some(&Value::Bool(true)) {
        return;
    }
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        && schema.get("properties").is_none()
    {
        return;
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let Some(obj) = v.as_object() else {
                errs.push(format!("{path}: expected an object, got {v}"));
                return;
            };
            for r in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let r = r.as_str().unwrap();
                if !obj.contains_key(r) {
                    errs.push(format!("{path}: missing required {r}"));
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            let extra = schema.get("additionalProperties");
            for (k, val) in obj {
                let sub = format!("{path}.{k}");
                if let Some(ps) = props.and_then(|p| p.get(k)) {
                    check(ps, val, &sub, errs);
                } else if let Some(ap) = extra.filter(|a| a.is_object()) {
                    check(ap, val, &sub, errs);
                } else if !(path.is_empty()
                    && ["apiVersion", "kind", "metadata"].contains(&k.as_str()))
                {
                    errs.push(format!("{sub}: unknown field"));
                }
            }
        }
        Some("array") => {
            let Some(items) = v.as_array() else {
                errs.push(format!("{path}: expected an array, got {v}"));
                return;
            };
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && items.len() as u64 > max
            {
                errs.push(format!("{path}: more than {max} items"));
            }
            if let Some(is) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(is, item, &format!("{path}[{i}]"), errs);
                }
            }
        }
        Some("string") => match v.as_str() {
            None => errs.push(format!("{path}: expected a string, got {v}")),
            Some(s) => {
                let n = s.chars().count() as u64;
                if schema
                    .get("maxLength")
                    .and_then(Value::as_u64)
                    .is_some_and(|m| n > m)
                    || schema
                        .get("minLength")
                        .and_then(Value::as_u64)
                        .is_some_and(|m| n < m)
                {
                    errs.push(format!("{path}: length {n} out of bounds"));
                }
            }
        },
        Some("integer") => match v.as_i64() {
            None => errs.push(format!("{path}: expected an integer, got {v}")),
            Some(n) => {
                if schema
                    .get("maximum")
                    .and_then(Value::as_f64)
                    .is_some_and(|m| n as f64 > m)
                    || schema
                        .get("minimum")
                        .and_then(Value::as_f64)
                        .is_some_and(|m| (n as f64) < m)
                {
                    errs.push(format!("{path}: {n} out of bounds"));
                }
            }
        },
        Some("boolean") if !v.is_boolean() => {
            errs.push(format!("{path}: expected a boolean, got {v}"))
        }
        _ => {}
    }
}

fn schema_of(crd_yaml: &str) -> Value {
    let crd: Value = serde_yaml::from_str(crd_yaml).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

fn violations(crd_yaml: &str, obj: &Value) -> Vec<String> {
    let mut errs = vec![];
    check(&schema_of(crd_yaml), obj, "", &mut errs);
    errs
}

#[test]
fn example_manifests_conform_to_the_generated_schemas() {
    let up = std::fs::read_to_string(root().join("crds/userpool.yaml")).unwrap();
    let ac = std::fs::read_to_string(root().join("crds/appclient.yaml")).unwrap();
    let mut seen = 0;
    for entry in std::fs::read_dir(root().join("examples/k8s")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let obj: Value = serde::Deserialize::deserialize(doc).unwrap();
            let errs = match obj["kind"].as_str() {
                Some("UserPool") => violations(&up, &obj),
                Some("AppClient") => violations(&ac, &obj),
                _ => continue,
            };
            assert!(errs.is_empty(), "{}: {errs:#?}", path.display());
            assert_eq!(obj["apiVersion"], format!("{GROUP}/{VERSION}"));
            seen += 1;
        }
    }
    assert!(seen >= 2, "expected a UserPool and an AppClient example");
    // and they pass the creation rules
    pool().validate_cel().unwrap();
    client().validate_cel().unwrap();
}

#[test]
fn the_schema_check_catches_bad_manifests() {
    let up = std::fs::read_to_string(root().join("crds/userpool.yaml")).unwrap();
    let mut bad = example("userpool.yaml");
    bad["spec"]["mfa"] = json!("SOMETIMES");
    bad["spec"]["passwordPolicy"]["minimumLength"] = json!(3);
    bad["spec"]["schema"][0]["colour"] = json!("red");
    bad["spec"]["deletionPolicy"] = json!("Orphan");
    let errs = violations(&up, &bad);
    assert_eq!(errs.len(), 4, "{errs:#?}");
}

// ------------------------------------------------------------------ OAuth rules

fn client_refused(c: &AppClient, words: &str) {
    let err = c.validate_cel().expect_err("the client should be refused");
    let text = err.to_string();
    assert!(text.contains(words), "{words:?} not in {text}");
}

#[test]
fn cel_accepts_the_oauth_examples_and_local_or_app_redirects() {
    client().validate_cel().unwrap();
    let machine: AppClient = serde_json::from_value(example("appclient-machine.yaml")).unwrap();
    machine.validate_cel().unwrap();
    let mut c = client();
    c.spec.callback_urls = vec![
        "http://localhost:8080/cb".into(),
        "http://localhost".into(),
        "myapp://signed-in".into(),
        "https://shop.example.com/cb?x=1".into(),
    ];
    c.spec.default_redirect_uri = Some("myapp://signed-in".into());
    c.validate_cel().unwrap();
}

#[test]
fn cel_refuses_oauth_settings_cognito_refuses() {
    let mut c = client();
    c.spec.allowed_oauth_flows = vec![OAuthFlow::Code, OAuthFlow::ClientCredentials];
    client_refused(&c, "client_credentials cannot be combined");

    let mut c: AppClient = serde_json::from_value(example("appclient-machine.yaml")).unwrap();
    c.spec.generate_secret = false;
    client_refused(&c, "needs a client secret");

    let mut c: AppClient = serde_json::from_value(example("appclient-machine.yaml")).unwrap();
    c.spec.allowed_oauth_scopes.push("openid".into());
    client_refused(&c, "only custom scopes");

    let mut c = client();
    c.spec.allowed_oauth_flows.clear();
    client_refused(&c, "needs allowedOAuthFlows and allowedOAuthScopes");

    let mut c = client();
    c.spec.callback_urls.clear();
    c.spec.default_redirect_uri = None;
    client_refused(&c, "need at least one callbackUrls entry");

    let mut c = client();
    c.spec.default_redirect_uri = Some("https://elsewhere.example.com/".into());
    client_refused(&c, "defaultRedirectUri must be one of callbackUrls");

    for bad in [
        "http://shop.example.com/callback",
        "http://localhost.evil.example.com/cb",
        "https://shop.example.com/cb#frag",
        "/relative/path",
        "HTTP://shop.example.com/",
    ] {
        let mut c = client();
        c.spec.callback_urls.push(bad.into());
        client_refused(&c, "redirect URLs must be absolute");
        let mut c = client();
        c.spec.logout_urls = vec![bad.into()];
        client_refused(&c, "redirect URLs must be absolute");
    }
}

#[test]
fn cel_wants_exactly_one_kind_of_domain_without_reserved_words() {
    let refused = |d: Value, words: &str| {
        let mut p = pool();
        p.spec.domain = Some(serde_json::from_value(d).unwrap());
        let err = p.validate_cel().expect_err("refused").to_string();
        assert!(err.contains(words), "{words:?} not in {err}");
    };
    refused(
        json!({ "prefix": "shop", "customDomain": {
            "domain": "auth.example.com", "certificateArn": "arn:aws:acm:us-east-1:1:certificate/x" } }),
        "exactly one of prefix and customDomain",
    );
    refused(json!({}), "exactly one of prefix and customDomain");
    refused(json!({ "prefix": "mycognito" }), "reserved words");
    let mut p = pool();
    p.spec.domain = Some(
        serde_json::from_value(json!({ "customDomain": {
            "domain": "auth.example.com", "certificateArn": "arn:aws:acm:us-east-1:1:certificate/x" } }))
        .unwrap(),
    );
    p.validate_cel().unwrap();
    // Domains and resource servers may change after creation.
    let old = pool();
    let mut new = old.clone();
    new.spec.domain = None;
    new.spec.resource_servers.clear();
    new.validate_cel_update(&old).unwrap();
}

#[test]
fn oauth_fields_have_the_cognito_names_and_bounds_in_the_schema() {
    let ac = appclient_yaml().unwrap();
    for field in [
        "allowedOAuthFlows:",
        "allowedOAuthScopes:",
        "allowedOAuthFlowsUserPoolClient:",
        "defaultRedirectUri:",
        "supportedIdentityProviders:",
        "- client_credentials",
    ] {
        assert!(ac.contains(field), "{field} missing from the AppClient CRD");
    }
    let up = schema_of(&userpool_yaml().unwrap());
    let rs = &up["properties"]["spec"]["properties"]["resourceServers"];
    assert_eq!(rs["maxItems"], 25);
    assert_eq!(rs["x-kubernetes-list-map-keys"], json!(["identifier"]));
    let domain = &up["properties"]["spec"]["properties"]["domain"];
    assert!(
        domain["properties"]["customDomain"]["required"]
            .as_array()
            .unwrap()
            .contains(&json!("certificateArn"))
    );
}
