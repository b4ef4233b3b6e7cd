//! Status conditions merged by `type`: a condition keeps its `lastTransitionTime` while
//! its status stays the same, so `kubectl wait` and dashboards see real transitions.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

pub const READY: &str = "Ready";
pub const SCHEMA_ACCEPTED: &str = "SchemaAccepted";

/// A condition to set; `merge` fills in generation and transition time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cond {
    pub type_: &'static str,
    pub ok: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Cond {
    pub fn new(
        type_: &'static str,
        ok: bool,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            ok,
            reason,
            message: message.into(),
        }
    }
}

/// `old` with every condition in `set` replaced (by type) or added, sorted by type.
pub fn merge(
    old: &[Condition],
    set: &[Cond],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let mut out: Vec<Condition> = old
        .iter()
        .filter(|c| !set.iter().any(|s| s.type_ == c.type_))
        .cloned()
        .collect();
    for s in set {
        let status = if s.ok { "True" } else { "False" };
        let since = old
            .iter()
            .find(|c| c.type_ == s.type_ && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or(Time(now));
        out.push(Condition {
            type_: s.type_.to_owned(),
            status: status.to_owned(),
            reason: s.reason.to_owned(),
            message: s.message.clone(),
            observed_generation: generation,
            last_transition_time: since,
        });
    }
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

/// The condition of `type_` in `conds`, if any.
pub fn find<'a>(conds: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conds.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keeps_transition_time_while_status_is_unchanged() {
        let t0: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2024-01-02T00:00:00Z".parse().unwrap();
        let a = merge(
            &[],
            &[Cond::new(READY, false, "Creating", "x")],
            Some(1),
            t0,
        );
        let b = merge(
            &a,
            &[Cond::new(READY, false, "DaemonUnreachable", "y")],
            Some(2),
            t1,
        );
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].last_transition_time.0, t0);
        assert_eq!(b[0].reason, "DaemonUnreachable");
        assert_eq!(b[0].observed_generation, Some(2));
        let c = merge(&b, &[Cond::new(READY, true, "Reconciled", "")], Some(2), t1);
        assert_eq!(c[0].last_transition_time.0, t1);
        assert_eq!(c[0].status, "True");
    }

    #[test]
    fn merges_by_type_and_keeps_others() {
        let t0 = Timestamp::UNIX_EPOCH;
        let a = merge(
            &[],
            &[
                Cond::new(READY, true, "R", ""),
                Cond::new(SCHEMA_ACCEPTED, true, "S", ""),
            ],
            None,
            t0,
        );
        let b = merge(
            &a,
            &[Cond::new(
                SCHEMA_ACCEPTED,
                false,
                "ImmutableFieldChanged",
                "m",
            )],
            None,
            t0,
        );
        assert_eq!(b.len(), 2);
        assert_eq!(find(&b, READY).unwrap().status, "True");
        assert_eq!(find(&b, SCHEMA_ACCEPTED).unwrap().status, "False");
    }
}
