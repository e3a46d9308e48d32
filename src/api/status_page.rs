//! The status page's HTML, rendered on the server from `admin::status::Snapshot` (pure).
//!
//! No framework and no script but a few lines that reload the page every `refresh`
//! seconds while nobody is typing. Every value shown comes from the store, the spool or a
//! BBB server — all untrusted — and goes through [`esc`]; attributes are always quoted.

use std::fmt::Write;

use crate::admin::status::{MeetingStatus, Snapshot};
use crate::autoscale::Decision;

/// Most meetings listed; the filter narrows the rest.
pub const MAX_MEETINGS_SHOWN: usize = 500;

/// HTML-escapes text for element content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    o
}

/// The meeting filter from the query string: free text `q`, or `tenant`, `server`, `meeting`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub q: String,
    pub tenant: String,
    pub server: String,
    pub meeting: String,
}

impl Filter {
    pub fn from_query(query: &str) -> Filter {
        let mut f = Filter::default();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let v = v.trim().to_string();
            match k.as_ref() {
                "q" => f.q = v,
                "tenant" => f.tenant = v,
                "server" => f.server = v,
                "meeting" => f.meeting = v,
                _ => {}
            }
        }
        f
    }

    fn has(hay: &str, needle: &str) -> bool {
        needle.is_empty() || hay.to_lowercase().contains(&needle.to_lowercase())
    }

    pub fn matches(&self, m: &MeetingStatus) -> bool {
        let any = |n: &str| {
            [
                &m.tenant,
                &m.tenant_id,
                &m.meeting_id,
                &m.server_id,
                &m.host,
            ]
            .iter()
            .any(|h| Self::has(h, n))
        };
        any(&self.q)
            && (Self::has(&m.tenant, &self.tenant) || Self::has(&m.tenant_id, &self.tenant))
            && (Self::has(&m.server_id, &self.server) || Self::has(&m.host, &self.server))
            && Self::has(&m.meeting_id, &self.meeting)
    }
}

/// What the page needs besides the snapshot.
pub struct Page<'a> {
    pub snapshot: &'a Snapshot,
    pub autoscale: Option<&'a Decision>,
    pub filter: &'a Filter,
    pub csrf: &'a str,
    /// A line to show on top (the result of an action), already plain text.
    pub notice: Option<&'a str>,
    pub error: Option<&'a str>,
    /// Seconds between reloads (0: none).
    pub refresh: u32,
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1b1f24;background:#fafbfc}\
h1{font-size:1.5em;margin:0 0 .2em}h2{font-size:1.15em;margin:1.6em 0 .4em;border-bottom:1px solid #d0d7de}\
table{border-collapse:collapse;width:100%;background:#fff}th,td{padding:.3em .55em;border:1px solid #d0d7de;text-align:left;vertical-align:top}\
th{background:#f0f3f6;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.ok{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}.warn{color:#9a6700;font-weight:600}\
.err{color:#cf222e;font-size:.9em;word-break:break-word}.muted{color:#57606a}\
.notice{padding:.6em;background:#dafbe1;border:1px solid #1a7f37}.error{padding:.6em;background:#ffebe9;border:1px solid #cf222e}\
form.inline{display:inline;margin:0}button{font:inherit;padding:.1em .5em;margin:0 .15em 0 0}\
input[type=search]{font:inherit;padding:.2em .4em;width:22em}";

fn opt_num(v: Option<u32>) -> String {
    v.map(|n| n.to_string()).unwrap_or_else(|| "—".into())
}

fn age(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

fn ago(now: i64, at: i64) -> String {
    format!("{} ago", age(((now - at) / 1000).max(0)))
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn action_form(o: &mut String, csrf: &str, server: &str, action: &str, label: &str) {
    let _ = write!(
        o,
        "<form class=\"inline\" method=\"post\" action=\"/ferrolite/status/action\">\
<input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"server\" value=\"{}\">\
<input type=\"hidden\" name=\"action\" value=\"{action}\"><button type=\"submit\" data-action=\"{action}\" data-server=\"{}\">{label}</button></form>",
        esc(csrf),
        esc(server),
        esc(server)
    );
}

/// The whole page.
pub fn render(p: &Page<'_>) -> String {
    let s = p.snapshot;
    let now = s.generated_at;
    let mut o = String::with_capacity(16 * 1024);
    o.push_str(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"referrer\" content=\"same-origin\"><title>Ferrolite status</title><style>",
    );
    o.push_str(STYLE);
    o.push_str("</style></head><body>");
    let online = s.servers.iter().filter(|x| x.online).count();
    let users: u32 = s.servers.iter().map(|x| x.users).sum();
    let _ = write!(
        o,
        "<h1>Ferrolite status</h1><div class=\"muted\" id=\"summary\">{} server(s), {online} online · {} meeting(s) · {users} participant(s) · generated {} · <a href=\"/ferrolite/api/status\">JSON</a> · \
<form class=\"inline\" method=\"post\" action=\"/ferrolite/status/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">Log out</button></form></div>",
        s.servers.len(),
        s.meetings.len(),
        crate::usage::day_of(now),
        esc(p.csrf)
    );
    if let Some(n) = p.notice {
        let _ = write!(o, "<p class=\"notice\" id=\"notice\">{}</p>", esc(n));
    }
    if let Some(e) = p.error {
        let _ = write!(o, "<p class=\"error\" id=\"error\">{}</p>", esc(e));
    }

    // The pool.
    o.push_str("<h2>Servers</h2><table id=\"servers\"><thead><tr><th>Host</th><th>Id</th><th>State</th><th>Health</th>\
<th>Load</th><th>Meetings</th><th>Users</th><th>Video streams</th><th>Largest meeting</th><th>BBB version</th><th>Tag</th>\
<th>Last poll</th><th>Actions</th></tr></thead><tbody>");
    if s.servers.is_empty() {
        o.push_str("<tr><td colspan=\"13\" class=\"muted\">No servers: add one with <code>ferrolite servers add URL SECRET</code>.</td></tr>");
    }
    for v in &s.servers {
        let health = if v.online {
            "<span class=\"ok\">online</span>"
        } else {
            "<span class=\"bad\">offline</span>"
        };
        let state_class = match v.state.as_str() {
            "enabled" => "ok",
            "cordoned" => "warn",
            _ => "muted",
        };
        let last = match &v.last_poll {
            None => "<span class=\"muted\">never</span>".to_string(),
            Some(l) if l.ok => format!("<span class=\"ok\">ok</span> {}", ago(now, l.at)),
            Some(l) => format!(
                "<span class=\"bad\">failed</span> {}<div class=\"err\">{}</div>",
                ago(now, l.at),
                esc(&l.error)
            ),
        };
        let _ = write!(
            o,
            "<tr data-server=\"{id}\"><td>{host}</td><td class=\"muted\">{id}</td><td class=\"{state_class}\" data-field=\"state\">{state}</td>\
<td data-field=\"health\">{health}</td><td class=\"n\">{load}</td><td class=\"n\">{m}</td><td class=\"n\">{u}</td><td class=\"n\">{vs}</td>\
<td class=\"n\">{lm}</td><td>{ver}</td><td>{tag}</td><td>{last}</td><td>",
            id = esc(&v.id),
            host = esc(&v.host),
            state = esc(&v.state),
            load = v.load.map(|l| format!("{l:.1}")).unwrap_or_else(|| "—".into()),
            m = v.meetings,
            u = v.users,
            vs = v.video_streams,
            lm = v.largest_meeting,
            ver = esc(&v.bbb_version),
            tag = esc(v.tag.as_deref().unwrap_or("")),
        );
        if v.state != "enabled" {
            action_form(&mut o, p.csrf, &v.id, "enable", "Enable");
        }
        if v.state == "enabled" {
            action_form(&mut o, p.csrf, &v.id, "cordon", "Cordon");
        }
        if v.state != "disabled" {
            action_form(&mut o, p.csrf, &v.id, "disable", "Disable");
        }
        o.push_str("</td></tr>");
    }
    o.push_str("</tbody></table><p class=\"muted\">Cordon drains a server: its meetings go on, it takes no new ones, and the poller disables it once empty. Disable is refused while it holds meetings.</p>");

    if let Some(d) = p.autoscale {
        let _ = write!(
            o,
            "<h2>Capacity</h2><p id=\"capacity\">Desired servers: <b>{}</b> (serving {}), pressure {:.2} at target load {:.1} — {}{}</p>",
            d.desired,
            d.serving,
            d.pressure,
            d.target_load,
            esc(&d.reason),
            if d.cooling_down { " (cooling down)" } else { "" }
        );
    }

    // Roles.
    o.push_str("<h2>Roles</h2><table id=\"roles\"><thead><tr><th>Role</th><th>Held by</th><th>Lease</th></tr></thead><tbody>");
    if s.roles.is_empty() {
        o.push_str("<tr><td colspan=\"3\" class=\"muted\">No role has been taken yet (is <code>ferrolite serve</code> running?).</td></tr>");
    }
    for r in &s.roles {
        let lease = if r.held {
            format!(
                "<span class=\"ok\">held</span>, renews within {}",
                age(((r.expires_at - now) / 1000).max(0))
            )
        } else {
            format!(
                "<span class=\"bad\">expired</span> {}",
                ago(now, r.expires_at)
            )
        };
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{lease}</td></tr>",
            esc(&r.role),
            esc(&r.holder)
        );
    }
    o.push_str("</tbody></table>");

    // Meetings.
    let f = p.filter;
    let shown: Vec<&MeetingStatus> = s.meetings.iter().filter(|m| f.matches(m)).collect();
    let _ = write!(
        o,
        "<h2>Meetings</h2><form method=\"get\" action=\"/ferrolite/status\" id=\"filter\"><input type=\"search\" name=\"q\" value=\"{}\" placeholder=\"tenant, meeting ID or server\" aria-label=\"Filter meetings\"> <button type=\"submit\">Filter</button> <span class=\"muted\">{} of {} shown</span></form>",
        esc(&f.q),
        shown.len().min(MAX_MEETINGS_SHOWN),
        s.meetings.len()
    );
    o.push_str("<table id=\"meetings\"><thead><tr><th>Meeting ID</th><th>Tenant</th><th>Server</th><th>Participants</th><th>Age</th></tr></thead><tbody>");
    for m in shown.iter().take(MAX_MEETINGS_SHOWN) {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{} <span class=\"muted\">{}</span></td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&m.meeting_id),
            esc(&m.tenant),
            esc(&m.host),
            esc(&m.server_id),
            m.participants,
            age(m.age_seconds)
        );
    }
    if shown.is_empty() {
        o.push_str("<tr><td colspan=\"5\" class=\"muted\">No meetings.</td></tr>");
    }
    o.push_str("</tbody></table>");

    // Tenants.
    if !s.tenants.is_empty() {
        o.push_str("<h2>Tenants</h2><table id=\"tenants\"><thead><tr><th>Name</th><th>Meetings</th><th>Limit</th><th>Participants</th><th>Limit</th></tr></thead><tbody>");
        for t in &s.tenants {
            let over = |n: u32, l: Option<u32>| {
                if l.is_some_and(|l| n >= l) {
                    " bad"
                } else {
                    ""
                }
            };
            let _ = write!(
                o,
                "<tr><td>{}</td><td class=\"n{}\">{}</td><td class=\"n\">{}</td><td class=\"n{}\">{}</td><td class=\"n\">{}</td></tr>",
                esc(&t.name),
                over(t.meetings, t.max_meetings),
                t.meetings,
                opt_num(t.max_meetings),
                over(t.participants, t.max_participants),
                t.participants,
                opt_num(t.max_participants)
            );
        }
        o.push_str("</tbody></table>");
    }

    // Recordings.
    let _ = write!(
        o,
        "<h2>Recording import</h2><p id=\"import\">{} tarball(s) waiting ({}), {} set aside.</p>",
        s.import_queue.len(),
        bytes(s.import_queue.iter().map(|t| t.bytes).sum()),
        s.set_aside.len()
    );
    if !s.import_queue.is_empty() {
        o.push_str("<table id=\"queue\"><thead><tr><th>Waiting</th><th>Size</th><th>Arrived</th></tr></thead><tbody>");
        for t in s.import_queue.iter().take(200) {
            let _ = write!(
                o,
                "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                esc(&t.name),
                bytes(t.bytes),
                ago(now, t.modified_at)
            );
        }
        o.push_str("</tbody></table>");
    }
    if !s.set_aside.is_empty() {
        o.push_str("<table id=\"set-aside\"><thead><tr><th>Set aside</th><th>Reason</th><th>When</th></tr></thead><tbody>");
        for t in s.set_aside.iter().take(200) {
            let _ = write!(
                o,
                "<tr><td>{}</td><td class=\"err\">{}</td><td>{}</td></tr>",
                esc(&t.name),
                esc(&t.reason),
                ago(now, t.modified_at)
            );
        }
        o.push_str("</tbody></table>");
    }

    // Callbacks.
    let c = &s.callbacks;
    let _ = write!(
        o,
        "<h2>Callbacks</h2><p id=\"callbacks\">{} waiting in the outbox, {} given up.</p>",
        c.pending, c.failed
    );
    if !c.recent_failures.is_empty() {
        o.push_str("<table id=\"callback-failures\"><thead><tr><th>Kind</th><th>Target</th><th>Status</th><th>Attempts</th><th>Last error</th><th>Queued</th></tr></thead><tbody>");
        for f in &c.recent_failures {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"err\">{}</td><td>{}</td></tr>",
                esc(&f.kind),
                esc(&f.target),
                esc(&f.status),
                f.attempts,
                esc(&f.last_error),
                ago(now, f.created_at)
            );
        }
        o.push_str("</tbody></table>");
    }
    if p.refresh > 0 {
        let _ = write!(
            o,
            "<script>setTimeout(function r(){{var a=document.activeElement;if(a&&a.tagName==='INPUT'){{setTimeout(r,{ms});return;}}location.replace(location.pathname+location.search);}},{ms});</script>",
            ms = u64::from(p.refresh) * 1000
        );
    }
    o.push_str("</body></html>");
    o
}

/// The login form (shown without a valid credential).
pub fn login(error: Option<&str>) -> String {
    let mut o = String::from("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Ferrolite status: log in</title><style>");
    o.push_str(STYLE);
    o.push_str("</style></head><body><h1>Ferrolite status</h1>");
    if let Some(e) = error {
        let _ = write!(o, "<p class=\"error\" id=\"error\">{}</p>", esc(e));
    }
    o.push_str("<form method=\"post\" action=\"/ferrolite/status/login\" id=\"login\"><label>Admin password (ADMIN_PASSWORD) <input type=\"password\" name=\"password\" autocomplete=\"current-password\" autofocus></label> <button type=\"submit\">Log in</button></form></body></html>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::status::*;

    /// Strings a hostile BBB server, front end or tarball could plant in what the page shows.
    const HOSTILE: &[&str] = &[
        "<script>alert(1)</script>",
        "\"><img src=x onerror=alert(1)>",
        "' onmouseover='alert(1)",
        "</textarea></title><svg onload=alert(1)>",
        "&lt;script&gt; already-escaped",
        "javascript:alert(1)",
        "\u{0}\u{1b}[31mcontrol",
    ];

    fn hostile_snapshot(h: &str) -> Snapshot {
        Snapshot {
            generated_at: 1_000_000,
            servers: vec![ServerStatus {
                id: h.into(),
                host: h.into(),
                state: "enabled".into(),
                online: false,
                load: None,
                load_multiplier: 1.0,
                meetings: 1,
                users: 1,
                video_streams: 0,
                largest_meeting: 1,
                bbb_version: h.into(),
                tag: Some(h.into()),
                last_poll: Some(LastPoll {
                    at: 0,
                    ok: false,
                    error: h.into(),
                }),
            }],
            roles: vec![RoleStatus {
                role: h.into(),
                holder: h.into(),
                expires_at: 0,
                held: false,
            }],
            meetings: vec![MeetingStatus {
                tenant_id: h.into(),
                tenant: h.into(),
                meeting_id: h.into(),
                server_id: h.into(),
                host: h.into(),
                participants: 3,
                created_at: 0,
                age_seconds: 5,
            }],
            tenants: vec![TenantStatus {
                id: h.into(),
                name: h.into(),
                meetings: 1,
                participants: 1,
                max_meetings: Some(1),
                max_participants: None,
            }],
            import_queue: vec![QueuedTarball {
                name: h.into(),
                bytes: 10,
                modified_at: 0,
            }],
            set_aside: vec![SetAside {
                name: h.into(),
                reason: h.into(),
                modified_at: 0,
            }],
            callbacks: CallbackStatus {
                pending: 0,
                failed: 1,
                recent_failures: vec![CallbackFailure {
                    id: h.into(),
                    kind: h.into(),
                    target: h.into(),
                    status: "failed".into(),
                    attempts: 3,
                    last_error: h.into(),
                    created_at: 0,
                }],
            },
        }
    }

    /// Every tag of the page (`<…>`) without its quoted attribute values: escaped data
    /// holds no `<` and no `"`, so what is left is the template's own markup.
    fn tags(page: &str) -> Vec<String> {
        page.split('<')
            .skip(1)
            .map(|t| {
                let tag = t.split('>').next().unwrap_or("");
                tag.split('"').step_by(2).collect::<String>().to_lowercase()
            })
            .collect()
    }

    /// No markup, attribute or control character from data reached the page.
    fn assert_inert(page: &str, h: &str, scripts: usize) {
        for t in tags(page) {
            for bad in [
                "img",
                "svg",
                "onerror",
                "onload",
                "onmouseover",
                "textarea",
                "javascript:",
            ] {
                assert!(!t.contains(bad), "{bad:?} in tag <{t}> for {h:?}");
            }
        }
        assert_eq!(
            tags(page)
                .iter()
                .filter(|t| t.starts_with("script"))
                .count(),
            scripts,
            "only the refresh script: {h:?}"
        );
        assert!(
            !page.contains('\u{1b}') && !page.contains('\u{0}'),
            "control characters: {h:?}"
        );
    }

    #[test]
    fn hostile_strings_are_escaped_everywhere() {
        for h in HOSTILE {
            let snap = hostile_snapshot(h);
            let filter = Filter {
                q: h.to_string(),
                ..Default::default()
            };
            let page = render(&Page {
                snapshot: &snap,
                autoscale: None,
                filter: &filter,
                csrf: h,
                notice: Some(h),
                error: Some(h),
                refresh: 10,
            });
            assert_inert(&page, h, 1);
            if h.contains('<') {
                assert!(page.contains("&lt;"), "{h:?}");
            }
            assert!(page.contains(&esc(h)), "the text is shown, escaped: {h:?}");
            assert_inert(&login(Some(h)), h, 0);
        }
        assert_eq!(
            esc("<a href=\"x\">'&"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;"
        );
    }

    #[test]
    fn the_filter_narrows_meetings() {
        let mut snap = hostile_snapshot("x");
        snap.meetings[0].meeting_id = "Maths-101".into();
        snap.meetings[0].tenant = "uni".into();
        snap.meetings[0].host = "bbb1.example".into();
        let m = &snap.meetings[0];
        assert!(Filter::from_query("q=maths").matches(m));
        assert!(Filter::from_query("q=BBB1").matches(m));
        assert!(Filter::from_query("tenant=uni&server=bbb1").matches(m));
        assert!(!Filter::from_query("tenant=other").matches(m));
        assert!(!Filter::from_query("meeting=physics").matches(m));
        assert!(Filter::from_query("").matches(m));
    }
}
