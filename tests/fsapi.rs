//! FreeSWITCH dial-in (`POST /fsapi`) through the real binary, replaying a recorded
//! `mod_xml_curl` dialplan request (`fixtures/fsapi/dialplan-request.form`).

mod common;

use common::*;

const PASSWORD: &str = "fs-password";

/// The recorded request with the caller's name, privacy flags and PIN filled in.
fn form(caller: &str, pin: &str, hide_name: bool, hide_number: bool) -> String {
    let raw = std::fs::read_to_string(fixtures().join("fsapi/dialplan-request.form")).unwrap();
    raw.trim()
        .replace("{{CALLER}}", &urlencode(caller))
        .replace("{{PIN}}", &urlencode(pin))
        .replace("{{HIDE_NAME}}", if hide_name { "true" } else { "false" })
        .replace(
            "{{HIDE_NUMBER}}",
            if hide_number { "true" } else { "false" },
        )
}

async fn fsapi(lb: &Lb, body: String, auth: Option<(&str, &str)>) -> (u16, Option<String>, String) {
    let mut req = lb
        .http
        .post(format!("{}/fsapi", lb.base))
        // URL_HOST is set: only that Host is served (as Scalelite's host authorization).
        .header("Host", "lb.example.com")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some((u, p)) = auth {
        req = req.basic_auth(u, Some(p));
    }
    let r = req.send().await.expect("ferrolite answers");
    let status = r.status().as_u16();
    let www = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, www, r.text().await.unwrap_or_default())
}

/// The `data` of every `<action application="set">`.
fn sets(doc: &str) -> Vec<String> {
    doc.split("<action application=\"set\" data=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_dial_in_call_is_prompted_reprompted_and_bridged() {
    let lb = Lb::start(&[
        ("FSAPI_PASSWORD", PASSWORD),
        ("FSAPI_MAX_DURATION", "90"),
        ("URL_HOST", "lb.example.com"),
    ]);
    let fake = Fake::start(&["s0"]);
    lb.add_fake_servers(&fake);
    let (_, created, _) = lb
        .get_as(
            "lb.example.com",
            LB_SECRET,
            "create",
            "meetingID=dial-me&name=Dial",
        )
        .await;
    let pin = xml_field(&created, "voiceBridge").expect("create answers the voice bridge");
    let auth = Some(("fsapi", PASSWORD));

    // Without (or with wrong) credentials: 401 with a Basic challenge.
    let (status, www, _) = fsapi(&lb, form("5554321", "", false, false), None).await;
    assert_eq!(status, 401);
    assert_eq!(www.as_deref(), Some("Basic realm=\"lb.example.com\""));
    let (status, _, _) = fsapi(
        &lb,
        form("5554321", "", false, false),
        Some(("fsapi", "wrong")),
    )
    .await;
    assert_eq!(status, 401);

    // First request: the PIN prompt, with the hang-up timer.
    let (status, _, prompt) = fsapi(&lb, form("5554321", "", false, false), auth).await;
    assert_eq!(status, 200);
    assert_eq!(
        prompt.matches("<section name=\"dialplan\"").count(),
        1,
        "{prompt}"
    );
    assert!(
        prompt.contains("<condition field=\"destination_number\" expression=\"^5551234$\">"),
        "{prompt}"
    );
    for needle in [
        "application=\"answer\"",
        "data=\"+5400 normal_clearing\"",
        "ivr/ivr-welcome.wav",
        "play_and_get_digits",
        "data=\"${pin} XML public\"",
    ] {
        assert!(prompt.contains(needle), "{needle} in {prompt}");
    }

    // A PIN that names no meeting: re-prompt, with a working digit pattern.
    let (_, _, again) = fsapi(&lb, form("5554321", "12345", false, false), auth).await;
    assert!(
        again.contains("conference/conf-bad-pin.wav") && again.contains("play_and_get_digits"),
        "{again}"
    );
    assert!(
        again.contains("pin \\d+\""),
        "the re-prompt's pattern is \\d+, not Scalelite's d+: {again}"
    );

    // The right PIN: bridged to the meeting's server, caller number masked.
    let (_, _, bridge) = fsapi(&lb, form("5554321", &pin, false, false), auth).await;
    assert_eq!(
        sets(&bridge),
        vec![
            "meeting_id=dial-me".to_string(),
            "effective_caller_id_name=555XXXX".to_string()
        ],
        "{bridge}"
    );
    assert!(
        bridge.contains(&format!("data=\"sofia/external/{pin}@127.0.0.1\"")),
        "{bridge}"
    );
    // A breakout room's PIN (one more digit) reaches the same server.
    let (_, _, breakout) = fsapi(
        &lb,
        form("Test User", &format!("{pin}7"), false, false),
        auth,
    )
    .await;
    assert!(
        breakout.contains(&format!("data=\"sofia/external/{pin}7@127.0.0.1\"")),
        "{breakout}"
    );
    assert!(sets(&breakout).contains(&"effective_caller_id_name=Test User".to_string()));
    // Privacy flags hide the caller.
    for (name, hide_name, hide_number) in [("Test User", true, false), ("5554321", false, true)] {
        let (_, _, d) = fsapi(&lb, form(name, &pin, hide_name, hide_number), auth).await;
        assert!(
            sets(&d).contains(&"effective_caller_id_name=Unavailable".to_string()),
            "{d}"
        );
    }
    // A hostile caller ID cannot reach FreeSWITCH's expansion.
    let (_, _, hostile) = fsapi(
        &lb,
        form("${system(touch /tmp/pwned)}", &pin, false, false),
        auth,
    )
    .await;
    let caller = sets(&hostile)
        .into_iter()
        .find(|s| s.starts_with("effective_caller_id_name="))
        .unwrap();
    assert!(caller.contains("\\${system"), "{caller}");
    assert!(
        !caller.replace("\\${", "").contains("${"),
        "no unescaped ${{ left: {caller}"
    );

    // Not a dialplan request: not found.
    let (_, _, other) = fsapi(
        &lb,
        "section=configuration&key_value=conference.conf".into(),
        auth,
    )
    .await;
    assert!(
        other.contains("<section name=\"result\"><result status=\"not found\"/></section>"),
        "{other}"
    );
}

#[tokio::test]
async fn an_empty_password_turns_authentication_off_and_zero_duration_the_timer() {
    let lb = Lb::start(&[("FSAPI_PASSWORD", ""), ("FSAPI_MAX_DURATION", "0")]);
    let (status, _, doc) = fsapi(&lb, form("5554321", "", false, false), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        doc.matches("<section name=\"dialplan\"").count(),
        1,
        "{doc}"
    );
    assert!(!doc.contains("sched_hangup"), "{doc}");
}

#[tokio::test]
async fn the_default_password_is_the_first_load_balancer_secret() {
    let lb = Lb::start(&[]);
    let (status, www, _) = fsapi(&lb, form("1", "", false, false), None).await;
    assert_eq!(
        (status, www.as_deref()),
        (401, Some("Basic realm=\"Application\""))
    );
    let (status, _, _) = fsapi(&lb, form("1", "", false, false), Some(("fsapi", LB_SECRET))).await;
    assert_eq!(status, 200);
}
