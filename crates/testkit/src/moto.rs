//! A moto server per test (`moto_server -H 127.0.0.1 -p PORT`), killed on
//! drop; moto's own request recorder (MOTO_ENABLE_RECORDING) lists every
//! request it received; a delay proxy puts per-request latency in front of
//! it for the benchmark.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Access key id and secret the tests give moto (moto checks neither).
pub const ACCESS_KEY: &str = "AKIAALTISHIFTTEST01";
pub const SECRET_KEY: &str = "planted-secret-value-Zq9xV4mW2pL7";

/// `moto_server` on PATH, else `.venv/bin/moto_server` of the crate.
pub fn moto_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("moto_server");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    let venv = crate::repo_root().join(".venv/bin/moto_server");
    if venv.is_file() {
        return venv;
    }
    panic!(
        "moto_server not found on PATH nor in .venv/bin: run scripts/test (it creates .venv from tests/requirements.txt)"
    );
}

/// The venv's python (for the boto3 baseline of the benchmark).
pub fn venv_python() -> PathBuf {
    let moto = moto_binary();
    moto.with_file_name("python")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Moto {
    pub port: u16,
    pub endpoint: String,
    child: Child,
    /// moto's recorder file: one per server (the default is ./moto_recording,
    /// shared by every server started in the same folder).
    _recording: tempfile::TempDir,
}

impl Moto {
    /// Starts moto with its request recorder enabled, waits until it answers.
    pub fn start() -> Moto {
        let port = free_port();
        let recording = tempfile::tempdir().unwrap();
        let child = Command::new(moto_binary())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_ENABLE_RECORDING", "True")
            .env(
                "MOTO_RECORDER_FILEPATH",
                recording.path().join("moto_recording"),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting moto_server");
        let moto = Moto {
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
            _recording: recording,
        };
        let started = Instant::now();
        loop {
            if moto.get("/moto-api/").is_some() {
                return moto;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "moto_server did not answer on port {port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A plain HTTP/1.0 request to moto; the body, or None if it did not answer.
    pub fn request(&self, method: &str, path: &str) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .ok()?;
        write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
        )
        .ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).ok()?;
        let text = String::from_utf8_lossy(&answer).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/").then(|| body.to_string())
    }

    pub fn get(&self, path: &str) -> Option<String> {
        self.request("GET", path)
    }

    pub fn start_recording(&self) {
        self.request("POST", "/moto-api/recorder/reset-recording");
        self.request("POST", "/moto-api/recorder/start-recording")
            .expect("moto recorder");
    }

    /// Every request moto received since `start_recording`: (method, path, action).
    /// `action` is the EC2 Query `Action=` of a form body, else empty.
    pub fn recorded(&self) -> Vec<(String, String, String)> {
        self.requests()
            .into_iter()
            .map(|r| (r.method, r.path, r.action))
            .collect()
    }

    /// Every request moto received since `start_recording`, with its Query
    /// parameters (form body) decoded.
    pub fn requests(&self) -> Vec<Recorded> {
        self.request("POST", "/moto-api/recorder/stop-recording");
        let text = self
            .get("/moto-api/recorder/download-recording")
            .unwrap_or_default();
        // One JSON object per request (moto does not always end them with a newline).
        serde_json::Deserializer::from_str(&text)
            .into_iter::<serde_json::Value>()
            .map(|v| {
                let v = v.expect("moto recording is JSON");
                let method = v["method"].as_str().unwrap_or("").to_string();
                let url = v["url"].as_str().unwrap_or("");
                let path = url
                    .splitn(4, '/')
                    .nth(3)
                    .map(|p| format!("/{p}"))
                    .unwrap_or_else(|| "/".into());
                let body = v["body"].as_str().unwrap_or("");
                let body = if v["body_encoded"].as_bool().unwrap_or(false) {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD
                        .decode(body)
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default()
                } else {
                    body.to_string()
                };
                let params: std::collections::BTreeMap<String, String> = body
                    .split('&')
                    .filter(|kv| !kv.is_empty() && !kv.contains(' '))
                    .filter_map(|kv| {
                        let (k, v) = kv.split_once('=')?;
                        Some((form_decode(k), form_decode(v)))
                    })
                    .collect();
                Recorded {
                    method,
                    path,
                    action: params.get("Action").cloned().unwrap_or_default(),
                    params,
                }
            })
            .collect()
    }
}

/// One request moto recorded.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub action: String,
    pub params: std::collections::BTreeMap<String, String>,
}

/// `a%2Bb+c` → `a+b c`.
fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP proxy that holds each request `delay` before passing it on, like
/// a region across the internet: one delay per request, not per packet
/// (a request starts when the client sends after the server has answered).
pub struct DelayProxy {
    pub port: u16,
    pub endpoint: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    requests: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl DelayProxy {
    pub fn start(upstream: u16, delay: Duration) -> DelayProxy {
        DelayProxy::with_faults(upstream, delay, None)
    }

    /// Like `start`, and every `fail_every`-th request is answered 503
    /// (odd ones) or cut by closing the connection (even ones) before it
    /// reaches moto, so a failed request never took effect.
    pub fn with_faults(upstream: u16, delay: Duration, fail_every: Option<u64>) -> DelayProxy {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let requests = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = requests.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                // True when the next client bytes start a new request.
                let fresh = Arc::new(AtomicBool::new(true));
                let (mut c_read, mut s_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut s_read, mut c_write) = (server, client);
                let fresh_up = fresh.clone();
                let requests = requests.clone();
                let mut c_fail = c_write.try_clone().unwrap();
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 256 * 1024];
                    loop {
                        let n = match c_read.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if fresh_up.swap(false, Ordering::AcqRel) {
                            std::thread::sleep(delay);
                            let count = requests.fetch_add(1, Ordering::Relaxed) + 1;
                            if let Some(every) = fail_every
                                && count.is_multiple_of(every)
                            {
                                if (count / every) % 2 == 1 {
                                    let _ = c_fail.write_all(
                                        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                                    );
                                }
                                let _ = c_fail.shutdown(std::net::Shutdown::Both);
                                let _ = s_write.shutdown(std::net::Shutdown::Both);
                                break;
                            }
                        }
                        if s_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = s_write.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 256 * 1024];
                    loop {
                        let n = match s_read.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        fresh.store(true, Ordering::Release);
                        if c_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = c_write.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        DelayProxy {
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
            stop,
            requests: counted,
        }
    }
}

impl DelayProxy {
    /// Requests seen so far (failed ones included).
    pub fn requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}
