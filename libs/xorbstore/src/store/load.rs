//! Loading the store's folder: the scan at [`super::Store::open`] (leftover temporary files
//! deleted, every range file of either backing re-checked, invalid ones deleted, duplicates of
//! one range resolved, LRU order restored from the files' access times), the scan of
//! [`super::Store::rescan`], and the pins file.
//!
//! Blocking (directory listing, reads, maps); runs where the caller runs `open` / `rescan`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::OpenOptions;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU8;
use std::sync::Arc;
use std::time::SystemTime;

use xet::MerkleHash;

use super::backing::{is_range_file, Backing, Stored, REF_SUFFIX};
use super::index::{Index, Pins};
use super::remove_quietly;
use crate::error::StoreError;
use crate::format::{self, FileHeader};
use crate::fsutil::{self, TEMP_SUFFIX};
use crate::mmap::MappedFile;
use crate::verify::MAX_RANGE_CHUNKS;

/// Name of the pins file in the store's folder.
pub(crate) const PINS_FILE: &str = "pins.json";

/// Scans `dir` at open: deletes stale temporary files and invalid range files, and returns an
/// index of the valid ones, least recently accessed first (by file modification time). When
/// two files hold one range (two writers raced), the one of higher level is kept (the older on
/// a tie) and the other deleted. Pins are not loaded here.
pub(crate) fn load_dir(dir: &Path) -> Result<Index<Arc<Stored>>, StoreError> {
    let mut loaded: Vec<(SystemTime, Stored)> = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(|e| StoreError::io("read folder", dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| StoreError::io("read folder", dir, e))?;
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.ends_with(TEMP_SUFFIX) {
            if fsutil::is_stale_temp(&path) {
                tracing::info!(path = %path.display(), "deleting leftover temporary file");
                remove_quietly(&path);
            }
        } else if is_range_file(name) {
            match load_file(&path) {
                Ok(x) => loaded.push(x),
                Err(reason) => {
                    tracing::warn!(path = %path.display(), %reason, "deleting invalid range file");
                    remove_quietly(&path);
                }
            }
        }
    }
    // Oldest access first, so the LRU order survives a restart.
    loaded.sort_by_key(|(t, _)| *t);
    let mut index = Index::default();
    let mut by_key: HashMap<(MerkleHash, u32, u32), u64> = HashMap::new();
    for (_, stored) in loaded {
        let key = (stored.xorb, stored.range.start, stored.range.end);
        if let Some(&old) = by_key.get(&key) {
            // Two files for one range (two writers raced): keep the better one.
            let keep_old = index
                .get(old)
                .is_some_and(|s: &Arc<Stored>| s.level() >= stored.level());
            if keep_old {
                remove_quietly(&stored.path);
                continue;
            }
            if let Some(s) = index.remove(old) {
                remove_quietly(&s.path);
            }
        }
        let id = index.add(Arc::new(stored));
        by_key.insert(key, id);
    }
    Ok(index)
}

/// What [`rescan_dir`] found.
#[derive(Debug)]
pub(crate) struct Rescan {
    /// Every range file in the folder now.
    pub(crate) on_disk: HashSet<PathBuf>,
    /// The valid range files not in `known`, loaded.
    pub(crate) fresh: Vec<Stored>,
}

/// Lists the range files of `dir` and loads those not in `known`. A file that fails to load is
/// left alone (it may still be mid-rename by its writer).
pub(crate) fn rescan_dir(dir: &Path, known: &HashSet<PathBuf>) -> Result<Rescan, StoreError> {
    let mut on_disk = HashSet::new();
    let mut fresh = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(|e| StoreError::io("read folder", dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| StoreError::io("read folder", dir, e))?;
        let path = entry.path();
        if !is_range_file(&path.to_string_lossy()) {
            continue;
        }
        if !known.contains(&path) {
            if let Ok((_, stored)) = load_file(&path) {
                fresh.push(stored);
            }
        }
        on_disk.insert(path);
    }
    Ok(Rescan { on_disk, fresh })
}

/// Loads and structurally re-checks one range file.
fn load_file(path: &Path) -> Result<(SystemTime, Stored), String> {
    if path.to_string_lossy().ends_with(REF_SUFFIX) {
        return load_ref(path);
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| e.to_string())?;
    let md = file.metadata().map_err(|e| e.to_string())?;
    let file_len = md.len();
    let mut fixed = [0u8; format::FIXED_LEN];
    file.read_exact(&mut fixed).map_err(|e| e.to_string())?;
    let hlen = format::peek_header_len(&fixed)?;
    if (hlen as u64) > file_len {
        return Err("file shorter than its header".into());
    }
    let mut header = vec![0u8; hlen];
    header[..format::FIXED_LEN].copy_from_slice(&fixed);
    file.read_exact(&mut header[format::FIXED_LEN..])
        .map_err(|e| e.to_string())?;
    let FileHeader {
        xorb,
        range,
        data_len,
        meta,
    } = format::decode_header(&header)?;
    if hlen as u64 + data_len != file_len {
        return Err(format!(
            "file is {file_len} bytes, header says {}",
            hlen as u64 + data_len
        ));
    }
    let map = MappedFile::map(file).map_err(|e| e.to_string())?;
    let data = &map.bytes()[hlen..];
    format::check_records(data, &meta)?;
    let level = meta.level;
    let mtime = md.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    Ok((
        mtime,
        Stored {
            xorb,
            range,
            backing: Backing::Inline {
                map,
                data_offset: hlen,
            },
            data_len: data_len as usize,
            level: AtomicU8::new(level as u8),
            meta,
            file_len,
            path: path.to_path_buf(),
        },
    ))
}

/// Loads a blob reference file: both checksums, and the blob still long enough for its chunks.
fn load_ref(path: &Path) -> Result<(SystemTime, Stored), String> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| e.to_string())?;
    let md = file.metadata().map_err(|e| e.to_string())?;
    let most = format::header_len(MAX_RANGE_CHUNKS as usize) + 12 + format::MAX_BLOB_PATH + 32;
    if md.len() > most as u64 {
        return Err(format!("reference of {} bytes is too long", md.len()));
    }
    let mut bytes = Vec::with_capacity(md.len() as usize);
    (&file)
        .take(most as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    let (header, blob) = format::decode_ref(&bytes)?;
    let chunks_end = blob.offset + u64::from(header.meta.raw_ends.last().copied().unwrap_or(0));
    match std::fs::metadata(&blob.path) {
        Ok(m) if m.is_file() && m.len() >= chunks_end => {}
        Ok(_) => {
            return Err(format!(
                "blob {} is shorter than its chunks",
                blob.path.display()
            ))
        }
        Err(e) => return Err(format!("blob {}: {e}", blob.path.display())),
    }
    let level = header.meta.level;
    Ok((
        md.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        Stored {
            xorb: header.xorb,
            range: header.range,
            backing: Backing::Blob { file, blob },
            data_len: header.data_len as usize,
            level: AtomicU8::new(level as u8),
            meta: header.meta,
            file_len: md.len(),
            path: path.to_path_buf(),
        },
    ))
}

/// The pins file: version 1, label → `(xorb hex, start, end)` triples.
#[derive(serde::Serialize, serde::Deserialize)]
struct PinsFile {
    version: u32,
    pins: BTreeMap<String, Vec<(String, u32, u32)>>,
}

/// Loads the pins file at `path` (no file: no pins).
pub(crate) fn load_pins(path: &Path) -> Result<Pins, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e.to_string()),
    };
    let file: PinsFile = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    if file.version != 1 {
        return Err(format!("unknown pins version {}", file.version));
    }
    let mut out = BTreeMap::new();
    for (label, ranges) in file.pins {
        let mut v = Vec::with_capacity(ranges.len());
        for (hex, s, e) in ranges {
            let x = MerkleHash::from_hex(&hex).map_err(|e| e.to_string())?;
            v.push((x, s..e));
        }
        out.insert(label, v);
    }
    Ok(out)
}

/// Writes `pins` to the pins file in `dir`, crash-safely.
pub(crate) fn save_pins(dir: &Path, pins: &Pins) -> Result<(), StoreError> {
    let file = PinsFile {
        version: 1,
        pins: pins
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.iter()
                        .map(|(x, r)| (x.to_hex(), r.start, r.end))
                        .collect(),
                )
            })
            .collect(),
    };
    let json = serde_json::to_vec(&file).map_err(|e| StoreError::Corrupt {
        path: PINS_FILE.into(),
        reason: e.to_string(),
    })?;
    let path = dir.join(PINS_FILE);
    fsutil::write_atomic(&path, &json).map_err(|e| StoreError::io("write", path, e))
}
