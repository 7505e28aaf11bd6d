//! A loopback HTTP/1.1 server that answers AWS calls with recorded bodies
//! (tests/fixtures/ec2): EC2/STS Query calls by their `Action`, EBS direct
//! REST calls by method and path, and a listing's pages by the page token
//! the client sent back (`NextToken` for Query, `pageToken` for EBS).
//! moto never pages; this is where the paging loop meets recorded pages.
//! Every request is recorded; a request with no recorded answer, or a page
//! token no page was recorded for, gets an AWS-shaped 400 naming it.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A recorded file under tests/fixtures/ec2.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = crate::repo_root().join("tests/fixtures/ec2").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn xml(body: Vec<u8>) -> Answer {
        Answer::with(200, "text/xml;charset=UTF-8", body)
    }

    pub fn json(body: Vec<u8>) -> Answer {
        Answer::with(200, "application/json", body)
    }

    pub fn with(status: u16, content_type: &str, body: Vec<u8>) -> Answer {
        Answer {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// `Action` of a Query call, else empty.
    pub action: String,
    /// Form body and query string parameters, decoded.
    pub params: BTreeMap<String, String>,
}

impl Seen {
    /// The page token the client sent (`NextToken` or `pageToken`).
    pub fn token(&self) -> Option<&str> {
        self.params
            .get("NextToken")
            .or_else(|| self.params.get("pageToken"))
            .map(String::as_str)
    }
}

#[derive(Default)]
struct Routes {
    /// Key: `Action` for Query calls, `METHOD path` for REST calls.
    pages: HashMap<String, HashMap<Option<String>, Answer>>,
    always: HashMap<String, Answer>,
}

pub struct Replay {
    pub port: u16,
    pub endpoint: String,
    routes: Arc<Mutex<Routes>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl Replay {
    pub fn start() -> Replay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let routes = Arc::new(Mutex::new(Routes::default()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s, halt) = (routes.clone(), seen.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if halt.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (r, s) = (r.clone(), s.clone());
                std::thread::spawn(move || serve(stream, &r, &s));
            }
        });
        Replay {
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
            routes,
            seen,
            stop,
        }
    }

    /// Pages of a listing: the first answers a request without a token,
    /// each next one the token the previous page handed out.
    pub fn pages(&self, key: &str, pages: &[(Option<&str>, Answer)]) {
        let mut routes = self.routes.lock().unwrap();
        let entry = routes.pages.entry(key.to_string()).or_default();
        for (token, answer) in pages {
            entry.insert(token.map(str::to_string), answer.clone());
        }
    }

    /// The same answer to every request for `key`, whatever its token.
    pub fn always(&self, key: &str, answer: Answer) {
        self.routes
            .lock()
            .unwrap()
            .always
            .insert(key.to_string(), answer);
    }

    /// Every request so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The requests for one `Action` (or `METHOD path`).
    pub fn seen_for(&self, key: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| key_of(s) == key)
            .collect()
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn key_of(seen: &Seen) -> String {
    if seen.action.is_empty() {
        format!("{} {}", seen.method, seen.path)
    } else {
        seen.action.clone()
    }
}

/// `a%2Bb+c` → `a+b c` (form and query encoding).
pub fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_params(text: &str, into: &mut BTreeMap<String, String>) {
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        into.insert(form_decode(k), form_decode(v));
    }
}

fn serve(stream: TcpStream, routes: &Mutex<Routes>, seen: &Mutex<Vec<Seen>>) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
            return;
        };
        let (method, target) = (method.to_string(), target.to_string());
        let mut length = 0usize;
        let mut chunked = false;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = value.eq_ignore_ascii_case("chunked");
                }
            }
        }
        let body = if chunked {
            read_chunked(&mut reader)
        } else {
            let mut body = vec![0u8; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            body
        };
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let mut params = BTreeMap::new();
        parse_params(query, &mut params);
        if method == "POST" {
            parse_params(&String::from_utf8_lossy(&body), &mut params);
        }
        let request = Seen {
            method: method.clone(),
            path: path.to_string(),
            action: params.get("Action").cloned().unwrap_or_default(),
            params,
        };
        seen.lock().unwrap().push(request.clone());
        let answer = answer_for(&request, routes);
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nx-amzn-RequestId: replay-{}\r\n",
            answer.status,
            reason(answer.status),
            answer.body.len(),
            seen.lock().unwrap().len()
        );
        for (name, value) in &answer.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(&answer.body).is_err() {
            return;
        }
    }
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        if reader.read_line(&mut size).unwrap_or(0) == 0 {
            return body;
        }
        let size =
            usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
        let mut chunk = vec![0u8; size + 2];
        if reader.read_exact(&mut chunk).is_err() {
            return body;
        }
        if size == 0 {
            // Trailers end with an empty line; we sent none to read.
            return body;
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

fn answer_for(request: &Seen, routes: &Mutex<Routes>) -> Answer {
    let key = key_of(request);
    let routes = routes.lock().unwrap();
    if let Some(answer) = routes.always.get(&key) {
        return answer.clone();
    }
    let token = request.token().map(str::to_string);
    match routes.pages.get(&key) {
        Some(pages) => match pages.get(&token) {
            Some(answer) => answer.clone(),
            None => error(
                400,
                "InvalidNextToken",
                &format!("replay: no page of {key} for token {token:?}"),
            ),
        },
        None => error(
            400,
            "InvalidAction",
            &format!("replay: no recorded answer for {key}"),
        ),
    }
}

/// An EC2-shaped error answer.
pub fn error(status: u16, code: &str, message: &str) -> Answer {
    Answer::xml(
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>replay</RequestID></Response>"
        )
        .into_bytes(),
    )
    .status(status)
}

impl Answer {
    pub fn status(mut self, status: u16) -> Answer {
        self.status = status;
        self
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        403 => "Forbidden",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// The token a recorded page hands out (`<nextToken>` in XML,
/// `"NextToken"` in JSON), as the client will read it.
pub fn next_token_of(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    if let Some((_, rest)) = text.split_once("<nextToken>") {
        return rest.split_once("</nextToken>").map(|(t, _)| t.to_string());
    }
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value["NextToken"].as_str().map(str::to_string)
}

/// Pages served in order: page 1 for no token, each next page for the
/// token the previous one handed out. Returns the tokens handed out.
pub fn chain(replay: &Replay, key: &str, pages: Vec<Answer>) -> Vec<String> {
    let mut token: Option<String> = None;
    let mut handed = Vec::new();
    let mut routes = Vec::new();
    for page in pages {
        let next = next_token_of(&page.body);
        routes.push((token.clone(), page));
        if let Some(next) = &next {
            handed.push(next.clone());
        }
        token = next;
    }
    let borrowed: Vec<(Option<&str>, Answer)> = routes
        .iter()
        .map(|(t, a)| (t.as_deref(), a.clone()))
        .collect();
    replay.pages(key, &borrowed);
    handed
}

/// The tokens handed out per listing by [`recorded_account`].
pub struct Handed {
    pub instances: Vec<String>,
    pub volumes: Vec<String>,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub images: Vec<String>,
}

/// A whole account from recorded answers: libcloud's us-east-1 captures
/// (page 1, with a `<nextToken>` added), pages derived from them (page 2),
/// and moto's recorded answers (last page), for every listing the
/// inventory reads; STS GetCallerIdentity too.
pub fn recorded_account(replay: &Replay) -> Handed {
    let xml = |name: &str| Answer::xml(fixture(name));
    replay.always("DescribeRegions", xml("moto/describe_regions.xml"));
    replay.always(
        "DescribeInstanceTypes",
        xml("moto/describe_instance_types.xml"),
    );
    replay.always("DescribeVpcs", xml("describe_vpcs.xml"));
    replay.always("GetCallerIdentity", xml("get_caller_identity.xml"));
    Handed {
        instances: chain(
            replay,
            "DescribeInstances",
            vec![
                xml("describe_instances_page1.xml"),
                xml("describe_instances_page2.xml"),
                xml("moto/describe_instances.xml"),
            ],
        ),
        volumes: chain(
            replay,
            "DescribeVolumes",
            vec![
                xml("describe_volumes_page1.xml"),
                xml("describe_volumes_page2.xml"),
                xml("moto/describe_volumes.xml"),
            ],
        ),
        subnets: chain(
            replay,
            "DescribeSubnets",
            vec![
                xml("describe_subnets_page1.xml"),
                xml("describe_subnets_page2.xml"),
            ],
        ),
        security_groups: chain(
            replay,
            "DescribeSecurityGroups",
            vec![
                xml("describe_security_groups_page1.xml"),
                xml("describe_security_groups_page2.xml"),
            ],
        ),
        images: chain(
            replay,
            "DescribeImages",
            vec![
                xml("describe_images_page1.xml"),
                xml("moto/describe_images_self.xml"),
            ],
        ),
    }
}

/// Our real AWS provider pointed at `endpoint`, keys through `prompt`.
pub async fn provider(endpoint: &str, region: &str) -> altishift::cloud::aws::AwsCloud {
    use altishift::cloud::aws::profile::AwsProfile;
    use altishift::secret::{Secret, SecretSource};
    let profile = AwsProfile {
        region: Some(region.into()),
        endpoint: Some(endpoint.into()),
        api_key: Some(SecretSource::Prompt),
        secret_key: Some(SecretSource::Prompt),
        ..AwsProfile::default()
    };
    let mut prompt = |label: &str| {
        Some(Secret::new(if label.contains("secret") {
            "replay-secret".into()
        } else {
            "AKIAREPLAY".into()
        }))
    };
    let mut cloud =
        altishift::cloud::aws::AwsCloud::from_profile("aws-recorded", &profile, &mut prompt)
            .await
            .unwrap();
    cloud.poll.first = std::time::Duration::from_millis(5);
    cloud
}
