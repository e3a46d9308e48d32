//! Reading a BBB `metadata.xml` (one per `<format>/<recordID>/` directory) into a
//! [`FormatMetadata`]: a pure function of the bytes, no I/O.
//!
//! BBB writes this file in several shapes (Ruby writers, bbb-web's Scala rewriter; `playback`
//! before or after `meta`; `meeting` present or not), so the parser builds a tiny element
//! tree and then looks fields up by name, never by position. Every field Scalelite stores is
//! read, plus the ones it drops (raw size, format size, breakout, internal id), because the
//! index keeps them. Missing optional fields are `None`; a missing `id` or `playback/link` is
//! an error, since the recording or the format could not be served without it.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::store::recordings::Thumbnail;

/// Meta keys BBB adds itself; Scalelite does not store them as metadata.
pub const INTERNAL_META: &[&str] = &["isBreakout", "meetingId", "meetingName"];

/// What one `metadata.xml` says about its recording and its one playback format.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FormatMetadata {
    pub record_id: String,
    /// The external meeting ID (`meta/meetingId`, else `meeting/@externalId`, else the record id).
    pub meeting_id: String,
    /// `meeting/@id` (the internal meeting id), else the record id.
    pub internal_meeting_id: String,
    pub name: String,
    pub is_breakout: bool,
    /// `breakout/@parentMeetingId` for a breakout room.
    pub parent_meeting_id: Option<String>,
    pub breakout_sequence: Option<i64>,
    /// `None` when `<published>` is absent.
    pub published: Option<bool>,
    /// As written, except `available` (video, screenshare) which becomes `published`.
    pub state: Option<String>,
    pub start_time_ms: i64,
    pub end_time_ms: i64,
    pub participants: Option<i64>,
    pub raw_size: Option<i64>,
    /// Every `meta` child except [`INTERNAL_META`], in file order.
    pub meta: Vec<(String, String)>,
    pub format: String,
    /// Path and query of `playback/link` (the host is the load balancer's, not BBB's).
    pub url: String,
    /// Minutes, rounded (Scalelite).
    pub length_minutes: i64,
    pub processing_time: Option<i64>,
    pub size: Option<i64>,
    pub thumbnails: Vec<Thumbnail>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata.xml is not well-formed XML: {0}")]
    Xml(String),
    #[error("metadata.xml has no <recording> root")]
    NoRoot,
    #[error("metadata.xml has no <id>")]
    NoId,
    #[error("metadata.xml has no <playback><format>")]
    NoFormat,
    #[error("metadata.xml has no <playback><link>")]
    NoLink,
}

#[derive(Debug, Default)]
struct Node {
    name: String,
    attrs: Vec<(String, String)>,
    text: String,
    children: Vec<Node>,
}

impl Node {
    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }
    fn path(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(self, |n, p| n.child(p))
    }
    fn text_at(&self, path: &[&str]) -> Option<String> {
        self.path(path)
            .map(|n| n.text.trim().to_string())
            .filter(|t| !t.is_empty())
    }
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn start_node(e: &BytesStart<'_>) -> Node {
    let attrs = e
        .attributes()
        .flatten()
        .map(|a| {
            (
                String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                a.unescape_value()
                    .map(|v| v.into_owned())
                    .unwrap_or_default(),
            )
        })
        .collect();
    Node {
        name: String::from_utf8_lossy(e.name().as_ref()).into_owned(),
        attrs,
        ..Default::default()
    }
}

/// Nesting deeper than this is not a BBB file; refusing it bounds the work.
const MAX_DEPTH: usize = 32;

fn parse_tree(xml: &[u8]) -> Result<Node, MetadataError> {
    let mut reader = Reader::from_reader(xml);
    let mut stack: Vec<Node> = vec![Node::default()];
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                if stack.len() > MAX_DEPTH {
                    return Err(MetadataError::Xml("nested too deeply".into()));
                }
                stack.push(start_node(&e));
            }
            Ok(Event::Empty(e)) => {
                let n = start_node(&e);
                if let Some(top) = stack.last_mut() {
                    top.children.push(n);
                }
            }
            Ok(Event::End(_)) => {
                let n = stack.pop().ok_or(MetadataError::NoRoot)?;
                match stack.last_mut() {
                    Some(top) => top.children.push(n),
                    None => return Err(MetadataError::Xml("unbalanced end tag".into())),
                }
            }
            Ok(Event::Text(t)) => {
                let s = t
                    .unescape()
                    .map_err(|e| MetadataError::Xml(e.to_string()))?;
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&s);
                }
            }
            Ok(Event::CData(t)) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(MetadataError::Xml(e.to_string())),
        }
    }
    if stack.len() != 1 {
        return Err(MetadataError::Xml("unclosed element".into()));
    }
    let doc = stack.pop().unwrap_or_default();
    doc.children
        .into_iter()
        .find(|c| c.name == "recording")
        .ok_or(MetadataError::NoRoot)
}

/// The path and query of a URL (`https://bbb/playback/x?y` → `/playback/x?y`); a value that
/// is already a path is kept.
pub fn path_and_query(link: &str) -> String {
    let link = link.trim();
    match url::Url::parse(link) {
        Ok(u) => match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        },
        Err(_) => link.to_string(),
    }
}

fn path_only(link: &str) -> String {
    let link = link.trim();
    match url::Url::parse(link) {
        Ok(u) => u.path().to_string(),
        Err(_) => link.split('?').next().unwrap_or("").to_string(),
    }
}

fn int(s: Option<String>) -> Option<i64> {
    s.and_then(|v| v.parse::<i64>().ok())
}

/// Parses one `metadata.xml`.
pub fn parse(xml: &[u8]) -> Result<FormatMetadata, MetadataError> {
    let rec = parse_tree(xml)?;
    let record_id = rec.text_at(&["id"]).ok_or(MetadataError::NoId)?;
    let playback = rec.child("playback");
    let format = playback
        .and_then(|p| p.text_at(&["format"]))
        .ok_or(MetadataError::NoFormat)?;
    let link = playback
        .and_then(|p| p.text_at(&["link"]))
        .ok_or(MetadataError::NoLink)?;
    let meta_node = rec.child("meta");
    let meeting = rec.child("meeting");
    let breakout = rec.child("breakout");

    let meta_text = |k: &str| meta_node.and_then(|m| m.text_at(&[k]));
    let meeting_id = meta_text("meetingId")
        .or_else(|| {
            meeting
                .and_then(|m| m.attr("externalId"))
                .map(str::to_string)
        })
        .unwrap_or_else(|| record_id.clone());
    let name = meta_text("meetingName")
        .or_else(|| meeting.and_then(|m| m.attr("name")).map(str::to_string))
        .unwrap_or_default();
    let is_breakout = meeting
        .and_then(|m| m.attr("breakout"))
        .map(|b| b == "true")
        .or_else(|| meta_text("isBreakout").map(|b| b == "true"))
        .unwrap_or(false);
    let meta = meta_node
        .map(|m| {
            m.children
                .iter()
                .filter(|c| !INTERNAL_META.contains(&c.name.as_str()))
                .map(|c| (c.name.clone(), c.text.trim().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let state = rec.text_at(&["state"]).map(|s| {
        if s == "available" {
            "published".to_string()
        } else {
            s
        }
    });
    let duration_ms = playback
        .and_then(|p| int(p.text_at(&["duration"])))
        .unwrap_or(0);
    let thumbnails = playback
        .and_then(|p| p.path(&["extensions", "preview", "images"]))
        .map(|imgs| {
            imgs.children
                .iter()
                .filter(|c| c.name == "image")
                .enumerate()
                .map(|(i, c)| Thumbnail {
                    width: c.attr("width").and_then(|w| w.parse().ok()),
                    height: c.attr("height").and_then(|h| h.parse().ok()),
                    alt: c.attr("alt").unwrap_or("").to_string(),
                    url: path_only(&c.text),
                    sequence: i as i64,
                })
                .collect()
        })
        .unwrap_or_default();

    Ok(FormatMetadata {
        internal_meeting_id: meeting
            .and_then(|m| m.attr("id"))
            .map(str::to_string)
            .unwrap_or_else(|| record_id.clone()),
        record_id,
        meeting_id,
        name,
        is_breakout,
        parent_meeting_id: breakout
            .and_then(|b| b.attr("parentMeetingId"))
            .map(str::to_string),
        breakout_sequence: breakout
            .and_then(|b| b.attr("sequence"))
            .and_then(|s| s.parse().ok()),
        published: rec.text_at(&["published"]).map(|p| p == "true"),
        state,
        start_time_ms: int(rec.text_at(&["start_time"])).unwrap_or(0),
        end_time_ms: int(rec.text_at(&["end_time"])).unwrap_or(0),
        participants: int(rec.text_at(&["participants"])),
        raw_size: int(rec.text_at(&["raw_size"])),
        meta,
        format,
        url: path_and_query(&link),
        length_minutes: (duration_ms as f64 / 60000.0).round() as i64,
        processing_time: playback.and_then(|p| int(p.text_at(&["processing_time"]))),
        size: playback.and_then(|p| int(p.text_at(&["size"]))),
        thumbnails,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRESENTATION: &str = r#"<?xml version="1.0"?>
<recording>
  <id>a0715c95000a2bcb90604ecc7097dbc94592c690-1715261728123</id>
  <state>published</state>
  <published>true</published>
  <start_time>1715261728123</start_time>
  <end_time>1715265330913</end_time>
  <participants>14</participants>
  <meeting id="a0715c95000a2bcb90604ecc7097dbc94592c690-1715261728123" externalId="ext-1" name="Anton G's Room" breakout="false"/>
  <meta>
    <bbb-origin>greenlight</bbb-origin>
    <gl-listed></gl-listed>
    <isBreakout>false</isBreakout>
    <meetingId>ext-1</meetingId>
    <meetingName>Anton G's Room</meetingName>
  </meta>
  <playback>
    <format>presentation</format>
    <link>https://bbb1.example.org/playback/presentation/2.3/a0715c95000a2bcb90604ecc7097dbc94592c690-1715261728123</link>
    <processing_time>93510</processing_time>
    <duration>3544120</duration>
    <extensions><preview><images>
      <image width="176" height="136" alt="Welcome &amp; hi">https://bbb1.example.org/presentation/x/thumbnails/thumb-1.png?v=1</image>
      <image width="176" height="136" alt="">https://bbb1.example.org/presentation/x/thumbnails/thumb-2.png</image>
    </images></preview></extensions>
    <size>48213477</size>
  </playback>
  <raw_size>310552871</raw_size>
</recording>"#;

    #[test]
    fn reads_every_field_of_a_presentation() {
        let m = parse(PRESENTATION.as_bytes()).unwrap();
        assert_eq!(
            m.record_id,
            "a0715c95000a2bcb90604ecc7097dbc94592c690-1715261728123"
        );
        assert_eq!(m.meeting_id, "ext-1");
        assert_eq!(m.name, "Anton G's Room");
        assert_eq!(m.published, Some(true));
        assert_eq!(m.state.as_deref(), Some("published"));
        assert_eq!(
            (m.start_time_ms, m.end_time_ms),
            (1715261728123, 1715265330913)
        );
        assert_eq!(m.participants, Some(14));
        assert_eq!(m.raw_size, Some(310552871));
        assert_eq!(
            m.meta,
            vec![
                ("bbb-origin".to_string(), "greenlight".to_string()),
                ("gl-listed".to_string(), String::new())
            ]
        );
        assert_eq!(m.format, "presentation");
        assert_eq!(
            m.url,
            "/playback/presentation/2.3/a0715c95000a2bcb90604ecc7097dbc94592c690-1715261728123"
        );
        assert_eq!(m.length_minutes, 59);
        assert_eq!(m.processing_time, Some(93510));
        assert_eq!(m.size, Some(48213477));
        assert_eq!(m.thumbnails.len(), 2);
        assert_eq!(m.thumbnails[0].alt, "Welcome & hi");
        assert_eq!(
            m.thumbnails[0].url,
            "/presentation/x/thumbnails/thumb-1.png"
        );
        assert_eq!(m.thumbnails[1].sequence, 1);
        assert!(!m.is_breakout);
    }

    #[test]
    fn video_has_no_meeting_element_and_available_means_published() {
        let xml = r#"<recording><id>r-1</id><state>available</state><published>true</published>
            <playback><format>video</format><link>https://h/playback/video/r-1/</link><duration>60000</duration></playback>
            <meta><meetingId>m</meetingId><meetingName>n</meetingName></meta></recording>"#;
        let m = parse(xml.as_bytes()).unwrap();
        assert_eq!(m.state.as_deref(), Some("published"));
        assert_eq!(m.url, "/playback/video/r-1/");
        assert_eq!((m.meeting_id.as_str(), m.length_minutes), ("m", 1));
        assert_eq!(m.internal_meeting_id, "r-1");
        assert_eq!(m.participants, None);
    }

    #[test]
    fn breakout_rooms_keep_their_parent() {
        let xml = r#"<recording><id>b-1</id><meeting id="b-1" externalId="e" name="Room 1" breakout="true"/>
            <breakout parentMeetingId="p-1" sequence="2" meetingId="e"/>
            <playback><format>presentation</format><link>/playback/presentation/2.3/b-1</link></playback></recording>"#;
        let m = parse(xml.as_bytes()).unwrap();
        assert!(m.is_breakout);
        assert_eq!(m.parent_meeting_id.as_deref(), Some("p-1"));
        assert_eq!(m.breakout_sequence, Some(2));
        assert_eq!(m.meeting_id, "e");
    }

    #[test]
    fn broken_files_are_errors_not_panics() {
        assert_eq!(parse(b"").unwrap_err(), MetadataError::NoRoot);
        assert!(matches!(
            parse(b"<recording><id>x</id>"),
            Err(MetadataError::Xml(_))
        ));
        assert_eq!(
            parse(b"<recording><playback><format>p</format></playback></recording>").unwrap_err(),
            MetadataError::NoId
        );
        assert_eq!(
            parse(b"<recording><id>x</id><playback><format>p</format></playback></recording>")
                .unwrap_err(),
            MetadataError::NoLink
        );
    }
}
