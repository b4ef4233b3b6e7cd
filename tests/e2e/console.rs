//! The admin console in headless Chromium (fantoccini against chromedriver on a free
//! port): sign in, find a user, disable and enable them with the effect checked through
//! the AWS SDK, confirm an unconfirmed user, reset a password and finish the reset as
//! the user, read the timeline, use the keyboard and a narrow screen, create a domain,
//! a resource server and a client's OAuth settings, and follow the client's hosted-login
//! link to its sign-in page. Every page is
//! saved as a PNG in `target/console-screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (scripts/test.sh installs them); the
//! test installs nothing itself.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client as WebDriver, ClientBuilder, Locator};
use serde_json::Map;

use crate::common::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver (and the Chromium it starts) in its own process group, killed in `Drop`.
struct Browser {
    driver: Child,
    wd: Option<WebDriver>,
    _profile: tempfile::TempDir,
    shots: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
        });
    target.join("console-screenshots")
}

impl Browser {
    async fn start() -> Browser {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: install it with `apt-get install -y chromium chromium-driver` (scripts/test.sh does)"
            );
        }
        let profile = tempfile::Builder::new()
            .prefix("cognate-chromium-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let mut cmd = Command::new(CHROMEDRIVER);
        cmd.arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let driver = cmd.spawn().unwrap();
        let mut caps = Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let mut browser = Browser {
            driver,
            wd: None,
            _profile: profile,
            shots: screenshot_dir(),
        };
        std::fs::create_dir_all(&browser.shots).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let wd = loop {
            match ClientBuilder::rustls()
                .unwrap()
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(wd) => break wd,
                Err(e) if std::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("chromedriver did not start a session: {e}"),
            }
        };
        browser.wd = Some(wd);
        browser
    }

    fn wd(&self) -> &WebDriver {
        self.wd.as_ref().unwrap()
    }

    async fn shot(&self, name: &str) {
        let png = self.wd().screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    async fn shot_of(&self, css: &str, name: &str) {
        let png = self
            .wd()
            .find(Locator::Css(css))
            .await
            .unwrap()
            .screenshot()
            .await
            .unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    async fn text(&self, css: &str) -> String {
        self.wd()
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    /// Clicks what `locator` finds and waits until the next page has replaced this one.
    async fn click_on(&self, locator: Locator<'_>) {
        let wd = self.wd();
        let old = wd.find(Locator::Css("html")).await.unwrap();
        wd.find(locator)
            .await
            .unwrap_or_else(|e| panic!("{locator:?}: {e}"))
            .click()
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while old.tag_name().await.is_ok() {
            assert!(
                std::time::Instant::now() < deadline,
                "no navigation after clicking {locator:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        wd.wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css("footer.foot"))
            .await
            .unwrap();
    }

    async fn click(&self, css: &str) {
        self.click_on(Locator::Css(css)).await;
    }

    async fn follow(&self, link_text: &str) {
        self.click_on(Locator::LinkText(link_text)).await;
    }

    async fn fill(&self, css: &str, value: &str) {
        let e = self.wd().find(Locator::Css(css)).await.unwrap();
        e.clear().await.unwrap();
        e.send_keys(value).await.unwrap();
    }

    /// The path of the current page.
    async fn path(&self) -> String {
        self.wd().current_url().await.unwrap().path().to_owned()
    }

    async fn close(mut self) {
        if let Some(wd) = self.wd.take() {
            let _ = wd.close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver leads its own process group, which holds Chromium too: end them
        // all. `--` makes `-PGID` a process group, not an option (without it, procps
        // reads `-KILL -PGID` as `kill -1`: every process of the user).
        let pgid = self.driver.id();
        if pgid > 1 {
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{pgid}")])
                .status();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

async fn try_login(
    c: &Client,
    client: &str,
    username: &str,
    password: &str,
) -> Result<
    cip::operation::initiate_auth::InitiateAuthOutput,
    SdkError<cip::operation::initiate_auth::InitiateAuthError>,
> {
    c.initiate_auth()
        .auth_flow(AuthFlowType::UserPasswordAuth)
        .client_id(client)
        .auth_parameters("USERNAME", username)
        .auth_parameters("PASSWORD", password)
        .send()
        .await
}

/// Searches the pool's users in the console and opens the one called `username`.
async fn open_user(b: &Browser, d: &Daemon, pool: &str, attr: &str, value: &str, username: &str) {
    b.wd()
        .goto(&d.url(&format!("/console/pools/{pool}/users")))
        .await
        .unwrap();
    b.wd()
        .find(Locator::Id("attr"))
        .await
        .unwrap()
        .select_by_value(attr)
        .await
        .unwrap();
    b.fill("#q", value).await;
    b.click("form.search button[type=submit]").await;
    let results = b.text("#results").await;
    assert!(results.contains(username), "{results}");
    b.follow(username).await;
    let h1 = b.text("h1").await;
    assert!(h1.starts_with(username), "{h1}");
}

#[tokio::test]
async fn console_manages_users_in_chromium() {
    let f = Fixture::new().await;
    let (d, c, pool, client) = (&f.d, &f.c, &f.pool, &f.client);
    f.user("alice").await;
    f.user("alfred").await;
    // bob signs up but never receives his code.
    c.sign_up()
        .client_id(client)
        .username("bob")
        .password(PASSWORD)
        .user_attributes(attr("email", "bob@example.com"))
        .send()
        .await
        .unwrap();
    login(c, client, "alice", PASSWORD).await;
    assert_code(
        try_login(c, client, "alice", "Wr0ng-password!").await,
        "NotAuthorizedException",
    );

    let b = Browser::start().await;
    b.wd().goto(&d.url("/console")).await.unwrap();
    assert_eq!(b.path().await, "/console/login");

    // Keyboard: the name field has the focus; Tab moves to the secret, and the focused
    // control shows a visible focus ring.
    let focused = b.wd().active_element().await.unwrap();
    assert_eq!(focused.attr("id").await.unwrap().as_deref(), Some("name"));
    focused.send_keys("\u{E004}").await.unwrap();
    let focused = b.wd().active_element().await.unwrap();
    assert_eq!(focused.attr("id").await.unwrap().as_deref(), Some("secret"));
    assert_eq!(focused.css_value("outline-style").await.unwrap(), "solid");
    b.shot("01-sign-in").await;

    // A wrong secret is refused, the right one signs in.
    b.fill("#name", d.admin_access_key()).await;
    b.fill("#secret", "not-the-secret").await;
    b.click("button.primary").await;
    assert!(b.text("#login-error").await.contains("Sign-in failed"));
    b.fill("#name", d.admin_access_key()).await;
    b.fill("#secret", d.admin_secret()).await;
    b.click("button.primary").await;
    assert_eq!(b.path().await, "/console/pools");
    let pools = b.text("main").await;
    assert!(
        pools.contains(pool.as_str()) && pools.contains("fixture"),
        "{pools}"
    );
    b.shot("02-pools").await;

    b.follow("fixture").await;
    assert!(b.text("#clients-h").await.contains("App clients"));
    assert!(b.text("main").await.contains(client.as_str()));
    b.shot("03-pool").await;

    // Search (prefix on email) and open alice.
    b.follow("Find users").await;
    b.fill("#q", "al").await;
    b.click("form.search button[type=submit]").await;
    let results = b.text("#results").await;
    assert!(results.contains("alice") && results.contains("alfred") && !results.contains("bob"));
    b.shot("04-search").await;
    b.follow("alice").await;
    assert!(b.text("h1").await.starts_with("alice"));
    b.shot("05-user").await;

    // Disable: the API refuses alice's sign-in; enable: she signs in again.
    b.click("#btn-disable").await;
    assert!(b.text("#flash").await.contains("alice is disabled"));
    assert_eq!(b.text("#user-enabled").await, "disabled");
    b.shot("06-user-disabled").await;
    let msg = assert_code(
        try_login(c, client, "alice", PASSWORD).await,
        "NotAuthorizedException",
    );
    assert!(msg.contains("disabled"), "{msg}");
    b.click("#btn-enable").await;
    assert!(b.text("#flash").await.contains("alice is enabled"));
    login(c, client, "alice", PASSWORD).await;

    // Confirm bob, whose code never arrived; he can sign in afterwards.
    assert_code(
        try_login(c, client, "bob", PASSWORD).await,
        "UserNotConfirmedException",
    );
    open_user(&b, d, pool, "username", "bob", "bob").await;
    assert_eq!(b.text("#user-status").await, "UNCONFIRMED");
    b.click("#btn-confirm").await;
    assert!(b.text("#flash").await.contains("bob is confirmed"));
    assert_eq!(b.text("#user-status").await, "CONFIRMED");
    login(c, client, "bob", PASSWORD).await;

    // Reset alice's password: her old one stops working; she resets with the code.
    open_user(&b, d, pool, "email", "alice@example.com", "alice").await;
    b.click("#btn-reset").await;
    assert!(b.text("#flash").await.contains("must reset their password"));
    assert_eq!(b.text("#user-status").await, "RESET_REQUIRED");
    assert_code(
        try_login(c, client, "alice", PASSWORD).await,
        "PasswordResetRequiredException",
    );
    let code = d.wait_code(pool, "alice", "ForgotPassword").await;
    c.confirm_forgot_password()
        .client_id(client)
        .username("alice")
        .confirmation_code(code)
        .password(OTHER_PASSWORD)
        .send()
        .await
        .unwrap();
    login(c, client, "alice", OTHER_PASSWORD).await;

    // The timeline tells the whole story, with who did what.
    b.wd().refresh().await.unwrap();
    let timeline = b.text("#timeline").await;
    for what in [
        "Signed up",
        "Confirmed",
        "Signed in",
        "Sign-in failed",
        "Disabled",
        "Enabled",
        "Password reset required",
        "Password set",
    ] {
        assert!(timeline.contains(what), "{what} missing from:\n{timeline}");
    }
    assert!(
        timeline.contains(&format!("by admin key {}", d.admin_access_key())),
        "{timeline}"
    );
    b.shot_of("#timeline-h", "07-timeline-heading").await;
    b.wd()
        .execute(
            "document.getElementById('timeline-h').scrollIntoView()",
            vec![],
        )
        .await
        .unwrap();
    b.shot("07-timeline").await;

    // A narrow screen still shows everything without horizontal scrolling of the page.
    b.wd().set_window_size(390, 844).await.unwrap();
    b.wd()
        .goto(&d.url(&format!("/console/pools/{pool}/users?attr=email&q=a")))
        .await
        .unwrap();
    b.shot("08-search-narrow").await;
    b.follow("alice").await;
    let overflow = b
        .wd()
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(overflow, json!(true), "the user page fits a 390px screen");
    b.shot("09-user-narrow").await;
    b.wd().set_window_size(1280, 900).await.unwrap();

    // The pool's domain, a resource server and the client's OAuth settings, all through
    // the pages; then the client's hosted-login link opens its sign-in page.
    b.wd()
        .goto(&d.url(&format!("/console/pools/{pool}")))
        .await
        .unwrap();
    assert!(b.text("#no-domain").await.contains("No domain"));
    b.fill("#dom-name", "shop-e2e").await;
    b.wd()
        .find(Locator::Id("dom-version"))
        .await
        .unwrap()
        .select_by_value("2")
        .await
        .unwrap();
    b.click("form[action$='/domain/create'] button[type=submit]")
        .await;
    assert!(
        b.text("#flash").await.contains("Domain shop-e2e created"),
        "{}",
        b.text("#flash").await
    );
    let domain = c
        .describe_user_pool_domain()
        .domain("shop-e2e")
        .send()
        .await
        .unwrap()
        .domain_description
        .unwrap();
    assert_eq!(domain.user_pool_id(), Some(pool.as_str()));
    assert_eq!(domain.managed_login_version(), Some(2));
    // The resource server form is folded away until opened.
    b.wd()
        .find(Locator::XPath(
            "//summary[normalize-space()='Create a resource server']",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.fill("#rs-identifier", "https://api.example.com").await;
    b.fill("#rs-name", "Orders API").await;
    b.fill("#rs-scopes", "read Read orders\nwrite Change orders")
        .await;
    b.click("form[action$='/resource-servers/create'] button[type=submit]")
        .await;
    assert!(
        b.text("#flash")
            .await
            .contains("Resource server https://api.example.com created"),
        "{}",
        b.text("#flash").await
    );
    let servers = b.text("#servers").await;
    assert!(
        servers.contains("https://api.example.com/read") && servers.contains("Change orders"),
        "{servers}"
    );
    b.wd()
        .execute(
            "document.getElementById('domain-h').scrollIntoView()",
            vec![],
        )
        .await
        .unwrap();
    b.shot("10-pool-domain-and-resource-servers").await;

    b.click(&format!("a[href='/console/pools/{pool}/clients/{client}']"))
        .await;
    assert!(
        b.text("#no-hosted-login")
            .await
            .contains("OAuth is not allowed")
    );
    // Keyboard: from the OAuth switch, Tab goes on to the first flow of its fieldset.
    b.wd()
        .find(Locator::Id("oauth-on"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wd()
        .active_element()
        .await
        .unwrap()
        .send_keys("\u{E004}")
        .await
        .unwrap();
    let focused = b.wd().active_element().await.unwrap();
    assert_eq!(
        focused.attr("id").await.unwrap().as_deref(),
        Some("oflow-code")
    );
    for id in ["oflow-code", "idp-COGNITO"] {
        b.wd()
            .find(Locator::Id(id))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }
    for scope in ["openid", "https://api.example.com/read"] {
        b.wd()
            .find(Locator::Css(&format!("input[name=scope][value='{scope}']")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }
    let callback = format!("http://localhost:{}/callback", free_port());
    b.fill("#callbacks", &callback).await;
    b.click("form[action$='/oauth'] button[type=submit]").await;
    assert!(
        b.text("#flash")
            .await
            .contains("OAuth settings of app client"),
        "{}",
        b.text("#flash").await
    );
    let described = c
        .describe_user_pool_client()
        .user_pool_id(pool)
        .client_id(client)
        .send()
        .await
        .unwrap()
        .user_pool_client
        .unwrap();
    assert_eq!(described.callback_urls(), std::slice::from_ref(&callback));
    assert_eq!(
        described.allowed_o_auth_scopes(),
        [
            "openid".to_owned(),
            "https://api.example.com/read".to_owned()
        ]
    );
    assert_eq!(
        described.allowed_o_auth_flows_user_pool_client(),
        Some(true)
    );
    // The client's other settings were passed through: alice still signs in with it.
    login(c, client, "alice", OTHER_PASSWORD).await;
    // A refusal of the service is shown and saves nothing.
    b.wd()
        .find(Locator::Id("oflow-client_credentials"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.click("form[action$='/oauth'] button[type=submit]").await;
    let flash = b.text("#flash").await;
    assert!(flash.contains("InvalidOAuthFlowException"), "{flash}");
    assert_eq!(
        b.wd()
            .find(Locator::Id("oflow-client_credentials"))
            .await
            .unwrap()
            .prop("checked")
            .await
            .unwrap()
            .as_deref(),
        Some("false")
    );
    b.shot("11-client-oauth").await;

    let link = b
        .wd()
        .find(Locator::Id("hosted-login"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert!(
        link.starts_with(&d.url("/domains/shop-e2e/login?"))
            && link.contains("response_type=code")
            && link.contains("scope=openid%20https%3A%2F%2Fapi.example.com%2Fread"),
        "{link}"
    );
    b.wd()
        .find(Locator::Id("hosted-login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wd()
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#login-form input#password"))
        .await
        .unwrap();
    assert_eq!(b.path().await, "/domains/shop-e2e/login");
    b.shot("12-hosted-login").await;
    // Signing in there sends the browser to the callback URL with a code.
    b.fill("#username", "alice").await;
    b.fill("#password", OTHER_PASSWORD).await;
    b.wd()
        .find(Locator::Css("#login-form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let url = b.wd().current_url().await.unwrap();
        if url.as_str().starts_with(&callback) {
            assert!(
                url.query_pairs().any(|(k, v)| k == "code" && !v.is_empty()),
                "{url}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no redirect to the callback: {url}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.wd().goto(&d.url("/console/pools")).await.unwrap();

    // Sign out: the session is gone.
    b.click(".who button").await;
    assert_eq!(b.path().await, "/console/login");
    b.wd().goto(&d.url("/console/pools")).await.unwrap();
    assert_eq!(b.path().await, "/console/login");
    b.close().await;
}
