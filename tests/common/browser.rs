//! A real headless Chromium driven over the W3C WebDriver protocol (Debian's `chromium`
//! and `chromium-driver`, which `scripts/test.sh` installs), for the console's tests.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::http::free_port;
use super::stack::which;

/// The key under which WebDriver names an element.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One browser session; the driver and the browser end when it is dropped.
pub struct Browser {
    driver: Child,
    base: String,
    http: reqwest::Client,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium window of 1280 x 900 pixels.
    pub async fn start() -> Browser {
        let port = free_port();
        let driver = Command::new(which("chromedriver"))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        strata::tls::install_provider();
        let http = reqwest::Client::new();
        let root = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{root}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut browser = Browser {
            driver,
            base: root.clone(),
            http,
        };
        let session = browser
            .call(
                "POST",
                "/session",
                json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": which("chromium"),
                        "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                                 "--disable-dev-shm-usage", "--window-size=1280,900"],
                    },
                    "goog:loggingPrefs": {"browser": "ALL"},
                }}}),
            )
            .await;
        let id = session["sessionId"]
            .as_str()
            .expect("session id")
            .to_string();
        browser.base = format!("{root}/session/{id}");
        browser
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        self.try_call(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("webdriver {method} {path}: {e}"))
    }

    async fn try_call(&self, method: &str, path: &str, body: Value) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.http.get(&url),
            _ => self.http.post(&url).json(&body),
        };
        let reply: Value = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("webdriver {method} {path}: {e}"))
            .json()
            .await
            .expect("webdriver reply");
        let value = reply.get("value").cloned().unwrap_or(reply);
        match value.get("error").filter(|_| path != "/session") {
            Some(error) => Err(format!("{error}: {}", value["message"])),
            None => Ok(value),
        }
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url })).await;
    }

    /// Runs `script` (a function body) in the page and returns what it returns.
    pub async fn eval(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// Waits up to `timeout` for `script` to return `true` (a script that throws, say on
    /// an element not drawn yet, has not).
    pub async fn wait_for(&self, timeout: Duration, what: &str, script: &str) {
        let deadline = Instant::now() + timeout;
        loop {
            let result = self
                .try_call(
                    "POST",
                    "/execute/sync",
                    json!({"script": script, "args": []}),
                )
                .await;
            if result == Ok(Value::Bool(true)) {
                return;
            }
            if Instant::now() > deadline {
                let page = self
                    .eval("return location.href + '\\n' + document.body.innerText")
                    .await;
                let console = self.console().await;
                panic!(
                    "waited {timeout:?} for {what}; the page shows:\n{}\nconsole: {console:#?}",
                    page.as_str().unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The first element matching `css`.
    pub async fn find(&self, css: &str) -> String {
        let found = self
            .call(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        found[ELEMENT].as_str().expect("element id").to_string()
    }

    /// Clicks the first element matching `css`, as a user would; when the page redraws
    /// it meanwhile, clicks the new one.
    pub async fn click(&self, css: &str) {
        for _ in 0..10 {
            let element = self.find(css).await;
            match self
                .try_call("POST", &format!("/element/{element}/click"), json!({}))
                .await
            {
                Ok(_) => return,
                Err(e) if e.contains("stale element") => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("click {css}: {e}"),
            }
        }
        panic!("click {css}: the element kept being redrawn");
    }

    /// Types `text` into the first element matching `css`.
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.call(
            "POST",
            &format!("/element/{element}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    /// The visible text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        self.call("GET", &format!("/element/{element}/text"), Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Resizes the window.
    pub async fn resize(&self, width: u32, height: u32) {
        self.call(
            "POST",
            "/window/rect",
            json!({"width": width, "height": height}),
        )
        .await;
    }

    /// Saves a PNG of the window to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let png = self.call("GET", "/screenshot", Value::Null).await;
        let bytes = decode_base64(png.as_str().expect("screenshot"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// The browser console's messages since the last call, as `LEVEL message`.
    pub async fn console(&self) -> Vec<String> {
        self.call("POST", "/se/log", json!({"type": "browser"}))
            .await
            .as_array()
            .expect("log entries")
            .iter()
            .map(|entry| format!("{} {}", entry["level"], entry["message"]))
            .collect()
    }

    /// [`Browser::console`], only the errors.
    pub async fn console_errors(&self) -> Vec<String> {
        self.console()
            .await
            .into_iter()
            .filter(|line| line.starts_with("\"SEVERE\""))
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session makes chromedriver quit Chromium; killing the driver alone
        // would leave the browser's processes running after the test. Plain blocking
        // HTTP: a drop cannot wait on the async client.
        if let Some((host, path)) = self
            .base
            .strip_prefix("http://")
            .and_then(|rest| rest.split_once('/'))
            && let Ok(mut stream) = std::net::TcpStream::connect(host)
        {
            use std::io::{Read, Write};
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let request =
                format!("DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
            if stream.write_all(request.as_bytes()).is_ok() {
                let _ = stream.read_to_end(&mut Vec::new());
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64, as WebDriver encodes screenshots.
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text
        .bytes()
        .filter(|c| !matches!(c, b'=' | b'\n' | b'\r'))
        .map(value)
        .collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, d)| n | u32::from(*d) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}
