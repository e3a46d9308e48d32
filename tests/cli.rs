//! The admin CLI: the same binary, environment and database as `serve`.

mod common;

use common::*;
use serde_json::json;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test]
async fn servers_round_trip_while_serve_runs() {
    let fake = Fake::start(&["s0"]);
    let lb = Lb::start(&[]);
    let out = lb.cli_ok(&[
        "servers",
        "add",
        &fake.servers[0].url,
        "s0",
        "--load-multiplier",
        "2.5",
        "--tag",
        "gpu",
    ]);
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap()
        .to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "a UUID id: {id}");

    let list = lb.cli_ok(&["servers"]);
    assert!(
        list.contains(&format!("id: {id}"))
            && list.contains("\tdisabled")
            && list.contains("\toffline"),
        "{list}"
    );
    assert!(
        list.contains("load multiplier: 2.5")
            && list.contains("tag: gpu")
            && list.contains("load: unavailable"),
        "{list}"
    );
    assert!(
        !list.contains("s0\n") && !list.contains("secret"),
        "secrets are hidden by default: {list}"
    );
    assert!(lb
        .cli_ok(&["servers", "--show-secrets"])
        .contains("\tsecret: s0"));

    lb.cli_ok(&["servers", "enable", &id]);
    lb.cli_ok(&[
        "servers",
        "update",
        &id,
        "--tag",
        "",
        "--load-multiplier",
        "1",
    ]);
    let poll = lb.cli_ok(&["poll"]);
    assert!(poll.contains(&format!("{id}: online, load 0.0")), "{poll}");
    let list = lb.cli_ok(&["servers"]);
    assert!(
        list.contains("\tenabled")
            && list.contains("\tonline")
            && list.contains("tag: \n")
            && list.contains("bbb version: 3.0.0-fake"),
        "{list}"
    );

    // The running serve sees the CLI's change at once.
    let (_, body) = lb.get("create", "meetingID=cli-room&name=x").await;
    assert_eq!(
        xml_field(&body, "returncode").as_deref(),
        Some("SUCCESS"),
        "{body}"
    );

    let status = lb.cli_ok(&["status"]);
    let mut lines = status.lines();
    assert!(
        lines.next().unwrap().starts_with(
            "HOSTNAME   STATE    STATUS  MEETINGS  USERS  LARGEST MEETING  VIDEOS  LOAD"
        ),
        "{status}"
    );
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("127.0.0.1  enabled  online"),
        "{status}"
    );

    let meetings = lb.cli_ok(&["meetings", "list"]);
    assert!(
        meetings.contains("MeetingID: cli-room") && meetings.contains(&format!("Server ID: {id}")),
        "{meetings}"
    );
    let info = lb.cli_ok(&["meetings", "info", "cli-room"]);
    assert!(
        info.contains("Meeting Name: x") && info.contains("Internal MeetingID: "),
        "{info}"
    );

    lb.cli_ok(&["servers", "cordon", &id]);
    assert!(lb.cli_ok(&["servers"]).contains("\tcordoned"));
    lb.cli_ok(&["meetings", "end", "cli-room"]);
    assert!(
        fake.meetings(0).await.is_empty(),
        "meetings end ends it on BBB"
    );
    let panic = lb.cli_ok(&["servers", "panic", &id]);
    assert!(panic.ends_with("OK\n"), "{panic}");
    assert!(lb.cli_ok(&["servers"]).contains("\tdisabled"));
    lb.cli_ok(&["servers", "remove", &id]);
    let o = lb.cli(&["servers"]);
    assert!(
        o.status.success()
            && stdout(&o).is_empty()
            && stderr(&o).contains("No servers are configured")
    );
}

#[tokio::test]
async fn panic_forgets_and_ends_every_meeting_of_a_server() {
    let fake = Fake::start(&["s0"]);
    let lb = Lb::start(&[]);
    let ids = lb.add_fake_servers(&fake);
    for n in 0..3 {
        lb.get("create", &format!("meetingID=p{n}&name=x")).await;
    }
    let out = lb.cli_ok(&["servers", "panic", &ids[0], "--keep-state"]);
    assert_eq!(out.matches("Clearing Meeting id=").count(), 3, "{out}");
    assert!(fake.meetings(0).await.is_empty());
    assert_eq!(fake.calls_to(0, "end").await.len(), 3);
    assert!(
        lb.cli_ok(&["servers"]).contains("\tenabled"),
        "--keep-state keeps it enabled"
    );
    let (_, body) = lb.get("getMeetingInfo", "meetingID=p0").await;
    assert_eq!(xml_field(&body, "messageKey").as_deref(), Some("notFound"));
}

#[tokio::test]
async fn disable_refuses_to_drop_running_meetings_without_confirmation() {
    let fake = Fake::start(&["s0"]);
    let lb = Lb::start(&[]);
    let ids = lb.add_fake_servers(&fake);
    lb.get("create", "meetingID=keep&name=x").await;
    let o = lb.cli(&["servers", "disable", &ids[0]]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("still holds 1 meeting(s)") && stderr(&o).contains("servers cordon"),
        "{}",
        stderr(&o)
    );
    assert_eq!(fake.meetings(0).await.len(), 1);
    let o = lb.cli(&["meetings", "end"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "ending every meeting needs --yes when nobody answers"
    );
    assert_eq!(fake.meetings(0).await.len(), 1);
}

#[test]
fn unknown_ids_and_bad_arguments_exit_1_with_a_clear_message() {
    let lb = Lb::start(&[]);
    for (args, expect) in [
        (
            vec!["servers", "enable", "nope"],
            "no server with id 'nope'",
        ),
        (
            vec!["servers", "remove", "nope"],
            "no server with id 'nope'",
        ),
        (
            vec!["servers", "update", "nope", "--tag", "x"],
            "no server with id 'nope'",
        ),
        (
            vec!["servers", "add", "ftp://x/bigbluebutton/api", "s"],
            "must start with http:// or https://",
        ),
        (vec!["servers", "add", "not a url", "s"], "is not a URL"),
        (
            vec![
                "servers",
                "add",
                "https://bbb.example.com/bigbluebutton/api",
                " ",
            ],
            "secret must not be empty",
        ),
        (
            vec![
                "servers",
                "add",
                "https://bbb.example.com/bigbluebutton/api",
                "s",
                "--load-multiplier",
                "0",
            ],
            "positive number",
        ),
        (
            vec!["meetings", "info", "nope"],
            "no meeting with id 'nope'",
        ),
        (vec!["meetings", "end", "nope"], "no meeting with id 'nope'"),
        (vec!["servers", "frobnicate"], "unrecognized subcommand"),
        (vec!["servers", "add"], "required"),
        (
            vec![
                "servers",
                "add",
                "https://bbb.example.com/bigbluebutton/api",
                "s",
                "--load-multiplier",
                "lots",
            ],
            "invalid value",
        ),
    ] {
        let o = lb.cli(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(stderr(&o).contains(expect), "{args:?}: {}", stderr(&o));
    }
    assert_eq!(lb.cli(&["--help"]).status.code(), Some(0));
}

#[test]
fn server_ids_can_be_hostnames() {
    let lb = Lb::start(&[("SERVER_ID_IS_HOSTNAME", "true")]);
    let out = lb.cli_ok(&[
        "servers",
        "add",
        "https://BBB1.example.com/bigbluebutton/api",
        "s",
    ]);
    assert!(out.contains("id: bbb1.example.com"), "{out}");
    let o = lb.cli(&[
        "servers",
        "add",
        "https://bbb1.example.com/bigbluebutton/api",
        "t",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already has the URL"), "{}", stderr(&o));
    // Another URL on the same host would take the same id.
    let o = lb.cli(&[
        "servers",
        "add",
        "https://bbb1.example.com:8443/bigbluebutton/api",
        "t",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
}

#[test]
fn bad_configuration_is_one_line_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let base: Vec<(String, String)> = vec![(
        "DATABASE_URL".into(),
        dir.path().join("f.db").display().to_string(),
    )];
    let with = |extra: &[(&str, &str)]| {
        let mut env = base.clone();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    };
    for (env, var) in [
        (with(&[]), "LOADBALANCER_SECRET"),
        (
            with(&[("LOADBALANCER_SECRET", "s"), ("PORT", "eighty")]),
            "PORT",
        ),
        (
            with(&[("LOADBALANCER_SECRET", "s"), ("POLL_INTERVAL", "-3")]),
            "POLL_INTERVAL",
        ),
        (
            with(&[
                ("LOADBALANCER_SECRET", "s"),
                ("LOADBALANCER_CHECKSUM_ALGORITHM", "MD5"),
            ]),
            "LOADBALANCER_CHECKSUM_ALGORITHM",
        ),
        (
            with(&[
                ("LOADBALANCER_SECRET", "s"),
                ("USE_EXTERNAL_VOICE_BRIDGE", "maybe"),
            ]),
            "USE_EXTERNAL_VOICE_BRIDGE",
        ),
    ] {
        let o = cli_with(&env, dir.path(), &["serve"]);
        assert_ne!(o.status.code(), Some(0));
        let err = stderr(&o);
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(var), "{var}: {err}");
    }
    let occupied = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = occupied.local_addr().unwrap().port().to_string();
    let o = cli_with(
        &with(&[("LOADBALANCER_SECRET", "s"), ("PORT", &port)]),
        dir.path(),
        &["serve"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot listen on"), "{}", stderr(&o));
}

#[tokio::test]
async fn meetings_info_explains_an_unreachable_server() {
    let fake = Fake::start(&["s0"]);
    let lb = Lb::start(&[]);
    lb.add_fake_servers(&fake);
    lb.get("create", "meetingID=gone&name=x").await;
    fake.mode(0, json!({"mode": "down"})).await;
    let o = lb.cli(&["meetings", "info", "gone"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("did not answer getMeetingInfo"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test]
async fn servers_sync_reconciles_the_pool_from_yaml() {
    let fake = Fake::start(&["s0", "s1"]);
    let lb = Lb::start(&[]);
    let file = lb.dir.path().join("servers.yml");
    let write = |text: String| std::fs::write(&file, text).unwrap();
    let path = file.display().to_string();
    write(format!(
        "servers:\n  bbb-a:\n    url: {}\n    secret: s0\n  bbb-b:\n    url: {}\n    secret: s1\n    load_multiplier: 2.0\n    tag: gpu\n",
        fake.servers[0].url, fake.servers[1].url
    ));
    let dry = lb.cli_ok(&["servers", "sync", &path, "--dry-run"]);
    assert!(
        dry.contains("would [bbb-a] create") && dry.contains("would [bbb-b] create"),
        "{dry}"
    );
    assert!(
        lb.cli(&["servers"]).stdout.is_empty(),
        "a dry run changes nothing"
    );

    let out = lb.cli_ok(&["servers", "sync", &path]);
    assert!(
        out.contains("[bbb-a] create") && out.ends_with("OK\n"),
        "{out}"
    );
    let list = lb.cli_ok(&["servers"]);
    assert!(
        list.contains("id: bbb-a")
            && list.contains("tag: gpu")
            && list.contains("load multiplier: 2.0"),
        "{list}"
    );
    assert_eq!(
        list.matches("\tenabled").count(),
        2,
        "sync enables new servers: {list}"
    );
    lb.cli_ok(&["poll"]);
    let listed = lb.cli_ok(&["servers", "meeting-list", "bbb-a"]);
    assert!(
        listed.starts_with("Server ID: bbb-a\n") && listed.contains("MeetingIDs: \n"),
        "{listed}"
    );

    // The YAML dump syncs back to no change.
    let yaml = lb.cli_ok(&["servers", "yaml", "--verbose"]);
    write(yaml);
    assert!(lb
        .cli_ok(&["servers", "sync", &path])
        .contains("nothing to change"));

    // A bad file is rejected whole, with the line, changing nothing.
    write(format!("servers:\n  bbb-a:\n    url: {}\n    secret: changed\n  bbb-c:\n    secret: x\n    load_multiplier: -1\n", fake.servers[0].url));
    let o = lb.cli(&["servers", "sync", &path]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("line 5: server 'bbb-c'") && stderr(&o).contains("positive number"),
        "{}",
        stderr(&o)
    );
    assert!(!lb
        .cli_ok(&["servers", "--show-secrets"])
        .contains("secret: changed"));

    // Servers left out are removed when empty, cordoned while they hold meetings.
    lb.get("create", "meetingID=busy&name=x&meta_server-tag=gpu!")
        .await;
    write(format!(
        "servers:\n  bbb-a:\n    url: {}\n    secret: s0\n",
        fake.servers[0].url
    ));
    let out = lb.cli_ok(&["servers", "sync", &path]);
    assert!(out.contains("[bbb-b] cordon"), "{out}");
    lb.cli_ok(&["servers", "load-multiplier", "bbb-a", "3"]);
    assert!(lb.cli_ok(&["servers"]).contains("load multiplier: 3.0"));
    let out = lb.cli_ok(&["servers", "sync", &path, "--mode", "force"]);
    assert!(out.contains("[bbb-b] end 1 meeting(s) and remove"), "{out}");
    assert!(fake.meetings(1).await.is_empty());
    assert!(!lb.cli_ok(&["servers"]).contains("bbb-b"));

    let list_file = lb.dir.path().join("all.yml");
    std::fs::write(
        &list_file,
        format!(
            "servers:\n  - url: {}\n    secret: s1\n",
            fake.servers[1].url
        ),
    )
    .unwrap();
    let out = lb.cli_ok(&["servers", "add-all", &list_file.display().to_string()]);
    assert!(
        out.contains(&format!("server: {}", fake.servers[1].url)) && out.contains("id: "),
        "{out}"
    );
}
