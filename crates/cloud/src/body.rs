//! Provider answers read with a size cap: a server (or whatever answers in
//! its place) cannot make us buffer gigabytes of JSON or XML.

use super::CloudError;

/// Largest JSON/XML answer we read. The largest real ones (a 500-item page
/// of instances or images) are a few MiB.
pub const MAX_ANSWER_BYTES: usize = 32 << 20;

/// Reads a response body as text, refusing one longer than `limit` bytes
/// (by its Content-Length at once, else as it streams in). Errors name
/// `what` and never the URL (it may carry a signature or a session).
pub async fn read_text(
    mut response: reqwest::Response,
    limit: usize,
    what: &str,
) -> Result<String, CloudError> {
    let too_big = |size: String| {
        CloudError::Permanent(format!(
            "{what}: the answer is {size} bytes, more than the {limit} a provider answer may be; refused"
        ))
    };
    if let Some(length) = response.content_length()
        && length > limit as u64
    {
        return Err(too_big(length.to_string()));
    }
    let mut body: Vec<u8> = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| CloudError::Transient(format!("{what}: {}", e.without_url())))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_big(format!("over {}", body.len() + chunk.len())));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(match String::from_utf8(body) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// Longest piece of a provider's error text we repeat: an error line must
/// stay readable on a terminal, in the report and in the audit log.
pub const MAX_ERROR_TEXT: usize = 500;

/// `text` cut to [`MAX_ERROR_TEXT`] bytes (at a character boundary), saying
/// how much was left out.
pub fn clip(text: &str) -> String {
    if text.len() <= MAX_ERROR_TEXT {
        return text.to_string();
    }
    let mut end = MAX_ERROR_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes more)", &text[..end], text.len() - end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Answers one request with `head` then `body`.
    async fn serve_once(head: String, body: Vec<u8>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(&body).await;
            let _ = socket.shutdown().await;
        });
        format!("http://{address}/v2/droplets?token=secret-signature")
    }

    async fn get(url: &str) -> reqwest::Response {
        reqwest::Client::new().get(url).send().await.unwrap()
    }

    #[tokio::test]
    async fn an_answer_declared_too_long_is_refused_before_reading_it() {
        let url = serve_once(
            "HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n".into(),
            vec![b' '; 5000],
        )
        .await;
        let err = read_text(get(&url).await, 1000, "list droplets")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("list droplets") && err.contains("5000"),
            "{err}"
        );
        assert!(!err.contains("secret-signature"), "{err}");
    }

    #[tokio::test]
    async fn an_answer_without_a_length_is_cut_off_at_the_limit() {
        // No Content-Length: the body runs until the connection closes.
        let url = serve_once(
            "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".into(),
            vec![b'['; 50_000],
        )
        .await;
        let err = read_text(get(&url).await, 1000, "listVirtualMachines")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("listVirtualMachines") && err.contains("refused"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_answer_within_the_limit_is_read_whole() {
        let url = serve_once(
            "HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n".into(),
            b"{\"ok\":true}".to_vec(),
        )
        .await;
        let text = read_text(get(&url).await, 1000, "x").await.unwrap();
        assert_eq!(text, "{\"ok\":true}");
    }

    #[test]
    fn long_error_text_is_clipped_at_a_character_boundary() {
        assert_eq!(clip("short"), "short");
        let long = "é".repeat(400);
        let clipped = clip(&long);
        assert!(clipped.len() < MAX_ERROR_TEXT + 40, "{}", clipped.len());
        assert!(clipped.ends_with("bytes more)"), "{clipped}");
    }
}
