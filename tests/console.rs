//! The web console in a real headless Chromium, against `strata serve` on the real stack
//! (with `API_TOKEN` set) and on the embedded default. Screenshots of each page go to
//! `target/console/` for a person to look at.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{Browser, EmbeddedServer, StrataServer, TestDb, curl};

const TOKEN: &str = "console-test-token";
const WAIT: Duration = Duration::from_secs(60);

fn screenshot_path(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/console")).join(name)
}

/// Ingests `size` bytes under `key`, with the token when there is one; the object's id.
fn ingest(url: &str, key: &str, size: usize, token: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body");
    std::fs::write(&file, vec![b'x'; size]).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}"));
    let form = format!("file=@{}", file.display());
    let target = format!("{url}/api/v1/objects?key={key}");
    let mut args = vec!["-F", form.as_str(), target.as_str()];
    if let Some(auth) = &auth {
        args.extend(["-H", auth.as_str()]);
    }
    let reply = curl(&args);
    assert_eq!(
        reply.status,
        201,
        "ingest {key}: {:?}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()["id"].as_str().unwrap().to_string()
}

/// The overview shows the three tiers; an ingested object is listed; a move started
/// from its page shows progress and ends `completed` on the moves page. Returns the
/// browser, on the moves page.
async fn overview_objects_and_a_manual_move(
    browser: &Browser,
    url: &str,
    token: Option<&str>,
    shots: &str,
) {
    browser.goto(&format!("{url}/")).await;
    browser
        .wait_for(
            WAIT,
            "the three tiers",
            "return [...document.querySelectorAll('.card.tier')].map(c => c.dataset.tier).join() \
             === 'onprem,private,public'",
        )
        .await;
    assert!(
        browser.text("#tiers-heading").await.contains("Tiers"),
        "no tier section"
    );
    browser
        .screenshot(&screenshot_path(&format!("{shots}-overview.png")))
        .await;

    let key = format!("console/{}.bin", uuid::Uuid::now_v7().simple());
    let id = ingest(url, &key, 300_000, token);
    browser
        .goto(&format!("{url}/#/objects?prefix=console/"))
        .await;
    let row = format!("tr[data-object=\"{id}\"]");
    browser
        .wait_for(
            WAIT,
            "the object in the list",
            &format!("return document.querySelector('{row}') !== null"),
        )
        .await;
    assert!(browser.text(&row).await.contains(&key));
    browser
        .screenshot(&screenshot_path(&format!("{shots}-objects.png")))
        .await;

    browser.click(&format!("{row} a")).await;
    browser
        .wait_for(
            WAIT,
            "the object page",
            "return document.querySelector('#move-form') !== null",
        )
        .await;
    assert_eq!(browser.text("#object-tier-now").await, "public");
    if let Some(token) = token {
        // Without the token the move is refused and the console asks for it.
        browser.click("#move-to option[value=\"onprem\"]").await;
        browser.click("#move-form button[type=submit]").await;
        browser
            .wait_for(
                WAIT,
                "the token form",
                "return !document.querySelector('#token-form').hidden",
            )
            .await;
        let refused = browser.console_errors().await;
        assert!(
            refused.iter().all(|line| line.contains("401")),
            "errors other than the refusal: {refused:?}"
        );
        let moves = curl(&[&format!("{url}/api/v1/migrations?object_id={id}")]);
        assert_eq!(moves.json()["items"], serde_json::json!([]), "moved anyway");
        // The page is drawn anew once the token is given; until then the old form is
        // still there, and a move queued from it would be reported on a page replaced.
        browser
            .eval("document.querySelector('#move-form').dataset.beforeToken = 'yes'")
            .await;
        browser.type_into("#token", token).await;
        browser.click("#token-form button[type=submit]").await;
        browser
            .wait_for(
                WAIT,
                "the object page again",
                "const form = document.querySelector('#move-form'); \
                 return document.querySelector('#token-form').hidden \
                 && form !== null && !form.dataset.beforeToken",
            )
            .await;
    }
    browser.click("#move-to option[value=\"onprem\"]").await;
    browser.click("#move-form button[type=submit]").await;
    browser
        .wait_for(
            WAIT,
            "the move queued",
            "return document.querySelector('#move-message').textContent.includes('queued')",
        )
        .await;
    browser
        .wait_for(
            WAIT,
            "the move under way with its progress bar",
            "return document.querySelector('[data-live=\"object-tier\"] [role=progressbar]') !== null",
        )
        .await;
    browser
        .wait_for(
            WAIT,
            "the object on onprem",
            "return document.querySelector('#object-tier-now').textContent === 'onprem'",
        )
        .await;
    browser
        .screenshot(&screenshot_path(&format!("{shots}-object.png")))
        .await;

    browser.goto(&format!("{url}/#/moves")).await;
    browser
        .wait_for(
            WAIT,
            "the completed move on the moves page",
            &format!(
                "return [...document.querySelectorAll('tr[data-move]')].some(r => \
                 r.dataset.status === 'completed' && r.textContent.includes('{id}'))"
            ),
        )
        .await;
}

/// Fails on any error in the browser console.
/// On the rules page: a rule saved from the form is listed and in force; a bulk move of
/// three objects planned, queued and followed to its end; the rule deleted after
/// confirmation.
async fn rules_and_a_bulk_move(browser: &Browser, url: &str) {
    let prefix = format!("bulk{}/", uuid::Uuid::now_v7().simple());
    for i in 0..3 {
        ingest(url, &format!("{prefix}{i}"), 1_000, None);
    }
    browser.goto(&format!("{url}/#/rules")).await;
    browser
        .wait_for(
            WAIT,
            "the rule form",
            "return document.querySelector('#rule-id') !== null",
        )
        .await;
    browser.type_into("#rule-id", "console-pin").await;
    browser.type_into("#rule-prefix", "pinned/").await;
    browser
        .eval("document.querySelector('#rule-tier').value = 'private'; return true")
        .await;
    browser.click("#rule-save").await;
    browser
        .wait_for(
            WAIT,
            "the saved rule listed",
            "const row = document.querySelector('tr[data-rule=\"console-pin\"]'); \
             return row !== null && row.textContent.includes('pin private') && row.textContent.includes('yes')",
        )
        .await;

    browser.type_into("#batch-prefix", &prefix).await;
    browser
        .eval("document.querySelector('#batch-tier').value = 'private'; return true")
        .await;
    browser.click("#batch-plan").await;
    browser
        .wait_for(
            WAIT,
            "the plan of three objects",
            "const n = document.querySelector('[data-plan-objects]'); return n !== null && n.dataset.planObjects === '3'",
        )
        .await;
    browser.screenshot(&screenshot_path("rules-plan.png")).await;
    browser.click("button[data-queue-batch]").await;
    browser
        .wait_for(
            WAIT,
            "the batch done",
            "const n = document.querySelector('[data-batch-done]'); return n !== null && n.dataset.batchDone === '3'",
        )
        .await;
    browser
        .screenshot(&screenshot_path("rules-batch.png"))
        .await;

    browser
        .click("button[data-delete-rule=\"console-pin\"]")
        .await;
    assert_eq!(
        curl(&[&format!("{url}/api/v1/rules/console-pin")]).status,
        200,
        "deleted before confirmation"
    );
    browser
        .click("button[data-confirm-delete-rule=\"console-pin\"]")
        .await;
    common::eventually(WAIT, "the rule deleted", || async {
        curl(&[&format!("{url}/api/v1/rules/console-pin")]).status == 404
    })
    .await;
}

async fn no_console_errors(browser: &Browser) {
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "browser console errors: {errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_steers_the_stack_with_a_token() {
    let db = TestDb::postgres().await;
    // One slow mover: a second move waits while the first copies.
    let server = StrataServer::start(
        &db,
        &[
            ("API_TOKEN", TOKEN),
            ("MOVER_CONCURRENCY", "1"),
            ("MOVER_BANDWIDTH_BYTES_PER_SEC", "100000"),
        ],
    )
    .await;
    let url = server.url("");
    let browser = Browser::start().await;
    overview_objects_and_a_manual_move(&browser, &url, Some(TOKEN), "stack").await;
    no_console_errors(&browser).await;
    browser
        .screenshot(&screenshot_path("stack-moves.png"))
        .await;

    // A pending move is cancelled from the moves page, after confirmation.
    let auth = format!("Authorization: Bearer {TOKEN}");
    let slow = ingest(&url, "console/slow.bin", 1_000_000, Some(TOKEN));
    let waiting = ingest(&url, "console/waiting.bin", 1_000, Some(TOKEN));
    for id in [&slow, &waiting] {
        let queued = curl(&[
            "-H",
            &auth,
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"to_tier":"private"}"#,
            &server.url(&format!("/api/v1/objects/{id}/migrations")),
        ]);
        assert_eq!(
            queued.status,
            202,
            "{:?}",
            String::from_utf8_lossy(&queued.body)
        );
    }
    browser.goto(&format!("{url}/#/moves?status=pending")).await;
    let pending = format!(
        "[...document.querySelectorAll('tr[data-move]')].find(r => r.textContent.includes('{waiting}'))"
    );
    browser
        .wait_for(
            WAIT,
            "the waiting move",
            &format!("return {pending} !== undefined"),
        )
        .await;
    let move_id = browser
        .eval(&format!("return {pending}.dataset.move"))
        .await
        .as_str()
        .unwrap()
        .to_string();
    browser
        .click(&format!("button[data-cancel=\"{move_id}\"]"))
        .await;
    let still = curl(&[&server.url(&format!("/api/v1/migrations/{move_id}"))]);
    assert_eq!(
        still.json()["status"],
        "pending",
        "cancelled before confirmation"
    );
    browser
        .click(&format!("button[data-confirm-cancel=\"{move_id}\"]"))
        .await;
    common::eventually(WAIT, "the move cancelled", || async {
        curl(&[&server.url(&format!("/api/v1/migrations/{move_id}"))]).json()["status"]
            == "cancelled"
    })
    .await;
    browser
        .goto(&format!("{url}/#/moves?status=cancelled"))
        .await;
    browser
        .wait_for(
            WAIT,
            "the cancelled move listed",
            &format!(
                "return document.querySelector('tr[data-move=\"{move_id}\"][data-status=cancelled]') !== null"
            ),
        )
        .await;

    // The slow move is still copying: the overview shows it with its progress.
    browser.goto(&format!("{url}/")).await;
    browser
        .wait_for(
            WAIT,
            "the move in flight on the overview",
            &format!(
                "return document.querySelector('[data-live=inflight]').textContent.includes('{slow}')"
            ),
        )
        .await;
    browser
        .screenshot(&screenshot_path("stack-overview-moving.png"))
        .await;

    browser.goto(&format!("{url}/#/models")).await;
    browser
        .wait_for(
            WAIT,
            "the models with the active one marked",
            "return document.querySelector('.badge') !== null",
        )
        .await;
    browser
        .screenshot(&screenshot_path("stack-models.png"))
        .await;

    // A phone-sized window: nothing wider than the screen.
    browser.resize(390, 844).await;
    browser.goto(&format!("{url}/")).await;
    browser
        .wait_for(
            WAIT,
            "the overview at 390 px",
            "return document.querySelectorAll('.card.tier').length === 3",
        )
        .await;
    let overflow = browser
        .eval("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        .await;
    assert_eq!(overflow, 0, "the overview scrolls sideways at 390 px");
    browser
        .screenshot(&screenshot_path("stack-overview-390.png"))
        .await;
    no_console_errors(&browser).await;
    assert!(
        !server.log().contains(TOKEN),
        "the token appears in the server log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_works_on_the_embedded_default() {
    let server = EmbeddedServer::start().await;
    let browser = Browser::start().await;
    overview_objects_and_a_manual_move(&browser, &server.url(""), None, "embedded").await;
    rules_and_a_bulk_move(&browser, &server.url("")).await;
    no_console_errors(&browser).await;
}

#[tokio::test]
async fn console_files_carry_a_content_security_policy() {
    let server =
        EmbeddedServer::start_with(&[("API_TOKEN", TOKEN), ("API_TOKEN_READS", "true")]).await;
    for path in ["/", "/console/app.js", "/console/app.css"] {
        let reply = curl(&[&server.url(path)]);
        assert_eq!(reply.status, 200, "{path} needs no token");
        let policy = reply.header("content-security-policy").unwrap_or_default();
        assert!(
            policy.contains("default-src 'none'") && policy.contains("script-src 'self'"),
            "{path}: {policy:?}"
        );
    }
    let api = curl(&[&server.url("/api/v1/status")]);
    api.assert_error(401, "unauthorized");
}
