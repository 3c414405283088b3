//! The library's `run` serves in-process on 127.0.0.1:0 and stops on its shutdown signal.

use std::time::Duration;

use zest_origin::Config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_in_process_and_shuts_down() {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(root.path().join("org/tiny")).expect("mkdir");
    std::fs::write(
        root.path().join("org/tiny/config.json"),
        b"{\"tiny\": true}\n",
    )
    .expect("write");
    std::fs::write(
        root.path().join("org/tiny/w.safetensors"),
        crate::common::pseudo_random(9, 200_000),
    )
    .expect("write");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    let mut config = Config::new(root.path());
    config.workers = Some(1);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(zest_origin::run(listener, config, async move {
        let _ = rx.await;
    }));
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/org/tiny/resolve/main/config.json");
    let mut body = None;
    for _ in 0..100 {
        if let Ok(r) = client.get(&url).send().await {
            body = Some((r.status().as_u16(), r.text().await.expect("text")));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(body, Some((200, "{\"tiny\": true}\n".to_string())));
    let r = client
        .head(format!("http://{addr}/org/tiny/resolve/main/w.safetensors"))
        .send()
        .await
        .expect("head");
    assert!(r.headers().contains_key("x-xet-hash"));
    tx.send(()).expect("shutdown");
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server stops")
        .expect("join")
        .expect("run ok");
}
