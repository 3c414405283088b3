//! Pulling one Xet file with bounded memory. The file's terms are laid out first (each term's
//! offset is the sum of the unpacked lengths before it), the `.incomplete` file is sized, and each
//! fetched range ("unit") is decoded and written at the offsets of the terms that use it as soon
//! as it arrives (positional writes); only its chunk hashes and lengths stay in memory. The Xet
//! file hash is computed from those at the end; nothing is renamed into place unless it matches.
//!
//! Once the file hash matches and the blob is in place, every term's chunk range goes into the
//! local xorb store as a reference to its bytes in the blob (`Store::insert_blob_ref`, stored as
//! `FileVerified`), not as a second copy: the pull writes each byte to disk once, and `zest seed`
//! serves the ranges from the blob. Nothing unverified is ever stored.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use futures::StreamExt;
use xet::MerkleHash;
use xorbstore::Store;

use super::cache::RepoCache;
use super::fetch::{Fetched, MalformedUpstream, Source, Sources, Unit};
use super::journal::{self, Journal};
use super::progress::FileBar;
use zest_tracker_api::{ChunkRange, ManifestTerm, Role as PeerRole};

/// Extra upstream fetches of a range whose bytes do not decode, before giving up.
const MAX_UPSTREAM_TRIES: u32 = 3;
/// Rounds of fetching a file whose hash does not match before giving up.
const MAX_ROUNDS: usize = 3;
/// Units fetched at once, over all files.
pub const PARALLEL_UNITS: usize = 16;
/// Memory budget of the units in flight (compressed + decoded), MiB, over all files.
pub const INFLIGHT_BUDGET_MIB: u32 = 512;

/// Limits shared by every file of a pull.
#[derive(Debug)]
pub struct Limits {
    units: tokio::sync::Semaphore,
    mib: tokio::sync::Semaphore,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            units: tokio::sync::Semaphore::new(PARALLEL_UNITS),
            mib: tokio::sync::Semaphore::new(INFLIGHT_BUDGET_MIB as usize),
        }
    }
}

/// One term of the file: the unit holding it, its chunk range, and where it goes in the file.
#[derive(Debug, Clone)]
pub struct TermSlot {
    pub unit: usize,
    pub xorb: MerkleHash,
    pub range: Range<u32>,
    pub offset: u64,
    pub len: u64,
}

/// What is kept of a unit once its bytes are in the file.
#[derive(Debug)]
struct Held {
    hashes: Vec<MerkleHash>,
    lens: Vec<u32>,
    source: Source,
}

/// Units to fetch and the file's terms in order (with offsets). `manifest_terms` replace the
/// reconstruction's terms in fleet-only pulls (whose units are then the terms' own ranges).
pub fn plan(
    recon: &xet::ReconstructionV2,
    manifest_terms: &[ManifestTerm],
    size: u64,
) -> anyhow::Result<(Vec<Unit>, Vec<TermSlot>)> {
    let mut units: Vec<Unit> = Vec::new();
    let mut by_xorb: std::collections::HashMap<MerkleHash, Vec<usize>> = Default::default();
    for (xorb, fetches) in &recon.xorbs {
        for f in fetches {
            for r in &f.ranges {
                if r.chunks.start >= r.chunks.end
                    || r.chunks.end - r.chunks.start > xorbstore::MAX_RANGE_CHUNKS
                    || r.bytes.end < r.bytes.start
                {
                    bail!("the reconstruction has an invalid range for xorb {xorb}");
                }
                by_xorb.entry(*xorb).or_default().push(units.len());
                units.push(Unit {
                    xorb: *xorb,
                    chunks: r.chunks.start..r.chunks.end,
                    upstream: Some((f.url.clone(), r.bytes.start, r.bytes.end)),
                });
            }
        }
    }
    let term_list: Vec<(MerkleHash, Range<u32>, u32)> = if manifest_terms.is_empty() {
        recon
            .terms
            .iter()
            .map(|t| (t.hash, t.range.start..t.range.end, t.unpacked_length))
            .collect()
    } else {
        manifest_terms
            .iter()
            .map(|t| (t.hash, t.range.start..t.range.end, t.unpacked_length))
            .collect()
    };
    let mut terms = Vec::with_capacity(term_list.len());
    let mut offset = 0u64;
    for (xorb, r, len) in term_list {
        if r.start >= r.end {
            bail!("empty term in the reconstruction");
        }
        let found = by_xorb.get(&xorb).and_then(|ids| {
            ids.iter()
                .copied()
                .find(|&i| units[i].chunks.start <= r.start && r.end <= units[i].chunks.end)
        });
        let idx = match found {
            Some(i) => i,
            None if recon.xorbs.is_empty() => {
                // Fleet-only: fetch the term's own range (once per distinct range).
                if r.end - r.start > xorbstore::MAX_RANGE_CHUNKS {
                    bail!("term too long");
                }
                by_xorb.entry(xorb).or_default().push(units.len());
                units.push(Unit {
                    xorb,
                    chunks: r.clone(),
                    upstream: None,
                });
                units.len() - 1
            }
            None => bail!("no fetch range covers a term of xorb {xorb}"),
        };
        terms.push(TermSlot {
            unit: idx,
            xorb,
            range: r,
            offset,
            len: u64::from(len),
        });
        offset = offset
            .checked_add(u64::from(len))
            .context("term lengths overflow")?;
    }
    if offset != size {
        bail!("the file's terms add up to {offset} bytes, the listing says {size}");
    }
    Ok((units, terms))
}

/// Checks that `fe` gives every term of `uses` its stated length, then decodes each chunk once
/// (into a small scratch buffer; an uncompressed chunk is not copied at all), hashes it and
/// writes it at the offset of every term that uses it: no decoded copy of the whole range is
/// ever held. Returns the chunks' hashes. `Err(why)` when the bytes disagree with the terms or
/// do not decode (nothing is written in the first case; in the second, bytes already written
/// are overwritten by the refetch, and the file is only renamed into place once its hash
/// matches).
fn place(
    file: &File,
    unit: &Unit,
    fe: &Fetched,
    terms: &[TermSlot],
    uses: &[usize],
) -> anyhow::Result<Result<Vec<MerkleHash>, String>> {
    let n = fe.lens.len();
    // Where each chunk goes: (chunk index within the unit, file offset), in chunk order.
    let mut dests: Vec<(usize, u64)> = Vec::new();
    for &t in uses {
        let term = &terms[t];
        let a = (term.range.start - unit.chunks.start) as usize;
        let b = (term.range.end - unit.chunks.start) as usize;
        if a >= b || b > n {
            return Ok(Err("term outside its fetched range".into()));
        }
        let len: u64 = fe.lens[a..b].iter().map(|&l| u64::from(l)).sum();
        if len != term.len {
            return Ok(Err(format!(
                "chunks {}..{} of xorb {} decode to {len} bytes, the reconstruction says {}",
                term.range.start, term.range.end, unit.xorb, term.len
            )));
        }
        let mut off = term.offset;
        for k in a..b {
            dests.push((k, off));
            off += u64::from(fe.lens[k]);
        }
    }
    dests.sort_unstable();
    let mut hashes = Vec::with_capacity(n);
    let (mut scratch, mut bg4) = (Vec::new(), Vec::new());
    let mut next = 0usize;
    for (k, rec) in xet::chunk::ChunkRecords::new(&fe.raw).enumerate() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => return Ok(Err(format!("malformed chunk records: {e}"))),
        };
        let data: &[u8] = if rec.header.scheme == xet::chunk::CompressionScheme::None
            && rec.payload.len() == rec.header.uncompressed_len as usize
        {
            rec.payload
        } else {
            scratch.clear();
            if let Err(e) = xet::chunk::decode_chunk_with_scratch(
                &rec.header,
                rec.payload,
                &mut scratch,
                &mut bg4,
            ) {
                return Ok(Err(format!(
                    "chunk {k} of xorb {} does not decode: {e}",
                    unit.xorb
                )));
            }
            &scratch
        };
        if data.len() != fe.lens.get(k).copied().unwrap_or(0) as usize {
            return Ok(Err(format!(
                "chunk {k} of xorb {} decodes to the wrong length",
                unit.xorb
            )));
        }
        hashes.push(xet::hash::chunk_hash(data));
        while next < dests.len() && dests[next].0 == k {
            file.write_all_at(data, dests[next].1)
                .context("writing the .incomplete file")?;
            next += 1;
        }
    }
    if hashes.len() != n {
        return Ok(Err(format!(
            "{} chunks decoded, expected {n}",
            hashes.len()
        )));
    }
    Ok(Ok(hashes))
}

/// Everything the unit tasks of one file share.
struct Ctx<'a> {
    sources: &'a Arc<Sources>,
    limits: &'a Limits,
    units: Arc<Vec<Unit>>,
    terms: Arc<Vec<TermSlot>>,
    uses: Vec<Arc<Vec<usize>>>,
    file: Arc<File>,
    bar: &'a FileBar,
    on_bytes: &'a (dyn Fn(u64) + Sync),
    /// Where placed units are recorded for a resumed pull (none when it could not be created).
    journal: Option<Arc<Journal>>,
}

impl Ctx<'_> {
    /// Fetches unit `i` and writes its terms. A source whose bytes disagree with the terms is
    /// blamed and the unit comes from upstream instead.
    async fn fetch_and_place(
        &self,
        i: usize,
        holders: &[(String, String, PeerRole)],
        refetch: bool,
        count: bool,
    ) -> anyhow::Result<Held> {
        let unit = &self.units[i];
        let mib = ((unit.expected_bytes().saturating_mul(2)) >> 20)
            .clamp(1, u64::from(INFLIGHT_BUDGET_MIB)) as u32;
        let _slot = self.limits.units.acquire().await?;
        let _mem = self.limits.mib.acquire_many(mib).await?;
        let mut skip_fleet = refetch;
        // A fleet source whose bytes are wrong is blamed and upstream asked instead; bytes from
        // upstream that do not decode are fetched again a few times (a flaky upstream or
        // network), since nothing else could provide them. HTTP failures are not retried here:
        // the Hub client's retry policy already did.
        let mut upstream_tries = 0;
        for _ in 0..2 + MAX_UPSTREAM_TRIES {
            let fe = match self.sources.fetch_unit(unit, holders, skip_fleet).await {
                Ok(fe) => fe,
                Err(e)
                    if e.downcast_ref::<MalformedUpstream>().is_some()
                        && upstream_tries < MAX_UPSTREAM_TRIES =>
                {
                    upstream_tries += 1;
                    tracing::warn!(xorb = %unit.xorb, error = %format!("{e:#}"), "upstream bytes do not decode; fetching them again");
                    skip_fleet = true;
                    continue;
                }
                Err(e) => {
                    return Err(e.context(format!(
                        "fetching chunks {}..{} of xorb {}",
                        unit.chunks.start, unit.chunks.end, unit.xorb
                    )))
                }
            };
            let source = fe.source.clone();
            let (file, terms, uses) = (self.file.clone(), self.terms.clone(), self.uses[i].clone());
            let units = self.units.clone();
            let journal = self.journal.clone();
            let placed = tokio::task::spawn_blocking(move || {
                let unit = &units[i];
                let hashes = match place(&file, unit, &fe, &terms, &uses)? {
                    Ok(h) => h,
                    Err(why) => return Ok::<_, anyhow::Error>(Err(why)),
                };
                let lens = fe.lens.clone();
                if let Some(j) = &journal {
                    let entry = journal::Entry {
                        xorb: unit.xorb,
                        chunks: unit.chunks.clone(),
                        lens: lens.clone(),
                        hashes: hashes.clone(),
                    };
                    if let Err(e) = j.append(&entry) {
                        tracing::debug!(error = %e, "could not record a range in the resume journal");
                    }
                }
                let bytes: u64 = uses.iter().map(|&t| terms[t].len).sum();
                Ok(Ok((
                    Held {
                        hashes,
                        lens,
                        source: fe.source,
                    },
                    bytes,
                )))
            })
            .await??;
            match placed {
                Ok((held, bytes)) => {
                    self.bar.add(bytes, &held.source);
                    if count {
                        (self.on_bytes)(bytes);
                    }
                    return Ok(held);
                }
                Err(why) if source != Source::Upstream && self.sources.hub.is_some() => {
                    self.sources.blame(&source, &why);
                    skip_fleet = true;
                }
                Err(why) if source == Source::Upstream && upstream_tries < MAX_UPSTREAM_TRIES => {
                    upstream_tries += 1;
                    tracing::warn!(xorb = %unit.xorb, %why, "upstream bytes do not decode; fetching them again");
                    skip_fleet = true;
                }
                Err(why) => bail!(
                    "chunks {}..{} of xorb {}: {why}",
                    unit.chunks.start,
                    unit.chunks.end,
                    unit.xorb
                ),
            }
        }
        bail!(
            "chunks {}..{} of xorb {}: no source gave bytes that decode",
            unit.chunks.start,
            unit.chunks.end,
            unit.xorb
        )
    }
}

/// Pulls one Xet file into `blobs/{etag}` (through `.incomplete`), verified by its Xet hash (and
/// sha256 when asked). Returns its terms (for the tracker's manifest). `on_bytes` is told of
/// bytes placed (first round only: progress of the whole pull).
#[allow(clippy::too_many_arguments)]
pub(super) async fn pull_xet_file(
    sources: &Arc<Sources>,
    limits: &Limits,
    token: Option<&xet::CasJwtInfo>,
    cache: &RepoCache,
    f: &super::FileToPull,
    xet_hash: MerkleHash,
    verify_sha256: bool,
    bar: &FileBar,
    on_bytes: &(dyn Fn(u64) + Sync),
    journal_dir: &Path,
) -> anyhow::Result<Vec<ManifestTerm>> {
    let recon = match (token, &sources.hub) {
        (Some(t), Some(h)) => h.reconstruction(t, &xet_hash, None).await?,
        _ => xet::ReconstructionV2::default(),
    };
    if recon.offset_into_first_range != 0 {
        bail!("the reconstruction of a whole file starts mid-range");
    }
    let (units, terms) = plan(&recon, &f.terms, f.size)?;
    let mut uses: Vec<Vec<usize>> = vec![Vec::new(); units.len()];
    for (t, term) in terms.iter().enumerate() {
        uses[term.unit].push(t);
    }
    let used: Vec<usize> = (0..units.len()).filter(|&i| !uses[i].is_empty()).collect();
    let tmp = cache.incomplete(&f.etag)?;
    // A killed pull left the `.incomplete` file and its journal: resume from them.
    let journal_path = journal_dir.join(format!("{}.units", f.etag));
    let resumable = std::fs::symlink_metadata(&tmp).is_ok_and(|m| m.is_file() && m.len() == f.size);
    let previous = if resumable {
        journal::read(&journal_path)
    } else {
        Vec::new()
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(previous.is_empty())
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    file.set_len(f.size)
        .with_context(|| format!("sizing {}", tmp.display()))?;
    let file = Arc::new(file);
    let units = Arc::new(units);
    let terms = Arc::new(terms);
    let uses: Vec<Arc<Vec<usize>>> = uses.into_iter().map(Arc::new).collect();
    let (resumed, kept) = if previous.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        let (file, units, terms, uses) = (file.clone(), units.clone(), terms.clone(), uses.clone());
        tokio::task::spawn_blocking(move || resume(&file, &units, &terms, &uses, previous)).await?
    };
    let journal = match Journal::create(&journal_path, &kept) {
        Ok(j) => Some(Arc::new(j)),
        Err(e) => {
            tracing::warn!(error = %e, path = %journal_path.display(), "no resume journal for this file");
            None
        }
    };
    let ctx = Ctx {
        sources,
        limits,
        units,
        terms,
        uses,
        file,
        bar,
        on_bytes,
        journal,
    };

    let mut got: Vec<Option<Held>> = (0..ctx.units.len()).map(|_| None).collect();
    let mut refetch: Vec<usize> = used.clone();
    if !resumed.is_empty() {
        let mut bytes = 0;
        for (i, held, n) in resumed {
            got[i] = Some(held);
            bytes += n;
        }
        refetch.retain(|i| got[*i].is_none());
        tracing::info!(file = %f.path, bytes, "resuming: ranges already in the .incomplete file are not fetched again");
        sources.count_local(bytes);
        bar.add(bytes, &Source::Local);
        on_bytes(bytes);
    }
    for round in 0..MAX_ROUNDS {
        let need_units: Vec<Unit> = refetch.iter().map(|&i| ctx.units[i].clone()).collect();
        let holders = if round > 0 {
            vec![Vec::new(); refetch.len()]
        } else {
            sources.lookup(&need_units).await
        };
        let ctx_ref = &ctx;
        let mut results = futures::stream::iter(refetch.iter().copied().zip(holders))
            .map(|(i, h)| async move {
                (
                    i,
                    ctx_ref.fetch_and_place(i, &h, round > 0, round == 0).await,
                )
            })
            .buffer_unordered(PARALLEL_UNITS);
        let mut fresh: Vec<(usize, Held)> = Vec::new();
        while let Some((i, r)) = results.next().await {
            fresh.push((i, r?));
        }
        drop(results);
        // After a failed round: blame each fleet source whose chunks differ from upstream's,
        // and drop what the local store gave.
        let mut wrong = Vec::new();
        for (i, h) in fresh {
            if let Some(old) = &got[i] {
                if old.source != Source::Upstream && old.hashes != h.hashes {
                    sources.blame(&old.source, "sent chunks that fail the file hash");
                    if old.source == Source::Local {
                        wrong.push(i);
                    }
                }
            }
            got[i] = Some(h);
        }
        forget(sources.store.clone(), &ctx.units, wrong).await;

        let mut chunks = Vec::new();
        for t in ctx.terms.iter() {
            let h = got[t.unit].as_ref().context("a range was not fetched")?;
            let a = (t.range.start - ctx.units[t.unit].chunks.start) as usize;
            let b = (t.range.end - ctx.units[t.unit].chunks.start) as usize;
            for k in a..b {
                chunks.push((h.hashes[k], u64::from(h.lens[k])));
            }
        }
        let hash = xet::hash::file_hash(&chunks);
        let ok_sha = if verify_sha256 && hash == xet_hash {
            match &f.sha256 {
                Some(want) => {
                    let file = ctx.file.clone();
                    let got_sha = tokio::task::spawn_blocking(move || sha256_of(&file)).await??;
                    &got_sha == want
                }
                None => true,
            }
        } else {
            true
        };
        if hash == xet_hash && ok_sha {
            cache.commit_blob(&f.etag)?;
            let _ = std::fs::remove_file(&journal_path);
            keep_in_store(
                sources.store.clone(),
                cache.blob(&f.etag)?,
                &ctx.units,
                &ctx.terms,
                &got,
            )
            .await;
            return Ok(ctx
                .terms
                .iter()
                .map(|t| ManifestTerm {
                    hash: t.xorb,
                    unpacked_length: t.len as u32,
                    range: ChunkRange {
                        start: t.range.start,
                        end: t.range.end,
                    },
                })
                .collect());
        }
        tracing::warn!(
            file = %f.path, round, got = %hash, expected = %xet_hash, sha256_ok = ok_sha,
            "file failed verification; refetching its fleet ranges from upstream"
        );
        if sources.hub.is_none() {
            let _ = std::fs::remove_file(&tmp);
            let _ = std::fs::remove_file(&journal_path);
            bail!("{} failed verification and upstream is unreachable", f.path);
        }
        refetch = used
            .iter()
            .copied()
            .filter(|&i| {
                got[i]
                    .as_ref()
                    .is_some_and(|h| h.source != Source::Upstream || round > 0)
            })
            .collect();
        if refetch.is_empty() {
            // Everything came from upstream and still fails: refetch all once more.
            refetch = used.clone();
        }
        let done: u64 = ctx
            .terms
            .iter()
            .filter(|t| !refetch.contains(&t.unit))
            .map(|t| t.len)
            .sum();
        bar.set_done(done);
    }
    let _ = std::fs::remove_file(&tmp);
    let _ = std::fs::remove_file(&journal_path);
    bail!(
        "{} failed verification {MAX_ROUNDS} times (Xet hash mismatch); nothing was written",
        f.path
    )
}

/// The units of a killed pull's journal whose bytes in the `.incomplete` file still hash to what
/// the journal recorded (every term that uses the unit is read back and hashed chunk by chunk),
/// with their bytes; and the journal entries that proved good, to start the new journal with.
fn resume(
    file: &File,
    units: &[Unit],
    terms: &[TermSlot],
    uses: &[Arc<Vec<usize>>],
    previous: Vec<journal::Entry>,
) -> (Vec<(usize, Held, u64)>, Vec<journal::Entry>) {
    let by_unit: std::collections::HashMap<(MerkleHash, u32, u32), usize> = units
        .iter()
        .enumerate()
        .filter(|(i, _)| !uses[*i].is_empty())
        .map(|(i, u)| ((u.xorb, u.chunks.start, u.chunks.end), i))
        .collect();
    let mut done = vec![false; units.len()];
    let mut resumed = Vec::new();
    let mut kept = Vec::new();
    let mut buf = Vec::new();
    for e in previous {
        let Some(&i) = by_unit.get(&(e.xorb, e.chunks.start, e.chunks.end)) else {
            continue;
        };
        if done[i] || !entry_matches_file(file, &units[i], &e, terms, &uses[i], &mut buf) {
            continue;
        }
        done[i] = true;
        let bytes = uses[i].iter().map(|&t| terms[t].len).sum();
        let held = Held {
            hashes: e.hashes.clone(),
            lens: e.lens.clone(),
            source: Source::Local,
        };
        resumed.push((i, held, bytes));
        kept.push(e);
    }
    (resumed, kept)
}

/// True when every term using `unit` has, at its offset in `file`, chunks of `e`'s lengths
/// that hash to `e`'s hashes.
fn entry_matches_file(
    file: &File,
    unit: &Unit,
    e: &journal::Entry,
    terms: &[TermSlot],
    uses: &[usize],
    buf: &mut Vec<u8>,
) -> bool {
    let n = (unit.chunks.end - unit.chunks.start) as usize;
    if e.lens.len() != n
        || e.hashes.len() != n
        || e.lens
            .iter()
            .any(|&l| l == 0 || l > xet::chunk::MAX_UNCOMPRESSED_LEN)
    {
        return false;
    }
    for &t in uses {
        let term = &terms[t];
        let a = (term.range.start - unit.chunks.start) as usize;
        let b = (term.range.end - unit.chunks.start) as usize;
        if a >= b || b > n {
            return false;
        }
        let mut off = term.offset;
        for k in a..b {
            buf.resize(e.lens[k] as usize, 0);
            if file.read_exact_at(buf, off).is_err() || xet::hash::chunk_hash(buf) != e.hashes[k] {
                return false;
            }
            off += u64::from(e.lens[k]);
        }
        if off - term.offset != term.len {
            return false;
        }
    }
    true
}

/// Removes units `which` from the local store (their bytes failed the file hash).
async fn forget(store: Option<Store>, units: &Arc<Vec<Unit>>, which: Vec<usize>) {
    let Some(store) = store else { return };
    if which.is_empty() {
        return;
    }
    let units = units.clone();
    let r = tokio::task::spawn_blocking(move || {
        for i in which {
            let u = &units[i];
            if let Err(e) = store.remove(&u.xorb, u.chunks.clone()) {
                tracing::warn!(error = %e, "could not drop a bad range from the local store");
            }
        }
    })
    .await;
    if let Err(e) = r {
        tracing::warn!(error = %e, "store task failed");
    }
}

fn sha256_of(file: &File) -> anyhow::Result<String> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    loop {
        let n = file.read_at(&mut buf, off)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        off += n as u64;
    }
    Ok(hex::encode(h.finalize()))
}

/// Once the file verified and its blob is in place: keeps every term's chunk range in the local
/// store as a reference to its bytes in `blob` (the file hash proved exactly those bytes), once
/// per distinct range. Best effort: a store that refuses only warns.
async fn keep_in_store(
    store: Option<Store>,
    blob: std::path::PathBuf,
    units: &[Unit],
    terms: &[TermSlot],
    got: &[Option<Held>],
) {
    let Some(store) = store else { return };
    let mut items: Vec<(TermSlot, Vec<MerkleHash>, Vec<u32>)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for t in terms.iter() {
        let Some(h) = got[t.unit].as_ref() else {
            continue;
        };
        if !seen.insert((t.xorb, t.range.start, t.range.end)) {
            continue;
        }
        let unit_start = match t.range.start.checked_sub(units[t.unit].chunks.start) {
            Some(a) => a as usize,
            None => continue,
        };
        let n = (t.range.end - t.range.start) as usize;
        if unit_start + n > h.hashes.len() {
            continue;
        }
        items.push((
            t.clone(),
            h.hashes[unit_start..unit_start + n].to_vec(),
            h.lens[unit_start..unit_start + n].to_vec(),
        ));
    }
    let r = tokio::task::spawn_blocking(move || {
        let blob = match std::path::absolute(&blob) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "could not keep the file's ranges in the local store");
                return;
            }
        };
        for (t, hashes, lens) in items {
            if let Err(e) =
                store.insert_blob_ref(&t.xorb, t.range.clone(), &hashes, &lens, &blob, t.offset)
            {
                tracing::warn!(error = %e, "could not keep a range in the local store");
            }
        }
    })
    .await;
    if let Err(e) = r {
        tracing::warn!(error = %e, "store task failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> MerkleHash {
        let mut hex = String::new();
        for _ in 0..32 {
            hex.push_str(&format!("{n:02x}"));
        }
        MerkleHash::from_hex(&hex).expect("hex")
    }

    fn mterm(x: u8, r: Range<u32>, len: u32) -> ManifestTerm {
        ManifestTerm {
            hash: h(x),
            unpacked_length: len,
            range: ChunkRange {
                start: r.start,
                end: r.end,
            },
        }
    }

    #[test]
    fn terms_get_offsets_and_share_units() {
        let recon = xet::ReconstructionV2::default();
        let terms = [mterm(1, 0..3, 100), mterm(2, 0..1, 50), mterm(1, 0..3, 100)];
        let (units, slots) = plan(&recon, &terms, 250).expect("plan");
        assert_eq!(units.len(), 2, "the repeated range is fetched once");
        assert_eq!(
            slots.iter().map(|s| s.offset).collect::<Vec<_>>(),
            [0, 100, 150]
        );
        assert_eq!(slots[0].unit, slots[2].unit);
        assert!(plan(&recon, &terms, 251).is_err(), "sizes must add up");
    }

    #[test]
    fn resume_keeps_only_journalled_units_whose_bytes_still_hash_right() {
        use std::os::unix::fs::FileExt;
        let chunk = |n: usize, seed: u8| -> Vec<u8> {
            (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
        };
        let a: Vec<Vec<u8>> = vec![chunk(100, 1), chunk(200, 2), chunk(300, 3), chunk(400, 4)];
        let b: Vec<Vec<u8>> = vec![chunk(50, 5), chunk(60, 6)];
        let units = vec![
            Unit {
                xorb: h(1),
                chunks: 10..14,
                upstream: None,
            },
            Unit {
                xorb: h(2),
                chunks: 0..2,
                upstream: None,
            },
        ];
        // Unit 0 is used by two terms (its halves, in swapped order), unit 1 by one.
        let terms = vec![
            TermSlot {
                unit: 0,
                xorb: h(1),
                range: 12..14,
                offset: 0,
                len: 700,
            },
            TermSlot {
                unit: 1,
                xorb: h(2),
                range: 0..2,
                offset: 700,
                len: 110,
            },
            TermSlot {
                unit: 0,
                xorb: h(1),
                range: 10..12,
                offset: 810,
                len: 300,
            },
        ];
        let uses = vec![Arc::new(vec![0, 2]), Arc::new(vec![1])];
        let dir = tempfile::tempdir().expect("tempdir");
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("f.incomplete"))
            .expect("file");
        file.set_len(1110).expect("size");
        file.write_all_at(&[a[2].clone(), a[3].clone()].concat(), 0)
            .expect("write");
        file.write_all_at(&[b[0].clone(), b[1].clone()].concat(), 700)
            .expect("write");
        file.write_all_at(&[a[0].clone(), a[1].clone()].concat(), 810)
            .expect("write");
        let entry = |x: u8, r: Range<u32>, cs: &[Vec<u8>]| journal::Entry {
            xorb: h(x),
            chunks: r,
            lens: cs.iter().map(|c| c.len() as u32).collect(),
            hashes: cs.iter().map(|c| xet::hash::chunk_hash(c)).collect(),
        };
        let good_a = entry(1, 10..14, &a);
        let mut bad_b = entry(2, 0..2, &b);
        bad_b.hashes[1] = h(9);
        let unknown = entry(3, 0..2, &b);
        let previous = vec![unknown, bad_b, good_a.clone(), good_a.clone()];
        let (resumed, kept) = resume(&file, &units, &terms, &uses, previous);
        assert_eq!(resumed.len(), 1, "only unit 0 resumes, once");
        let (i, held, bytes) = &resumed[0];
        assert_eq!((*i, *bytes), (0, 1000));
        assert_eq!(held.hashes, good_a.hashes);
        assert_eq!(held.source, Source::Local);
        assert_eq!(kept, std::slice::from_ref(&good_a));
        // One flipped byte in either term of unit 0: nothing resumes.
        for at in [5u64, 900] {
            let mut byte = [0u8];
            file.read_exact_at(&mut byte, at).expect("read");
            file.write_all_at(&[byte[0] ^ 1], at).expect("flip");
            let (resumed, kept) = resume(&file, &units, &terms, &uses, vec![good_a.clone()]);
            assert!(
                resumed.is_empty() && kept.is_empty(),
                "flip at {at} went unnoticed"
            );
            file.write_all_at(&byte, at).expect("restore");
        }
        // Lengths that do not add up to the terms: refused.
        let mut wrong_lens = good_a.clone();
        wrong_lens.lens.swap(0, 3);
        assert!(resume(&file, &units, &terms, &uses, vec![wrong_lens])
            .0
            .is_empty());
    }
}
