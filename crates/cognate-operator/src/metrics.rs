//! Prometheus metrics of the operator: reconciliations by kind and outcome, their
//! duration, and daemon admin calls by operation and outcome.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    operation: &'static str,
    outcome: &'static str,
}

/// Cheap to clone; every clone updates the same series.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    reconciles: Family<ReconcileLabels, Counter>,
    duration: Family<KindLabel, Histogram>,
    calls: Family<CallLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("cognate_operator");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        let duration = Family::<KindLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
        });
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "reconciliations",
            "Reconciliations by kind and outcome",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconciliation",
            duration.clone(),
        );
        registry.register(
            "daemon_calls",
            "Admin API calls to the daemon by operation and outcome",
            calls.clone(),
        );
        Self {
            registry: Arc::new(registry),
            reconciles,
            duration,
            calls,
        }
    }

    pub fn reconciled(&self, kind: &'static str, outcome: &'static str, took: Duration) {
        self.reconciles
            .get_or_create(&ReconcileLabels { kind, outcome })
            .inc();
        self.duration
            .get_or_create(&KindLabel { kind })
            .observe(took.as_secs_f64());
    }

    pub fn daemon_call(&self, operation: &'static str, outcome: &'static str) {
        self.calls
            .get_or_create(&CallLabels { operation, outcome })
            .inc();
    }

    /// How many calls of `operation` ended with `outcome` so far.
    pub fn daemon_calls(&self, operation: &'static str, outcome: &'static str) -> u64 {
        self.calls
            .get_or_create(&CallLabels { operation, outcome })
            .get()
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
