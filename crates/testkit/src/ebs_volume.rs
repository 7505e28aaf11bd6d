//! A running EC2 instance's volume, in front of moto. moto's volumes hold no
//! data and its CreateSnapshot copies none (see shared NOTES), so this proxy
//! gives one volume a body: a local file the test writes to, as the guest
//! would. Every request goes to moto unchanged, except:
//! - EC2 `CreateSnapshot` of that volume: the file's non-zero 512 KiB blocks
//!   become a snapshot through moto's EBS direct API (StartSnapshot,
//!   PutSnapshotBlock, CompleteSnapshot), tagged as asked, and the answer is
//!   CreateSnapshot's documented shape with that snapshot's id. Before each
//!   such snapshot the next queued set of writes lands in the file (the
//!   guest kept writing while the previous pass was copied).
//! - EC2 `StopInstances`: the queued last writes land first (what the guest
//!   wrote before it stopped), then moto stops the instance.
//! - EBS direct `ListChangedBlocks`, when told to refuse it: 403
//!   `AccessDeniedException`, as for a role without `ebs:ListChangedBlocks`.

#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::collections::VecDeque;
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

const BLOCK: u64 = 512 * 1024;

/// A block write: `Some(bytes)` (a whole block) or `None` (zeroes it).
pub type Write = (u64, Option<Vec<u8>>);

#[derive(Default)]
pub struct Volume {
    /// The moto volume id whose snapshots this file backs.
    pub volume_id: String,
    pub file: PathBuf,
    /// Applied one set per CreateSnapshot of the volume, in order.
    pub before_snapshot: VecDeque<Vec<Write>>,
    /// Applied at StopInstances.
    pub before_stop: Vec<Write>,
    pub refuse_changed_blocks: bool,
    /// Snapshot ids made for the volume, in order.
    pub snapshots: Vec<String>,
    /// ListChangedBlocks calls: (first, second).
    pub changed_blocks_calls: Vec<(String, String)>,
    pub stops: u32,
}

#[derive(Clone)]
pub struct VolumeProxy {
    pub endpoint: String,
    pub volume: Arc<Mutex<Volume>>,
    moto: String,
}

impl VolumeProxy {
    pub async fn start(moto: &str, volume: Volume) -> VolumeProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = VolumeProxy {
            endpoint: format!("http://{}", listener.local_addr().unwrap()),
            volume: Arc::new(Mutex::new(volume)),
            moto: moto.to_string(),
        };
        let app = axum::Router::new()
            .fallback(handle)
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(proxy.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        proxy
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, Volume> {
        self.volume.lock().unwrap()
    }
}

fn apply(file: &PathBuf, writes: &[Write]) {
    let f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    for (index, data) in writes {
        let zeros = vec![0u8; BLOCK as usize];
        f.write_all_at(data.as_deref().unwrap_or(&zeros), index * BLOCK)
            .unwrap();
    }
}

/// `application/x-www-form-urlencoded` into pairs.
fn form(body: &[u8]) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn param<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

async fn handle(
    State(proxy): State<VolumeProxy>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = if method == Method::POST {
        form(&body)
    } else {
        Vec::new()
    };
    let action = param(&fields, "Action").unwrap_or_default().to_string();
    let ours = {
        let v = proxy.state();
        param(&fields, "VolumeId") == Some(v.volume_id.as_str())
    };
    if action == "CreateSnapshot" && ours {
        return create_snapshot(&proxy, &fields).await;
    }
    if action == "StopInstances" {
        let mut v = proxy.state();
        let writes = std::mem::take(&mut v.before_stop);
        apply(&v.file, &writes);
        v.stops += 1;
    }
    if uri.path().ends_with("/changedblocks") {
        let second = uri.path().split('/').nth(2).unwrap_or_default().to_string();
        let first = uri
            .query()
            .unwrap_or_default()
            .split('&')
            .find_map(|p| p.strip_prefix("firstSnapshotId="))
            .unwrap_or_default()
            .to_string();
        let mut v = proxy.state();
        v.changed_blocks_calls.push((first, second));
        if v.refuse_changed_blocks {
            return (
                StatusCode::FORBIDDEN,
                [
                    ("x-amzn-ErrorType", "AccessDeniedException"),
                    ("content-type", "application/json"),
                ],
                r#"{"Message":"User is not authorized to perform: ebs:ListChangedBlocks","Reason":"UNAUTHORIZED_ACCOUNT"}"#,
            )
                .into_response();
        }
    }
    forward(&proxy.moto, method, &uri, headers, body).await
}

async fn forward(
    moto: &str,
    method: Method,
    uri: &Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let url = format!("{moto}{}", uri.path_and_query().map_or("/", |p| p.as_str()));
    let client = reqwest::Client::new();
    let mut request = client.request(
        reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap(),
        url,
    );
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name.as_str(), value.as_bytes());
        }
    }
    let answer = request.body(body).send().await.unwrap();
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    let mut out = HeaderMap::new();
    for (name, value) in answer.headers() {
        if name != "content-length" && name != "transfer-encoding" && name != "connection" {
            out.insert(
                axum::http::HeaderName::from_bytes(name.as_str().as_bytes()).unwrap(),
                axum::http::HeaderValue::from_bytes(value.as_bytes()).unwrap(),
            );
        }
    }
    let bytes = answer.bytes().await.unwrap();
    (status, out, bytes).into_response()
}

/// The volume's blocks, now, as an EBS-direct snapshot on moto.
async fn create_snapshot(proxy: &VolumeProxy, fields: &[(String, String)]) -> Response {
    let (file, writes) = {
        let mut v = proxy.state();
        let writes = v.before_snapshot.pop_front().unwrap_or_default();
        (v.file.clone(), writes)
    };
    apply(&file, &writes);
    let data = std::fs::read(&file).unwrap();
    let size_gib = (data.len() as u64).div_ceil(1 << 30).max(1);
    let (ec2, ebs) = clients(&proxy.moto);
    let description = param(fields, "Description").unwrap_or_default();
    let started = ebs
        .start_snapshot()
        .volume_size(size_gib as i64)
        .description(description)
        .send()
        .await
        .unwrap();
    let id = started.snapshot_id().unwrap().to_string();
    let mut count = 0;
    for (index, block) in data.chunks(BLOCK as usize).enumerate() {
        if block.iter().all(|&b| b == 0) {
            continue;
        }
        count += 1;
        use base64::Engine as _;
        use sha2::Digest as _;
        let checksum =
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(block));
        ebs.put_snapshot_block()
            .snapshot_id(&id)
            .block_index(index as i32)
            .data_length(block.len() as i32)
            .checksum(checksum)
            .checksum_algorithm(aws_sdk_ebs::types::ChecksumAlgorithm::ChecksumAlgorithmSha256)
            .block_data(aws_sdk_ebs::primitives::ByteStream::from(block.to_vec()))
            .send()
            .await
            .unwrap();
    }
    ebs.complete_snapshot()
        .snapshot_id(&id)
        .changed_blocks_count(count)
        .send()
        .await
        .unwrap();
    // The tags the request asked for (TagSpecification.1.Tag.N.Key/Value).
    let mut tagging = ec2.create_tags().resources(&id);
    for n in 1.. {
        let (Some(key), Some(value)) = (
            param(fields, &format!("TagSpecification.1.Tag.{n}.Key")),
            param(fields, &format!("TagSpecification.1.Tag.{n}.Value")),
        ) else {
            break;
        };
        tagging = tagging.tags(
            aws_sdk_ec2::types::Tag::builder()
                .key(key)
                .value(value)
                .build(),
        );
    }
    tagging.send().await.unwrap();
    let volume_id = proxy.state().volume_id.clone();
    proxy.state().snapshots.push(id.clone());
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <CreateSnapshotResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
         <requestId>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</requestId>\
         <snapshotId>{id}</snapshotId><volumeId>{volume_id}</volumeId>\
         <status>pending</status><startTime>2026-12-04T12:00:00.000Z</startTime>\
         <progress></progress><ownerId>123456789012</ownerId>\
         <volumeSize>{size_gib}</volumeSize><description>{description}</description>\
         <encrypted>false</encrypted></CreateSnapshotResponse>"
    );
    (StatusCode::OK, [("content-type", "text/xml")], xml).into_response()
}

fn clients(moto: &str) -> (aws_sdk_ec2::Client, aws_sdk_ebs::Client) {
    let creds = aws_sdk_ec2::config::Credentials::new(
        crate::moto::ACCESS_KEY,
        crate::moto::SECRET_KEY,
        None,
        None,
        "test",
    );
    let ec2 = aws_sdk_ec2::Config::builder()
        .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
        .region(aws_sdk_ec2::config::Region::new("us-east-1"))
        .endpoint_url(moto)
        .credentials_provider(creds.clone())
        .build();
    let ebs = aws_sdk_ebs::Config::builder()
        .behavior_version(aws_sdk_ebs::config::BehaviorVersion::latest())
        .region(aws_sdk_ebs::config::Region::new("us-east-1"))
        .endpoint_url(moto)
        .credentials_provider(creds)
        .build();
    (
        aws_sdk_ec2::Client::from_conf(ec2),
        aws_sdk_ebs::Client::from_conf(ebs),
    )
}
