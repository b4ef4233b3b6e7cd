//! The attribute schema of a pool: Cognito's standard attributes with their defaults,
//! custom attributes (`custom:` prefix), constraints, and validation of user attributes
//! against it. Once a pool exists its attributes cannot change; new non-required custom
//! attributes may be added.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::error::DomainError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataType {
    String,
    Number,
    DateTime,
    Boolean,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeDef {
    /// Full name: `email`, `custom:tenant`, `dev:custom:x`.
    pub name: String,
    pub data_type: DataType,
    pub developer_only: bool,
    pub mutable: bool,
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_value: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_value: Option<i64>,
}

pub const STANDARD: &[&str] = &[
    "sub",
    "name",
    "given_name",
    "family_name",
    "middle_name",
    "nickname",
    "preferred_username",
    "profile",
    "picture",
    "website",
    "email",
    "email_verified",
    "gender",
    "birthdate",
    "zoneinfo",
    "locale",
    "phone_number",
    "phone_number_verified",
    "address",
    "updated_at",
    "identities",
];

/// Attributes a user may give as username attributes or aliases.
pub const USERNAME_ATTRIBUTES: &[&str] = &["email", "phone_number"];
pub const ALIAS_ATTRIBUTES: &[&str] = &["email", "phone_number", "preferred_username"];

pub fn is_standard(name: &str) -> bool {
    STANDARD.contains(&name)
}

/// Cognito's default definition of a standard attribute.
pub fn standard_default(name: &str) -> Option<AttributeDef> {
    if !is_standard(name) {
        return None;
    }
    let (data_type, min_length, max_length, min_value) = match name {
        "email_verified" | "phone_number_verified" => (DataType::Boolean, None, None, None),
        "updated_at" => (DataType::Number, None, None, Some(0)),
        "sub" => (DataType::String, Some(1), Some(2048), None),
        "birthdate" => (DataType::String, Some(10), Some(10), None),
        _ => (DataType::String, Some(0), Some(2048), None),
    };
    Some(AttributeDef {
        name: name.to_owned(),
        data_type,
        developer_only: false,
        mutable: name != "sub",
        required: name == "sub",
        min_length,
        max_length,
        min_value,
        max_value: None,
    })
}

/// The full default schema of a new pool.
pub fn default_schema() -> Vec<AttributeDef> {
    STANDARD
        .iter()
        .filter_map(|n| standard_default(n))
        .collect()
}

/// Custom attribute names are given without prefix in `CreateUserPool`/`AddCustomAttributes`.
pub fn custom_name(given: &str, developer_only: bool) -> String {
    let bare = given
        .strip_prefix("dev:custom:")
        .or_else(|| given.strip_prefix("custom:"))
        .unwrap_or(given);
    if developer_only {
        format!("dev:custom:{bare}")
    } else {
        format!("custom:{bare}")
    }
}

/// The name under which a user-supplied attribute is looked up in the schema.
pub fn find<'a>(schema: &'a [AttributeDef], name: &str) -> Option<&'a AttributeDef> {
    schema.iter().find(|a| a.name == name)
}

fn fail(name: &str, why: &str) -> DomainError {
    DomainError::invalid(format!(
        "Attributes did not conform to the schema: {name}: {why}"
    ))
}

/// Checks one value against its definition.
pub fn check_value(def: &AttributeDef, value: &str) -> Result<(), DomainError> {
    match def.data_type {
        DataType::String => {
            let n = value.chars().count() as u32;
            if let Some(max) = def.max_length
                && n > max
            {
                return Err(fail(
                    &def.name,
                    &format!("String must be no longer than {max} characters"),
                ));
            }
            if let Some(min) = def.min_length
                && n < min
            {
                return Err(fail(
                    &def.name,
                    &format!("String must be no shorter than {min} characters"),
                ));
            }
            match def.name.as_str() {
                "email" if !value.is_empty() && !valid_email(value) => {
                    return Err(DomainError::invalid("Invalid email address format."));
                }
                "phone_number" if !value.is_empty() && !valid_phone(value) => {
                    return Err(DomainError::invalid(
                        "Invalid phone number format. Phone numbers must follow the E.164 format, e.g. +12065551212.",
                    ));
                }
                "birthdate" if !valid_date(value) => {
                    return Err(fail(
                        &def.name,
                        "Birthdate must be in the format YYYY-MM-DD",
                    ));
                }
                _ => {}
            }
        }
        DataType::Number => {
            let n: f64 = value
                .parse()
                .map_err(|_| fail(&def.name, "Number is not a valid number"))?;
            if let Some(min) = def.min_value
                && n < min as f64
            {
                return Err(fail(
                    &def.name,
                    &format!("Number must be no less than {min}"),
                ));
            }
            if let Some(max) = def.max_value
                && n > max as f64
            {
                return Err(fail(
                    &def.name,
                    &format!("Number must be no greater than {max}"),
                ));
            }
        }
        DataType::Boolean => {
            if value != "true" && value != "false" {
                return Err(fail(&def.name, "Boolean must be true or false"));
            }
        }
        DataType::DateTime => {
            if value.is_empty() || value.chars().count() > 2048 {
                return Err(fail(&def.name, "DateTime is not valid"));
            }
        }
    }
    Ok(())
}

pub fn valid_email(v: &str) -> bool {
    let Some((local, domain)) = v.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !v.chars().any(char::is_whitespace)
}

pub fn valid_phone(v: &str) -> bool {
    let digits = v.strip_prefix('+').unwrap_or("");
    (2..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

fn valid_date(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// Validates attributes a caller wants to set. `creating` applies required checks to the
/// result; `mutable_only` refuses immutable attributes (updates after creation).
pub fn check_attributes(
    schema: &[AttributeDef],
    given: &BTreeMap<String, String>,
    creating: bool,
    mutable_only: bool,
) -> Result<(), DomainError> {
    for (name, value) in given {
        if name == "sub" {
            return Err(fail(name, "Cannot modify the non-mutable attribute sub"));
        }
        let def = find(schema, name)
            .ok_or_else(|| fail(name, "Attribute does not exist in the schema."))?;
        if mutable_only && !def.mutable {
            return Err(fail(
                name,
                &format!("Attribute cannot be updated. (changing an immutable attribute {name})"),
            ));
        }
        check_value(def, value)?;
    }
    if creating {
        for def in schema.iter().filter(|d| d.required && d.name != "sub") {
            if given.get(&def.name).is_none_or(|v| v.is_empty()) {
                return Err(fail(
                    &def.name,
                    &format!("The attribute {} is required", def.name),
                ));
            }
        }
    }
    Ok(())
}

/// Builds a pool's schema from the definitions given at creation: standard attributes
/// take the given settings, others become custom attributes.
pub fn build_schema(given: Vec<AttributeDef>) -> Result<Vec<AttributeDef>, DomainError> {
    let mut schema = default_schema();
    for mut def in given {
        if let Some(std) = schema.iter_mut().find(|a| a.name == def.name) {
            if def.data_type != std.data_type {
                return Err(DomainError::invalid(format!(
                    "Invalid AttributeDataType input, consider using the provided AttributeDataType enum. ({} must be {:?})",
                    def.name, std.data_type
                )));
            }
            if def.name == "sub" && (def.mutable || !def.required) {
                return Err(DomainError::invalid("sub must be required and immutable"));
            }
            if def.min_length.is_none() {
                def.min_length = std.min_length;
            }
            if def.max_length.is_none() {
                def.max_length = std.max_length;
            }
            if def.min_value.is_none() {
                def.min_value = std.min_value;
            }
            *std = def;
        } else {
            add_custom(&mut schema, def)?;
        }
    }
    Ok(schema)
}

/// Adds one custom attribute (creation or `AddCustomAttributes`).
pub fn add_custom(
    schema: &mut Vec<AttributeDef>,
    mut def: AttributeDef,
) -> Result<(), DomainError> {
    let bare = def
        .name
        .strip_prefix("dev:custom:")
        .or_else(|| def.name.strip_prefix("custom:"))
        .unwrap_or(&def.name)
        .to_owned();
    if bare.is_empty() || bare.chars().count() > 20 {
        return Err(DomainError::invalid(format!(
            "Custom attribute name {bare:?} must be between 1 and 20 characters long."
        )));
    }
    if def.required {
        return Err(DomainError::invalid(format!(
            "Required custom attributes are not supported currently. ({bare})"
        )));
    }
    def.name = custom_name(&bare, def.developer_only);
    let plain = custom_name(&bare, false);
    let dev = custom_name(&bare, true);
    if schema.iter().any(|a| a.name == plain || a.name == dev) {
        return Err(DomainError::invalid(format!(
            "Existing attribute already has name {}.",
            def.name
        )));
    }
    if schema.iter().filter(|a| !is_standard(&a.name)).count() >= 50 {
        return Err(DomainError::invalid(
            "A user pool can have at most 50 custom attributes.",
        ));
    }
    if def.data_type == DataType::String && def.max_length.is_none() {
        def.max_length = Some(2048);
    }
    schema.push(def);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn custom(name: &str, t: DataType) -> AttributeDef {
        AttributeDef {
            name: name.into(),
            data_type: t,
            developer_only: false,
            mutable: true,
            required: false,
            min_length: None,
            max_length: Some(5),
            min_value: None,
            max_value: Some(10),
        }
    }

    #[test]
    fn build_schema_overrides_standard_and_prefixes_custom() {
        let mut email = standard_default("email").unwrap_or_else(|| unreachable!());
        email.required = true;
        let s = build_schema(vec![email, custom("tenant", DataType::String)]).unwrap_or_default();
        assert!(find(&s, "email").is_some_and(|d| d.required));
        assert!(find(&s, "custom:tenant").is_some_and(|d| d.max_length == Some(5)));
        assert!(find(&s, "tenant").is_none());
    }

    #[test]
    fn required_custom_and_duplicates_are_refused() {
        let mut s = default_schema();
        let mut req = custom("x", DataType::String);
        req.required = true;
        assert!(add_custom(&mut s, req).is_err());
        assert!(add_custom(&mut s, custom("x", DataType::String)).is_ok());
        assert!(add_custom(&mut s, custom("x", DataType::Number)).is_err());
    }

    #[test]
    fn attribute_checks() {
        let mut email = standard_default("email").unwrap_or_else(|| unreachable!());
        email.required = true;
        let s = build_schema(vec![
            email,
            custom("age", DataType::Number),
            custom("t", DataType::String),
        ])
        .unwrap_or_default();
        let m = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert!(check_attributes(&s, &m(&[("email", "a@b.c")]), true, false).is_ok());
        let e = check_attributes(&s, &m(&[("name", "x")]), true, false).err();
        assert!(e.is_some_and(|e| e.message.contains("email is required")));
        assert!(
            check_attributes(
                &s,
                &m(&[("email", "a@b.c"), ("custom:nope", "1")]),
                true,
                false
            )
            .is_err()
        );
        assert!(
            check_attributes(
                &s,
                &m(&[("email", "a@b.c"), ("custom:age", "11")]),
                true,
                false
            )
            .is_err()
        );
        assert!(
            check_attributes(
                &s,
                &m(&[("email", "a@b.c"), ("custom:age", "ten")]),
                true,
                false
            )
            .is_err()
        );
        assert!(
            check_attributes(
                &s,
                &m(&[("email", "a@b.c"), ("custom:t", "toolong")]),
                true,
                false
            )
            .is_err()
        );
        assert!(check_attributes(&s, &m(&[("email", "not-an-email")]), true, false).is_err());
        assert!(
            check_attributes(
                &s,
                &m(&[("phone_number", "+14155550100"), ("email", "a@b.c")]),
                true,
                false
            )
            .is_ok()
        );
        assert!(
            check_attributes(
                &s,
                &m(&[("phone_number", "555-0100"), ("email", "a@b.c")]),
                true,
                false
            )
            .is_err()
        );
        assert!(check_attributes(&s, &m(&[("sub", "x")]), false, true).is_err());
    }
}
