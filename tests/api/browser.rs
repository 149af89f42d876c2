//! The emailed password-reset link's page (API.md §4) in a real headless browser:
//! Debian's chromium, driven through chromedriver with fantoccini.
//!
//! Each test starts chromedriver on a free port with a fresh browser profile, as a phone
//! (a 390×844 viewport). Screenshots go to `test-artifacts/` at the repo root.
//!
//! Without `/usr/bin/chromedriver` the tests print "skipped: …" and pass, unless
//! `GATEHOUSE_BROWSER_TESTS=required` (as CI sets it), when they fail.

use crate::helpers::*;
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use hyper_util::client::legacy::connect::HttpConnector;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::future::Future;
use std::io::Write;
use std::net::TcpListener;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// A phone's viewport width, in CSS pixels.
const PHONE_WIDTH: u32 = 390;
const PHONE_HEIGHT: u32 = 844;
/// How long the browser may take to show a page, and the mail worker to deliver.
pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// A chromedriver process of this test's own; killed (with its browser) on drop.
pub(crate) struct Driver {
    child: Child,
    url: String,
    log: PathBuf,
    /// Holds the browser profile and the driver's log; removed after the kill.
    dir: TempDir,
}

impl Driver {
    /// Starts chromedriver, or returns `None` (having said so) when the machine has none
    /// and the browser tests are not required.
    pub(crate) async fn start() -> Option<Driver> {
        if !Path::new(CHROMEDRIVER).exists() {
            let required = std::env::var("GATEHOUSE_BROWSER_TESTS").is_ok_and(|v| v == "required");
            assert!(
                !required,
                "GATEHOUSE_BROWSER_TESTS=required but {CHROMEDRIVER} is missing \
                 (Debian: apt-get install chromium chromium-driver)"
            );
            // Straight to stderr, past the test harness's capture: a skip should show.
            let _ = writeln!(
                std::io::stderr(),
                "skipped: {CHROMEDRIVER} not found (install Debian's chromium and \
                 chromium-driver, or set GATEHOUSE_BROWSER_TESTS=required to fail instead)"
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("chromedriver.log");
        let port = free_port();
        let mut command = Command::new(CHROMEDRIVER);
        command
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group, so that the drop can end the browser with it.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().expect("start chromedriver");
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            dir,
        };
        driver.wait_until_ready().await;
        Some(driver)
    }

    async fn wait_until_ready(&self) {
        let deadline = Instant::now() + WAIT;
        let client = reqwest::Client::new();
        loop {
            let status = client.get(format!("{}/status", self.url)).send().await;
            if let Ok(response) = status {
                let body: Value = response.json().await.unwrap_or_default();
                if body["value"]["ready"] == json!(true) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not start on {}:\n{}",
                self.url,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A new browser session: headless chromium with a fresh profile, as a phone.
    pub(crate) async fn connect(&self) -> Client {
        let profile = self.dir.path().join("profile");
        let capabilities = json!({
            // The console, where chromium reports what a Content-Security-Policy refused
            // (read with `console_messages`).
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    format!("--user-data-dir={}", profile.display()),
                    format!("--window-size={PHONE_WIDTH},{PHONE_HEIGHT}"),
                ],
                // Chromium's windows are at least 500 px wide, even headless: the phone's
                // viewport (and its handling of `<meta name="viewport">`) is emulated.
                "mobileEmulation": {
                    "deviceMetrics": {
                        "width": PHONE_WIDTH,
                        "height": PHONE_HEIGHT,
                        "pixelRatio": 3.0,
                        "mobile": true,
                        "touch": true,
                    },
                },
            }
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("an object literal")
        };
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start chromium through chromedriver: {e}\n{}",
                    self.log_text()
                )
            })
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: chromedriver and any browser left behind by a failed test.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// Runs `test` with a browser session, closed afterwards even when the test fails; does
/// nothing when the browser tests are skipped.
pub(crate) async fn in_browser<F, Fut>(test: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(driver) = Driver::start().await else {
        return;
    };
    let client = driver.connect().await;
    let outcome = AssertUnwindSafe(test(client.clone())).catch_unwind().await;
    let _ = client.close().await;
    drop(driver);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// The emailed reset link: its uid, token and URL, read from the file backend's `.eml`.
struct Link {
    uid: String,
    token: String,
    url: String,
}

/// Registers `username`, asks for a reset over HTTP and reads the link from the mail.
async fn reset_link(app: &TestApp, username: &str) -> Link {
    app.register_ok(username).await;
    let reply = app
        .post_json(
            "/api/reset_password/",
            json!({"email": format!("{username}@example.com")}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let mail = wait_for_mail(&app.dir.path().join("mail")).await;
    let line = |prefix: &str| {
        mail.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| panic!("no {prefix:?} line in the mail:\n{mail}"))
    };
    let (uid, token) = (line("uid:"), line("token:"));
    let url = mail
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("http") && l.contains("/api/reset_password/confirm/?"))
        .unwrap_or_else(|| panic!("no reset link in the mail:\n{mail}"))
        .to_owned();
    assert!(
        url.starts_with(&app.address),
        "{url} is not on {}",
        app.address
    );
    assert!(url.contains(&token), "{url} has not the token {token}");
    Link { uid, token, url }
}

/// The one `.eml` the mail worker writes, waited for.
async fn wait_for_mail(dir: &Path) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let mails: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        if let [mail] = mails.as_slice() {
            return std::fs::read_to_string(mail).expect("read the mail");
        }
        assert!(mails.len() <= 1, "more than one mail: {mails:?}");
        assert!(Instant::now() < deadline, "no mail in {}", dir.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Saves a screenshot of the browser's page as `test-artifacts/<name>.png`.
pub(crate) async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("create test-artifacts/");
    let suffix = if is_postgres() { "-postgres" } else { "" };
    std::fs::write(dir.join(format!("{name}{suffix}.png")), png).expect("save the screenshot");
}

/// Waits for the element with `id` (on the page a navigation or a form post leads to).
pub(crate) async fn wait_for_id(client: &Client, id: &str) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Id(id))
        .await
        .unwrap_or_else(|e| {
            panic!("no #{id} on the page: {e}");
        })
}

async fn text_of(client: &Client, id: &str) -> String {
    wait_for_id(client, id).await.text().await.expect("text")
}

/// Types `password` into the form's field and submits it with the button.
async fn submit_password(client: &Client, password: &str) {
    let field = wait_for_id(client, "new_password").await;
    field.clear().await.expect("clear the field");
    field.send_keys(password).await.expect("type the password");
    client
        .find(Locator::Css("form button[type=submit]"))
        .await
        .expect("the submit button")
        .click()
        .await
        .expect("submit");
}

pub(crate) async fn run(client: &Client, script: &str) -> Value {
    client
        .execute(script, Vec::new())
        .await
        .unwrap_or_else(|e| panic!("{script}: {e}"))
}

/// The browser console's messages since the last call (chromedriver's log endpoint, which
/// fantoccini has no method for), e.g. "Refused to load … because it violates the following
/// Content Security Policy directive".
pub(crate) async fn console_messages(client: &Client) -> Vec<String> {
    #[derive(Debug)]
    struct BrowserLog;
    impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
        fn endpoint(
            &self,
            base_url: &url::Url,
            session_id: Option<&str>,
        ) -> Result<url::Url, url::ParseError> {
            base_url.join(&format!(
                "session/{}/se/log",
                session_id.unwrap_or_default()
            ))
        }
        fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
            (
                axum::http::Method::POST,
                Some(json!({"type": "browser"}).to_string()),
            )
        }
    }
    let log = client
        .issue_cmd(BrowserLog)
        .await
        .unwrap_or_else(|e| panic!("read the browser's console: {e}"));
    log.as_array()
        .into_iter()
        .flatten()
        .map(|entry| entry["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// JavaScript that adds to `found` every URL the current page refers to or fetched from
/// outside its own origin.
const FIND_OUTSIDE: &str = "const origin = location.origin;
     const outside = (u) => new URL(u, location.href).origin !== origin;
     for (const e of document.querySelectorAll('[src], [href], [srcset], [action]')) {
         for (const a of ['src', 'href', 'action']) {
             const v = e.getAttribute(a);
             if (v !== null && outside(v)) found.push(e.tagName + ' ' + a + '=' + v);
         }
         if (e.hasAttribute('srcset')) found.push(e.tagName + ' srcset');
     }
     for (const r of performance.getEntriesByType('resource')) {
         if (outside(r.name)) found.push('fetched ' + r.name);
     }";

/// Everything the current page refers to or fetched from outside its own origin, and
/// any script it has.
pub(crate) async fn outside_references(client: &Client) -> Value {
    let script = format!(
        "const found = [];
         for (const s of document.querySelectorAll('script')) found.push('script ' + s.outerHTML);
         {FIND_OUTSIDE}
         return found;"
    );
    run(client, &script).await
}

/// Everything the current page refers to or fetched from outside its own origin.
pub(crate) async fn outside_urls(client: &Client) -> Value {
    run(
        client,
        &format!("const found = []; {FIND_OUTSIDE} return found;"),
    )
    .await
}

#[tokio::test]
async fn the_emailed_link_resets_the_password_in_a_browser() {
    in_browser(|client| async move {
        let app = spawn_app().await;
        let link = reset_link(&app, "monica").await;

        client.goto(&link.url).await.expect("open the link");
        wait_for_id(&client, "new_password").await;
        assert_eq!(client.title().await.expect("title"), "Enter new password");
        screenshot(&client, "reset-page-1-form").await;

        submit_password(&client, "12345678").await;
        let errors = text_of(&client, "errors").await;
        assert!(errors.contains("too common"), "errors shown: {errors:?}");
        screenshot(&client, "reset-page-2-errors").await;
        // The refused password changed nothing.
        assert_eq!(
            app.login("monica", STRONG_PASSWORD).await.status,
            StatusCode::OK
        );

        let new_password = "Chandler-and-Monica-1999";
        submit_password(&client, new_password).await;
        let result = text_of(&client, "result").await;
        assert!(
            result.starts_with("Your password has been set"),
            "result shown: {result:?}"
        );
        assert_eq!(
            client.title().await.expect("title"),
            "Password reset complete"
        );
        assert!(client.find(Locator::Id("errors")).await.is_err());
        screenshot(&client, "reset-page-3-success").await;

        let reply = app.login("monica", new_password).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let reply = app.login("monica", STRONG_PASSWORD).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);

        // The link is spent.
        client.goto(&link.url).await.expect("open the link again");
        let result = text_of(&client, "result").await;
        assert!(result.contains("invalid"), "result shown: {result:?}");
        assert!(client.find(Locator::Id("new_password")).await.is_err());
    })
    .await;
}

#[tokio::test]
async fn the_page_loads_nothing_from_outside_and_runs_no_script() {
    in_browser(|client| async move {
        let app = spawn_app().await;
        let link = reset_link(&app, "ross").await;

        // Every state of the page: the form, the form with errors, the invalid link.
        client.goto(&link.url).await.expect("open the link");
        wait_for_id(&client, "new_password").await;
        assert_eq!(outside_references(&client).await, json!([]), "the form");
        // The inline stylesheet is the one the CSP allows: it applied.
        let background = run(
            &client,
            "return getComputedStyle(document.body).backgroundColor",
        )
        .await;
        assert_eq!(background, json!("rgb(244, 245, 247)"), "style not applied");

        submit_password(&client, "12345678").await;
        wait_for_id(&client, "errors").await;
        assert_eq!(outside_references(&client).await, json!([]), "the errors");

        client
            .goto(&app.url("/api/reset_password/confirm/?uid=MQ&token=nope"))
            .await
            .expect("open a bad link");
        wait_for_id(&client, "result").await;
        assert_eq!(outside_references(&client).await, json!([]), "invalid link");

        // The headers, as the browser got them.
        let response = app
            .client
            .get(&link.url)
            .header("accept", "text/html")
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK);
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert!(header("content-type").starts_with("text/html"));
        let policy = header("content-security-policy");
        assert!(policy.contains("default-src 'none'"), "CSP: {policy:?}");
        assert!(!policy.contains("script-src"), "CSP: {policy:?}");
        assert!(!policy.contains("unsafe-inline"), "CSP: {policy:?}");
        assert_eq!(header("referrer-policy"), "no-referrer");
        let html = response.text().await.expect("body");
        assert!(!html.to_lowercase().contains("<script"), "{html}");
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "{html}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_bad_link_shows_that_it_is_invalid() {
    in_browser(|client| async move {
        let app = spawn_app().await;
        let link = reset_link(&app, "rachel").await;
        let bad = app.url(&format!(
            "/api/reset_password/confirm/?uid={}&token=not-the-{}",
            link.uid, link.token
        ));

        client.goto(&bad).await.expect("open the bad link");
        let result = text_of(&client, "result").await;
        assert!(
            result.contains("This password reset link is invalid or has expired"),
            "result shown: {result:?}"
        );
        assert_eq!(
            client.title().await.expect("title"),
            "Password reset unsuccessful"
        );
        assert!(client.find(Locator::Id("new_password")).await.is_err());
        assert!(client.find(Locator::Css("form")).await.is_err());
        screenshot(&client, "reset-page-invalid-link").await;

        // The bad link spent nothing: the real one still works.
        client.goto(&link.url).await.expect("open the link");
        wait_for_id(&client, "new_password").await;
    })
    .await;
}

#[tokio::test]
async fn the_page_is_readable_on_a_phone() {
    in_browser(|client| async move {
        let app = spawn_app().await;
        let link = reset_link(&app, "joey").await;

        client.goto(&link.url).await.expect("open the link");
        wait_for_id(&client, "new_password").await;
        // The layout viewport is the phone's: the page asks for `width=device-width`.
        let viewport = run(&client, "return document.documentElement.clientWidth").await;
        assert_eq!(viewport, json!(PHONE_WIDTH), "the layout viewport's width");
        assert_fits_a_phone(&client, "the form").await;

        submit_password(&client, "12345678").await;
        wait_for_id(&client, "errors").await;
        assert_fits_a_phone(&client, "the errors").await;
    })
    .await;
}

/// The password field is wide and its text large enough to use on a phone, and nothing
/// scrolls sideways.
async fn assert_fits_a_phone(client: &Client, state: &str) {
    let width = run(
        client,
        "return document.getElementById('new_password').getBoundingClientRect().width",
    )
    .await;
    let width = width.as_f64().expect("a number");
    assert!(width >= 250.0, "{state}: the field is {width} px wide");
    let font = run(
        client,
        "return parseFloat(getComputedStyle(document.getElementById('new_password')).fontSize)",
    )
    .await;
    let font = font.as_f64().expect("a number");
    assert!(font >= 16.0, "{state}: the field's text is {font} px");
    let scroll = run(client, "return document.documentElement.scrollWidth").await;
    let scroll = scroll.as_f64().expect("a number");
    assert!(
        scroll <= f64::from(PHONE_WIDTH),
        "{state}: the page is {scroll} px wide, it scrolls sideways"
    );
    let button = run(
        client,
        "return document.querySelector('button[type=submit]').getBoundingClientRect().height",
    )
    .await;
    let button = button.as_f64().expect("a number");
    assert!(button >= 40.0, "{state}: the button is {button} px tall");
}
