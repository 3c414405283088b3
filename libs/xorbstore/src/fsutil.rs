//! Crash-safe file writes, the one implementation every zest crate uses: write a temporary file
//! in the target's folder, fsync it, rename it into place, fsync the folder (the pattern of
//! neon's `crashsafe.rs`). [`Durability::Deferred`] skips the fsyncs (the file still appears
//! whole or not at all; only a power loss can lose it). Temporary files end in [`TEMP_SUFFIX`]
//! so that [`crate::Store::open`] can delete leftovers after a crash.
//!
//! It lives here rather than in `zest-service` because the store needs it and must not depend
//! on service code; the origin and the `zest` CLI's hub cache call it too.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Durability;

/// Suffix of temporary files; anything ending with it is garbage after a restart.
pub const TEMP_SUFFIX: &str = ".partial";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name unique within this process and very likely across processes sharing a folder.
pub fn unique_token() -> u64 {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let pid = u64::from(std::process::id());
    // Mix so that two processes started in the same nanosecond still differ by pid.
    (nanos ^ (pid << 40) ^ (n << 20)).wrapping_add(n)
}

/// Creates a new temporary file in `dir`, returning its path and handle (read + write).
pub fn create_temp(dir: &Path) -> io::Result<(PathBuf, File)> {
    create_temp_mode(dir, 0o666)
}

/// [`create_temp`] with the file created with permission bits `mode` (before the umask).
fn create_temp_mode(dir: &Path, mode: u32) -> io::Result<(PathBuf, File)> {
    use std::os::unix::fs::OpenOptionsExt;
    for _ in 0..16 {
        let path = dir.join(format!(
            ".tmp-{}-{:016x}{TEMP_SUFFIX}",
            std::process::id(),
            unique_token()
        ));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
        {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "could not find a free temporary file name",
    ))
}

/// fsyncs a folder so that a rename or unlink inside it is durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `bytes` to `path` atomically and durably (temp file, fsync, rename, fsync folder).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, bytes, Durability::Sync)
}

/// Writes `bytes` to `path` atomically (temp file, rename); with [`Durability::Sync`] the file
/// is fsynced before the rename and the folder after it.
pub fn write_atomic_with(path: &Path, bytes: &[u8], durability: Durability) -> io::Result<()> {
    write_atomic_mode(path, bytes, durability, 0o666)
}

/// [`write_atomic`] of a secret (a key): the file is readable and writable by its owner only
/// (mode 0600) from the moment it is created.
pub fn write_secret(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, bytes, Durability::Sync, 0o600)
}

fn write_atomic_mode(
    path: &Path,
    bytes: &[u8],
    durability: Durability,
    mode: u32,
) -> io::Result<()> {
    let dir = parent(path)?;
    let (tmp, mut f) = create_temp_mode(dir, mode)?;
    let res = (|| {
        f.write_all(bytes)?;
        if durability == Durability::Sync {
            f.sync_all()?;
        }
        drop(f);
        std::fs::rename(&tmp, path)?;
        if durability == Durability::Sync {
            fsync_dir(dir)?;
        }
        Ok(())
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Renames the finished temporary `tmp` (a file or a symbolic link, written by the caller)
/// over `dst`; with [`Durability::Sync`] a regular file is fsynced before the rename and
/// `dst`'s folder after it.
pub fn rename_into_place(tmp: &Path, dst: &Path, durability: Durability) -> io::Result<()> {
    let sync = durability == Durability::Sync;
    if sync && std::fs::symlink_metadata(tmp)?.is_file() {
        File::open(tmp)?.sync_all()?;
    }
    std::fs::rename(tmp, dst)?;
    if sync {
        fsync_dir(parent(dst)?)?;
    }
    Ok(())
}

fn parent(path: &Path) -> io::Result<&Path> {
    path.parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent"))
}

/// Deletes the garbage temporary files (`.tmp-*`, see [`is_stale_temp`]) directly in `dir`;
/// returns how many.
pub fn remove_stale_temps(dir: &Path) -> io::Result<usize> {
    let mut n = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let is_temp = entry.file_name().to_string_lossy().starts_with(".tmp-");
        if is_temp && entry.file_type()?.is_file() && is_stale_temp(&path) {
            match std::fs::remove_file(&path) {
                Ok(()) => n += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(n)
}

/// Whether a temporary file is garbage: its writer (the pid in its name) is gone, or it is older
/// than an hour, or its name does not say who wrote it. Another live process sharing the folder
/// (e.g. `zest seed` while `zest pull` writes) keeps its files.
pub fn is_stale_temp(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return true;
    };
    let pid = name
        .strip_prefix(".tmp-")
        .and_then(|rest| rest.split('-').next())
        .and_then(|p| p.parse::<u32>().ok());
    let Some(pid) = pid else { return true };
    let alive = Path::new("/proc").join(pid.to_string()).exists();
    let old = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_none_or(|age| age > std::time::Duration::from_secs(3600));
    !alive || old
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_and_stale_temp_cleanup() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("index.json");
        write_atomic(&p, b"one").expect("write");
        write_atomic(&p, b"two").expect("write");
        assert_eq!(std::fs::read(&p).expect("read"), b"two");
        // A torn temp file of a dead writer (no pid in the name), and one of this live process.
        std::fs::write(d.path().join(".tmp-index.json.1.1"), b"torn").expect("write");
        let (live, _f) = create_temp(d.path()).expect("temp");
        assert_eq!(remove_stale_temps(d.path()).expect("clean"), 1);
        assert!(live.exists(), "a live writer's temp file was deleted");
        assert!(p.exists());
    }

    #[test]
    fn deferred_writes_and_renames_land_whole() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("ref");
        write_atomic_with(&p, b"abc", Durability::Deferred).expect("write");
        assert_eq!(std::fs::read(&p).expect("read"), b"abc");
        let tmp = d.path().join("blob.incomplete");
        std::fs::write(&tmp, b"data").expect("write");
        for durability in [Durability::Sync, Durability::Deferred] {
            std::fs::write(&tmp, b"data").expect("write");
            rename_into_place(&tmp, &d.path().join("blob"), durability).expect("rename");
            assert!(!tmp.exists());
        }
        assert_eq!(std::fs::read(d.path().join("blob")).expect("read"), b"data");
        let missing = rename_into_place(&tmp, &p, Durability::Sync);
        assert!(missing.is_err(), "renaming a missing file succeeded");
    }

    #[test]
    fn secrets_are_written_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("key");
        write_secret(&p, b"k").expect("write");
        let mode = std::fs::metadata(&p).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read(&p).expect("read"), b"k");
    }
}
