//! A check the SDK does not make: that an XML answer is whole.

use aws_sdk_ec2::config::interceptors::AfterDeserializationInterceptorContextRef;
use aws_sdk_ec2::config::{ConfigBag, Intercept, RuntimeComponents};

/// EC2 and STS answer in XML, and the SDK's XML reader accepts a document
/// cut short: it stops at the end of the input without complaint, so a
/// truncated DescribeInstances would read as a shorter list. This refuses
/// a successful XML answer whose root element is not closed; the call then
/// fails as an unreadable answer (which the SDK retries, bounded).
#[derive(Debug)]
pub struct WholeXml;

impl Intercept for WholeXml {
    fn name(&self) -> &'static str {
        "altishift-whole-xml"
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let response = context.response();
        if !response.status().is_success() {
            return Ok(());
        }
        match response.body().bytes().and_then(xml_cut_short) {
            Some(reason) => Err(reason.into()),
            None => Ok(()),
        }
    }
}

/// Why an XML document is incomplete, or None when its root element is
/// closed at the end (or it is no XML at all: the SDK's parser judges that).
pub fn xml_cut_short(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return Some("the answer is empty".into());
    }
    // Skip the declaration, comments and a doctype before the root element.
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        let skip_to = if rest.starts_with("<?") {
            "?>"
        } else if rest.starts_with("<!--") {
            "-->"
        } else if rest.starts_with("<!") {
            ">"
        } else {
            break;
        };
        match rest.find(skip_to) {
            Some(at) => rest = &rest[at + skip_to.len()..],
            None => return Some("the XML answer ends inside its prologue".into()),
        }
    }
    let tag = rest.strip_prefix('<')?;
    let name: String = tag
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '>' && *c != '/')
        .collect();
    if name.is_empty() {
        return None;
    }
    let open_end = tag.find('>');
    // `<Root/>`: the whole document is one empty element.
    if open_end == Some(tag.len() - 1) && tag.ends_with("/>") {
        return None;
    }
    let closed = text.ends_with(&format!("</{name}>"))
        || text.ends_with(&format!(
            "</{}>",
            name.rsplit(':').next().unwrap_or(name.as_str())
        ))
        || text
            .rsplit_once("</")
            .is_some_and(|(_, last)| last.trim_end_matches('>').trim() == name);
    (!closed).then(|| format!("the XML answer is cut short: <{name}> is never closed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_short_xml_answer_is_noticed() {
        let whole = br#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><reservationSet/></DescribeInstancesResponse>
"#;
        assert_eq!(xml_cut_short(whole), None);
        assert_eq!(xml_cut_short(b"<Empty/>"), None);
        let cut = &whole[..whole.len() - 20];
        let why = xml_cut_short(cut).unwrap();
        assert!(
            why.contains("<DescribeInstancesResponse> is never closed"),
            "{why}"
        );
        assert!(xml_cut_short(b"   ").is_some());
        assert!(xml_cut_short(b"<?xml version=").is_some());
        // Not XML at all: for the SDK's parser to refuse.
        assert_eq!(xml_cut_short(b"Internal Server Error"), None);
    }
}
