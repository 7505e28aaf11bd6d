//! Following `NextToken` to the last page, for every EC2 and EBS listing.
//!
//! moto never pages (it ignores `MaxResults`), so this loop is tested here on
//! a fake page source and in tests/aws_paging.rs on recorded XML pages served
//! from loopback.

use crate::CloudError;
use std::future::Future;

/// Upper bound on pages of one listing: a server that keeps answering with
/// new tokens is broken, and we say so rather than loop for ever.
pub const MAX_PAGES: usize = 100_000;

/// Calls `fetch` with the previous page's token until a page comes back
/// without one. An empty token ends the listing (AWS sends none, some
/// proxies send `""`); a token repeated immediately is an error.
pub async fn collect_pages<T, F, Fut>(what: &str, mut fetch: F) -> Result<Vec<T>, CloudError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), CloudError>>,
{
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let (items, next) = fetch(token.clone()).await?;
        all.extend(items);
        match next.filter(|t| !t.is_empty()) {
            None => return Ok(all),
            Some(next) if Some(&next) == token.as_ref() => {
                return Err(CloudError::Permanent(format!(
                    "{what}: the server answered the same page token twice; stopping"
                )));
            }
            Some(next) => token = Some(next),
        }
    }
    Err(CloudError::Permanent(format!(
        "{what}: more than {MAX_PAGES} pages; stopping"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A fake page source: three pages chained by tokens, recording the
    /// tokens it was asked for (moto never pages, so this is the test).
    #[tokio::test]
    async fn pages_are_followed_to_the_end_in_order() {
        let pages: Vec<(Vec<u32>, Option<String>)> = vec![
            (vec![1, 2], Some("t1".into())),
            (vec![3], Some("t2".into())),
            (vec![4, 5], None),
        ];
        let asked = Mutex::new(Vec::new());
        let all = collect_pages("fake", |token| {
            asked.lock().unwrap().push(token.clone());
            let index = match token.as_deref() {
                None => 0,
                Some("t1") => 1,
                Some("t2") => 2,
                Some(other) => panic!("unexpected token {other}"),
            };
            let page = pages[index].clone();
            async move { Ok(page) }
        })
        .await
        .unwrap();
        assert_eq!(all, vec![1, 2, 3, 4, 5]);
        assert_eq!(
            *asked.lock().unwrap(),
            vec![None, Some("t1".to_string()), Some("t2".to_string())]
        );
    }

    #[tokio::test]
    async fn an_empty_token_ends_and_a_repeated_token_is_an_error() {
        let all = collect_pages("fake", |_| async { Ok((vec![7u8], Some(String::new()))) })
            .await
            .unwrap();
        assert_eq!(all, vec![7]);
        let err = collect_pages("ec2 DescribeVolumes", |_| async {
            Ok((vec![1u8], Some("same".to_string())))
        })
        .await
        .unwrap_err();
        assert!(err.to_string().contains("same page token twice"), "{err}");
    }

    #[tokio::test]
    async fn an_error_on_a_later_page_fails_the_listing() {
        let err = collect_pages("fake", |token| async move {
            match token {
                None => Ok((vec![1u8], Some("next".into()))),
                Some(_) => Err(CloudError::Transient("HTTP 503".into())),
            }
        })
        .await
        .unwrap_err();
        assert!(err.is_transient());
    }
}
