//! Operational endpoints: health, readiness, Prometheus metrics per operation.

use crate::common::*;

/// Sum of the Prometheus counter samples (`*_total`) labelled with `op`.
fn counter_sum(metrics: &str, op: &str) -> f64 {
    let label = format!("=\"{op}\"");
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name_labels, value) = l.rsplit_once(' ')?;
            let name = name_labels.split('{').next()?;
            (name.ends_with("_total") && name_labels.contains(&label))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

async fn metrics(d: &Daemon) -> String {
    let resp = http().get(d.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(
        ct.starts_with("text/plain") || ct.starts_with("application/openmetrics-text"),
        "{ct}"
    );
    resp.text().await.unwrap()
}

#[tokio::test]
async fn health_and_readiness() {
    let d = Daemon::start().await;
    for path in ["/healthz", "/readyz"] {
        let resp = http().get(d.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    let resp = http().get(d.url("/no-such-page")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn metrics_count_requests_per_operation() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    create_pool(&c, "m1").await;
    let first = metrics(&d).await;
    let n1 = counter_sum(&first, "CreateUserPool");
    assert!(n1 >= 1.0, "no CreateUserPool counter in:\n{first}");
    create_pool(&c, "m2").await;
    create_pool(&c, "m3").await;
    // Failed calls count too.
    let _ = c
        .describe_user_pool()
        .user_pool_id("us-east-1_NOPOOL000")
        .send()
        .await
        .unwrap_err();
    let second = metrics(&d).await;
    let n2 = counter_sum(&second, "CreateUserPool");
    assert!(
        n2 - n1 >= 2.0,
        "CreateUserPool counter went from {n1} to {n2}"
    );
    assert!(
        counter_sum(&second, "DescribeUserPool") >= 1.0,
        "no DescribeUserPool counter in:\n{second}"
    );
    assert_eq!(
        counter_sum(&second, "SignUp"),
        0.0,
        "SignUp was never called"
    );
}
