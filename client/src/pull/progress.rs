//! Progress bars of a pull: one bar for the whole pull (bytes, rate, eta, and how many bytes came
//! from the local store, peers, edges and upstream so far) and one bar per file being pulled, at
//! most [`MAX_FILE_BARS`] shown at once (the others still count in the total). Everything is
//! hidden with `--quiet`, `--json` or when stderr is not a terminal.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::fleet::Source;
use zest_tracker_api::BytesBySource;

/// File bars shown at once.
pub const MAX_FILE_BARS: usize = 6;

/// The bars of one pull.
#[derive(Debug)]
pub struct Progress {
    mp: MultiProgress,
    total: ProgressBar,
    /// The pull's own peer server, when it serves (bytes up).
    serving: Option<xorbstore::peer::PeerServer>,
    shown: Arc<AtomicUsize>,
    visible: bool,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

fn mb(n: u64) -> String {
    format!("{:.1} MB", n as f64 / 1e6)
}

impl Progress {
    /// Bars for a pull of `total` bytes; hidden when `visible` is false.
    pub fn new(total: u64, visible: bool) -> Self {
        let mp = if visible {
            MultiProgress::with_draw_target(ProgressDrawTarget::stderr())
        } else {
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
        };
        let bar = ProgressBar::new(total);
        bar.set_style(style(
            "{prefix:32!} [{bar:25}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
        ));
        bar.set_prefix("total");
        let total = mp.add(bar);
        Self {
            mp,
            total,
            serving: None,
            shown: Arc::new(AtomicUsize::new(0)),
            visible,
        }
    }

    /// Also shows what `server` (the pull's own) served.
    pub fn with_serving(mut self, server: Option<xorbstore::peer::PeerServer>) -> Self {
        self.serving = server;
        self
    }

    /// Adds `n` bytes done to the total.
    pub fn inc_total(&self, n: u64) {
        self.total.inc(n);
    }

    /// Shows where the bytes came from so far, and what this machine served.
    pub fn set_sources(&self, c: &BytesBySource) {
        let up = self.serving.as_ref().map_or(String::new(), |s| {
            let s = s.stats();
            format!(
                " | up {} to {} peers ({} now)",
                mb(s.bytes_served),
                s.connections_total,
                s.connections_open
            )
        });
        self.total.set_message(format!(
            "local {} | peers {} | edges {} | upstream {}{up}",
            mb(c.local),
            mb(c.peers),
            mb(c.edges),
            mb(c.upstream)
        ));
    }

    /// A bar for one file (hidden when too many are shown already).
    pub fn file(&self, path: &str, size: u64) -> FileBar {
        let shown = self.visible
            && self
                .shown
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    (n < MAX_FILE_BARS).then_some(n + 1)
                })
                .is_ok();
        let bar = if shown {
            let b = ProgressBar::new(size);
            b.set_style(style(
                "{prefix:32!} [{bar:25}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
            ));
            b.set_prefix(path.to_string());
            self.mp.insert_before(&self.total, b)
        } else {
            ProgressBar::hidden()
        };
        FileBar {
            bar,
            mp: self.mp.clone(),
            shown: shown.then(|| self.shown.clone()),
            from: Mutex::new([0; 4]),
        }
    }

    pub fn finish(&self) {
        self.total.finish_and_clear();
        let _ = self.mp.clear();
    }
}

/// The bar of one file; removed when dropped.
#[derive(Debug)]
pub struct FileBar {
    bar: ProgressBar,
    mp: MultiProgress,
    shown: Option<Arc<AtomicUsize>>,
    /// Bytes by source kind: local, peers, edges, upstream.
    from: Mutex<[u64; 4]>,
}

impl FileBar {
    /// `n` bytes of the file arrived from `source`.
    pub fn add(&self, n: u64, source: &Source) {
        self.bar.inc(n);
        let msg = {
            let mut from = self.from.lock().unwrap_or_else(|p| p.into_inner());
            let k = match source {
                Source::Local => 0,
                Source::Peer(_) => 1,
                Source::Edge(_) => 2,
                Source::Upstream => 3,
            };
            from[k] += n;
            let sum: u64 = from.iter().sum::<u64>().max(1);
            ["local", "peers", "edges", "upstream"]
                .iter()
                .zip(from.iter())
                .filter(|(_, &b)| b > 0)
                .map(|(name, &b)| format!("{name} {}%", b * 100 / sum))
                .collect::<Vec<_>>()
                .join(" ")
        };
        self.bar.set_message(msg);
    }

    /// Sets the bytes done (a verification round starts over).
    pub fn set_done(&self, n: u64) {
        self.bar.set_position(n);
    }
}

impl Drop for FileBar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
        if let Some(shown) = &self.shown {
            self.mp.remove(&self.bar);
            shown.fetch_sub(1, Ordering::SeqCst);
        }
    }
}
