//! The cognate operator as a library: reconcilers that turn `UserPool` and `AppClient`
//! resources into daemon state through the daemon's Cognito admin API (SigV4, like any
//! client), write app-client credentials into Secrets, and report what they did in
//! status conditions, Events and Prometheus metrics. The `cognate-operator` binary only
//! wires these parts together (shaped after kube-rs/controller-rs).

pub mod admin;
pub mod appclient;
pub mod conditions;
pub mod context;
pub mod http;
pub mod lease;
pub mod metrics;
pub mod oauth;
pub mod userpool;

pub use context::{Context, DaemonDefaults};

/// Field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "cognate-operator";
/// Finalizer on UserPools and AppClients, so deletion goes through the operator.
pub const FINALIZER: &str = "cognate.io/cleanup";

/// Everything a reconcile can fail with. Matched by kind by the error policy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The daemon could not be reached (connection refused, timeout, DNS).
    #[error("daemon unreachable: {0}")]
    DaemonUnreachable(#[source] admin::AdminError),
    /// The daemon answered with a Cognito error.
    #[error("daemon refused {op}: {source}")]
    Daemon {
        op: &'static str,
        #[source]
        source: admin::AdminError,
    },
    /// A call to the Kubernetes API failed.
    #[error("kubernetes: {0}")]
    Kube(#[source] kube::Error),
    /// The admin credentials could not be found.
    #[error("credentials: {0}")]
    Credentials(String),
    /// The pool refuses deletion (deletion protection is on).
    #[error("deletion protection is on for pool {0}")]
    DeletionProtected(String),
    /// Something that should be there is missing (a resource without a namespace, …).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// Wraps an admin-client error from `op`, separating "unreachable" from "refused".
    pub fn from_admin(op: &'static str, e: admin::AdminError) -> Self {
        if e.is_unreachable() {
            Self::DaemonUnreachable(e)
        } else {
            Self::Daemon { op, source: e }
        }
    }

    /// A short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::DaemonUnreachable(_) => "daemon_unreachable",
            Self::Daemon { .. } => "daemon_error",
            Self::Kube(_) => "kube_error",
            Self::Credentials(_) => "credentials",
            Self::DeletionProtected(_) => "deletion_protected",
            Self::Invalid(_) => "invalid",
        }
    }
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        Self::Kube(e)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs both controllers until shutdown (the binary calls this once it leads).
pub async fn run_controllers(ctx: std::sync::Arc<Context>) {
    futures::future::join(
        userpool::controller(ctx.clone()),
        appclient::controller(ctx),
    )
    .await;
}
