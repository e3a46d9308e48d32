//! The simulated servers and their control API. See the module documentation in `mod.rs`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::checksum;
use crate::bbb::params::Params;
use crate::http::response::escape;

#[derive(Debug, Clone)]
pub struct FakeConfig {
    pub secrets: Vec<String>,
    /// First port for the BBB servers (0 = any free port).
    pub port_base: u16,
    pub control_port: u16,
    /// Meetings created on every server at start.
    pub seed_meetings: usize,
    pub seed_users: u32,
    pub version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum Mode {
    Normal,
    Slow {
        delay_ms: u64,
    },
    Error {
        status: u16,
    },
    Garbage,
    Down,
    /// Every answer trickles out `chunk_bytes` at a time, one chunk every `delay_ms`.
    Drip {
        delay_ms: u64,
        chunk_bytes: usize,
    },
    /// getMeetings answers a valid document of about `bytes` bytes (streamed, not built).
    Huge {
        bytes: usize,
    },
    /// Every XML answer carries a DTD with entity declarations before `<response>`.
    Dtd,
    /// create answers FAILED (and creates nothing); other calls are normal.
    FailCreates,
    /// create records the meeting, then drops the connection without an answer.
    DropAfterCreate,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct FakeMeeting {
    pub meeting_id: String,
    pub name: String,
    pub internal_meeting_id: String,
    pub create_time_ms: i64,
    pub voice_bridge: String,
    pub moderator_pw: String,
    pub attendee_pw: String,
    pub participants: u32,
    pub moderators: u32,
    pub voice: u32,
    pub video: u32,
    pub is_breakout: bool,
    pub record: bool,
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CallRecord {
    pub api: String,
    pub method: String,
    pub query: String,
    pub params: BTreeMap<String, String>,
    pub content_type: String,
    pub body: String,
    pub body_len: usize,
    pub checksum_ok: bool,
    pub algorithm: Option<String>,
}

struct Sim {
    index: usize,
    addr: SocketAddr,
    secret: String,
    mode: Mode,
    meetings: BTreeMap<String, FakeMeeting>,
    calls: Vec<CallRecord>,
    version: String,
}

type Shared = Arc<Mutex<Sim>>;

fn now_ms() -> i64 {
    crate::store::now_ms()
}

fn xml(body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/xml;charset=utf-8"),
    );
    r
}

fn failed(key: &str, msg: &str) -> Response<Full<Bytes>> {
    xml(format!("<response><returncode>FAILED</returncode><messageKey>{key}</messageKey><message>{msg}</message></response>"))
}

fn meeting_xml(m: &FakeMeeting) -> String {
    let mut metadata = String::new();
    for (k, v) in &m.metadata {
        metadata.push_str(&format!("<{k}>{}</{k}>", escape(v)));
    }
    format!(
        "<meetingName>{}</meetingName><meetingID>{}</meetingID><internalMeetingID>{}</internalMeetingID>\
         <createTime>{}</createTime><createDate>Thu Jan 01 00:00:00 UTC 2026</createDate><voiceBridge>{}</voiceBridge>\
         <dialNumber>613-555-1234</dialNumber><attendeePW>{}</attendeePW><moderatorPW>{}</moderatorPW>\
         <running>{}</running><duration>0</duration><hasUserJoined>{}</hasUserJoined><recording>{}</recording>\
         <hasBeenForciblyEnded>false</hasBeenForciblyEnded><startTime>{}</startTime><endTime>0</endTime>\
         <participantCount>{}</participantCount><listenerCount>0</listenerCount>\
         <voiceParticipantCount>{}</voiceParticipantCount><videoCount>{}</videoCount><maxUsers>0</maxUsers>\
         <moderatorCount>{}</moderatorCount><attendees></attendees><metadata>{metadata}</metadata>\
         <isBreakout>{}</isBreakout>",
        escape(&m.name),
        escape(&m.meeting_id),
        m.internal_meeting_id,
        m.create_time_ms,
        m.voice_bridge,
        escape(&m.attendee_pw),
        escape(&m.moderator_pw),
        m.participants > 0,
        m.participants > 0,
        m.record,
        m.create_time_ms,
        m.participants,
        m.voice,
        m.video,
        m.moderators,
        m.is_breakout,
    )
}

fn new_meeting(id: &str, p: &Params) -> FakeMeeting {
    let t = now_ms();
    let internal = format!("{}-{t}", checksum::sha1_hex(id));
    let metadata = p
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("meta_")
                .map(|k| (k.to_ascii_lowercase(), v.to_string()))
        })
        .collect();
    FakeMeeting {
        meeting_id: id.to_string(),
        name: p.get("name").unwrap_or(id).to_string(),
        internal_meeting_id: internal,
        create_time_ms: t,
        voice_bridge: p.get("voiceBridge").unwrap_or("70000").to_string(),
        moderator_pw: p.get("moderatorPW").unwrap_or("mp").to_string(),
        attendee_pw: p.get("attendeePW").unwrap_or("ap").to_string(),
        record: p.get("record") == Some("true"),
        metadata,
        ..Default::default()
    }
}

type Body = BoxBody<Bytes, std::io::Error>;

/// The prolog `Mode::Dtd` puts in front of every XML answer.
pub const HOSTILE_PROLOG: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE response [\n  <!ENTITY xxe SYSTEM \"file:///etc/passwd\">\n  <!ENTITY boom \"boom\">\n]>\n";

/// Answers one BBB API request, then shapes the answer as the server's mode says.
async fn answer(sim: Shared, req: Request<Incoming>) -> Result<Response<Body>, std::io::Error> {
    let mode = sim.lock().unwrap().mode.clone();
    let get_meetings = req
        .uri()
        .path()
        .trim_end_matches('/')
        .ends_with("/getMeetings");
    let full = |r: Response<Full<Bytes>>| r.map(|b| b.map_err(|never| match never {}).boxed());
    let resp = bbb(sim, req).await?;
    Ok(match mode {
        Mode::Huge { bytes } if get_meetings => {
            full(xml(String::new())).map(|_| huge_meetings(bytes))
        }
        Mode::Drip {
            delay_ms,
            chunk_bytes,
        } => {
            let (parts, body) = resp.into_parts();
            let bytes = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            Response::from_parts(parts, drip(bytes, delay_ms, chunk_bytes.max(1)))
        }
        Mode::Dtd => {
            let (mut parts, body) = resp.into_parts();
            let bytes = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let bytes = if bytes.starts_with(b"<response") {
                parts.headers.remove(header::CONTENT_LENGTH);
                let mut b = HOSTILE_PROLOG.as_bytes().to_vec();
                b.extend_from_slice(&bytes);
                Bytes::from(b)
            } else {
                bytes
            };
            full(Response::from_parts(parts, Full::new(bytes)))
        }
        _ => full(resp),
    })
}

fn drip(bytes: Bytes, delay_ms: u64, chunk: usize) -> Body {
    let chunks = futures_util::stream::unfold(bytes, move |mut rest| async move {
        if rest.is_empty() {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let piece = rest.split_to(chunk.min(rest.len()));
        Some((Ok(Frame::data(piece)), rest))
    });
    StreamBody::new(chunks).boxed()
}

/// A getMeetings answer of about `total` bytes, generated as it is sent.
fn huge_meetings(total: usize) -> Body {
    let pad = "x".repeat(60 * 1024);
    let head = Bytes::from_static(b"<response><returncode>SUCCESS</returncode><meetings>");
    let tail = Bytes::from_static(b"</meetings></response>");
    let chunks = futures_util::stream::unfold((0usize, 0usize), move |(sent, n)| {
        let pad = pad.clone();
        let (head, tail) = (head.clone(), tail.clone());
        async move {
            let piece = if n == 0 {
                head
            } else if sent >= total {
                if n == usize::MAX {
                    return None;
                }
                let out: Result<Frame<Bytes>, std::io::Error> = Ok(Frame::data(tail));
                return Some((out, (sent, usize::MAX)));
            } else {
                Bytes::from(format!("<meeting><meetingID>huge-{n}</meetingID><running>true</running><participantCount>1</participantCount><metadata><pad>{pad}</pad></metadata></meeting>"))
            };
            let len = piece.len();
            Some((Ok(Frame::data(piece)), (sent + len, n + 1)))
        }
    });
    StreamBody::new(chunks).boxed()
}

/// Answers one BBB API request on a simulated server.
async fn bbb(sim: Shared, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let (mode, secret) = {
        let s = sim.lock().unwrap();
        (s.mode.clone(), s.secret.clone())
    };
    match mode {
        Mode::Down => return Err(std::io::Error::other("server is down")),
        Mode::Slow { delay_ms } => tokio::time::sleep(Duration::from_millis(delay_ms)).await,
        _ => {}
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let raw_query = req.uri().query().unwrap_or("").to_string();
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    match mode {
        Mode::Error { status } => {
            let mut r = Response::new(Full::new(Bytes::from_static(
                b"<html><body>Internal Server Error</body></html>",
            )));
            *r.status_mut() =
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Ok(r);
        }
        Mode::Garbage => {
            return Ok(xml(
                "<html><head><title>502 Bad Gateway</title></head>".into()
            ))
        }
        _ => {}
    }

    let api = path
        .trim_end_matches('/')
        .strip_prefix("/bigbluebutton/api")
        .unwrap_or("")
        .trim_start_matches('/')
        .to_string();
    if api.is_empty() {
        let version = sim.lock().unwrap().version.clone();
        return Ok(xml(format!(
            "<response><returncode>SUCCESS</returncode><version>2.0</version><apiVersion>2.0</apiVersion><bbbVersion>{version}</bbbVersion></response>"
        )));
    }
    let mut params = Params::parse(raw_query.as_bytes());
    if content_type.starts_with("application/x-www-form-urlencoded") {
        params.merge_missing(Params::parse(&body));
    }
    let supplied = params.get("checksum").unwrap_or("").to_string();
    let alg = checksum::verify(&api, &raw_query, &secret);
    let record = CallRecord {
        api: api.clone(),
        method: method.to_string(),
        query: raw_query.clone(),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        content_type,
        body: String::from_utf8_lossy(&body[..body.len().min(4096)]).into_owned(),
        body_len: body.len(),
        checksum_ok: alg.is_some(),
        algorithm: alg.map(str::to_string),
    };
    let mut s = sim.lock().unwrap();
    s.calls.push(record);
    if supplied.is_empty() {
        return Ok(failed("checksumError", "You must provide the checksum"));
    }
    if alg.is_none() {
        return Ok(failed("checksumError", "Checksums do not match"));
    }
    let meeting_id = params.get("meetingID").unwrap_or("").to_string();
    let resp = match api.as_str() {
        "create" => {
            if meeting_id.is_empty() {
                return Ok(failed("missingParamMeetingID", "You must provide a meeting ID"));
            }
            if mode == Mode::FailCreates {
                return Ok(failed("createFailed", "The meeting could not be created on this server."));
            }
            if mode == Mode::DropAfterCreate {
                let m = new_meeting(&meeting_id, &params);
                s.meetings.insert(meeting_id.clone(), m);
                return Err(std::io::Error::other("connection dropped after create"));
            }
            let (m, dup) = match s.meetings.get(&meeting_id) {
                Some(m) => (m.clone(), true),
                None => {
                    let m = new_meeting(&meeting_id, &params);
                    s.meetings.insert(meeting_id.clone(), m.clone());
                    (m, false)
                }
            };
            let (key, msg) = if dup {
                ("duplicateWarning", "This conference was already in existence and may currently be in progress.")
            } else {
                ("", "")
            };
            xml(format!(
                "<response><returncode>SUCCESS</returncode><meetingID>{}</meetingID><internalMeetingID>{}</internalMeetingID>\
                 <parentMeetingID>bbb-none</parentMeetingID><attendeePW>{}</attendeePW><moderatorPW>{}</moderatorPW>\
                 <createTime>{}</createTime><voiceBridge>{}</voiceBridge><dialNumber>613-555-1234</dialNumber>\
                 <createDate>Thu Jan 01 00:00:00 UTC 2026</createDate><hasUserJoined>false</hasUserJoined><duration>0</duration>\
                 <hasBeenForciblyEnded>false</hasBeenForciblyEnded><messageKey>{key}</messageKey><message>{msg}</message></response>",
                escape(&m.meeting_id),
                m.internal_meeting_id,
                escape(&m.attendee_pw),
                escape(&m.moderator_pw),
                m.create_time_ms,
                m.voice_bridge
            ))
        }
        "join" => match s.meetings.get_mut(&meeting_id) {
            Some(m) => {
                m.participants += 1;
                let mut r = Response::new(Full::new(Bytes::new()));
                *r.status_mut() = StatusCode::FOUND;
                let loc = format!("http://{}/html5client/join?sessionToken=fake{}", s.addr, s.calls.len());
                r.headers_mut().insert(header::LOCATION, header::HeaderValue::from_str(&loc).unwrap());
                r
            }
            None => failed("invalidMeetingIdentifier", "A meeting with that ID does not exist"),
        },
        "end" => match s.meetings.remove(&meeting_id) {
            Some(_) => xml("<response><returncode>SUCCESS</returncode><messageKey>sentEndMeetingRequest</messageKey><message>A request to end the meeting was sent.  Please wait a few seconds, and then use the getMeetingInfo or isMeetingRunning API calls to verify that it was ended.</message></response>".into()),
            None => failed("notFound", "A meeting with that ID does not exist"),
        },
        "isMeetingRunning" => {
            let running = s.meetings.get(&meeting_id).is_some_and(|m| m.participants > 0);
            xml(format!("<response><returncode>SUCCESS</returncode><running>{running}</running></response>"))
        }
        "getMeetingInfo" => match s.meetings.get(&meeting_id) {
            Some(m) => xml(format!("<response><returncode>SUCCESS</returncode>{}</response>", meeting_xml(m))),
            None => failed("notFound", "A meeting with that ID does not exist"),
        },
        "getMeetings" => {
            // Formatted outside the lock, so a large answer does not hold up other calls.
            let meetings: Vec<FakeMeeting> = s.meetings.values().cloned().collect();
            drop(s);
            if meetings.is_empty() {
                xml("<response><returncode>SUCCESS</returncode><meetings/><messageKey>noMeetings</messageKey><message>no meetings were found on this server</message></response>".into())
            } else {
                let mut b = String::from("<response><returncode>SUCCESS</returncode><meetings>");
                for m in &meetings {
                    b.push_str("<meeting>");
                    b.push_str(&meeting_xml(m));
                    b.push_str("</meeting>");
                }
                b.push_str("</meetings></response>");
                xml(b)
            }
        }
        "insertDocument" => {
            if method != Method::POST {
                failed("unsupportedRequest", "insertDocument needs POST")
            } else if s.meetings.contains_key(&meeting_id) {
                xml("<response><returncode>SUCCESS</returncode><message>Presentation is being uploaded</message></response>".into())
            } else {
                xml(format!("<response><returncode>FAILED</returncode><message>Meeting with id [{}] not found.</message></response>", escape(&meeting_id)))
            }
        }
        "sendChatMessage" => {
            if s.meetings.contains_key(&meeting_id) {
                xml("<response><returncode>SUCCESS</returncode><messageKey></messageKey><message>Message successfully sent</message></response>".into())
            } else {
                failed("meetingNotFound", "Meeting not found")
            }
        }
        _ => failed("unsupportedRequest", "This request is not supported."),
    };
    Ok(resp)
}

fn json<T: Serialize>(status: StatusCode, v: &T) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(
        serde_json::to_vec(v).unwrap_or_default(),
    )));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MeetingPatch {
    participants: Option<u32>,
    moderators: Option<u32>,
    voice: Option<u32>,
    video: Option<u32>,
    create_time_ms: Option<i64>,
    is_breakout: Option<bool>,
    name: Option<String>,
    metadata: Option<BTreeMap<String, String>>,
    voice_bridge: Option<String>,
}

struct Control {
    sims: Vec<Shared>,
    up: Vec<watch::Sender<bool>>,
}

async fn control(
    ctl: Arc<Control>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let parts: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(|p| {
            percent_encoding::percent_decode_str(p)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let bad = |m: String| json(StatusCode::BAD_REQUEST, &serde_json::json!({ "error": m }));
    if parts.first().map(String::as_str) != Some("servers") {
        return Ok(json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"error": "unknown path"}),
        ));
    }
    if parts.len() == 1 {
        let list: Vec<_> = ctl
            .sims
            .iter()
            .map(|s| {
                let s = s.lock().unwrap();
                serde_json::json!({"index": s.index, "url": format!("http://{}/bigbluebutton/api", s.addr), "secret": s.secret, "mode": s.mode})
            })
            .collect();
        return Ok(json(StatusCode::OK, &list));
    }
    let Some(i) = parts[1]
        .parse::<usize>()
        .ok()
        .filter(|i| *i < ctl.sims.len())
    else {
        return Ok(bad(format!("no server {}", parts[1])));
    };
    let sim = &ctl.sims[i];
    let resp = match (method, parts.get(2).map(String::as_str), parts.get(3)) {
        (Method::POST, Some("mode"), None) => match serde_json::from_slice::<Mode>(&body) {
            Ok(mode) => {
                let _ = ctl.up[i].send(mode != Mode::Down);
                sim.lock().unwrap().mode = mode;
                json(StatusCode::OK, &serde_json::json!({"ok": true}))
            }
            Err(e) => bad(format!("bad mode: {e}")),
        },
        (Method::POST, Some("secret"), None) => {
            match serde_json::from_slice::<serde_json::Value>(&body) {
                Ok(v) if v["secret"].is_string() => {
                    sim.lock().unwrap().secret =
                        v["secret"].as_str().unwrap_or_default().to_string();
                    json(StatusCode::OK, &serde_json::json!({"ok": true}))
                }
                _ => bad("expected {\"secret\": \"…\"}".into()),
            }
        }
        (Method::GET, Some("calls"), None) => json(StatusCode::OK, &sim.lock().unwrap().calls),
        (Method::DELETE, Some("calls"), None) => {
            sim.lock().unwrap().calls.clear();
            json(StatusCode::OK, &serde_json::json!({"ok": true}))
        }
        (Method::GET, Some("meetings"), None) => {
            let list: Vec<FakeMeeting> = sim.lock().unwrap().meetings.values().cloned().collect();
            json(StatusCode::OK, &list)
        }
        (Method::POST, Some("meetings"), Some(id)) => {
            let patch: MeetingPatch = if body.is_empty() {
                MeetingPatch::default()
            } else {
                match serde_json::from_slice(&body) {
                    Ok(p) => p,
                    Err(e) => return Ok(bad(format!("bad meeting: {e}"))),
                }
            };
            let mut s = sim.lock().unwrap();
            let m = s
                .meetings
                .entry(id.clone())
                .or_insert_with(|| new_meeting(id, &Params::new()));
            if let Some(v) = patch.participants {
                m.participants = v;
            }
            if let Some(v) = patch.moderators {
                m.moderators = v;
            }
            if let Some(v) = patch.voice {
                m.voice = v;
            }
            if let Some(v) = patch.video {
                m.video = v;
            }
            if let Some(v) = patch.create_time_ms {
                m.create_time_ms = v;
            }
            if let Some(v) = patch.is_breakout {
                m.is_breakout = v;
            }
            if let Some(v) = patch.name {
                m.name = v;
            }
            if let Some(v) = patch.metadata {
                m.metadata = v;
            }
            if let Some(v) = patch.voice_bridge {
                m.voice_bridge = v;
            }
            json(StatusCode::OK, &m.clone())
        }
        (Method::DELETE, Some("meetings"), Some(id)) => {
            let gone = sim.lock().unwrap().meetings.remove(id).is_some();
            json(
                if gone {
                    StatusCode::OK
                } else {
                    StatusCode::NOT_FOUND
                },
                &serde_json::json!({"ok": gone}),
            )
        }
        _ => json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"error": "unknown path"}),
        ),
    };
    Ok(resp)
}

/// Serves one simulated server, closing its port while it is down.
async fn run_server(
    sim: Shared,
    mut listener: Option<TcpListener>,
    addr: SocketAddr,
    mut up: watch::Receiver<bool>,
) {
    loop {
        let l = match listener.take() {
            Some(l) => l,
            None => {
                // Down: wait until up again, then take the same port back.
                while !*up.borrow() {
                    if up.changed().await.is_err() {
                        return;
                    }
                }
                match TcpListener::bind(addr).await {
                    Ok(l) => l,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                }
            }
        };
        loop {
            tokio::select! {
                accepted = l.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    let sim = sim.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req| answer(sim.clone(), req));
                        let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                    });
                }
                _ = up.changed() => {
                    if !*up.borrow() { break; }
                }
            }
        }
        drop(l);
    }
}

/// Starts every server and the control port; prints one JSON line describing them and
/// serves until the process is stopped.
pub async fn run(cfg: FakeConfig) -> std::io::Result<()> {
    let mut sims = Vec::new();
    let mut ups = Vec::new();
    let mut described = Vec::new();
    for (i, secret) in cfg.secrets.iter().enumerate() {
        let port = if cfg.port_base == 0 {
            0
        } else {
            cfg.port_base + i as u16
        };
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let mut meetings = BTreeMap::new();
        for n in 0..cfg.seed_meetings {
            let id = format!("seed-{i}-{n}");
            // A bridge of its own, unique across the fake servers, as BBB would pick.
            let bridge = (100_000 + i * cfg.seed_meetings + n).to_string();
            let mut m = new_meeting(
                &id,
                &[("voiceBridge", bridge.as_str())].into_iter().collect(),
            );
            m.participants = cfg.seed_users;
            m.moderators = 1.min(cfg.seed_users);
            m.create_time_ms -= 3_600_000;
            meetings.insert(id, m);
        }
        let sim = Arc::new(Mutex::new(Sim {
            index: i,
            addr,
            secret: secret.clone(),
            mode: Mode::Normal,
            meetings,
            calls: Vec::new(),
            version: cfg.version.clone(),
        }));
        let (tx, rx) = watch::channel(true);
        tokio::spawn(run_server(sim.clone(), Some(listener), addr, rx));
        described.push(serde_json::json!({"index": i, "url": format!("http://{addr}/bigbluebutton/api"), "secret": secret}));
        sims.push(sim);
        ups.push(tx);
    }
    let control_listener = TcpListener::bind(("127.0.0.1", cfg.control_port)).await?;
    let control_addr = control_listener.local_addr()?;
    println!(
        "{}",
        serde_json::json!({"control": format!("http://{control_addr}"), "servers": described})
    );
    let ctl = Arc::new(Control { sims, up: ups });
    loop {
        let (stream, _) = control_listener.accept().await?;
        let ctl = ctl.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| control(ctl.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
