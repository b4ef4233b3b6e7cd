//! Small helpers: the clock, id generation, masking of delivery destinations, and the
//! (de)serialisation of opaque stored settings.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use cognate_domain::{Millis, ids};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

/// Seconds as AWS JSON timestamps (epoch seconds, fractional).
pub fn epoch(ms: Millis) -> f64 {
    ms as f64 / 1000.0
}

pub fn new_sub() -> String {
    let b = cognate_crypto::random_bytes(16);
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    ids::uuid_v4(a)
}

pub fn new_pool_id(region: &str) -> String {
    ids::pool_id(
        region,
        &cognate_crypto::random_string(ids::POOL_SUFFIX_LEN, ids::ALNUM),
    )
}

pub fn new_client_id() -> String {
    cognate_crypto::random_string(ids::CLIENT_ID_LEN, ids::LOWER_ALNUM)
}

/// `a***@e***` as Cognito shows email destinations.
pub fn mask_email(email: &str) -> String {
    let (local, domain) = email.split_once('@').unwrap_or((email, ""));
    let first = |s: &str| s.chars().next().map(String::from).unwrap_or_default();
    format!("{}***@{}***", first(local), first(domain))
}

/// `+*******0100`: only the last four digits.
pub fn mask_phone(phone: &str) -> String {
    let n = phone.chars().count();
    phone
        .chars()
        .enumerate()
        .map(|(i, c)| if i == 0 || i + 4 >= n { c } else { '*' })
        .collect()
}

pub fn put_setting<T: Serialize>(map: &mut BTreeMap<String, Value>, name: &str, value: &Option<T>) {
    if let Some(v) = value
        && let Ok(j) = serde_json::to_value(v)
    {
        map.insert(name.to_owned(), j);
    }
}

pub fn get_setting<T: DeserializeOwned>(map: &BTreeMap<String, Value>, name: &str) -> Option<T> {
    map.get(name)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(mask_email("alice@example.com"), "a***@e***");
        assert_eq!(mask_phone("+14155550100"), "+*******0100");
        assert_eq!(new_client_id().len(), 26);
        assert!(new_pool_id("us-east-1").starts_with("us-east-1_"));
        assert_eq!(new_pool_id("eu-west-1").len(), "eu-west-1_".len() + 9);
    }
}
