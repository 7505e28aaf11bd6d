//! Validation from outside the migrated instance, end to end on the lab:
//! the checks are in the plan text and under its hash, and a check that
//! fails after deploy fails the instance's validation, in the console's
//! output and in the report, with what it saw.

use altishift_testkit::cli::{Lab, text};

use altishift::engine::RunReport;
use std::io::{Read, Write};
use std::net::TcpListener;

/// A loopback HTTP server answering every GET with 200, for the life of
/// the test process.
fn serve_200() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    port
}

fn report(lab: &Lab) -> RunReport {
    let runs = lab.state().join("runs");
    let run = std::fs::read_dir(&runs)
        .unwrap()
        .flatten()
        .next()
        .expect("a run folder")
        .path();
    RunReport::load(&run.join("report.json")).unwrap()
}

#[test]
fn a_failed_http_check_fails_validation_in_the_console_and_the_report() {
    let lab = Lab::new();
    let port = serve_200();
    let health = format!("http://127.0.0.1:{port}/health");
    let wants_204 = format!("{health}=204");
    let out = lab.plan(
        &["web-1"],
        &[
            "--check",
            &health,
            "--check",
            &wants_204,
            "--check-timeout",
            "2",
            "--check-interval",
            "1",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("Validation from outside each instance (each check retries for 2s"),
        "{said}"
    );
    assert!(
        said.contains(&format!("GET {health} answers 200")),
        "{said}"
    );
    assert!(
        said.contains(&format!("GET {health} answers 204")),
        "{said}"
    );
    assert!(said.contains("TCP port 22 accepts a connection"), "{said}");
    assert!(lab.approve().status.success());

    let out = lab.apply(&[]);
    assert!(!out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("web-1: validation"), "{said}");
    assert!(
        said.contains(&format!(
            "✗ http {health} 204: GET {health} did not answer 204"
        )),
        "{said}"
    );
    assert!(
        said.contains("│ attempt 1: HTTP/1.1 200 OK (expected 204)"),
        "{said}"
    );

    let report = report(&lab);
    let web = &report.instances[0];
    assert!(!web.validated, "{:?}", web.checks);
    let named = |name: &str| {
        web.checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("a check named {name}: {:?}", web.checks))
    };
    let ok = named(&format!("http {health} 200"));
    assert!(ok.passed, "{ok:?}");
    assert_eq!(ok.evidence, vec!["HTTP/1.1 200 OK".to_string()]);
    // The lab's instances have no network address and web-1's disk does
    // not boot: those checks cannot run, and say so without failing.
    let tcp = named("tcp 22");
    assert!(
        tcp.passed && tcp.detail.starts_with("not available: "),
        "{tcp:?}"
    );
    let serial = named("serial console");
    assert!(
        serial.passed && serial.detail.contains("offers no console output"),
        "{serial:?}"
    );
    // The disks themselves arrived: only the outside check failed.
    let failed: Vec<&str> = web
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(failed, vec![format!("http {health} 204")]);
}

#[test]
fn bad_check_flags_are_refused_naming_the_flag() {
    let lab = Lab::new();
    let out = lab.plan(&["web-1"], &["--check", "https://{address}/"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("--check 'https://{address}/': only http:// URLs"),
        "{}",
        text(&out)
    );
    let out = lab.plan(&["web-1"], &["--check-port", "0"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("--check-port 0"), "{}", text(&out));
    let out = lab.plan(&["web-1"], &["--check-port", "70000"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("--check-port"), "{}", text(&out));
    let out = lab.plan(&["web-1"], &["--no-check-port", "--check-port", "22"]);
    assert!(!out.status.success());
    assert!(!lab.plan_path().exists());
}
