//! The ListUsers `Filter` expression: `attribute = "value"` or `attribute ^= "value"`.
//! Pure parsing, so the API, the console and the fuzz targets share one parser.

use std::fmt;

use crate::DomainError;

/// A parsed ListUsers filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub attribute: String,
    pub value: String,
    /// `^=` (starts with) rather than `=` (equals).
    pub prefix: bool,
}

/// The attributes ListUsers can search, as Cognito documents them.
pub const FILTERABLE: &[&str] = &[
    "username",
    "email",
    "phone_number",
    "name",
    "given_name",
    "family_name",
    "preferred_username",
    "cognito:user_status",
    "status",
    "sub",
];

/// Parses a ListUsers filter; refusals are `InvalidParameterException`s.
pub fn parse(f: &str) -> Result<Filter, DomainError> {
    let bad = || {
        DomainError::invalid(format!(
            "Error while parsing filter {f:?}: expected attribute = \"value\" or attribute ^= \"value\"."
        ))
    };
    let f = f.trim();
    // The operator is the first `=` (no attribute name has one), `^=` when a `^` precedes
    // it; a `^=` inside the quoted value is part of the value.
    let Some(eq) = f.find('=') else {
        return Err(bad());
    };
    let (attr, prefix) = match f[..eq].strip_suffix('^') {
        Some(attr) => (attr, true),
        None => (&f[..eq], false),
    };
    let rest = &f[eq + 1..];
    let attr = attr.trim().trim_matches('"').to_owned();
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .ok_or_else(bad)?;
    let value = inner.replace("\\\"", "\"").replace("\\\\", "\\");
    if !FILTERABLE.contains(&attr.as_str()) {
        return Err(DomainError::invalid(format!(
            "Invalid search attribute: {attr}. Searchable: {}.",
            FILTERABLE.join(", ")
        )));
    }
    Ok(Filter {
        attribute: attr,
        value,
        prefix,
    })
}

/// The filter as a client would write it, value quoted and escaped; [`parse`] reads it
/// back to the same filter.
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quoted = self.value.replace('\\', "\\\\").replace('"', "\\\"");
        let op = if self.prefix { "^=" } else { "=" };
        write!(f, "{} {op} \"{quoted}\"", self.attribute)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse() {
        assert_eq!(
            parse("email ^= \"ali\"").ok(),
            Some(Filter {
                attribute: "email".into(),
                value: "ali".into(),
                prefix: true
            })
        );
        assert_eq!(
            parse("cognito:user_status = \"CONFIRMED\"").ok(),
            Some(Filter {
                attribute: "cognito:user_status".into(),
                value: "CONFIRMED".into(),
                prefix: false
            })
        );
        assert_eq!(
            parse("name=\"a \\\"b\\\"\"").ok().map(|f| f.value),
            Some("a \"b\"".into())
        );
        assert!(parse("custom:x = \"1\"").is_err());
        assert!(parse("email ~ \"x\"").is_err());
        assert!(parse("email = x").is_err());
    }

    /// Found by the `filter` fuzz target: `email = "a^=b"` was split at the `^=` in the
    /// value and refused as a search on the attribute `email = "a`.
    #[test]
    fn operator_characters_in_the_value_are_part_of_it() {
        for (text, value, prefix) in [
            ("email = \"a^=b\"", "a^=b", false),
            ("email ^= \"a^=b\"", "a^=b", true),
            ("email ^= \"a=b\"", "a=b", true),
            ("email=\"=\"", "=", false),
        ] {
            let f = parse(text);
            assert_eq!(
                f.as_ref().map(|f| (f.value.as_str(), f.prefix)),
                Ok((value, prefix)),
                "{text}"
            );
        }
    }

    #[test]
    fn display_parses_back() {
        let f = Filter {
            attribute: "email".into(),
            value: "a\"b\\c".into(),
            prefix: true,
        };
        assert_eq!(parse(&f.to_string()).ok(), Some(f));
    }
}
