//! The one shutdown signal of every zest server: completes on Ctrl-C (SIGINT), on SIGTERM, or,
//! when the test switch `--exit-on-stdin-eof` is on, when standard input reaches end of file
//! (the parent test process died, so its child must not outlive it).

use std::io::Read;

/// Completes on Ctrl-C, on SIGTERM, or (when `exit_on_stdin_eof`, the test switch of the same
/// name) when stdin reaches end of file. The caller logs the shutdown.
pub async fn signal(exit_on_stdin_eof: bool) {
    tokio::select! {
        _ = ctrl_c() => {}
        _ = sigterm() => {}
        _ = stdin_eof(exit_on_stdin_eof) => {}
    }
}

/// Ctrl-C; never completes if the handler cannot be installed.
async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// SIGTERM on Unix; never completes elsewhere or if the handler cannot be installed.
async fn sigterm() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            term.recv().await;
            return;
        }
    }
    std::future::pending::<()>().await
}

/// Completes when stdin reaches end of file (or fails); never completes when `enabled` is off.
/// The read blocks a thread of its own, not one of tokio's blocking pool: a runtime waits for
/// its pool's threads when it shuts down, so a read still waiting on stdin would keep a process
/// that got SIGTERM from ever exiting.
async fn stdin_eof(enabled: bool) {
    if !enabled {
        return std::future::pending::<()>().await;
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let watcher = std::thread::Builder::new()
        .name("stdin-eof".into())
        .spawn(move || {
            let mut stdin = std::io::stdin();
            let mut buf = [0u8; 256];
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 {
                    break;
                }
            }
            let _ = tx.send(());
        });
    match watcher {
        Ok(_) => {
            let _ = rx.await;
        }
        Err(_) => std::future::pending::<()>().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn signals_alone_do_not_complete() {
        let r = tokio::time::timeout(Duration::from_millis(50), signal(false)).await;
        assert!(r.is_err(), "shutdown completed without a signal");
    }
}
