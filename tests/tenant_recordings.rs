//! Multitenancy and recordings together: BBB records a tenant's meeting under its scoped
//! ID; Ferrolite files the recording under the front end's ID, shows it to that tenant
//! only, and signs its ready callback with the tenant's secret.

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;

const RID: &str = "f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e-1715600000000";

/// A one-format tarball as BBB's post_publish hook makes it.
fn tarball(meeting_bbb_id: &str, tenant_id: &str) -> Vec<u8> {
    let metadata = format!(
        r#"<?xml version="1.0"?>
<recording>
  <id>{RID}</id>
  <state>published</state>
  <published>true</published>
  <start_time>1715600000000</start_time>
  <end_time>1715603600000</end_time>
  <participants>3</participants>
  <meeting id="{RID}" externalId="{meeting_bbb_id}" name="Lecture" breakout="false"/>
  <meta>
    <tenant-id>{tenant_id}</tenant-id>
    <tenant-name>alpha</tenant-name>
    <isBreakout>false</isBreakout>
    <meetingId>{meeting_bbb_id}</meetingId>
    <meetingName>Lecture</meetingName>
  </meta>
  <playback>
    <format>presentation</format>
    <link>https://bbb1.example.org/playback/presentation/2.3/{RID}</link>
    <duration>3600000</duration>
  </playback>
</recording>
"#
    );
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in [
        (
            format!("presentation/{RID}/metadata.xml"),
            metadata.as_bytes().to_vec(),
        ),
        (format!("presentation/{RID}/shapes.svg"), b"<svg/>".to_vec()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, data.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

#[tokio::test]
async fn a_tenants_recording_is_filed_under_its_own_id_and_signed_with_its_secret() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let mut env = recording_env(&dir);
    for (k, v) in [
        ("MULTITENANCY_ENABLED", "true"),
        ("BASE_URL", "lb.test"),
        ("ALLOW_PRIVATE_CALLBACKS", "true"),
    ] {
        env.push((k.into(), v.into()));
    }
    let lb = Lb::start_in(dir, env);
    let fake = Fake::start(&["server-secret"]);
    lb.add_fake_servers(&fake);
    let alpha = lb
        .cli_ok(&["tenants", "add", "alpha", "alpha-secret"])
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap()
        .to_string();
    lb.cli_ok(&["tenants", "add", "beta", "beta-secret"]);

    let (ready_url, seen) = receiver().await;
    let query = format!(
        "meetingID=lecture&name=Lecture&meta_bbb-recording-ready-url={}",
        urlencode(&ready_url)
    );
    let (_, body, _) = lb
        .get_as("alpha.lb.test", "alpha-secret", "create", &query)
        .await;
    assert_eq!(
        xml_field(&body, "meetingID").as_deref(),
        Some("lecture"),
        "{body}"
    );
    let bbb_id = fake.meetings(0).await[0]["meeting_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(
        bbb_id, "lecture",
        "BBB knows the meeting under a tenant-scoped ID"
    );

    // BBB records it under that ID; the hook delivers the tarball to the spool.
    let tmp = root.join("spool").join(format!(".{RID}.tar.tmp"));
    std::fs::File::create(&tmp)
        .unwrap()
        .write_all(&tarball(&bbb_id, &alpha))
        .unwrap();
    std::fs::rename(&tmp, root.join("spool").join(format!("{RID}.tar"))).unwrap();

    let listed = eventually(Duration::from_secs(20), || async {
        let (_, body, _) = lb
            .get_as(
                "alpha.lb.test",
                "alpha-secret",
                "getRecordings",
                "meetingID=lecture",
            )
            .await;
        count(&body, "recording") == 1
    })
    .await;
    assert!(listed, "alpha finds its recording under its own meeting ID");
    let (_, body, _) = lb
        .get_as(
            "alpha.lb.test",
            "alpha-secret",
            "getRecordings",
            "meetingID=lecture",
        )
        .await;
    assert_eq!(
        xml_field(&body, "meetingID").as_deref(),
        Some("lecture"),
        "{body}"
    );
    let (_, other, _) = lb
        .get_as("beta.lb.test", "beta-secret", "getRecordings", "")
        .await;
    assert_eq!(count(&other, "recording"), 0, "beta sees nothing: {other}");

    assert!(
        eventually(Duration::from_secs(20), || async {
            seen.lock().unwrap().len() == 1
        })
        .await,
        "the ready callback arrives"
    );
    let token = seen.lock().unwrap()[0]
        .strip_prefix("signed_parameters=")
        .unwrap()
        .to_string();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(b"alpha-secret"),
        &v,
    )
    .expect("signed with the tenant's secret")
    .claims;
    assert_eq!(claims["meeting_id"], "lecture");
    assert_eq!(claims["record_id"], RID);
}
