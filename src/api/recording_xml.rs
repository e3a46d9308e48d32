//! The `<recording>` element of getRecordings, as Scalelite's builder writes it (pure):
//! Builder's escaping, metadata keys that are XML names only, playback URLs with one-time
//! tokens for protected recordings.

use crate::store::recordings::Recording;

/// Whether `k` can be written as an XML element name (metadata keys become elements).
pub fn xml_name(k: &str) -> bool {
    let mut chars = k.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !k.to_ascii_lowercase().starts_with("xml")
}

/// The playback URL of one format. A protected recording links to the load balancer's play
/// route with a fresh one-time token instead of the files.
fn playback_url(
    prefix: &str,
    rec: &Recording,
    format: &str,
    url: &str,
    links: &crate::playback::Links,
) -> String {
    if rec.protected {
        let token = links
            .get(&(rec.record_id.clone(), format.to_string()))
            .map(String::as_str)
            .unwrap_or("");
        format!(
            "{prefix}/recording/{}/{format}?token={token}",
            rec.record_id
        )
    } else {
        format!("{prefix}{url}")
    }
}

/// Escapes element text as Ruby's Builder does (`&`, `<`, `>` only).
fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::partial_escape(s)
}

/// Escapes an attribute value as Builder does (also `"`).
fn escape_attr(s: &str) -> String {
    quick_xml::escape::partial_escape(s).replace('"', "&quot;")
}

pub fn el(out: &mut String, name: &str, value: impl std::fmt::Display) {
    let v = value.to_string();
    out.push_str(&format!("<{name}>{}</{name}>", escape(&v)));
}

/// One `<recording>` element, as Scalelite's builder writes it.
pub fn recording_xml(
    out: &mut String,
    rec: &Recording,
    prefix: &str,
    show_protected: bool,
    links: &crate::playback::Links,
) {
    out.push_str("<recording>");
    el(out, "recordID", &rec.record_id);
    el(out, "meetingID", &rec.meeting_id);
    el(out, "internalMeetingID", &rec.record_id);
    el(out, "name", &rec.name);
    el(out, "published", rec.published);
    if show_protected {
        el(out, "protected", rec.protected);
    }
    if let Some(s) = &rec.state {
        el(out, "state", s);
    }
    el(out, "startTime", rec.start_time);
    el(out, "endTime", rec.end_time);
    if let Some(p) = rec.participants {
        el(out, "participants", p);
    }
    if let Some(r) = rec.raw_size {
        el(out, "rawSize", r);
    }
    out.push_str("<metadata>");
    for (k, v) in &rec.metadata {
        if !xml_name(k) {
            continue;
        }
        if v.trim().is_empty() {
            out.push_str(&format!("<{k}><![CDATA[]]></{k}>"));
        } else {
            el(out, k, v);
        }
    }
    out.push_str("</metadata><playback>");
    for f in &rec.formats {
        out.push_str("<format>");
        el(out, "type", &f.format);
        el(
            out,
            "url",
            playback_url(prefix, rec, &f.format, &f.url, links),
        );
        el(out, "length", f.length);
        if let Some(p) = f.processing_time {
            el(out, "processingTime", p);
        }
        if let Some(s) = f.size {
            el(out, "size", s);
        }
        if !rec.protected && !f.thumbnails.is_empty() {
            out.push_str("<preview><images>");
            for t in &f.thumbnails {
                let attr = |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_default();
                out.push_str(&format!(
                    "<image alt=\"{}\" width=\"{}\" height=\"{}\">{}</image>",
                    escape_attr(&t.alt),
                    attr(t.width),
                    attr(t.height),
                    escape(&format!("{prefix}{}", t.url))
                ));
            }
            out.push_str("</images></preview>");
        }
        out.push_str("</format>");
    }
    out.push_str("</playback></recording>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_keys_that_are_not_xml_names_are_left_out() {
        assert!(xml_name("gl-listed") && xml_name("bbb-origin-server-name"));
        assert!(!xml_name("a b") && !xml_name("<x>") && !xml_name("1a") && !xml_name(""));
        let rec = Recording {
            record_id: "r".into(),
            metadata: vec![("ok".into(), "".into()), ("bad key".into(), "x".into())],
            ..Default::default()
        };
        let mut s = String::new();
        recording_xml(&mut s, &rec, "https://lb", false, &Default::default());
        assert!(
            s.contains("<metadata><ok><![CDATA[]]></ok></metadata>"),
            "{s}"
        );
    }
}
