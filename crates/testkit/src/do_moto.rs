//! moto's S3 on a loopback port, as the DigitalOcean tests' staging
//! (Spaces speaks S3), with moto's request recorder on so a test can list
//! what reached it. Killed on drop.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Moto {
    pub endpoint: String,
    child: Child,
    /// moto's recorder file, one per server.
    _recording: tempfile::TempDir,
}

fn moto_server() -> PathBuf {
    if let Some(path) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("moto_server"))
            .find(|p| p.exists())
    }) {
        return path;
    }
    let venv = crate::repo_root().join(".venv/bin/moto_server");
    assert!(
        venv.exists(),
        "moto_server not found on PATH or in .venv: run scripts/test (it makes the venv from tests/requirements.txt)"
    );
    venv
}

impl Moto {
    pub fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let recording = tempfile::tempdir().unwrap();
        let child = Command::new(moto_server())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_ENABLE_RECORDING", "True")
            .env(
                "MOTO_RECORDER_FILEPATH",
                recording.path().join("moto_recording"),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
            _recording: recording,
        }
    }

    /// Starts moto's recorder afresh (what came before is forgotten).
    pub async fn start_recording(&self) {
        let http = reqwest::Client::new();
        for what in ["reset-recording", "start-recording"] {
            let url = format!("{}/moto-api/recorder/{what}", self.endpoint);
            let answer = http.post(url).send().await.unwrap();
            assert!(answer.status().is_success(), "moto recorder: {answer:?}");
        }
    }

    /// `METHOD /path?query` of every request moto received since
    /// `start_recording` (its own /moto-api calls left out).
    pub async fn recorded(&self) -> Vec<String> {
        let http = reqwest::Client::new();
        let stop = format!("{}/moto-api/recorder/stop-recording", self.endpoint);
        http.post(stop).send().await.unwrap();
        let download = format!("{}/moto-api/recorder/download-recording", self.endpoint);
        let text = http
            .get(download)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        serde_json::Deserializer::from_str(&text)
            .into_iter::<serde_json::Value>()
            .map(|v| {
                let v = v.expect("moto's recording is JSON");
                let url = v["url"].as_str().unwrap_or_default();
                let path = url.splitn(4, '/').nth(3).unwrap_or_default();
                format!("{} /{path}", v["method"].as_str().unwrap_or_default())
            })
            .filter(|r| !r.contains(" /moto-api/"))
            .collect()
    }

    /// The recorded requests that could change something (not GET or HEAD).
    pub async fn mutating(&self) -> Vec<String> {
        self.recorded()
            .await
            .into_iter()
            .filter(|r| !r.starts_with("GET ") && !r.starts_with("HEAD "))
            .collect()
    }

    /// A plain S3 client on moto (the test's own view of the bucket).
    pub fn s3(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
