//! A tiny LSP client for rust-analyzer (JSON-RPC with `Content-Length` frames on its stdin
//! and stdout), and where `cargo xtask setup` unpacked Debian's rust-analyzer
//! (`xtask/src/rust_analyzer.rs`: the same cache path and layout).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The Debian version `cargo xtask setup` unpacks (`xtask/src/rust_analyzer.rs`).
const RUST_ANALYZER_VERSION: &str = "1.97.1+dfsg1-1~bpo13+1";

/// The unpacked root of the LSP test's rust-analyzer. Panics with the fix when it is
/// missing: the LSP test never passes without a real rust-analyzer.
pub fn rust_analyzer_root() -> PathBuf {
    let var = |k: &str| std::env::var_os(k).map(PathBuf::from);
    let root = var("XDG_CACHE_HOME")
        .or_else(|| var("HOME").map(|h| h.join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("cargo-kmod-tests/rust-analyzer")
        .join(RUST_ANALYZER_VERSION.replace(['~', '+'], "_"));
    if !root.join("ready").is_file() {
        panic!(
            "no rust-analyzer for the LSP test in `{}` (CI={}): run `cargo xtask setup` (or \
             `cargo xtask rust-analyzer`), which unpacks Debian's rust-analyzer {} with \
             trixie's runtime",
            root.display(),
            std::env::var("CI").unwrap_or_default(),
            RUST_ANALYZER_VERSION
        );
    }
    root.join("root")
}

/// `file://` URI of an absolute path.
pub fn uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// The path of a `file://` URI.
pub fn path_of(uri: &str) -> PathBuf {
    PathBuf::from(uri.strip_prefix("file://").unwrap_or(uri))
}

/// A running rust-analyzer.
pub struct Lsp {
    child: Child,
    stdin: ChildStdin,
    rx: Receiver<Value>,
    next_id: i64,
    /// Notifications received so far, in order.
    pub notifications: Vec<Value>,
    /// rust-analyzer's stderr.
    pub log: PathBuf,
}

impl Lsp {
    /// Start rust-analyzer in `root` with `settings` (its configuration, as an editor
    /// passes `rust-analyzer.*`), and initialize it; its stderr goes to `log`.
    pub fn start(root: &Path, settings: Value, log: &Path) -> Lsp {
        let ra = rust_analyzer_root();
        let libs = format!(
            "{}:{}",
            ra.join("usr/lib/x86_64-linux-gnu").display(),
            ra.join("usr/lib/llvm-22/lib").display()
        );
        let mut child = Command::new(ra.join("usr/lib64/ld-linux-x86-64.so.2"))
            .arg("--library-path")
            .arg(libs)
            .arg(ra.join("usr/bin/rust-analyzer"))
            .current_dir(root)
            .env_remove("CARGO_TARGET_DIR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("start rust-analyzer");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            loop {
                let mut len = None;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(v) = line.strip_prefix("Content-Length: ") {
                        len = v.parse::<usize>().ok();
                    }
                }
                let Some(len) = len else { return };
                let mut body = vec![0; len];
                if r.read_exact(&mut body).is_err() {
                    return;
                }
                match serde_json::from_slice(&body) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
        let mut lsp = Lsp {
            child,
            stdin,
            rx,
            next_id: 1,
            notifications: Vec::new(),
            log: log.to_path_buf(),
        };
        lsp.request(
            "initialize",
            json!({
                "processId": std::process::id(),
                "rootUri": uri(root),
                "workspaceFolders": [{ "uri": uri(root), "name": "module" }],
                "initializationOptions": settings,
                "capabilities": {
                    "textDocument": {
                        "publishDiagnostics": { "relatedInformation": true },
                        "definition": { "linkSupport": false },
                        "synchronization": { "didSave": true },
                    },
                    "window": { "workDoneProgress": true },
                    "experimental": { "serverStatusNotification": true },
                },
            }),
            Duration::from_secs(60),
        );
        lsp.notify("initialized", json!({}));
        lsp
    }

    fn send(&mut self, v: &Value) {
        let body = v.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        self.stdin.flush().unwrap();
    }

    pub fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    /// One message, answering the server's own requests (progress tokens, capability
    /// registration, configuration) as an editor does; `None` on timeout.
    fn next(&mut self, deadline: Instant) -> Option<Value> {
        let left = deadline.saturating_duration_since(Instant::now());
        let v = match self.rx.recv_timeout(left) {
            Ok(v) => v,
            Err(RecvTimeoutError::Timeout) => return None,
            Err(RecvTimeoutError::Disconnected) => panic!(
                "rust-analyzer exited: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            ),
        };
        if v.get("method").is_some() && v.get("id").is_some() {
            let result = if v["method"] == "workspace/configuration" {
                let n = v["params"]["items"].as_array().map_or(0, Vec::len);
                Value::Array(vec![Value::Null; n])
            } else {
                Value::Null
            };
            let id = v["id"].clone();
            self.send(&json!({ "jsonrpc": "2.0", "id": id, "result": result }));
        } else if v.get("method").is_some() {
            self.notifications.push(v.clone());
        }
        Some(v)
    }

    /// Send a request and wait for its response's `result` (panics on an error response).
    pub fn request(&mut self, method: &str, params: Value, timeout: Duration) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        let deadline = Instant::now() + timeout;
        loop {
            let Some(v) = self.next(deadline) else {
                panic!("no answer to `{method}` in {timeout:?}");
            };
            if v.get("method").is_none() && v["id"] == id {
                if let Some(e) = v.get("error") {
                    panic!("`{method}` failed: {e}");
                }
                return v["result"].clone();
            }
        }
    }

    /// Wait for a notification `method` whose params satisfy `pred` (including one already
    /// received); `None` on timeout.
    pub fn wait_for(
        &mut self,
        method: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        if let Some(v) = self
            .notifications
            .iter()
            .find(|n| n["method"] == method && pred(&n["params"]))
        {
            return Some(v["params"].clone());
        }
        let deadline = Instant::now() + timeout;
        while let Some(v) = self.next(deadline) {
            if v["method"] == method && pred(&v["params"]) {
                return Some(v["params"].clone());
            }
        }
        None
    }
}

impl Drop for Lsp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
