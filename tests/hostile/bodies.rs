//! Provider answers that are malformed, cut short, huge or of the wrong
//! type. The parsers are fed them directly where they are public; the
//! DigitalOcean and CloudStack clients get them from a loopback server.
//! Each gives an error naming the call, short enough to show, and the
//! server sees nothing but reads (no change in any cloud).

use altishift::cloud::cloudstack::client::{Client as CsClient, unwrap_response};
use altishift::cloud::digitalocean::client::{DoClient, api_error};
use altishift::cloud::gcp::client::error_from;
use altishift::cloud::{Cloud, CloudError};
use altishift::secret::Secret;
use reqwest::StatusCode;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Longest error text a hostile answer may produce.
const SHOWN: usize = 1200;

fn huge(n: usize) -> String {
    "A".repeat(n)
}

/// (what the server sent, status, body, pieces the error must hold).
const CLOUDSTACK: &[(&str, u16, &str, &[&str])] = &[
    (
        "an empty body",
        200,
        "",
        &["listVirtualMachines", "not a JSON answer"],
    ),
    (
        "HTML from a proxy",
        200,
        "<html><body>Login</body></html>",
        &["listVirtualMachines", "not a JSON answer"],
    ),
    (
        "JSON cut short",
        200,
        "{\"listvirtualmachinesresponse\":{\"count\":2,\"virtualmachine\":[{\"id\":",
        &["not a JSON answer"],
    ),
    ("a JSON list", 200, "[1,2]", &["not a JSON answer"]),
    ("a JSON string", 200, "\"ok\"", &["not a JSON answer"]),
    (
        "the wrong response key among others",
        200,
        "{\"a\":1,\"b\":2}",
        &["has no 'listvirtualmachinesresponse'"],
    ),
    (
        "an error code as text",
        200,
        "{\"errorresponse\":{\"errorcode\":\"431\",\"errortext\":\"Unable to find vm\"}}",
        &["Unable to find vm", "431"],
    ),
    (
        "an error code without text",
        200,
        "{\"errorresponse\":{\"errorcode\":530}}",
        &["no error text"],
    ),
    (
        "an error code that is a list",
        400,
        "{\"errorresponse\":{\"errorcode\":[1],\"errortext\":\"x\"}}",
        &["listVirtualMachines", "errorcode [1]"],
    ),
    (
        "a 5xx with an HTML body",
        503,
        "<h1>Service Unavailable</h1>",
        &["HTTP 503"],
    ),
    (
        "a negative error code",
        200,
        "{\"errorresponse\":{\"errorcode\":-1,\"errortext\":\"neg\"}}",
        &["listVirtualMachines", "neg", "errorcode -1"],
    ),
    (
        "an error code as a word",
        200,
        "{\"errorresponse\":{\"errorcode\":\"bad\",\"errortext\":\"odd\"}}",
        &["odd", "errorcode \"bad\""],
    ),
    ("JSON nested 100000 deep", 200, "", &["not a JSON answer"]),
    (
        "an error text of a megabyte",
        200,
        "",
        &["listVirtualMachines", "errorcode 530"],
    ),
    (
        "a body of a megabyte that is not JSON",
        502,
        "",
        &["HTTP 502"],
    ),
];

/// (what, status, body, pieces): Google Cloud error bodies.
const GCP: &[(&str, u16, &str, &[&str])] = &[
    ("an empty body", 500, "", &["insert disk", "HTTP 500"]),
    ("HTML", 502, "<html>bad gateway</html>", &["HTTP 502"]),
    (
        "error as a string",
        400,
        "{\"error\":\"invalid\"}",
        &["HTTP 400"],
    ),
    (
        "message as a number",
        400,
        "{\"error\":{\"message\":5}}",
        &["HTTP 400"],
    ),
    (
        "errors as an object",
        403,
        "{\"error\":{\"message\":\"no\",\"errors\":{\"reason\":\"x\"}}}",
        &["no"],
    ),
    (
        "JSON cut short",
        404,
        "{\"error\":{\"message\":\"gone",
        &["HTTP 404"],
    ),
    ("a message of a megabyte", 400, "", &["insert disk"]),
];

/// (what, status, body, pieces): DigitalOcean error bodies.
const DIGITALOCEAN: &[(&str, u16, &str, &[&str])] = &[
    ("an empty body", 422, "", &["POST /v2/droplets", "HTTP 422"]),
    ("HTML", 500, "<html>oops</html>", &["HTTP 500"]),
    (
        "message as a list",
        422,
        "{\"id\":\"unprocessable_entity\",\"message\":[1]}",
        &["HTTP 422", "unprocessable_entity"],
    ),
    (
        "id as a number",
        404,
        "{\"id\":404,\"message\":\"not here\"}",
        &["not here"],
    ),
    ("a message of a megabyte", 422, "", &["POST /v2/droplets"]),
    (
        "a body of a megabyte that is not JSON",
        500,
        "",
        &["HTTP 500"],
    ),
];

/// Whole-client cases over the loopback server.
const NETWORK: usize = 8;

pub const CASES: usize = CLOUDSTACK.len() + GCP.len() + DIGITALOCEAN.len() + NETWORK;

fn body_of(name: &str, body: &str) -> String {
    match name {
        "JSON nested 100000 deep" => format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
        "an error text of a megabyte" => format!(
            "{{\"errorresponse\":{{\"errorcode\":530,\"errortext\":\"{}\"}}}}",
            huge(1 << 20)
        ),
        "a message of a megabyte" => format!(
            "{{\"error\":{{\"message\":\"{0}\"}},\"id\":\"x\",\"message\":\"{0}\"}}",
            huge(1 << 20)
        ),
        "a body of a megabyte that is not JSON" => huge(1 << 20),
        _ => body.to_string(),
    }
}

fn check(family: &str, name: &str, err: &CloudError, wanted: &[&str]) {
    let text = err.to_string();
    for piece in wanted {
        assert!(
            text.contains(piece),
            "{family} {name}: {text:.300} lacks {piece:?}"
        );
    }
    assert!(
        text.len() <= SHOWN,
        "{family} {name}: an error of {} bytes is too long to show",
        text.len()
    );
}

#[test]
fn cloudstack_answers_that_are_not_answers_are_clear_errors() {
    for (name, status, body, wanted) in CLOUDSTACK {
        let body = body_of(name, body);
        let err = unwrap_response("listVirtualMachines", *status, &body)
            .err()
            .unwrap_or_else(|| panic!("{name}: accepted"));
        check("cloudstack", name, &err, wanted);
    }
}

#[test]
fn google_error_bodies_of_any_shape_are_clear_errors() {
    for (name, status, body, wanted) in GCP {
        let err = error_from(*status, &body_of(name, body), "insert disk");
        check("gcp", name, &err, wanted);
    }
}

#[test]
fn digitalocean_error_bodies_of_any_shape_are_clear_errors() {
    for (name, status, body, wanted) in DIGITALOCEAN {
        let status = StatusCode::from_u16(*status).unwrap();
        let err = api_error("POST /v2/droplets", status, &body_of(name, body));
        check("digitalocean", name, &err, wanted);
    }
}

/// A loopback HTTP server that answers every request with `head` + `body`
/// and records the request lines.
struct Server {
    base: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Server {
    async fn start(head: String, body: Arc<Vec<u8>>) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let head = head.clone();
                let body = body.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let mut request = vec![0u8; 65536];
                    let n = socket.read(&mut request).await.unwrap_or(0);
                    let text = String::from_utf8_lossy(&request[..n]);
                    log.lock()
                        .unwrap()
                        .push(text.lines().next().unwrap_or("").to_string());
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(&body).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Server { base, seen }
    }

    fn methods(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|l| l.split(' ').next().unwrap_or("").to_string())
            .collect()
    }
}

fn ok_json(length: Option<usize>) -> String {
    match length {
        Some(n) => format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {n}\r\n\r\n"
        ),
        None => {
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n".into()
        }
    }
}

async fn do_inventory(head: String, body: Vec<u8>) -> (String, Vec<String>) {
    let server = Server::start(head, Arc::new(body)).await;
    let client = DoClient::new(Some(&server.base), Secret::new("dop_v1_test".into())).unwrap();
    let cloud = altishift::cloud::digitalocean::DigitalOceanCloud::new("do", client);
    let err = cloud.inventory().await.expect_err("must fail").to_string();
    (err, server.methods())
}

fn only_reads(methods: &[String]) {
    assert!(!methods.is_empty());
    assert!(methods.iter().all(|m| m == "GET"), "{methods:?}");
}

#[tokio::test]
async fn a_digitalocean_answer_over_32_mib_is_refused_by_its_length() {
    // Declared 40 MiB; the server need not even send it.
    let (err, methods) = do_inventory(ok_json(Some(40 << 20)), b"{".to_vec()).await;
    assert!(
        err.contains("GET /v2/") && err.contains("41943040") && err.contains("refused"),
        "{err}"
    );
    only_reads(&methods);
}

#[tokio::test]
async fn a_digitalocean_answer_over_32_mib_without_a_length_is_cut_off() {
    let body = format!("{{\"droplets\":[\"{}\"]}}", huge(33 << 20)).into_bytes();
    let (err, methods) = do_inventory(ok_json(None), body).await;
    assert!(
        err.contains("GET /v2/") && err.contains("refused"),
        "{err:.300}"
    );
    assert!(err.len() <= SHOWN);
    only_reads(&methods);
}

#[tokio::test]
async fn a_digitalocean_listing_of_the_wrong_type_is_an_error_not_an_empty_list() {
    let body = b"{\"droplets\":{\"id\":1},\"links\":{}}".to_vec();
    let (err, methods) = do_inventory(ok_json(Some(body.len())), body).await;
    assert!(err.contains("droplets"), "{err}");
    only_reads(&methods);
}

#[tokio::test]
async fn a_digitalocean_listing_cut_short_is_an_error() {
    let body = b"{\"droplets\":[{\"id\":1,\"name\":\"web".to_vec();
    let (err, methods) = do_inventory(ok_json(Some(body.len())), body).await;
    assert!(
        err.contains("GET /v2/") && err.contains("unreadable answer"),
        "{err}"
    );
    only_reads(&methods);
}

#[tokio::test]
async fn a_digitalocean_droplet_with_wrong_typed_fields_is_an_error_or_skipped_not_a_panic() {
    let body = b"{\"droplets\":[{\"id\":\"one\",\"name\":7,\"memory\":-1,\"vcpus\":1e300,\"disk\":[],\"size\":null,\"region\":5}],\"links\":{},\"meta\":{\"total\":1}}".to_vec();
    let server = Server::start(ok_json(Some(body.len())), Arc::new(body)).await;
    let client = DoClient::new(Some(&server.base), Secret::new("dop_v1_test".into())).unwrap();
    let cloud = altishift::cloud::digitalocean::DigitalOceanCloud::new("do", client);
    match cloud.inventory().await {
        Err(err) => assert!(
            err.to_string().contains("GET /v2/") || err.to_string().contains("droplet"),
            "{err}"
        ),
        Ok(inventory) => assert!(inventory.instances.iter().all(|i| !i.name.is_empty())),
    }
    only_reads(&server.methods());
}

async fn cloudstack_call(head: String, body: Vec<u8>) -> (String, Vec<String>) {
    let server = Server::start(head, Arc::new(body)).await;
    let client = CsClient::new(
        &format!("{}/client/api", server.base),
        Secret::new("key".into()),
        Secret::new("secret".into()),
    )
    .unwrap();
    let err = client
        .call("listVirtualMachines", &[])
        .await
        .expect_err("must fail")
        .to_string();
    (err, server.methods())
}

#[tokio::test]
async fn a_cloudstack_answer_over_32_mib_is_refused() {
    let (err, methods) = cloudstack_call(ok_json(Some(64 << 20)), b"{".to_vec()).await;
    assert!(
        err.contains("listVirtualMachines") && err.contains("refused"),
        "{err}"
    );
    only_reads(&methods);
}

#[tokio::test]
async fn a_cloudstack_answer_over_32_mib_without_a_length_is_cut_off() {
    let body = format!(
        "{{\"listvirtualmachinesresponse\":{{\"x\":\"{}\"}}}}",
        huge(33 << 20)
    );
    let (err, methods) = cloudstack_call(ok_json(None), body.into_bytes()).await;
    assert!(
        err.contains("listVirtualMachines") && err.contains("refused"),
        "{err:.300}"
    );
    only_reads(&methods);
}

#[tokio::test]
async fn a_cloudstack_error_text_of_a_megabyte_is_clipped() {
    let body = format!(
        "{{\"listvirtualmachinesresponse\":{{\"errorcode\":530,\"errortext\":\"{}\"}}}}",
        huge(1 << 20)
    );
    let (err, methods) = cloudstack_call(ok_json(Some(body.len())), body.into_bytes()).await;
    assert!(
        err.contains("errorcode 530") && err.len() <= SHOWN,
        "{err:.300}"
    );
    only_reads(&methods);
}
