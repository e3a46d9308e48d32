//! Three `serve` nodes on shared state under failures (tests/common/cluster.rs): a Redis
//! Sentinel failover under one node's load; the chaos run (kill -9 a node, the role holder,
//! Redis's master, restart PostgreSQL, under creates, joins and imports) that must lose no
//! meeting, recording or callback and send none twice; and the class-start burst over three
//! nodes; a batch of slow callbacks that outlasts the sender's lease keeps it; and an unpublish through one node reaching another node's public-link farm within
//! seconds. Each prints the API's error rate per phase.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::cluster::{
    api_url_at, print_phases, ready_claims, slow_receiver, Cluster, Load, Options,
};
use common::trees::{tarball_for, PRES};
use common::*;

/// Waits up to `limit` for `check`, returning how long it took (for the output), or panics.
async fn until<F, Fut>(what: &str, limit: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every created meeting is known, through every running node, and on exactly one server.
async fn assert_no_meeting_lost(c: &Cluster, created: &[String]) {
    let http = http_client();
    let mut lost = BTreeMap::new();
    for node in c.nodes.iter().filter(|n| n.pid() != 0) {
        for room in created {
            let url = api_url_at(&node.base, "getMeetingInfo", &format!("meetingID={room}"));
            let body = http.get(url).send().await.unwrap().text().await.unwrap();
            if !body.contains("<returncode>SUCCESS</returncode>") {
                lost.insert(
                    format!("{room} via {}", node.base),
                    xml_field(&body, "messageKey"),
                );
            }
        }
    }
    let mut on = BTreeMap::<String, usize>::new();
    for i in 0..c.fake.servers.len() {
        for m in c.fake.meetings(i).await {
            *on.entry(m["meeting_id"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    let twice: Vec<_> = on.iter().filter(|(_, n)| **n > 1).collect();
    println!(
        "meetings created {}, lost {}, rooms on two servers {}",
        created.len(),
        lost.len(),
        twice.len()
    );
    assert!(lost.is_empty(), "lost meetings: {lost:?}");
    assert!(twice.is_empty(), "rooms on two servers: {twice:?}");
    for room in created {
        assert_eq!(on.get(room), Some(&1), "{room} runs on one server");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_keeps_serving_through_a_sentinel_failover() {
    let mut c = Cluster::start(Options {
        nodes: 1,
        servers: 2,
        sentinel: true,
        postgres: false,
        poll_interval: 1,
    })
    .await;
    let load = Load::start(c.bases.clone(), 3, Duration::from_millis(40));
    tokio::time::sleep(Duration::from_secs(2)).await;
    load.phase("kill -9 the Redis master");
    c.redis[0].kill9();
    let promoted = until("the replica's promotion", Duration::from_secs(30), || {
        c.redis[1].is_master()
    })
    .await;

    let node = &c.nodes[0];
    let answering = until(
        "a create after the failover",
        Duration::from_secs(30),
        || async {
            let (_, body) = node.get("create", "meetingID=after-failover&name=A").await;
            body.contains("<returncode>SUCCESS</returncode>")
        },
    )
    .await;
    println!(
        "replica promoted after {promoted:?}; the node answered creates again {answering:?} later"
    );
    load.phase("after the failover");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let state = load.stop().await;
    print_phases(&state);
    let after = &state.phases.last().unwrap().1;
    assert!(after.requests > 0, "the node answered after the failover");
    // A poll cycle: meetings whose mapping Redis lost with its master (asynchronous
    // replication) are adopted back from the servers that run them.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        node.logs().contains("the Redis master changed"),
        "the node followed the Sentinel"
    );
    assert_no_meeting_lost(&c, &state.created).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_lose_nothing_through_node_redis_and_postgres_failures() {
    let mut c = Cluster::start(Options {
        nodes: 3,
        servers: 4,
        sentinel: true,
        postgres: true,
        poll_interval: 1,
    })
    .await;
    let (ready_url, seen) = receiver().await;
    let (_, body) = c.nodes[0]
        .get(
            "create",
            &format!(
                "meetingID=ext-meeting-1&name=Recorded&meta_bbb-recording-ready-url={}",
                urlencode(&ready_url)
            ),
        )
        .await;
    assert!(body.contains("SUCCESS"), "{body}");

    let load = Load::start(c.bases.clone(), 3, Duration::from_millis(40));
    // Tarballs dropped into the shared spool throughout, as BBB servers send them.
    let spool = c.spool();
    let dropping = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let dropper = {
        let (spool, dropping) = (spool.clone(), dropping.clone());
        tokio::spawn(async move {
            let mut rids = Vec::new();
            let mut n = 0u64;
            while dropping.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let rid = format!("{:040x}-{}", n, 1_715_261_728_123u64 + n);
                let dest = spool.join(format!("{rid}.tar"));
                let r = rid.clone();
                tokio::task::spawn_blocking(move || tarball_for(&r, &dest))
                    .await
                    .unwrap();
                rids.push(rid);
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
            rids
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;

    // 1. kill -9 a node that holds no role (or any, if all roles sit on every node).
    let mut holders = BTreeSet::new();
    for role in ["poller", "importer", "callbacks"] {
        if let Some(i) = c.holder_node(role).await {
            holders.insert(i);
        }
    }
    let victim = (0..3).find(|i| !holders.contains(i)).unwrap_or(2);
    load.phase("kill -9 a node");
    c.kill(victim);
    tokio::time::sleep(Duration::from_secs(4)).await;
    c.restart(victim);

    // 2. kill -9 the importer's holder: every role it held moves to another node.
    until("an importer", Duration::from_secs(20), || async {
        c.holder_node("importer").await.is_some()
    })
    .await;
    let victim = c.holder_node("importer").await.unwrap();
    let mut held = vec![];
    for role in ["poller", "importer", "callbacks"] {
        if c.holder_node(role).await == Some(victim) {
            held.push(role);
        }
    }
    load.phase("kill -9 the role holder");
    c.kill(victim);
    for role in &held {
        let took = until(
            &format!("the {role} take-over"),
            Duration::from_secs(20),
            || async {
                c.holder_node(role)
                    .await
                    .is_some_and(|i| i != victim && c.nodes[i].pid() != 0)
            },
        )
        .await;
        println!("{role} taken over by another node {took:?} after the kill");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.restart(victim);

    // 3. kill -9 Redis's master; Sentinel promotes the replica.
    load.phase("kill -9 the Redis master");
    tokio::time::sleep(Duration::from_secs(1)).await;
    c.redis[0].kill9();
    until("the replica's promotion", Duration::from_secs(30), || {
        c.redis[1].is_master()
    })
    .await;
    until(
        "creates through every node after the failover",
        Duration::from_secs(30),
        || async {
            let mut all = true;
            for (i, n) in c.nodes.iter().enumerate() {
                let (_, body) = n
                    .get("create", &format!("meetingID=probe-{i}&name=P"))
                    .await;
                all &= body.contains("<returncode>SUCCESS</returncode>");
            }
            all
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 4. Restart PostgreSQL (the callback outbox): every pooled connection is cut.
    load.phase("restart PostgreSQL");
    c.pg.as_mut().unwrap().restart();
    tokio::time::sleep(Duration::from_secs(4)).await;
    load.phase("after");
    tokio::time::sleep(Duration::from_secs(2)).await;

    dropping.store(false, std::sync::atomic::Ordering::Relaxed);
    let rids = dropper.await.unwrap();
    let state = load.stop().await;
    print_phases(&state);

    // Drained: every tarball imported, every recording-ready callback received.
    until("the spool to drain", Duration::from_secs(40), || async {
        std::fs::read_dir(&spool)
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().ends_with(".tar"))
    })
    .await;
    let received = || -> BTreeSet<String> {
        seen.lock()
            .unwrap()
            .iter()
            .map(|b| {
                ready_claims(b)["record_id"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    };
    eventually(Duration::from_secs(40), || async {
        rids.iter().all(|r| received().contains(r))
    })
    .await;
    let missing: Vec<_> = rids.iter().filter(|r| !received().contains(*r)).collect();
    assert!(
        missing.is_empty(),
        "recording-ready callbacks never received: {missing:?}"
    );
    // One more poll cycle: meetings Redis lost with its master are adopted back.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let failed = spool.join("failed");
    let set_aside = std::fs::read_dir(&failed).map(|d| d.count()).unwrap_or(0);
    assert_eq!(set_aside, 0, "no tarball was refused");
    let mut deliveries = BTreeMap::<String, usize>::new();
    for b in seen.lock().unwrap().iter() {
        let rid = ready_claims(b)["record_id"].as_str().unwrap().to_string();
        *deliveries.entry(rid).or_default() += 1;
    }
    let twice: Vec<_> = deliveries.iter().filter(|(_, n)| **n > 1).collect();
    let http = http_client();
    let mut listed = BTreeMap::<String, usize>::new();
    for node in &c.nodes {
        let body = http
            .get(api_url_at(&node.base, "getRecordings", ""))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for rid in &rids {
            *listed.entry(rid.clone()).or_default() +=
                body.matches(&format!("<recordID>{rid}</recordID>")).count();
        }
    }
    let lost: Vec<_> = rids.iter().filter(|r| listed[*r] == 0).collect();
    let duplicated: Vec<_> = rids.iter().filter(|r| listed[*r] > c.nodes.len()).collect();
    println!(
        "recordings dropped {}, lost {}, duplicated {}; callbacks {} sent, {} sent twice",
        rids.len(),
        lost.len(),
        duplicated.len(),
        deliveries.values().sum::<usize>(),
        twice.len()
    );
    assert!(lost.is_empty(), "recordings lost: {lost:?}");
    assert!(
        duplicated.is_empty(),
        "recordings listed twice: {duplicated:?}"
    );
    for rid in &rids {
        assert_eq!(
            listed[rid],
            c.nodes.len(),
            "{rid} is listed once by every node"
        );
    }
    assert!(twice.is_empty(), "callbacks sent twice: {twice:?}");
    assert_no_meeting_lost(&c, &state.created).await;
    for role in ["poller", "importer", "callbacks"] {
        assert!(
            c.holder_node(role).await.is_some(),
            "a running node holds the {role} lease"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_class_start_burst_over_three_nodes_spreads_evenly() {
    const CREATES: usize = 200;
    const CLIENTS: usize = 32;
    let c = Cluster::start(Options {
        nodes: 3,
        servers: 22,
        sentinel: false,
        postgres: false,
        // No poll during the burst: placement alone must spread the rooms.
        poll_interval: 600,
    })
    .await;
    let bases: Vec<String> = c.nodes.iter().map(|n| n.base.clone()).collect();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks = (0..CLIENTS).map(|client| {
        let (bases, next) = (bases.clone(), next.clone());
        tokio::spawn(async move {
            let http = http_client();
            let mut failed = vec![];
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= CREATES {
                    return failed;
                }
                // A few rooms are created twice at once through different nodes.
                let room = format!("class-{}", n % (CREATES - 20));
                let base = &bases[(n + client) % bases.len()];
                let q = format!("meetingID={room}&name=Class");
                let body = http
                    .get(api_url_at(base, "create", &q))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                if !body.contains("<returncode>SUCCESS</returncode>") {
                    failed.push(body);
                }
            }
        })
    });
    let mut failed = vec![];
    for t in tasks {
        failed.extend(t.await.unwrap());
    }
    assert!(failed.is_empty(), "failed creates: {failed:?}");
    let mut per_server = vec![];
    let mut on = BTreeMap::<String, usize>::new();
    for i in 0..c.fake.servers.len() {
        let meetings = c.fake.meetings(i).await;
        per_server.push(meetings.len());
        for m in meetings {
            *on.entry(m["meeting_id"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    let (min, max) = (
        *per_server.iter().min().unwrap(),
        *per_server.iter().max().unwrap(),
    );
    println!("meetings per server after the burst: {per_server:?} (min {min}, max {max})");
    assert_eq!(on.len(), CREATES - 20, "every room runs");
    assert!(on.values().all(|n| *n == 1), "no room on two servers");
    assert!(
        max as f64 <= 1.5 * min as f64,
        "spread {min}..{max} is over 1.5×: {per_server:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unpublish_through_one_node_removes_the_public_link_on_every_node() {
    let mut c = Cluster::start(Options {
        nodes: 2,
        servers: 1,
        sentinel: false,
        postgres: false,
        poll_interval: 60,
    })
    .await;
    let dest = c.spool().join(format!("{PRES}.tar"));
    tokio::task::spawn_blocking(move || tarball_for(PRES, &dest))
        .await
        .unwrap();
    let node0 = &c.nodes[0];
    until("the import", Duration::from_secs(30), || async {
        node0.get("getRecordings", "").await.1.contains(PRES)
    })
    .await;
    // Node 1 started again: its link farm, reconciled on start, serves the recording.
    c.kill(1);
    c.restart(1);
    let link = c.nodes[1].dir.path().join("links/presentation").join(PRES);
    until("node 1's public link", Duration::from_secs(20), || async {
        std::fs::symlink_metadata(&link).is_ok()
    })
    .await;
    let (_, body) = c.nodes[0]
        .get(
            "publishRecordings",
            &format!("recordID={PRES}&publish=false"),
        )
        .await;
    assert!(body.contains("<returncode>SUCCESS</returncode>"), "{body}");
    let own = c.nodes[0].dir.path().join("links/presentation").join(PRES);
    assert!(
        std::fs::symlink_metadata(&own).is_err(),
        "gone at once on node 0"
    );
    let took = until("node 1's link to go", Duration::from_secs(10), || async {
        std::fs::symlink_metadata(&link).is_err()
    })
    .await;
    println!("node 1 stopped serving the unpublished recording publicly {took:?} after the call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_of_slow_callbacks_longer_than_the_lease_keeps_it() {
    const RECORDINGS: usize = 4;
    let c = Cluster::start(Options {
        nodes: 2,
        servers: 1,
        sentinel: false,
        postgres: false,
        poll_interval: 60,
    })
    .await;
    // Each delivery takes 3 s; the callback sender's lease (ROLE_LEASE_TTL) is 2 s.
    let (url, seen) = slow_receiver(Duration::from_secs(3)).await;
    let (_, body) = c.nodes[0]
        .get(
            "create",
            &format!(
                "meetingID=ext-meeting-1&name=R&meta_bbb-recording-ready-url={}",
                urlencode(&url)
            ),
        )
        .await;
    assert!(body.contains("SUCCESS"), "{body}");
    let rids: Vec<String> = (0..RECORDINGS)
        .map(|n| format!("{:040x}-{}", n + 1, 1_715_261_728_123u64 + n as u64))
        .collect();
    for rid in &rids {
        let (r, dest) = (rid.clone(), c.spool().join(format!("{rid}.tar")));
        tokio::task::spawn_blocking(move || tarball_for(&r, &dest))
            .await
            .unwrap();
    }
    until("the first delivery", Duration::from_secs(30), || async {
        !seen.lock().unwrap().is_empty()
    })
    .await;
    let holder = c.lease_holder("callbacks").await.unwrap();
    let mut holders = std::collections::BTreeSet::new();
    let started = Instant::now();
    while seen.lock().unwrap().len() < RECORDINGS || started.elapsed() < Duration::from_secs(4) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "deliveries stalled"
        );
        if let Some(h) = c.lease_holder("callbacks").await {
            holders.insert(h);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "{} callbacks of 3 s each under a 2 s lease; holders seen during the batch: {holders:?}",
        seen.lock().unwrap().len()
    );
    assert_eq!(
        holders.len(),
        1,
        "the lease never changed hands: {holders:?}"
    );
    assert!(holders.contains(&holder));
    let mut sent = BTreeMap::<String, usize>::new();
    for b in seen.lock().unwrap().iter() {
        *sent
            .entry(ready_claims(b)["record_id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    for rid in &rids {
        assert_eq!(sent.get(rid), Some(&1), "{rid} sent once: {sent:?}");
    }
}
