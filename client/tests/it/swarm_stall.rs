//! A machine with the tracker's write token that claims every range of a model and renews its
//! claims forever, without ever fetching or serving anything: the swarm's single flight must not
//! turn that into a hang. A pull waits for such a claimer at most one bounded wait (30 seconds
//! plus the range at 1 MB/s), then drops it and fetches upstream.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hub::{HubClient, RepoType, RetryPolicy};
use xet::MerkleHash;
use zest_tracker_api::client::TrackerClient;
use zest_tracker_api::{AnnounceRequest, ChunkRange, ClaimRequest, LookupItem, PeerDescriptor};

use super::swarm::{dir, model, n, summary, Machine, REPO};

/// Every range a pull of `REPO` will claim: the upstream ranges of each Xet file's
/// reconstruction, as any reader of the (public) repo can ask for them.
async fn every_range(origin: &str) -> Vec<LookupItem> {
    let hub = HubClient::new(origin, None, RetryPolicy::default()).expect("hub client");
    let commit = hub
        .resolve_revision(RepoType::Model, REPO, "main")
        .await
        .expect("revision");
    let token = hub
        .xet_read_token(RepoType::Model, REPO, &commit)
        .await
        .expect("xet read token");
    let mut items = Vec::new();
    for f in hub
        .list_files(RepoType::Model, REPO, &commit)
        .await
        .expect("tree")
    {
        let Some(h) = f.xet_hash.as_deref() else {
            continue;
        };
        let file = MerkleHash::from_hex(h).expect("xet hash");
        let recon = hub
            .reconstruction(&token, &file, None)
            .await
            .expect("reconstruction");
        for (xorb, fetches) in &recon.xorbs {
            for r in fetches.iter().flat_map(|f| &f.ranges) {
                items.push(LookupItem {
                    hash: *xorb,
                    range: ChunkRange {
                        start: r.chunks.start,
                        end: r.chunks.end,
                    },
                });
            }
        }
    }
    items
}

/// The staller: announced (so its claims count as live), it claims `items` in the model's
/// claim group, taking the group's every upstream-fetch lease too, and renews until `stop`.
async fn stall(tracker: String, items: Vec<LookupItem>, stop: Arc<AtomicBool>) {
    let t = TrackerClient::new(&tracker, None).expect("tracker client");
    let me = PeerDescriptor {
        id: "staller".into(),
        addr: "127.0.0.1:9".into(),
        role: wire::Role::Client,
        zone: String::new(),
        free_bytes: 0,
        load: 0,
    };
    while !stop.load(Ordering::Relaxed) {
        let _ = t
            .announce(&AnnounceRequest {
                peer: me.clone(),
                full: Some(Vec::new()),
                added: Vec::new(),
                removed: Vec::new(),
            })
            .await;
        let _ = t
            .claim(&ClaimRequest {
                peer_id: "staller".into(),
                ttl_ms: 60_000,
                items: items.clone(),
                group: Some(REPO.into()),
                max_group_leases: Some(100_000),
                done: false,
            })
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[test]
fn a_claimer_that_never_delivers_costs_one_bounded_wait_not_a_hang() {
    let root = dir("stall-root");
    let files = model(&root);
    let origin = zest_testkit::Origin::start(&root, &dir("stall-state"), &[]);
    let tracker = zest_testkit::Tracker::start(&[]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let items = rt.block_on(every_range(&origin.base));
    assert!(items.len() >= 2, "the model has ranges to claim: {items:?}");
    let stop = Arc::new(AtomicBool::new(false));
    let staller = rt.spawn(stall(tracker.base.clone(), items, stop.clone()));
    // The staller holds every claim before the victim starts.
    let deadline = Instant::now() + Duration::from_secs(20);
    while zest_testkit::metric_series(
        &tracker.base,
        "zest_tracker_claims_total{outcome=\"granted\"}",
    ) < 1.0
    {
        assert!(
            Instant::now() < deadline,
            "the staller's claims never landed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let victim = Machine::new("stall-victim");
    let t = Instant::now();
    let s = summary(
        victim.pull(&origin.base, &tracker.base, "victim", &[]),
        "the victim's pull",
    );
    let took = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    rt.block_on(staller).expect("staller");
    victim.assert_identical(&files);
    eprintln!("victim: {took:?} with a staller holding every claim; {s}");
    // The staller's own claims are all granted: what is held was asked by the victim.
    let held =
        zest_testkit::metric_series(&tracker.base, "zest_tracker_claims_total{outcome=\"held\"}");
    assert!(
        held >= 1.0,
        "the victim never met the staller's claims: {s}"
    );
    // It waited (the claims were honoured for a while), but once, not per range: a wait is
    // 30 s plus the range at 1 MB/s (the model's largest range is 64 MiB: ~97 s).
    assert!(
        took >= Duration::from_secs(30),
        "the victim did not wait at all: {took:?}"
    );
    assert!(took < Duration::from_secs(90), "the staller cost {took:?}");
    let why = s["bad_sources"]["staller"].as_str().unwrap_or_default();
    assert!(
        why.contains("held a claim"),
        "the staller was not dropped: {s}"
    );
    assert!(n(&s, &["bytes", "upstream"]) > 0, "{s}");
}
