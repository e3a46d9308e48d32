//! Reading BBB XML answers without building a DOM.
//!
//! [`parse_reply`] reads the top-level `returncode`, `messageKey` and `message`;
//! [`parse_meetings`] walks a `getMeetings` answer and returns, for every `<meeting>`, its
//! load-relevant fields plus the byte range of the element, so the API can merge answers
//! from several servers by copying bytes rather than re-serialising.

use std::ops::Range;

use quick_xml::events::Event;
use quick_xml::Reader;

/// One meeting as a `getMeetings` answer describes it, reduced to what load needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MeetingLoad {
    pub participants: u32,
    pub moderators: u32,
    pub voice: u32,
    pub video: u32,
    /// BBB's `createTime`, in milliseconds.
    pub create_time_ms: i64,
    pub is_breakout: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyHead {
    pub returncode: String,
    pub message_key: String,
    pub message: String,
    /// Byte range of the `<response>` element in the answer.
    pub root: Range<usize>,
}

/// The head of a BBB `<response>`, or `None` if the bytes are not one. A document with a
/// DTD (`<!DOCTYPE …>`, which is where entities are declared) is not one: BBB never sends
/// one, and relaying it would hand entity declarations to the front end's parser.
pub fn parse_reply(body: &[u8]) -> Option<ReplyHead> {
    let mut reader = Reader::from_reader(body);
    let mut head = ReplyHead::default();
    let mut root_start = 0usize;
    let mut depth = 0usize;
    let mut saw_response = false;
    let mut closed = false;
    let mut current: Option<String> = None;
    loop {
        let before = reader.buffer_position() as usize;
        match reader.read_event() {
            Ok(Event::DocType(_)) => return None,
            Ok(Event::Start(e)) => {
                depth += 1;
                if depth == 1 {
                    if e.local_name().as_ref() != b"response" {
                        return None;
                    }
                    saw_response = true;
                    root_start =
                        before + body[before..].iter().position(|&b| b == b'<').unwrap_or(0);
                } else if depth == 2 {
                    current = Some(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
                }
            }
            Ok(Event::Empty(_)) if depth == 0 => return None,
            Ok(Event::End(_)) => {
                depth = depth.saturating_sub(1);
                if depth < 2 {
                    current = None;
                }
                if depth == 0 && saw_response {
                    closed = true;
                    head.root = root_start..reader.buffer_position() as usize;
                    break;
                }
            }
            Ok(Event::Text(t)) if depth == 2 => {
                let text = t.unescape().map(|c| c.into_owned()).unwrap_or_default();
                push_field(&mut head, current.as_deref(), &text);
            }
            Ok(Event::CData(t)) if depth == 2 => {
                let text = String::from_utf8_lossy(&t).into_owned();
                push_field(&mut head, current.as_deref(), &text);
            }
            Ok(Event::Eof) => break,
            Err(_) => return None,
            _ => {}
        }
    }
    (closed && !head.returncode.is_empty()).then_some(head)
}

/// The text of the `<response>`'s direct children (`getMeetingInfo`'s `meetingName`,
/// `createDate`, …), unescaped, in document order. `None` if the bytes are not a BBB document.
pub fn parse_fields(body: &[u8]) -> Option<Vec<(String, String)>> {
    parse_reply(body)?;
    let mut reader = Reader::from_reader(body);
    let mut out: Vec<(String, String)> = Vec::new();
    let mut depth = 0usize;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                depth += 1;
                if depth == 2 {
                    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    out.push((name, String::new()));
                }
            }
            Ok(Event::End(_)) => depth = depth.saturating_sub(1),
            Ok(Event::Text(t)) if depth == 2 => {
                if let Some((_, v)) = out.last_mut() {
                    v.push_str(&t.unescape().map(|c| c.into_owned()).unwrap_or_default());
                }
            }
            Ok(Event::CData(t)) if depth == 2 => {
                if let Some((_, v)) = out.last_mut() {
                    v.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Ok(Event::Eof) => break,
            Err(_) => return None,
            _ => {}
        }
    }
    Some(out)
}

fn push_field(head: &mut ReplyHead, field: Option<&str>, text: &str) {
    match field {
        Some("returncode") => head.returncode.push_str(text.trim()),
        Some("messageKey") => head.message_key.push_str(text.trim()),
        Some("message") => head.message.push_str(text),
        _ => {}
    }
}

/// One `<meeting>` of a `getMeetings` answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MeetingEntry {
    /// Byte range of `<meeting>…</meeting>` in the answer.
    pub raw: Range<usize>,
    pub meeting_id: String,
    pub meeting_name: String,
    pub internal_meeting_id: String,
    pub running: bool,
    pub load: MeetingLoad,
    /// Children of `<metadata>`.
    pub metadata: Vec<(String, String)>,
    /// `voiceBridge` and `moderatorPW` (for adopting meetings the store does not know).
    pub voice_bridge: String,
    pub moderator_pw: String,
}

/// An element name on the way to a meeting's fields, read without allocating (a large
/// server's answer has millions of elements; only metadata keys are kept as text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Response,
    Meetings,
    Meeting,
    Metadata,
    Field(Field),
    Other,
}

/// The `<meeting>` children [`parse_meetings`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    MeetingId,
    MeetingName,
    InternalMeetingId,
    Running,
    ParticipantCount,
    ModeratorCount,
    VoiceParticipantCount,
    VideoCount,
    CreateTime,
    IsBreakout,
    VoiceBridge,
    ModeratorPw,
}

fn tag(name: &[u8]) -> Tag {
    match name {
        b"response" => Tag::Response,
        b"meetings" => Tag::Meetings,
        b"meeting" => Tag::Meeting,
        b"metadata" => Tag::Metadata,
        b"meetingID" => Tag::Field(Field::MeetingId),
        b"meetingName" => Tag::Field(Field::MeetingName),
        b"internalMeetingID" => Tag::Field(Field::InternalMeetingId),
        b"running" => Tag::Field(Field::Running),
        b"participantCount" => Tag::Field(Field::ParticipantCount),
        b"moderatorCount" => Tag::Field(Field::ModeratorCount),
        b"voiceParticipantCount" => Tag::Field(Field::VoiceParticipantCount),
        b"videoCount" => Tag::Field(Field::VideoCount),
        b"createTime" => Tag::Field(Field::CreateTime),
        b"isBreakout" => Tag::Field(Field::IsBreakout),
        b"voiceBridge" => Tag::Field(Field::VoiceBridge),
        b"moderatorPW" => Tag::Field(Field::ModeratorPw),
        _ => Tag::Other,
    }
}

/// Every meeting in a successful `getMeetings` answer. `None` if the bytes are not a BBB
/// document. One pass over the bytes (an event reader, no DOM), allocating only for the
/// values it keeps; call it off the async workers for a large answer.
pub fn parse_meetings(body: &[u8]) -> Option<Vec<MeetingEntry>> {
    let mut reader = Reader::from_reader(body);
    let mut out = Vec::new();
    let mut path: Vec<Tag> = Vec::with_capacity(8);
    let mut current: Option<MeetingEntry> = None;
    // The metadata key whose value is being read (`<metadata><key>value</key>`).
    let mut meta_key = String::new();
    let mut start = 0usize;
    let mut closed = false;
    loop {
        let before = reader.buffer_position() as usize;
        match reader.read_event() {
            Ok(Event::DocType(_)) => return None,
            Ok(Event::Start(e)) => {
                let name = e.local_name();
                let t = tag(name.as_ref());
                if path.is_empty() && t != Tag::Response {
                    return None;
                }
                if path.len() == 2 && t == Tag::Meeting && path[1] == Tag::Meetings {
                    // `before` may sit on whitespace preceding the tag; find the `<`.
                    start = before + body[before..].iter().position(|&b| b == b'<').unwrap_or(0);
                    current = Some(MeetingEntry::default());
                }
                if path.len() == 4 && path[3] == Tag::Metadata && current.is_some() {
                    meta_key.clear();
                    meta_key.push_str(&String::from_utf8_lossy(name.as_ref()));
                }
                path.push(t);
            }
            Ok(Event::End(_)) => {
                if path.len() == 3 && path[2] == Tag::Meeting {
                    if let Some(mut m) = current.take() {
                        m.raw = start..reader.buffer_position() as usize;
                        out.push(m);
                    }
                }
                path.pop();
                if path.is_empty() {
                    closed = true;
                }
            }
            Ok(Event::Empty(_)) if path.is_empty() => return None,
            Ok(Event::Empty(e)) if path.len() == 4 && path[3] == Tag::Metadata => {
                if let Some(m) = current.as_mut() {
                    m.metadata.push((
                        String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
                        String::new(),
                    ));
                }
            }
            Ok(Event::Text(t)) => {
                if let Some(m) = current.as_mut().filter(|_| reads_text(&path)) {
                    let text = t.unescape().unwrap_or_default();
                    meeting_field(m, &path, &meta_key, &text);
                }
            }
            Ok(Event::CData(t)) => {
                if let Some(m) = current.as_mut().filter(|_| reads_text(&path)) {
                    meeting_field(m, &path, &meta_key, &String::from_utf8_lossy(&t));
                }
            }
            Ok(Event::Eof) => break,
            Err(_) => return None,
            _ => {}
        }
    }
    closed.then_some(out)
}

/// Whether text at `path` is a meeting field or a metadata value.
fn reads_text(path: &[Tag]) -> bool {
    (path.len() == 4 && matches!(path[3], Tag::Field(_)))
        || (path.len() == 5 && path[3] == Tag::Metadata)
}

fn meeting_field(m: &mut MeetingEntry, path: &[Tag], meta_key: &str, text: &str) {
    let num = |s: &str| s.trim().parse::<u32>().unwrap_or(0);
    match (path.len(), path[3]) {
        (4, Tag::Field(f)) => match f {
            Field::MeetingId => m.meeting_id.push_str(text),
            Field::MeetingName => m.meeting_name.push_str(text),
            Field::InternalMeetingId => m.internal_meeting_id.push_str(text.trim()),
            Field::Running => m.running = text.trim() == "true",
            Field::ParticipantCount => m.load.participants = num(text),
            Field::ModeratorCount => m.load.moderators = num(text),
            Field::VoiceParticipantCount => m.load.voice = num(text),
            Field::VideoCount => m.load.video = num(text),
            Field::CreateTime => m.load.create_time_ms = text.trim().parse().unwrap_or(0),
            Field::IsBreakout => m.load.is_breakout = text.trim() == "true",
            Field::VoiceBridge => m.voice_bridge.push_str(text.trim()),
            Field::ModeratorPw => m.moderator_pw.push_str(text),
        },
        (5, Tag::Metadata) => m.metadata.push((meta_key.to_string(), text.to_string())),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_head_of_success_and_failure() {
        let h = parse_reply(b"<?xml version=\"1.0\"?>\n<response><returncode>FAILED</returncode><messageKey>notFound</messageKey><message>A &amp; B</message></response>").unwrap();
        assert_eq!(
            (
                h.returncode.as_str(),
                h.message_key.as_str(),
                h.message.as_str()
            ),
            ("FAILED", "notFound", "A & B")
        );
        assert_eq!(parse_reply(b"<response><returncode>SUCCESS</returncode><meetings><meeting><message>x</message></meeting></meetings></response>").unwrap().message, "");
    }

    #[test]
    fn a_dtd_anywhere_makes_it_not_a_reply() {
        for dtd in [
            "<!DOCTYPE response>",
            "<!DOCTYPE response [<!ENTITY x \"y\">]>",
            "<!DOCTYPE response SYSTEM \"http://evil/x.dtd\">",
            "<!DOCTYPE response [<!ENTITY % p SYSTEM \"file:///etc/passwd\"> %p;]>",
        ] {
            for at in [
                "",
                "<?xml version=\"1.0\"?>",
                "<?xml version=\"1.0\"?><!-- c -->\n",
            ] {
                let doc = format!(
                    "{at}{dtd}<response><returncode>SUCCESS</returncode><meetings/></response>"
                );
                assert_eq!(parse_reply(doc.as_bytes()), None, "{doc}");
                assert_eq!(parse_meetings(doc.as_bytes()), None, "{doc}");
            }
        }
    }

    #[test]
    fn the_root_range_leaves_out_the_prolog_and_trailers() {
        let doc = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<?xml-stylesheet href=\"x\"?><!-- c --> <response><returncode>SUCCESS</returncode></response><!-- after --><?pi?>";
        let h = parse_reply(doc).unwrap();
        assert_eq!(
            &doc[h.root.clone()],
            b"<response><returncode>SUCCESS</returncode></response>"
        );
    }

    #[test]
    fn garbage_is_not_a_reply() {
        for g in [
            &b"<html><body>502</body></html>"[..],
            b"not xml at all",
            b"",
            b"<response><returncode>SUC",
            b"<response></response>",
        ] {
            assert_eq!(parse_reply(g), None, "{:?}", String::from_utf8_lossy(g));
        }
    }

    #[test]
    fn meetings_come_with_their_fields_and_byte_ranges() {
        let xml = b"<response><returncode>SUCCESS</returncode><meetings>\n  <meeting><meetingName>A</meetingName><meetingID>a&amp;1</meetingID><createTime>1531241258036</createTime><running>true</running><participantCount>4</participantCount><moderatorCount>1</moderatorCount><voiceParticipantCount>2</voiceParticipantCount><videoCount>3</videoCount><metadata><tenant-id>t1</tenant-id><empty/></metadata><isBreakout>false</isBreakout></meeting><meeting><meetingID>b</meetingID><isBreakout>true</isBreakout><attendees></attendees></meeting></meetings></response>";
        let ms = parse_meetings(xml).unwrap();
        assert_eq!(ms.len(), 2);
        assert_eq!(ms[0].meeting_id, "a&1");
        assert_eq!(
            ms[0].load,
            MeetingLoad {
                participants: 4,
                moderators: 1,
                voice: 2,
                video: 3,
                create_time_ms: 1531241258036,
                is_breakout: false
            }
        );
        assert_eq!(
            ms[0].metadata,
            vec![
                ("tenant-id".into(), "t1".into()),
                ("empty".into(), String::new())
            ]
        );
        assert!(ms[1].load.is_breakout);
        let raw = &xml[ms[1].raw.clone()];
        assert!(raw.starts_with(b"<meeting>") && raw.ends_with(b"</meeting>"));
        assert!(xml[ms[0].raw.clone()].starts_with(b"<meeting>"));
    }

    #[test]
    fn only_a_meetings_own_children_are_its_fields() {
        let xml = b"<response><returncode>SUCCESS</returncode><meetingID>top</meetingID><meetings><meeting>\
            <meetingID>m1</meetingID><breakout><meetingID>parent</meetingID><participantCount>9</participantCount></breakout>\
            <attendees><attendee><moderatorPW>no</moderatorPW></attendee></attendees>\
            <metadata><bbb-origin>x &lt;1&gt;</bbb-origin><![CDATA[loose]]><a><b>deep</b></a></metadata>\
            <participantCount>2</participantCount></meeting></meetings></response>";
        let ms = parse_meetings(xml).unwrap();
        assert_eq!(ms.len(), 1);
        assert_eq!(
            (
                ms[0].meeting_id.as_str(),
                ms[0].load.participants,
                ms[0].moderator_pw.as_str()
            ),
            ("m1", 2, "")
        );
        assert_eq!(ms[0].metadata, vec![("bbb-origin".into(), "x <1>".into())]);
        for bad in [
            &b"<response><meetings><meeting><meetingID>a</meetingID></meeting></meetings>"[..],
            b"<response><meetings><meeting></meetings></response>",
            b"<other><meetings/></other>",
        ] {
            assert_eq!(
                parse_meetings(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn no_meetings_is_an_empty_list() {
        let xml = b"<response><returncode>SUCCESS</returncode><meetings/><messageKey>noMeetings</messageKey></response>";
        assert_eq!(parse_meetings(xml), Some(vec![]));
        assert_eq!(parse_meetings(b"<html/>"), None);
    }

    #[test]
    fn top_level_fields_are_read_unescaped() {
        let f = parse_fields(
            b"<response><returncode>SUCCESS</returncode><meetingName>a &amp; b</meetingName><attendees><attendee><userID>u</userID></attendee></attendees><createDate><![CDATA[Mon]]></createDate></response>",
        )
        .unwrap();
        let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("meetingName"), Some("a & b"));
        assert_eq!(get("createDate"), Some("Mon"));
        assert_eq!(get("attendees"), Some(""), "nested elements are not fields");
        assert!(parse_fields(b"<html></html>").is_none());
    }
}
