//! The on-disk state: xorbs built from the repos' files, and the index that describes them.
//!
//! Layout under the state folder (default `<root>/.zest-origin-v1`):
//!
//! ```text
//! index-v1.json              files (by "org/name/path": size, mtime, sha256, git sha1, Xet terms)
//!                            and xorbs (chunk hashes, serialized and raw chunk end offsets)
//! xorbs-v1/{xorb hash}.xorb  chunk records followed by the V1 footer
//! ```
//!
//! [`build`] brings the state up to date with a scan: files whose size and mtime did not change
//! keep their record; the others are hashed (in parallel: SHA-256, git blob SHA-1, chunking and
//! chunk hashes), then their new chunks are packed in order into xorbs of up to 64 MiB / 8192
//! chunks. A chunk already stored (in any file of any repo) is not stored again. Xorbs no file
//! refers to any more are deleted. Every write is crash-safe ([`xorbstore::fsutil`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use xet::chunking::ChunkHasher;
use xet::xorb::XorbBuilder;
use xet::MerkleHash;

use crate::scan::{ScannedFile, ScannedRepo};
use xorbstore::fsutil;

/// File name of the index inside the state folder.
pub const INDEX_FILE: &str = "index-v1.json";
/// Folder of the xorbs inside the state folder.
pub const XORB_DIR: &str = "xorbs-v1";
const INDEX_FORMAT: u32 = 1;
/// Files at least this large are served through Xet.
pub const XET_MIN_SIZE: u64 = 1024 * 1024;
/// Extensions served through Xet whatever their size (if not empty).
pub const XET_EXTENSIONS: [&str; 3] = ["safetensors", "gguf", "bin"];
/// Read size while hashing.
const READ_BLOCK: usize = 8 * 1024 * 1024;

/// What can go wrong while building the state.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("state folder {path}: {source}")]
    State { path: PathBuf, source: io::Error },
    #[error("writing xorb {hash}: {source}")]
    WriteXorb { hash: MerkleHash, source: io::Error },
    #[error("writing the index: {0}")]
    WriteIndex(io::Error),
}

/// Whether a file is served through Xet (else as a plain git file).
pub fn wants_xet(path: &str, size: u64) -> bool {
    if size == 0 {
        return false;
    }
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    size >= XET_MIN_SIZE || ext.is_some_and(|e| XET_EXTENSIONS.contains(&e.as_str()))
}

/// One file as the index knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub size: u64,
    pub mtime_ns: u64,
    /// Hex SHA-256 of the content (the LFS oid).
    pub sha256: String,
    /// Hex SHA-1 of `"blob {len}\0" + content` (the git blob id).
    pub git_sha1: String,
    /// Set for files served through Xet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xet: Option<XetRecord>,
}

/// How a Xet file is rebuilt from xorbs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XetRecord {
    /// The Xet file hash (`X-Xet-Hash`).
    pub hash: MerkleHash,
    /// Chunk ranges of xorbs, in file order.
    pub terms: Vec<TermRecord>,
}

/// Chunks `start..end` of `xorb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermRecord {
    pub xorb: MerkleHash,
    pub start: u32,
    pub end: u32,
}

/// One stored xorb.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XorbRecord {
    pub chunk_hashes: Vec<MerkleHash>,
    /// End offset of each chunk record in the serialized chunk region.
    pub byte_ends: Vec<u32>,
    /// End offset of each chunk in the uncompressed data.
    pub raw_ends: Vec<u32>,
    /// Size of the stored file (chunk region + footer).
    pub stored_len: u64,
}

impl XorbRecord {
    pub fn num_chunks(&self) -> u32 {
        self.chunk_hashes.len() as u32
    }

    /// Size of the chunk region (what byte ranges may address).
    pub fn chunk_region_len(&self) -> u64 {
        self.byte_ends.last().copied().unwrap_or(0) as u64
    }

    /// Uncompressed offset where chunk `i` starts (`i` may equal the chunk count).
    pub fn raw_start(&self, i: u32) -> u64 {
        match i {
            0 => 0,
            i => self.raw_ends[i as usize - 1] as u64,
        }
    }

    /// Serialized offset where chunk record `i` starts (`i` may equal the chunk count).
    pub fn byte_start(&self, i: u32) -> u64 {
        match i {
            0 => 0,
            i => self.byte_ends[i as usize - 1] as u64,
        }
    }

    /// Whether the record is self-consistent (loaded from disk, so not trusted).
    fn is_consistent(&self) -> bool {
        let n = self.chunk_hashes.len();
        n > 0
            && n <= xet::xorb::MAX_XORB_CHUNKS
            && self.byte_ends.len() == n
            && self.raw_ends.len() == n
            && self.byte_ends.windows(2).all(|w| w[0] < w[1])
            && self.raw_ends.windows(2).all(|w| w[0] < w[1])
            && self.byte_ends[0] > 0
            && self.raw_ends[0] > 0
            && self.chunk_region_len() <= self.stored_len
    }
}

/// The whole index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Index {
    /// By `org/name/path`.
    pub files: BTreeMap<String, FileRecord>,
    pub xorbs: BTreeMap<MerkleHash, XorbRecord>,
}

#[derive(Serialize, Deserialize)]
struct IndexDoc {
    format: u32,
    files: BTreeMap<String, FileRecord>,
    xorbs: BTreeMap<MerkleHash, XorbRecord>,
}

/// What a [`build`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexStats {
    /// Files hashed (and chunked) in this run.
    pub files_indexed: u64,
    /// Files whose record was reused.
    pub files_reused: u64,
    /// Files skipped because they could not be read.
    pub files_failed: u64,
    pub bytes_indexed: u64,
    pub xorbs_written: u64,
    pub xorbs_removed: u64,
    /// Chunks found already stored (not stored again).
    pub chunks_deduplicated: u64,
    pub chunks_stored: u64,
}

/// Key of a file in the index.
pub fn file_key(repo: &ScannedRepo, file: &ScannedFile) -> String {
    format!("{}/{}", repo.id(), file.path)
}

/// Path of a xorb's file.
pub fn xorb_path(state_dir: &Path, hash: &MerkleHash) -> PathBuf {
    state_dir.join(XORB_DIR).join(format!("{hash}.xorb"))
}

/// Loads the index; a missing, unreadable or other-format index gives an empty one.
pub fn load(state_dir: &Path) -> Index {
    let path = state_dir.join(INDEX_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Index::default(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the index, rebuilding");
            return Index::default();
        }
    };
    match serde_json::from_slice::<IndexDoc>(&bytes) {
        Ok(doc) if doc.format == INDEX_FORMAT => Index {
            files: doc.files,
            xorbs: doc.xorbs,
        },
        Ok(doc) => {
            tracing::warn!(format = doc.format, "index has another format, rebuilding");
            Index::default()
        }
        Err(e) => {
            tracing::warn!(error = %e, "index is corrupt, rebuilding");
            Index::default()
        }
    }
}

/// Writes the index crash-safely.
pub fn save(state_dir: &Path, index: &Index) -> Result<(), IndexError> {
    let doc = IndexDoc {
        format: INDEX_FORMAT,
        files: index.files.clone(),
        xorbs: index.xorbs.clone(),
    };
    let bytes =
        serde_json::to_vec(&doc).map_err(|e| IndexError::WriteIndex(io::Error::other(e)))?;
    fsutil::write_atomic(&state_dir.join(INDEX_FILE), &bytes).map_err(IndexError::WriteIndex)
}

/// Brings the state under `state_dir` up to date with `repos`.
pub fn build(state_dir: &Path, repos: &[ScannedRepo]) -> Result<(Index, IndexStats), IndexError> {
    let started = Instant::now();
    let xorb_dir = state_dir.join(XORB_DIR);
    let state_err = |source| IndexError::State {
        path: xorb_dir.clone(),
        source,
    };
    fs::create_dir_all(&xorb_dir).map_err(state_err)?;
    fsutil::remove_stale_temps(&xorb_dir).map_err(state_err)?;
    fsutil::remove_stale_temps(state_dir).map_err(state_err)?;

    let old = load(state_dir);
    let old_files_len = old.files.len();
    // Keep only xorbs whose file is there, whole.
    let mut xorbs: BTreeMap<MerkleHash, XorbRecord> = BTreeMap::new();
    for (hash, rec) in old.xorbs {
        let ok = rec.is_consistent()
            && fs::metadata(xorb_path(state_dir, &hash))
                .map(|m| m.len() == rec.stored_len)
                .unwrap_or(false);
        if ok {
            xorbs.insert(hash, rec);
        } else {
            tracing::warn!(xorb = %hash, "stored xorb missing or damaged, dropping it");
        }
    }

    let mut stats = IndexStats::default();
    let mut files: BTreeMap<String, FileRecord> = BTreeMap::new();
    let mut todo: Vec<(String, &ScannedFile, bool)> = Vec::new();
    for repo in repos {
        for f in &repo.files {
            let key = file_key(repo, f);
            let xet = wants_xet(&f.path, f.size);
            match old.files.get(&key) {
                Some(rec)
                    if rec.size == f.size
                        && rec.mtime_ns == f.mtime_ns
                        && rec.xet.is_some() == xet
                        && terms_valid(rec, &xorbs) =>
                {
                    files.insert(key, rec.clone());
                    stats.files_reused += 1;
                }
                _ => todo.push((key, f, xet)),
            }
        }
    }

    // Pass 1, parallel over files: content hashes and chunks.
    let analyses: Vec<_> = todo
        .par_iter()
        .map(|(key, f, xet)| (key, *f, analyze(&f.source, f.size, *xet)))
        .collect();

    // Pass 2, sequential: pack new chunks into xorbs. Terms name xorbs by slot until every
    // xorb is finished and hashed.
    let mut packer = Packer::new(state_dir, &xorbs);
    let mut pending = Vec::new();
    for (key, f, analysis) in analyses {
        let analysis = match analysis {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(file = %key, error = %e, "cannot index file, not serving it");
                stats.files_failed += 1;
                continue;
            }
        };
        let xet = match &analysis.chunks {
            None => None,
            Some(chunks) => match packer.add_file(&f.source, chunks, &mut stats) {
                Ok(slots) => Some((xet::hash::file_hash(chunks), slots)),
                Err(PackError::Io(e)) => {
                    tracing::warn!(file = %key, error = %e, "cannot index file, not serving it");
                    stats.files_failed += 1;
                    continue;
                }
                Err(PackError::Fatal(e)) => return Err(e),
            },
        };
        stats.files_indexed += 1;
        stats.bytes_indexed += f.size;
        pending.push((key.clone(), f, analysis, xet));
    }
    let (slot_hashes, new_xorbs) = packer.finish(&mut stats)?;
    for (key, f, analysis, xet) in pending {
        let xet = xet.map(|(hash, terms)| XetRecord {
            hash,
            terms: terms
                .into_iter()
                .map(|(slot, start, end)| TermRecord {
                    xorb: slot_hashes[slot as usize],
                    start,
                    end,
                })
                .collect(),
        });
        let rec = FileRecord {
            size: f.size,
            mtime_ns: f.mtime_ns,
            sha256: analysis.sha256,
            git_sha1: analysis.git_sha1,
            xet,
        };
        files.insert(key, rec);
    }
    xorbs.extend(new_xorbs);

    // Drop xorbs no file refers to.
    let live: BTreeSet<MerkleHash> = files
        .values()
        .filter_map(|f| f.xet.as_ref())
        .flat_map(|x| x.terms.iter().map(|t| t.xorb))
        .collect();
    let dead: Vec<MerkleHash> = xorbs
        .keys()
        .filter(|h| !live.contains(h))
        .copied()
        .collect();
    for h in &dead {
        xorbs.remove(h);
    }
    remove_unlisted_xorbs(&xorb_dir, &xorbs, &mut stats);

    let index = Index { files, xorbs };
    if stats.files_indexed > 0
        || stats.xorbs_removed > 0
        || old_files_len != index.files.len()
        || stats.files_reused as usize != old_files_len
    {
        save(state_dir, &index)?;
    }
    tracing::info!(
        files_indexed = stats.files_indexed,
        files_reused = stats.files_reused,
        files_failed = stats.files_failed,
        bytes_indexed = stats.bytes_indexed,
        xorbs_written = stats.xorbs_written,
        xorbs_removed = stats.xorbs_removed,
        chunks_stored = stats.chunks_stored,
        chunks_deduplicated = stats.chunks_deduplicated,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "index up to date"
    );
    Ok((index, stats))
}

fn terms_valid(rec: &FileRecord, xorbs: &BTreeMap<MerkleHash, XorbRecord>) -> bool {
    let Some(x) = &rec.xet else { return true };
    let mut total = 0u64;
    for t in &x.terms {
        match xorbs.get(&t.xorb) {
            Some(xr) if t.start < t.end && t.end <= xr.num_chunks() => {
                total += xr.raw_start(t.end) - xr.raw_start(t.start);
            }
            _ => return false,
        }
    }
    total == rec.size
}

fn remove_unlisted_xorbs(
    dir: &Path,
    xorbs: &BTreeMap<MerkleHash, XorbRecord>,
    stats: &mut IndexStats,
) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut removed = false;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let keep = name
            .strip_suffix(".xorb")
            .and_then(|h| MerkleHash::from_hex(h).ok())
            .is_some_and(|h| xorbs.contains_key(&h));
        if !keep {
            match fs::remove_file(entry.path()) {
                Ok(()) => {
                    stats.xorbs_removed += 1;
                    removed = true;
                }
                Err(e) => {
                    tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove unused xorb")
                }
            }
        }
    }
    if removed {
        let _ = fsutil::fsync_dir(dir);
    }
}

/// Pass-1 result for one file.
struct Analysis {
    sha256: String,
    git_sha1: String,
    /// `(chunk hash, length)` in file order, for Xet files.
    chunks: Option<Vec<(MerkleHash, u64)>>,
}

/// Reads a file once: SHA-256, git blob SHA-1 and (for Xet files) chunks with their hashes.
/// The two digests and the chunker run side by side on each block.
fn analyze(path: &Path, size: u64, xet: bool) -> io::Result<Analysis> {
    let mut file = File::open(path)?;
    let mut sha256 = Sha256::new();
    let mut sha1 = Sha1::new();
    sha1.update(format!("blob {size}\0").as_bytes());
    let mut hasher = ChunkHasher::new();
    let mut chunks = Vec::new();
    let mut buf = vec![0u8; READ_BLOCK.min(size as usize + 1).max(1)];
    let mut total = 0u64;
    loop {
        let n = read_full(&mut file, &mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > size {
            break;
        }
        let block = &buf[..n];
        rayon::join(
            || {
                sha256.update(block);
                sha1.update(block);
            },
            || {
                if xet {
                    hasher.push(block, &mut chunks);
                }
            },
        );
    }
    if total != size {
        return Err(io::Error::other(format!(
            "file changed while indexing (size {size}, read {total})"
        )));
    }
    if let Some(last) = hasher.finish() {
        chunks.push(last);
    }
    Ok(Analysis {
        sha256: hex::encode(sha256.finalize()),
        git_sha1: hex::encode(sha1.finalize()),
        chunks: xet.then(|| chunks.iter().map(|c| (c.hash, c.len as u64)).collect()),
    })
}

/// Reads until `buf` is full or end of file.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Hash of every slot, and the xorbs written.
type Finished = (Vec<MerkleHash>, Vec<(MerkleHash, XorbRecord)>);

enum PackError {
    /// The source file: skip it.
    Io(io::Error),
    /// The state folder: stop.
    Fatal(IndexError),
}

/// Packs chunks into xorbs. Xorbs are numbered by "slot" while they are open; a slot becomes a
/// hash when its xorb is finished.
struct Packer<'a> {
    state_dir: &'a Path,
    slots: Vec<Option<MerkleHash>>,
    chunk_map: HashMap<MerkleHash, (u32, u32)>,
    open: Option<(u32, XorbBuilder)>,
    new_xorbs: Vec<(MerkleHash, XorbRecord)>,
    buf: Vec<u8>,
}

impl<'a> Packer<'a> {
    fn new(state_dir: &'a Path, existing: &BTreeMap<MerkleHash, XorbRecord>) -> Self {
        let mut slots = Vec::with_capacity(existing.len());
        let mut chunk_map = HashMap::new();
        for (hash, rec) in existing {
            let slot = slots.len() as u32;
            slots.push(Some(*hash));
            for (i, c) in rec.chunk_hashes.iter().enumerate() {
                chunk_map.entry(*c).or_insert((slot, i as u32));
            }
        }
        Packer {
            state_dir,
            slots,
            chunk_map,
            open: None,
            new_xorbs: Vec::new(),
            buf: Vec::new(),
        }
    }

    /// Adds a file's chunks; returns its terms as `(slot, start, end)`.
    fn add_file(
        &mut self,
        path: &Path,
        chunks: &[(MerkleHash, u64)],
        stats: &mut IndexStats,
    ) -> Result<Vec<(u32, u32, u32)>, PackError> {
        let mut reader =
            BufReader::with_capacity(1 << 20, File::open(path).map_err(PackError::Io)?);
        if let Some((_, b)) = &mut self.open {
            b.start_file();
        }
        let mut terms: Vec<(u32, u32, u32)> = Vec::new();
        for &(hash, len) in chunks {
            let (slot, idx) = match self.chunk_map.get(&hash) {
                Some(&at) => {
                    reader.seek_relative(len as i64).map_err(PackError::Io)?;
                    stats.chunks_deduplicated += 1;
                    at
                }
                None => {
                    self.buf.resize(len as usize, 0);
                    reader.read_exact(&mut self.buf).map_err(PackError::Io)?;
                    if xet::hash::chunk_hash(&self.buf) != hash {
                        return Err(PackError::Io(io::Error::other(
                            "file changed while indexing",
                        )));
                    }
                    let at = self.add_chunk(hash)?;
                    stats.chunks_stored += 1;
                    self.chunk_map.insert(hash, at);
                    at
                }
            };
            match terms.last_mut() {
                Some((s, _, end)) if *s == slot && *end == idx => *end += 1,
                _ => terms.push((slot, idx, idx + 1)),
            }
        }
        Ok(terms)
    }

    fn add_chunk(&mut self, hash: MerkleHash) -> Result<(u32, u32), PackError> {
        let full = self
            .open
            .as_ref()
            .is_some_and(|(_, b)| !b.can_add(self.buf.len()));
        if full {
            self.flush().map_err(PackError::Fatal)?;
        }
        if self.open.is_none() {
            let slot = self.slots.len() as u32;
            self.slots.push(None);
            self.open = Some((slot, XorbBuilder::new()));
        }
        let (slot, builder) = self.open.as_mut().expect("opened above");
        let idx = builder
            .add_chunk_with_hash(&self.buf, hash)
            .map_err(|e| PackError::Io(io::Error::other(e.to_string())))?;
        Ok((*slot, idx))
    }

    fn flush(&mut self) -> Result<(), IndexError> {
        let Some((slot, builder)) = self.open.take() else {
            return Ok(());
        };
        if builder.is_empty() {
            return Ok(());
        }
        let xorb = builder.finish();
        let bytes = xorb.to_bytes_with_footer();
        let path = xorb_path(self.state_dir, &xorb.hash);
        fsutil::write_atomic(&path, &bytes).map_err(|source| IndexError::WriteXorb {
            hash: xorb.hash,
            source,
        })?;
        tracing::debug!(xorb = %xorb.hash, chunks = xorb.num_chunks(), bytes = bytes.len(), "wrote xorb");
        self.slots[slot as usize] = Some(xorb.hash);
        self.new_xorbs.push((
            xorb.hash,
            XorbRecord {
                chunk_hashes: xorb.footer.chunk_hashes,
                byte_ends: xorb.footer.chunk_boundary_offsets,
                raw_ends: xorb.footer.unpacked_chunk_offsets,
                stored_len: bytes.len() as u64,
            },
        ));
        Ok(())
    }

    fn finish(mut self, stats: &mut IndexStats) -> Result<Finished, IndexError> {
        self.flush()?;
        stats.xorbs_written += self.new_xorbs.len() as u64;
        let slots = self
            .slots
            .into_iter()
            .map(|s| s.unwrap_or_default())
            .collect();
        Ok((slots, self.new_xorbs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::scan_root;

    fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn xet_rule() {
        assert!(wants_xet("a.safetensors", 10));
        assert!(wants_xet("x/model.BIN", 10));
        assert!(!wants_xet("config.json", 100));
        assert!(wants_xet("data.txt", XET_MIN_SIZE));
        assert!(!wants_xet("empty.bin", 0));
    }

    #[test]
    fn builds_dedups_reuses_and_reindexes_changed_files() {
        let root = tempfile::tempdir().expect("tempdir");
        let state = root.path().join(".zest-origin-v1");
        let a = pseudo_random(1, 3 << 20);
        for repo in ["o/a", "o/b"] {
            fs::create_dir_all(root.path().join(repo)).expect("mkdir");
            fs::write(root.path().join(repo).join("w.bin"), &a).expect("write");
        }
        fs::write(root.path().join("o/a/config.json"), b"{}").expect("write");

        let repos = scan_root(root.path(), &state).expect("scan");
        let (index, stats) = build(&state, &repos).expect("build");
        assert_eq!(stats.files_indexed, 3);
        assert!(
            stats.chunks_deduplicated > 0,
            "second copy must dedup: {stats:?}"
        );
        let fa = &index.files["o/a/w.bin"];
        let fb = &index.files["o/b/w.bin"];
        assert_eq!(fa.xet, fb.xet);
        assert!(index.files["o/a/config.json"].xet.is_none());
        let x = fa.xet.as_ref().expect("xet");
        assert_eq!(
            x.hash,
            xet::hash::file_hash(&xet::chunking::leaves(&xet::chunking::chunk_and_hash(&a)))
        );
        assert_eq!(fa.sha256, hex::encode(Sha256::digest(&a)));

        // Rebuild the file from the stored xorbs.
        let mut out = Vec::new();
        for t in &x.terms {
            let bytes = fs::read(xorb_path(&state, &t.xorb)).expect("xorb");
            let reader = xet::xorb::XorbReader::new(&bytes).expect("reader");
            reader
                .decode_range(t.start..t.end, &mut out)
                .expect("decode");
        }
        assert_eq!(out, a);

        // Restart: nothing to do.
        let (index2, stats2) = build(&state, &repos).expect("rebuild");
        assert_eq!(stats2.files_indexed, 0);
        assert_eq!(stats2.files_reused, 3);
        assert_eq!(index2, index);

        // Change one file: only it is re-indexed; the old xorb is still used by the other copy.
        let b = pseudo_random(2, 2 << 20);
        fs::write(root.path().join("o/b/w.bin"), &b).expect("write");
        let repos = scan_root(root.path(), &state).expect("scan");
        let (index3, stats3) = build(&state, &repos).expect("rebuild");
        assert_eq!(stats3.files_indexed, 1);
        assert_eq!(stats3.files_reused, 2);
        assert_eq!(stats3.xorbs_removed, 0);
        assert_ne!(index3.files["o/b/w.bin"].sha256, fb.sha256);

        // Remove the other copy too: its xorb goes away.
        fs::remove_file(root.path().join("o/a/w.bin")).expect("rm");
        let repos = scan_root(root.path(), &state).expect("scan");
        let (index4, stats4) = build(&state, &repos).expect("rebuild");
        assert_eq!(stats4.files_indexed, 0);
        assert!(stats4.xorbs_removed >= 1);
        assert_eq!(index4.files.len(), 2);
        for h in index4.xorbs.keys() {
            assert!(xorb_path(&state, h).exists());
        }
    }

    #[test]
    fn missing_xorb_triggers_reindex() {
        let root = tempfile::tempdir().expect("tempdir");
        let state = root.path().join(".zest-origin-v1");
        fs::create_dir_all(root.path().join("o/a")).expect("mkdir");
        fs::write(root.path().join("o/a/w.bin"), pseudo_random(3, 500_000)).expect("write");
        let repos = scan_root(root.path(), &state).expect("scan");
        let (index, _) = build(&state, &repos).expect("build");
        for h in index.xorbs.keys() {
            fs::remove_file(xorb_path(&state, h)).expect("rm");
        }
        let (index2, stats) = build(&state, &repos).expect("rebuild");
        assert_eq!(stats.files_indexed, 1);
        assert_eq!(index2, index);
    }
}
