use super::*;
use tokio::net::TcpListener;

/// Short enough for a test, with room for several attempts.
fn quick() -> Timing {
    Timing {
        deadline: Duration::from_millis(800),
        attempt: Duration::from_millis(300),
        interval: Duration::from_millis(100),
    }
}

/// A loopback HTTP server answering every request with `status_line`;
/// the first request's head comes back through the receiver.
async fn serve(status_line: &'static str) -> (u16, tokio::sync::oneshot::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (first, seen) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut first = Some(first);
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let answer =
                format!("{status_line}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            let _ = stream.write_all(answer.as_bytes()).await;
            if let Some(first) = first.take() {
                let _ = first.send(String::from_utf8_lossy(&head).into_owned());
            }
        }
    });
    (port, seen)
}

#[tokio::test]
async fn a_listening_port_passes_and_a_closed_one_fails_with_its_attempts() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open = listener.local_addr().unwrap().port();
    let check = tcp("127.0.0.1", open, quick()).await;
    assert!(check.passed, "{check:?}");
    assert_eq!(check.name, format!("tcp {open}"));
    assert!(
        check.detail.contains(&format!("127.0.0.1:{open} accepted")),
        "{check:?}"
    );

    let closed = {
        let gone = TcpListener::bind("127.0.0.1:0").await.unwrap();
        gone.local_addr().unwrap().port()
    };
    let check = tcp("127.0.0.1", closed, quick()).await;
    assert!(!check.passed, "{check:?}");
    assert!(
        check.detail.contains("did not accept a connection"),
        "{check:?}"
    );
    // Every attempt was refused, and the evidence says so, attempt by attempt.
    assert!(check.evidence.len() >= 2, "{check:?}");
    assert!(
        check
            .evidence
            .iter()
            .all(|l| l.contains(&format!("connect 127.0.0.1:{closed}"))),
        "{check:?}"
    );
    assert!(check.evidence[0].starts_with("attempt "), "{check:?}");
}

#[tokio::test]
async fn an_http_check_passes_on_the_expected_status_and_fails_on_another() {
    let (port, first) = serve("HTTP/1.1 200 OK").await;
    let ok = HttpCheck::parse(&format!("http://{{address}}:{port}/health")).unwrap();
    let check = http(&ok, "127.0.0.1", quick()).await;
    assert!(check.passed, "{check:?}");
    assert_eq!(check.evidence, vec!["HTTP/1.1 200 OK".to_string()]);
    let request = first.await.unwrap();
    assert!(request.starts_with("GET /health HTTP/1.1\r\n"), "{request}");
    assert!(
        request.contains(&format!("\r\nHost: 127.0.0.1:{port}\r\n")),
        "{request}"
    );

    let (port, _first) = serve("HTTP/1.1 200 OK").await;
    let wants_204 = HttpCheck::parse(&format!("http://{{address}}:{port}/health=204")).unwrap();
    let check = http(&wants_204, "127.0.0.1", quick()).await;
    assert!(!check.passed, "{check:?}");
    assert!(check.detail.contains("did not answer 204"), "{check:?}");
    assert!(
        check
            .evidence
            .iter()
            .any(|l| l.contains("HTTP/1.1 200 OK (expected 204)")),
        "{check:?}"
    );
}

#[tokio::test]
async fn a_server_that_is_not_http_fails_the_check_with_what_it_said() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").await;
        }
    });
    let check = HttpCheck::parse(&format!("http://{{address}}:{port}/")).unwrap();
    let check = http(&check, "127.0.0.1", quick()).await;
    assert!(!check.passed, "{check:?}");
    assert!(
        check.detail.contains("no HTTP status line: SSH-2.0"),
        "{check:?}"
    );
}

#[test]
fn urls_split_into_host_port_and_path() {
    assert_eq!(
        split_url("http://10.0.0.5:8080/health?x=1"),
        Some(("10.0.0.5".into(), 8080, "/health?x=1".into()))
    );
    assert_eq!(
        split_url("http://web"),
        Some(("web".into(), 80, "/".into()))
    );
    assert_eq!(
        split_url("http://[::1]:81/a"),
        Some(("::1".into(), 81, "/a".into()))
    );
    assert_eq!(
        split_url("http://h?q"),
        Some(("h".into(), 80, "/?q".into()))
    );
    assert_eq!(split_url("https://h/"), None);
}

#[test]
fn the_console_tail_drops_escapes_and_blank_lines() {
    let text = "\u{1b}[2Jboot\r\n\r\nkernel: ok\r\n\u{1b}[0mtiny-1 login: \r\n";
    assert_eq!(console_tail(text, 2), vec!["kernel: ok", "tiny-1 login:"]);
    assert_eq!(console_tail(text, 12).len(), 3);
}
