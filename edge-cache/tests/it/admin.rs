//! The admin routes need the edge's admin token (issue 15): `POST /v1/warm` unauthenticated or
//! with a wrong token is refused (and warms nothing), no token configured refuses everyone,
//! `--admin-no-auth` opens them on a loopback listener; pins are a set and unpin exists.

use crate::common::*;

const TOKEN: &str = "it-admin-token";

fn post(edge: &Edge, route: &str, token: Option<&str>, body: serde_json::Value) -> (u16, String) {
    let mut rb = client().post(format!("{}{route}", edge.base)).json(&body);
    if let Some(t) = token {
        rb = rb.header("x-zest-admin-token", t);
    }
    let r = rb.send().expect("post");
    (r.status().as_u16(), r.text().unwrap_or_default())
}

fn warm(edge: &Edge, token: Option<&str>) -> (u16, String) {
    post(
        edge,
        "/v1/warm",
        token,
        serde_json::json!({"repo": REPO, "revision": "main"}),
    )
}

fn pins(edge: &Edge) -> serde_json::Value {
    let r = client()
        .get(format!("{}/v1/pins", edge.base))
        .header("x-zest-admin-token", TOKEN)
        .send()
        .expect("pins");
    assert_eq!(r.status().as_u16(), 200);
    r.json().expect("json")
}

#[test]
fn warm_without_the_admin_token_is_refused_and_warms_nothing() {
    let origin = Origin::start(|_| {});
    let edge = Edge::start(&origin.base, &cache_dir(), &["--admin-token", TOKEN]);
    assert_eq!(warm(&edge, None).0, 401);
    assert_eq!(warm(&edge, Some("wrong")).0, 401);
    let unpin = post(&edge, "/v1/unpin", None, serde_json::json!({"repo": REPO}));
    assert_eq!(unpin.0, 401);
    let r = client()
        .get(format!("{}/v1/pins", edge.base))
        .send()
        .expect("pins");
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(origin.xorb_bytes(), 0.0, "a refused warm fetched xorbs");
    assert_eq!(edge.metric("zest_edge_ranges"), 0.0);
    // Without any token configured, everyone is refused.
    let closed = Edge::start(&origin.base, &cache_dir(), &[]);
    assert_eq!(warm(&closed, None).0, 403);
    assert_eq!(warm(&closed, Some(TOKEN)).0, 403);
    assert_eq!(origin.xorb_bytes(), 0.0);
}

#[test]
fn pins_are_a_set_and_unpin_releases_them() {
    let origin = Origin::start(|_| {});
    let edge = Edge::start(&origin.base, &cache_dir(), &["--admin-token", TOKEN]);
    let (status, body) = warm(&edge, Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    let once = pins(&edge);
    let (status, body) = warm(&edge, Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    let twice = pins(&edge);
    assert_eq!(once, twice, "a second warm added pins");
    let list = twice["pins"].as_array().expect("pins");
    assert_eq!(list.len(), 1, "{twice}");
    assert_eq!(list[0]["label"], format!("{REPO}@main"));
    assert!(list[0]["ranges"].as_u64() > Some(0));
    let (status, body) = post(
        &edge,
        "/v1/unpin",
        Some(TOKEN),
        serde_json::json!({"repo": REPO}),
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["unpinned"], true);
    assert_eq!(pins(&edge)["pins"], serde_json::json!([]));
    let (_, body) = post(
        &edge,
        "/v1/unpin",
        Some(TOKEN),
        serde_json::json!({"label": format!("{REPO}@main")}),
    );
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["unpinned"], false);
}

/// (That a non-loopback listener refuses `--admin-no-auth` is `admin::tests`' unit test: these
/// tests bind loopback only.)
#[test]
fn no_auth_opens_the_admin_routes_on_a_loopback_listener() {
    let origin = Origin::start(|_| {});
    let edge = Edge::start(&origin.base, &cache_dir(), &["--admin-no-auth"]);
    let (status, body) = warm(&edge, None);
    assert_eq!(status, 200, "{body}");
}
