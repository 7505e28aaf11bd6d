//! Where our credentials may go, and HTTP errors told without URLs.
//!
//! A server names URLs for us to call next (an operation's `selfLink`, a
//! `links.pages.next`, a `Location`). A bearer token or an API key may only
//! follow such a URL to the endpoint the profile configured: same scheme,
//! host and port ([`Home::admit`]). A URL is parsed with the `url` crate, so
//! `https://api.example.com@evil.com/` (user info, host `evil.com`) and
//! `https://api.example.com.evil.com/` are the hosts they really name.
//!
//! reqwest's error `Display` ends in `for url (…)`; some URLs authorise by
//! themselves (a Cloud Storage resumable session, a CloudStack extract
//! URL), so every client formats its errors through [`error_text`].

use super::CloudError;
use crate::Profile;
use url::Url;

/// The origin a credential may be sent to: the configured endpoint.
#[derive(Debug, Clone)]
pub struct Home {
    url: Url,
    /// What the endpoint is called in errors (`[clouds.x] endpoint`, …).
    label: String,
}

impl Home {
    /// Parses a configured endpoint (http or https, no user info).
    pub fn new(endpoint: &str, label: &str) -> Result<Home, CloudError> {
        let url = Url::parse(endpoint).map_err(|e| {
            CloudError::Permanent(format!(
                "{label} '{}' is not a URL ({e})",
                crate::text::safe(endpoint)
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(CloudError::Permanent(format!(
                "{label} '{}' must be an http(s) URL with a host",
                crate::text::safe(endpoint)
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(CloudError::Permanent(format!(
                "{label} must not carry user info (credentials belong in the profile's secret keys)"
            )));
        }
        Ok(Home {
            url,
            label: label.to_string(),
        })
    }

    /// `scheme://host[:port]` of the endpoint.
    pub fn origin(&self) -> String {
        self.url.origin().ascii_serialization()
    }

    /// True when `url` is on this endpoint's scheme, host and port.
    pub fn owns(&self, url: &Url) -> bool {
        same_origin(&self.url, url)
    }

    /// Checks a URL a server handed us before a credential goes with it.
    /// On our endpoint it is returned as is. `aliases` are origins the real
    /// service names itself by (`https://api.digitalocean.com`,
    /// `https://www.googleapis.com`): such a link is taken as a path on our
    /// endpoint, so the request still goes to the configured host. Anything
    /// else (another host or port, a scheme downgrade, user info, a
    /// relative or unparsable link) is refused.
    pub fn admit(&self, what: &str, link: &str, aliases: &[&str]) -> Result<Url, CloudError> {
        let shown = crate::text::safe(link);
        let refuse = |why: String| {
            CloudError::Permanent(format!(
                "{what}: the server named '{shown}', {why}; credentials only go to {} ({})",
                self.origin(),
                self.label
            ))
        };
        let url = Url::parse(link).map_err(|e| refuse(format!("not an absolute URL ({e})")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse("a URL with user info".into()));
        }
        if self.owns(&url) {
            return Ok(url);
        }
        let aliased = aliases
            .iter()
            .filter_map(|a| Url::parse(a).ok())
            .any(|a| same_origin(&a, &url));
        if !aliased {
            let host = url.host_str().unwrap_or("no host");
            return Err(refuse(format!(
                "which is {}://{host}:{}",
                url.scheme(),
                url.port_or_known_default()
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "?".into())
            )));
        }
        let mut home = self.url.clone();
        home.set_path(url.path());
        home.set_query(url.query());
        home.set_fragment(None);
        Ok(home)
    }
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str().is_some()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Refuses a profile whose endpoints would send a credential in clear
/// text: `http://` only with `insecure_endpoint = true` (test servers).
pub fn check_profile(file: &str, name: &str, profile: &Profile) -> Result<(), CloudError> {
    let (endpoints, insecure) = profile.endpoints();
    for (key, value) in endpoints {
        let label = format!("{file}: [clouds.{name}] {key}");
        let home = Home::new(value, &label)?;
        if home.url.scheme() == "http" && !insecure {
            return Err(CloudError::Permanent(format!(
                "{label} '{}' is plain http: credentials would cross the network readable. \
                 Use https, or set insecure_endpoint = true in [clouds.{name}] for a test server",
                crate::text::safe(value)
            )));
        }
    }
    Ok(())
}

/// A URL the server handed us that we call without our credentials (a
/// CloudStack extract or upload URL on the storage VM): any host, but no
/// plain http unless the profile allows it, and no user info.
pub fn check_handed(what: &str, link: &str, insecure: bool) -> Result<(), CloudError> {
    let url = Url::parse(link).map_err(|e| {
        CloudError::Permanent(format!("{what}: the server's URL is unusable ({e})"))
    })?;
    let refuse = |why: &str| CloudError::Permanent(format!("{what}: the server's URL {why}"));
    match url.scheme() {
        "https" => {}
        "http" if insecure => {}
        "http" => {
            return Err(refuse(
                "is plain http; set insecure_endpoint = true in the profile to allow it",
            ));
        }
        _ => return Err(refuse("is not http(s)")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("carries user info"));
    }
    Ok(())
}

/// A reqwest error as text without its URL, with its causes.
pub fn error_text(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home() -> Home {
        Home::new("https://api.example.com", "[clouds.x] endpoint").unwrap()
    }

    #[test]
    fn links_on_other_hosts_are_refused() {
        let home = home();
        for link in [
            "https://api.example.com@evil.com/v2/x",
            "https://api.example.com.evil.com/v2/x",
            "http://api.example.com/v2/x",
            "https://api.example.com:8443/v2/x",
            "https://user:pw@api.example.com/v2/x",
            "@evil.com/v2/x",
            ".evil.com/v2/x",
            "//evil.com/v2/x",
            "/v2/x",
        ] {
            let err = home.admit("GET /v2/x", link, &[]).unwrap_err().to_string();
            assert!(
                err.contains("credentials only go to https://api.example.com"),
                "{err}"
            );
        }
        let ok = home.admit("x", "https://API.example.com:443/v2/x?page=2", &[]);
        assert_eq!(ok.unwrap().as_str(), "https://api.example.com/v2/x?page=2");
    }

    #[test]
    fn the_services_own_name_stays_a_path_on_our_endpoint() {
        let home = Home::new("http://127.0.0.1:9", "endpoint").unwrap();
        let url = home
            .admit(
                "x",
                "https://api.digitalocean.com/v2/droplets?page=2",
                &["https://api.digitalocean.com"],
            )
            .unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:9/v2/droplets?page=2");
        // An alias is https only: a downgrade is refused.
        assert!(
            home.admit(
                "x",
                "http://api.digitalocean.com/v2",
                &["https://api.digitalocean.com"]
            )
            .is_err()
        );
    }

    #[test]
    fn plain_http_needs_the_insecure_flag() {
        let mut gcp = crate::gcp::profile::GcpProfile {
            endpoint: Some("http://127.0.0.1:9/client/api".into()),
            ..Default::default()
        };
        let err = check_profile("c.toml", "cs", &Profile::Gcp(gcp.clone()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("[clouds.cs] endpoint"), "{err}");
        assert!(err.contains("insecure_endpoint = true"), "{err}");
        gcp.insecure_endpoint = Some(true);
        assert!(check_profile("c.toml", "cs", &Profile::Gcp(gcp.clone())).is_ok());
        gcp.storage_endpoint = Some("https://u:p@storage.example.com".into());
        let err = check_profile("c.toml", "cs", &Profile::Gcp(gcp))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("storage_endpoint") && !err.contains("u:p"),
            "{err}"
        );
    }

    #[test]
    fn handed_urls_are_http_s_only() {
        assert!(check_handed("x", "https://10.0.0.5/userdata/a.qcow2", false).is_ok());
        assert!(check_handed("x", "http://10.0.0.5/a", false).is_err());
        assert!(check_handed("x", "http://10.0.0.5/a", true).is_ok());
        assert!(check_handed("x", "file:///etc/passwd", true).is_err());
    }
}
