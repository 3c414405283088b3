//! Kill -9 during writes: a child process (this test binary, re-run on one test) inserts ranges
//! in a loop under a small quota (so it also evicts) until it is killed; the parent reopens the
//! store and checks that every visible range verifies against the xorbs it came from.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use xorbstore::{verify_range, Expectation, Store, StoreConfig, STORE_DIR};

use crate::common::{make_xorb, Rng, TestXorb};

const ENV_DIR: &str = "XORBSTORE_CRASH_CHILD_DIR";
const CHILD_TEST: &str = "crash::crash_child_writer";

fn xorbs() -> Vec<TestXorb> {
    (0..4).map(|i| make_xorb(900 + i, 48, 40_000)).collect()
}

/// The child's body; does nothing unless run by `kill_9_during_writes_leaves_only_complete_ranges`.
#[test]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(ENV_DIR) else {
        return;
    };
    let xs = xorbs();
    let store = Store::open(&dir, StoreConfig::new(6 << 20)).expect("open");
    let mut rng = Rng::new(std::process::id() as u64);
    // Bounded: the parent kills us long before this ends.
    for _ in 0..100_000 {
        let x = &xs[rng.next() as usize % xs.len()];
        let a = (rng.next() % 40) as u32;
        let b = a + 1 + (rng.next() % (x.n() - a) as u64) as u32;
        let _ = store.insert(
            &x.hash(),
            a..b,
            x.bytes(a..b),
            &Expectation::with_chunk_hashes(x.hashes(a..b)),
        );
        if rng.next() % 4 == 0 {
            let _ = store.get(&x.hash(), a..b);
        }
    }
}

#[test]
fn kill_9_during_writes_leaves_only_complete_ranges() {
    let tmp = tempfile::tempdir().unwrap();
    let xs = xorbs();
    let exe = std::env::current_exe().unwrap();
    let mut total_seen = 0;
    for round in 0..4u64 {
        let mut child = Command::new(&exe)
            .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
            .env(ENV_DIR, tmp.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait until the child is writing (a range file or temp file appears), then a little more.
        let start = Instant::now();
        let dir = tmp.path().join(STORE_DIR);
        let mut seen = 0;
        while start.elapsed() < Duration::from_secs(20) {
            seen = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
            if seen > 1 + round as usize {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(seen > 0, "child never wrote anything");
        std::thread::sleep(Duration::from_millis(30 + 70 * round));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let store = Store::open(tmp.path(), StoreConfig::new(6 << 20)).unwrap();
        let list = store.list();
        for e in &list {
            let x = xs.iter().find(|x| x.hash() == e.xorb).expect("known xorb");
            let v = store.get(&e.xorb, e.range.clone()).unwrap();
            assert_eq!(&*v, x.bytes(e.range.clone()));
            let exp = Expectation::with_chunk_hashes(x.hashes(e.range.clone()));
            verify_range(&e.xorb, e.range.clone(), &v, &exp).unwrap();
        }
        let leftovers = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".partial")
            })
            .count();
        assert_eq!(leftovers, 0);
        assert!(store.stats().disk_bytes <= 6 << 20);
        eprintln!(
            "round {round}: {} complete ranges survived the kill",
            list.len()
        );
        total_seen += list.len();
    }
    assert!(total_seen > 0, "the child never completed a range");
}
