//! Small places where Scalelite's own specs define the answer: getMeetings without
//! multitenancy leaves out meetings that carry `tenant-id` metadata; `tenants` ends with
//! `Total number of tenants: N`, also when there are none.

mod common;

use common::{count, Fake, Lb};

#[tokio::test(flavor = "multi_thread")]
async fn get_meetings_without_multitenancy_leaves_out_tenant_tagged_meetings() {
    let fake = Fake::start(&["s0"]);
    let lb = Lb::start(&[]);
    lb.add_fake_servers(&fake);
    for q in [
        "meetingID=plain&name=Plain",
        "meetingID=tagged&name=Tagged&meta_tenant-id=9d1d8b0a-5d4c-4a0e-8d5e-1b2f3c4d5e61",
        "meetingID=empty-tag&name=Empty&meta_tenant-id=",
    ] {
        let (_, body) = lb.get("create", q).await;
        assert!(body.contains("SUCCESS"), "{body}");
    }
    let (_, list) = lb.get("getMeetings", "").await;
    assert!(list.contains("<meetingID>plain</meetingID>"), "{list}");
    assert!(list.contains("<meetingID>empty-tag</meetingID>"), "{list}");
    assert!(!list.contains("<meetingID>tagged</meetingID>"), "{list}");
    assert_eq!(count(&list, "meeting"), 2, "{list}");
}

#[test]
fn tenants_list_ends_with_the_count_as_scalelite_does() {
    let lb = Lb::start(&[("MULTITENANCY_ENABLED", "true")]);
    for args in [&["tenants"][..], &["tenants", "list"][..]] {
        let out = lb.cli(args);
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "Total number of tenants: 0\n"
        );
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("No tenants exist"),
            "{args:?}"
        );
    }
    lb.cli_ok(&["tenants", "add", "alpha", "alpha-secret"]);
    lb.cli_ok(&["tenants", "add", "beta", "beta-secret"]);
    for args in [&["tenants"][..], &["tenants", "list"][..]] {
        let list = lb.cli_ok(args);
        assert!(
            list.contains("alpha") && list.contains("beta"),
            "{args:?}: {list}"
        );
        assert!(
            list.ends_with("Total number of tenants: 2\n"),
            "{args:?}: {list}"
        );
        assert_eq!(list.matches("Total number of tenants").count(), 1);
    }
}
