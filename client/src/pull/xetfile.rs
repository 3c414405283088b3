//! Pulling one Xet file with bounded memory, in named steps ([`pull_xet_file`]): lay the file
//! out ([`super::plan`]: each term's offset is the sum of the unpacked lengths before it), open
//! and size the `.incomplete` file (resuming what a killed pull left in it), then in rounds fetch
//! the units and write each at the offsets of the terms that use it as soon as it arrives
//! ([`super::place`]; only its chunk hashes and lengths stay in memory), and verify: the Xet file
//! hash is computed from those at the end; nothing is renamed into place unless it matches.
//!
//! Once the file hash matches and the blob is in place, every term's chunk range goes into the
//! local xorb store as a reference to its bytes in the blob (`Store::insert_blob_ref`, stored as
//! `FileVerified`), not as a second copy: the pull writes each byte to disk once, and `zest seed`
//! serves the ranges from the blob. Nothing unverified is ever stored.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use xet::MerkleHash;
use xorbstore::Store;
use zest_tracker_api::{ChunkRange, ManifestTerm};

use super::cache::{CacheError, PathIoError, RepoCache};
use super::journal::{self, Journal};
use super::place::{place, resume, Held, PlaceError};
use super::plan::{plan, PlanError, TermSlot};
use super::progress::FileBar;
use super::FileToPull;
use crate::fleet::{ClaimFor, FetchError, Fleet, Holder, Source, Unit};

/// Extra upstream fetches of a range whose bytes do not decode, before giving up.
const MAX_UPSTREAM_TRIES: u32 = 3;
/// Rounds of fetching a file whose hash does not match before giving up.
const MAX_ROUNDS: usize = 3;
/// Units fetched at once, over all files.
pub const PARALLEL_UNITS: usize = 16;
/// Memory budget of the units in flight (compressed + decoded), MiB, over all files.
pub const INFLIGHT_BUDGET_MIB: u32 = 512;

/// Why a Xet file was not pulled.
#[derive(Debug, thiserror::Error)]
pub enum XetFileError {
    #[error(transparent)]
    Hub(#[from] hub::HubError),
    #[error("the reconstruction of a whole file starts mid-range")]
    MidRange,
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Io(#[from] PathIoError),
    #[error("fetching chunks {}..{} of xorb {xorb}", chunks.start, chunks.end)]
    Fetch {
        xorb: MerkleHash,
        chunks: Range<u32>,
        #[source]
        source: FetchError,
    },
    #[error("chunks {}..{} of xorb {xorb}: {why}", chunks.start, chunks.end)]
    BadBytes {
        xorb: MerkleHash,
        chunks: Range<u32>,
        why: String,
    },
    #[error(
        "chunks {}..{} of xorb {xorb}: no source gave bytes that decode",
        chunks.start,
        chunks.end
    )]
    NoGoodBytes {
        xorb: MerkleHash,
        chunks: Range<u32>,
    },
    #[error(transparent)]
    Place(PlaceError),
    #[error("a range was not fetched")]
    Missing,
    #[error("reading the file back for its sha256")]
    ReadBack(#[source] std::io::Error),
    #[error("{0} failed verification and upstream is unreachable")]
    UnverifiedNoUpstream(String),
    #[error("{path} failed verification {rounds} times (Xet hash mismatch); nothing was written")]
    Unverified { path: String, rounds: usize },
    #[error("a blocking task failed")]
    Task(#[from] tokio::task::JoinError),
    #[error("the pull's limits were closed")]
    Closed(#[from] tokio::sync::AcquireError),
}

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

/// Everything the unit tasks of one file share.
struct Ctx<'a> {
    sources: &'a Arc<Fleet>,
    limits: &'a Limits,
    units: Arc<Vec<Unit>>,
    terms: Arc<Vec<TermSlot>>,
    uses: Vec<Arc<Vec<usize>>>,
    file: Arc<File>,
    bar: &'a FileBar,
    on_bytes: &'a (dyn Fn(u64) + Sync),
    /// Where placed units are recorded for a resumed pull (none when it could not be created).
    journal: Option<Arc<Journal>>,
    /// The `.incomplete` file (absolute), when placed units are shared while the file is
    /// pulled (a swarm member).
    sharing: Option<Arc<Sharing>>,
    /// Each unit's expected chunk hashes (by chunk of the unit; `None` where no term uses the
    /// chunk), from a chunk manifest checked against the file hash: every unit is verified as it
    /// arrives.
    expected: Option<Arc<Vec<Vec<Option<MerkleHash>>>>>,
}

/// Each unit's expected chunk hashes from the file's chunk manifest `m` (already checked against
/// the file hash), laid over the file's terms; `None` when the manifest does not have the
/// file's chunk count (another chunking: ignored).
fn expected_hashes(
    units: &[Unit],
    terms: &[TermSlot],
    m: &zest_tracker_api::ChunkManifest,
) -> Option<Vec<Vec<Option<MerkleHash>>>> {
    let total: usize = terms
        .iter()
        .map(|t| (t.range.end - t.range.start) as usize)
        .sum();
    if total != m.chunks.len() {
        tracing::warn!(
            chunks = total,
            manifest = m.chunks.len(),
            "the chunk manifest does not match the file's terms; ignoring it"
        );
        return None;
    }
    let mut out: Vec<Vec<Option<MerkleHash>>> = units
        .iter()
        .map(|u| vec![None; (u.chunks.end - u.chunks.start) as usize])
        .collect();
    let mut k = 0;
    for t in terms {
        let u = &units[t.unit];
        for c in t.range.clone() {
            let slot = out[t.unit].get_mut(c.checked_sub(u.chunks.start)? as usize)?;
            *slot = Some(m.chunks[k]);
            k += 1;
        }
    }
    Some(out)
}

/// Checks a placed unit's chunk hashes against the expected ones.
fn check_expected(expected: &[Option<MerkleHash>], got: &[MerkleHash]) -> Result<(), PlaceError> {
    for (c, (want, got)) in expected.iter().zip(got).enumerate() {
        if want.is_some_and(|w| w != *got) {
            return Err(PlaceError::BadBytes(format!(
                "chunk {c} of the range differs from the file's verified chunk manifest"
            )));
        }
    }
    Ok(())
}

/// The chunk manifest of a verified file: its terms' chunk hashes and lengths in file order
/// (none above [`zest_tracker_api::MAX_MANIFEST_CHUNKS`], or when a unit is missing).
fn chunk_manifest(
    units: &[Unit],
    terms: &[TermSlot],
    got: &[Option<Held>],
) -> Option<zest_tracker_api::ChunkManifest> {
    let mut m = zest_tracker_api::ChunkManifest {
        chunks: Vec::new(),
        lens: Vec::new(),
    };
    for t in terms {
        let h = got[t.unit].as_ref()?;
        let a = t.range.start.checked_sub(units[t.unit].chunks.start)? as usize;
        let n = (t.range.end - t.range.start) as usize;
        m.chunks.extend_from_slice(h.hashes.get(a..a + n)?);
        m.lens.extend_from_slice(h.lens.get(a..a + n)?);
        if m.chunks.len() > zest_tracker_api::MAX_MANIFEST_CHUNKS {
            return None;
        }
    }
    Some(m)
}

/// What sharing a file while it is pulled needs: the store its ranges go into (as references
/// to the `.incomplete` file), that file, and the announcer.
struct Sharing {
    store: Store,
    tmp: PathBuf,
    publisher: crate::fleet::swarm::Publisher,
}

/// The lease asked on a unit's upstream fetch; it is renewed every third of it while the fetch
/// runs, so a claimer that died holds others up for at most this long.
const CLAIM_TTL: std::time::Duration = std::time::Duration::from_secs(15);

/// What a swarm member's turn at a unit gives: a unit slot, the holders to ask (none: fetch it
/// upstream), and the lease when this machine claimed the upstream fetch.
type SwarmTurn<'a> = (tokio::sync::SemaphorePermit<'a>, Vec<Holder>, Option<Lease>);

/// A granted claim, renewed until dropped (the unit is placed, or its fetch failed), then
/// finished: it leaves the swarm's count of upstream fetches at once, and keeps the range this
/// machine's for a few seconds more, until its announce is in (so that the others find it as a
/// holder rather than a free lease).
struct Lease {
    renew: tokio::task::JoinHandle<()>,
    sources: Arc<Fleet>,
    unit: Unit,
    what: ClaimFor,
}

impl Lease {
    fn keep(sources: &Arc<Fleet>, unit: &Unit, what: ClaimFor) -> Lease {
        let (s, u) = (sources.clone(), unit.clone());
        let renew = tokio::spawn(async move {
            loop {
                tokio::time::sleep(CLAIM_TTL / 3).await;
                s.renew_claim(&u, CLAIM_TTL.as_millis() as u64, what).await;
            }
        });
        Lease {
            renew,
            sources: sources.clone(),
            unit: unit.clone(),
            what,
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renew.abort();
        let (s, u, what) = (self.sources.clone(), self.unit.clone(), self.what);
        tokio::spawn(async move {
            s.finish_claim(&u, CLAIM_TTL.as_millis() as u64 / 3, what)
                .await;
        });
    }
}

/// What a swarm member does about a file that failed its hash in the first round.
enum Repair {
    /// Fetch every fleet range of it again from upstream, as a pull alone does.
    All,
    /// The same, holding the swarm's repair lease on the file: the others wait for this
    /// machine's file to verify and then use the chunk manifest it publishes.
    Lease(Lease),
    /// The file's chunk manifest showed these units wrong: only they are fetched again.
    Only(Vec<usize>),
}

/// Rounds of looking up and asking holders of a unit before a swarm member lets it go
/// upstream like any pull.
const SWARM_TRIES: u32 = 3;
/// First and longest wait between two looks at a unit another machine is fetching.
const SWARM_WAIT_FIRST: std::time::Duration = std::time::Duration::from_millis(150);
const SWARM_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(1);
/// How long a unit waits for the swarm at most (for another machine's claimed upstream fetch, or
/// for a free upstream-fetch lease) before this machine fetches it upstream itself: a base plus
/// the unit's bytes at a slow upstream rate. A claimer that holds claims and never delivers (it
/// stalls, or it is an attacker renewing claims forever) so costs at most one such wait per
/// pull, not a hang: it is dropped as a source the first time, and every other unit it holds
/// goes upstream at once.
const SWARM_WAIT_BASE: std::time::Duration = std::time::Duration::from_secs(30);
const SWARM_WAIT_MIN_RATE: u64 = 1_000_000;

/// How long a unit waits for a free lease in the swarm's group of upstream fetches before it
/// claims outside the group. Long: a paced swarm legitimately keeps units waiting for the group
/// while the origin link carries the others (a 2 GB model at 100 Mbit/s: minutes); it only
/// bounds a group whose leases someone keeps taken.
const SWARM_GROUP_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// The longest a wait for `bytes` from the swarm lasts (see [`SWARM_WAIT_BASE`]).
fn swarm_wait_limit(bytes: u64) -> std::time::Duration {
    SWARM_WAIT_BASE
        + std::time::Duration::from_millis(bytes.saturating_mul(1000) / SWARM_WAIT_MIN_RATE)
}

/// Sleeps before the next look at the swarm: `wait` plus up to half of it at random, and makes
/// the next wait longer (up to [`SWARM_WAIT_MAX`]).
async fn swarm_pause(wait: &mut std::time::Duration) {
    let jitter = rand::random::<u64>() % (wait.as_millis() as u64 / 2 + 1);
    tokio::time::sleep(*wait + std::time::Duration::from_millis(jitter)).await;
    *wait = (*wait * 3 / 2).min(SWARM_WAIT_MAX);
}

impl Ctx<'_> {
    /// Fetches unit `i` and writes its terms. A source whose bytes disagree with the terms is
    /// blamed and the unit comes from upstream instead.
    async fn fetch_and_place(
        &self,
        i: usize,
        holders: &[Holder],
        refetch: bool,
        count: bool,
    ) -> Result<Held, XetFileError> {
        let unit = &self.units[i];
        let mib = ((unit.expected_bytes().saturating_mul(2)) >> 20)
            .clamp(1, u64::from(INFLIGHT_BUDGET_MIB)) as u32;
        let swarm = self.sharing.is_some() && !refetch;
        let (mut slot, mut holders, mut lease) = if swarm && holders.is_empty() {
            self.swarm_turn(unit).await?
        } else {
            (self.limits.units.acquire().await?, holders.to_vec(), None)
        };
        // In a swarm, a unit whose holders all fail (one left, one stalls) is looked up and
        // claimed again rather than fetched upstream at once: other machines may have it by
        // now. Neither the unit slot nor memory is held while waiting.
        let mut first = None;
        let mut tries = 0;
        while swarm && !holders.is_empty() && tries < SWARM_TRIES {
            let mem = self.limits.mib.acquire_many(mib).await?;
            match self.sources.fetch_from_holders(unit, &holders).await {
                Ok(f) => {
                    first = Some((f, mem));
                    break;
                }
                Err(e) => {
                    tracing::debug!(xorb = %unit.xorb, error = %e, "no holder gave the range; looking again");
                    drop((mem, slot));
                    tries += 1;
                    (slot, holders, lease) = self.swarm_turn(unit).await?;
                }
            }
        }
        let (mut first, mem) = match first {
            Some((f, mem)) => (Some(f), mem),
            None => (None, self.limits.mib.acquire_many(mib).await?),
        };
        // Held until the unit is placed (or fails); given back while waiting for the swarm.
        let (mut slot, mut mem) = (Some(slot), Some(mem));
        let mut rejoined = false;
        let mut skip_fleet = refetch;
        // A fleet source whose bytes are wrong is blamed and upstream asked instead; bytes from
        // upstream that do not decode are fetched again a few times (a flaky upstream or
        // network), since nothing else could provide them. HTTP failures are not retried here:
        // the Hub client's retry policy already did.
        let mut upstream_tries = 0;
        for _ in 0..2 + MAX_UPSTREAM_TRIES {
            let fetched = match first.take() {
                Some(f) => Ok(f),
                None => self.sources.fetch_unit(unit, &holders, skip_fleet).await,
            };
            let fe = match fetched {
                Ok(fe) => fe,
                Err(e) if e.is_malformed_upstream() && upstream_tries < MAX_UPSTREAM_TRIES => {
                    upstream_tries += 1;
                    tracing::warn!(xorb = %unit.xorb, error = %crate::fleet::chain(&e), "upstream bytes do not decode; fetching them again");
                    skip_fleet = true;
                    continue;
                }
                Err(source) => {
                    return Err(XetFileError::Fetch {
                        xorb: unit.xorb,
                        chunks: unit.chunks.clone(),
                        source,
                    })
                }
            };
            let source = fe.source.clone();
            let placed = self.place_blocking(i, fe).await?;
            match placed {
                Ok((held, bytes)) => {
                    self.bar.add(bytes, &held.source);
                    if count {
                        (self.on_bytes)(bytes);
                    }
                    return Ok(held);
                }
                Err(PlaceError::Write(e)) => return Err(XetFileError::Place(PlaceError::Write(e))),
                Err(PlaceError::BadBytes(why))
                    if source != Source::Upstream
                        && (self.expected.is_some() || self.sources.upstream().is_some()) =>
                {
                    self.sources.blame(&source, &why);
                    // With the file's chunk manifest every holder's bytes are checked as they
                    // arrive: the other holders are asked before upstream.
                    skip_fleet = self.expected.is_none();
                    if swarm && skip_fleet && !rejoined {
                        // The first wave (no manifest) and a range proven wrong on arrival (a
                        // whole xorb): ask the swarm once more without the liar (another
                        // holder, or the one machine that claims the fetch for all) rather
                        // than each machine it lied to going upstream.
                        rejoined = true;
                        drop((slot.take(), mem.take(), lease.take()));
                        let (s, h, l) = self.swarm_turn(unit).await?;
                        (slot, lease, holders) = (Some(s), l, h);
                        mem = Some(self.limits.mib.acquire_many(mib).await?);
                        if !holders.is_empty() {
                            first = self.sources.fetch_from_holders(unit, &holders).await.ok();
                        }
                        skip_fleet = false;
                    }
                }
                Err(PlaceError::BadBytes(why))
                    if source == Source::Upstream && upstream_tries < MAX_UPSTREAM_TRIES =>
                {
                    upstream_tries += 1;
                    tracing::warn!(xorb = %unit.xorb, %why, "upstream bytes do not decode; fetching them again");
                    skip_fleet = true;
                }
                Err(PlaceError::BadBytes(why)) => {
                    return Err(XetFileError::BadBytes {
                        xorb: unit.xorb,
                        chunks: unit.chunks.clone(),
                        why,
                    })
                }
            }
        }
        Err(XetFileError::NoGoodBytes {
            xorb: unit.xorb,
            chunks: unit.chunks.clone(),
        })
    }

    /// A swarm member's turn at a unit nobody held when the file started: with a unit slot
    /// held, look again for holders (another machine may have it by now), else claim its
    /// upstream fetch; while another machine holds the claim, give the slot back and wait (a
    /// little longer each time) for it to announce the unit, or for its lease to lapse.
    /// Returns the slot and the holders found (none: fetch it upstream, through an edge first).
    async fn swarm_turn(&self, unit: &Unit) -> Result<SwarmTurn<'_>, XetFileError> {
        let ttl = CLAIM_TTL.as_millis() as u64;
        let mut wait = SWARM_WAIT_FIRST;
        let limit = swarm_wait_limit(unit.expected_bytes());
        let group_give_up = std::time::Instant::now() + SWARM_GROUP_WAIT;
        // The claimer waited for, and since when: its clock starts when it is first seen.
        let mut waiting_for: Option<(String, std::time::Instant)> = None;
        // Paced (in the swarm's group of upstream fetches) until the group stayed full too long.
        let mut what = ClaimFor::Fetch;
        loop {
            let slot = self.limits.units.acquire().await?;
            let mut found = self
                .sources
                .lookup(std::slice::from_ref(unit))
                .await
                .pop()
                .unwrap_or_default();
            // A holder this pull dropped (it left, it lied) is no holder.
            found.retain(|h| self.sources.is_usable(&h.id));
            if !found.is_empty() {
                return Ok((slot, found, None));
            }
            let now = std::time::Instant::now();
            match self.sources.claim(unit, ttl, what).await {
                crate::fleet::Claim::Granted => {
                    let lease = Lease::keep(self.sources, unit, what);
                    return Ok((slot, Vec::new(), Some(lease)));
                }
                crate::fleet::Claim::Unavailable => return Ok((slot, Vec::new(), None)),
                crate::fleet::Claim::Busy if now >= group_give_up => {
                    // The group stayed full (a slow origin, or leases someone keeps taken):
                    // claim the range outside the group, still once for the whole swarm, and
                    // wait for whoever gets it as for any claimer.
                    tracing::info!(xorb = %unit.xorb, "the swarm's upstream fetches stayed taken too long; claiming outside the group");
                    what = ClaimFor::Unpaced;
                    continue;
                }
                crate::fleet::Claim::Busy => {
                    tracing::debug!(xorb = %unit.xorb, "the swarm's upstream fetches are all taken; waiting");
                }
                crate::fleet::Claim::Held { holder, .. }
                    if waiting_for
                        .as_ref()
                        .is_some_and(|(h, since)| *h == holder && now >= *since + limit) =>
                {
                    // Claims renewed for longer than the range takes. A claimer that delivered
                    // other ranges is slow (a busy origin link): fetch this one ourselves. One
                    // that never delivered anything stalls or lies: stop waiting for it, here
                    // and for every other range it holds.
                    if self.sources.has_delivered(&holder) {
                        tracing::info!(xorb = %unit.xorb, %holder, "another machine's upstream fetch of this range takes too long; fetching it too");
                    } else {
                        self.sources.blame(
                            &Source::Peer(holder),
                            "held a claim on a range for longer than fetching it takes",
                        );
                    }
                    return Ok((slot, Vec::new(), None));
                }
                crate::fleet::Claim::Held { holder, left_ms } => {
                    // A claimer this pull cannot reach will not be able to give it the range.
                    if !self.sources.is_usable(&holder) {
                        return Ok((slot, Vec::new(), None));
                    }
                    if waiting_for.as_ref().is_none_or(|(h, _)| *h != holder) {
                        waiting_for = Some((holder.clone(), now));
                    }
                    tracing::debug!(xorb = %unit.xorb, %holder, left_ms, "another machine is fetching this range upstream; waiting for it");
                }
            }
            drop(slot);
            swarm_pause(&mut wait).await;
        }
    }

    /// Places fetched unit `i` off the async threads and records it in the journal: what is kept
    /// of it and the bytes of its terms.
    async fn place_blocking(
        &self,
        i: usize,
        fe: crate::fleet::Fetched,
    ) -> Result<Result<(Held, u64), PlaceError>, XetFileError> {
        let (file, terms, uses) = (self.file.clone(), self.terms.clone(), self.uses[i].clone());
        let units = self.units.clone();
        let journal = self.journal.clone();
        let sharing = self.sharing.clone();
        let expected = self.expected.clone();
        let placed = tokio::task::spawn_blocking(move || {
            let unit = &units[i];
            let hashes = place(&file, unit, &fe, &terms, &uses)?;
            let verified = match &expected {
                Some(e) => {
                    check_expected(&e[i], &hashes)?;
                    true
                }
                None => false,
            };
            let lens = fe.lens.clone();
            if let Some(sh) = &sharing {
                share_unit(sh, unit, &terms, &uses, &hashes, &lens, verified);
            }
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
            Ok((
                Held {
                    hashes,
                    lens,
                    source: fe.source,
                },
                bytes,
            ))
        })
        .await?;
        Ok(placed)
    }
}

/// What pulling one Xet file needs: the pull's sources and limits, the file, and where it goes.
pub(super) struct XetFileJob<'a> {
    pub sources: &'a Arc<Fleet>,
    pub limits: &'a Limits,
    /// The Xet read token (none in fleet-only pulls).
    pub token: Option<&'a xet::CasJwtInfo>,
    pub cache: &'a RepoCache,
    pub file: &'a FileToPull,
    pub xet_hash: MerkleHash,
    /// Also check the file's sha256 against its LFS oid.
    pub verify_sha256: bool,
    pub bar: &'a FileBar,
    /// Told of bytes placed (first round only: progress of the whole pull).
    pub on_bytes: &'a (dyn Fn(u64) + Sync),
    /// Where resume journals go.
    pub journal_dir: &'a Path,
}

/// Pulls one Xet file into `blobs/{etag}` (through `.incomplete`), verified by its Xet hash (and
/// sha256 when asked). Returns its terms (for the tracker's manifest).
pub(super) async fn pull_xet_file(job: XetFileJob<'_>) -> Result<Vec<ManifestTerm>, XetFileError> {
    let (units, terms) = job.layout().await?;
    let pull = job.open(units, terms).await?;
    let sharing = pull.ctx.sharing.clone();
    // References a killed pull left to this `.incomplete` file describe its old bytes.
    unshare(sharing.clone()).await;
    let r = pull_rounds(&job, pull).await;
    if r.is_err() {
        unshare(sharing).await;
    }
    r
}

/// Fetches, verifies and refetches `pull` until its file hash matches (then renames it into
/// place) or the rounds are spent.
async fn pull_rounds(
    job: &XetFileJob<'_>,
    mut pull: FilePull<'_>,
) -> Result<Vec<ManifestTerm>, XetFileError> {
    let mut refetch = pull.resume_from_journal().await?;
    // Held until the file is verified and its chunk manifest published (dropped on return).
    let mut _repair_lease = None;
    // The first round asks the fleet; a refetch goes upstream alone, unless the file's chunk
    // manifest (from the machine that repaired it) checks every range on arrival.
    let mut via_fleet = true;
    for round in 0..MAX_ROUNDS {
        pull.fetch_round(round, &refetch, via_fleet).await?;
        if pull.verify(round).await? {
            return pull.finish().await;
        }
        // Pending ranges of a file that failed are not served any longer.
        unshare(pull.ctx.sharing.clone()).await;
        if job.sources.upstream().is_none() {
            pull.discard();
            return Err(XetFileError::UnverifiedNoUpstream(job.file.path.clone()));
        }
        via_fleet = false;
        refetch = match pull.repair(round).await {
            Repair::Only(units) => {
                via_fleet = true;
                pull.refetching(units)
            }
            Repair::Lease(lease) => {
                _repair_lease = Some(lease);
                pull.next_refetch(round)
            }
            Repair::All => pull.next_refetch(round),
        };
    }
    pull.discard();
    Err(XetFileError::Unverified {
        path: job.file.path.clone(),
        rounds: MAX_ROUNDS,
    })
}

/// One file being pulled: its units and terms, the `.incomplete` file, and what is placed.
struct FilePull<'a> {
    job: &'a XetFileJob<'a>,
    ctx: Ctx<'a>,
    /// Units some term uses.
    used: Vec<usize>,
    /// What is placed of each unit so far.
    got: Vec<Option<Held>>,
    tmp: PathBuf,
    journal_path: PathBuf,
    /// Units a killed pull left good in the `.incomplete` file (until they are taken).
    resumed: Vec<(usize, Held, u64)>,
}

impl<'a> XetFileJob<'a> {
    /// The file's units and terms: from its reconstruction, or (fleet-only) its manifest terms.
    async fn layout(&self) -> Result<(Vec<Unit>, Vec<TermSlot>), XetFileError> {
        let recon = match (self.token, self.sources.upstream()) {
            (Some(t), Some(h)) => h.reconstruction(t, &self.xet_hash, None).await?,
            _ => xet::ReconstructionV2::default(),
        };
        if recon.offset_into_first_range != 0 {
            return Err(XetFileError::MidRange);
        }
        Ok(plan(&recon, &self.file.terms, self.file.size)?)
    }

    /// Opens and sizes the `.incomplete` file — kept, with the units of its journal that still
    /// hash right, when a killed pull left it — and starts the new journal.
    async fn open(
        &'a self,
        units: Vec<Unit>,
        terms: Vec<TermSlot>,
    ) -> Result<FilePull<'a>, XetFileError> {
        let f = self.file;
        let mut uses: Vec<Vec<usize>> = vec![Vec::new(); units.len()];
        for (t, term) in terms.iter().enumerate() {
            uses[term.unit].push(t);
        }
        let used: Vec<usize> = (0..units.len()).filter(|&i| !uses[i].is_empty()).collect();
        let tmp = self.cache.incomplete(&f.etag)?;
        // A killed pull left the `.incomplete` file and its journal: resume from them.
        let journal_path = self.journal_dir.join(format!("{}.units", f.etag));
        let resumable =
            std::fs::symlink_metadata(&tmp).is_ok_and(|m| m.is_file() && m.len() == f.size);
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
            .map_err(PathIoError::on("creating", &tmp))?;
        file.set_len(f.size)
            .map_err(PathIoError::on("sizing", &tmp))?;
        let file = Arc::new(file);
        let units = Arc::new(units);
        let terms = Arc::new(terms);
        let uses: Vec<Arc<Vec<usize>>> = uses.into_iter().map(Arc::new).collect();
        let (resumed, kept) = if previous.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            let (file, units, terms, uses) =
                (file.clone(), units.clone(), terms.clone(), uses.clone());
            tokio::task::spawn_blocking(move || resume(&file, &units, &terms, &uses, previous))
                .await?
        };
        let journal = match Journal::create(&journal_path, &kept) {
            Ok(j) => Some(Arc::new(j)),
            Err(e) => {
                tracing::warn!(error = %e, path = %journal_path.display(), "no resume journal for this file");
                None
            }
        };
        let got = (0..units.len()).map(|_| None).collect();
        let expected = match self.sources.chunk_manifest(&self.xet_hash).await {
            Some(m) => expected_hashes(&units, &terms, &m).map(Arc::new),
            None => None,
        };
        let sharing = match (self.sources.publisher(), self.sources.store()) {
            (Some(p), Some(store)) => std::path::absolute(&tmp).ok().map(|tmp| {
                Arc::new(Sharing {
                    store: store.clone(),
                    tmp,
                    publisher: p.clone(),
                })
            }),
            _ => None,
        };
        Ok(FilePull {
            job: self,
            ctx: Ctx {
                sources: self.sources,
                limits: self.limits,
                units,
                terms,
                uses,
                file,
                bar: self.bar,
                on_bytes: self.on_bytes,
                journal,
                sharing,
                expected,
            },
            used,
            got,
            tmp,
            journal_path,
            resumed,
        })
    }
}

impl FilePull<'_> {
    /// Takes the units the journal proved good (counted as local bytes) and returns the units
    /// still to fetch.
    async fn resume_from_journal(&mut self) -> Result<Vec<usize>, XetFileError> {
        let mut refetch = self.used.clone();
        let resumed = std::mem::take(&mut self.resumed);
        if !resumed.is_empty() {
            let mut bytes = 0;
            for (i, held, n) in resumed {
                self.got[i] = Some(held);
                bytes += n;
            }
            refetch.retain(|i| self.got[*i].is_none());
            tracing::info!(file = %self.job.file.path, bytes, "resuming: ranges already in the .incomplete file are not fetched again");
            self.job.sources.count_local(bytes);
            self.job.bar.add(bytes, &Source::Local);
            (self.job.on_bytes)(bytes);
        }
        Ok(refetch)
    }

    /// Fetches and places units `refetch` (round 0 asks the tracker who holds them; later
    /// rounds go upstream). After a failed round: blames each fleet source whose chunks differ
    /// from upstream's, and drops what the local store gave.
    async fn fetch_round(
        &mut self,
        round: usize,
        refetch: &[usize],
        via_fleet: bool,
    ) -> Result<(), XetFileError> {
        let ctx = &self.ctx;
        let need_units: Vec<Unit> = refetch.iter().map(|&i| ctx.units[i].clone()).collect();
        let holders = if via_fleet {
            ctx.sources.lookup(&need_units).await
        } else {
            vec![Vec::new(); refetch.len()]
        };
        let mut todo: Vec<(usize, Vec<Holder>)> = refetch.iter().copied().zip(holders).collect();
        // A swarm member takes the units in its own random order, rarest first, so that
        // machines starting together spread the upstream fetches (each claims what nobody
        // holds yet) instead of all asking for the same first range; units waiting for another
        // machine's fetch hold no slot, so more of them are under way.
        let width = if ctx.sharing.is_some() && round == 0 {
            use rand::seq::SliceRandom;
            todo.shuffle(&mut rand::rng());
            todo.sort_by_key(|(_, h)| h.len());
            PARALLEL_UNITS * 8
        } else {
            PARALLEL_UNITS
        };
        let mut results =
            futures::stream::iter(todo)
                .map(|(i, h)| async move {
                    (i, ctx.fetch_and_place(i, &h, !via_fleet, round == 0).await)
                })
                .buffer_unordered(width);
        let mut fresh: Vec<(usize, Held)> = Vec::new();
        while let Some((i, r)) = results.next().await {
            fresh.push((i, r?));
        }
        drop(results);
        let mut wrong = Vec::new();
        for (i, h) in fresh {
            if let Some(old) = &self.got[i] {
                if old.source != Source::Upstream && old.hashes != h.hashes {
                    ctx.sources
                        .blame(&old.source, "sent chunks that fail the file hash");
                    if old.source == Source::Local {
                        wrong.push(i);
                    }
                }
            }
            self.got[i] = Some(h);
        }
        forget(ctx.sources.store().cloned(), &ctx.units, wrong).await;
        Ok(())
    }

    /// True when what is placed hashes to the file's Xet hash (and its sha256 matches, when
    /// asked); warns when not.
    async fn verify(&self, round: usize) -> Result<bool, XetFileError> {
        let (job, ctx) = (self.job, &self.ctx);
        let hash = super::plan::file_hash(&ctx.units, &ctx.terms, &self.got)
            .ok_or(XetFileError::Missing)?;
        let ok_sha = if job.verify_sha256 && hash == job.xet_hash {
            match &job.file.sha256 {
                Some(want) => {
                    let file = ctx.file.clone();
                    let got_sha = tokio::task::spawn_blocking(move || sha256_of(&file))
                        .await?
                        .map_err(XetFileError::ReadBack)?;
                    &got_sha == want
                }
                None => true,
            }
        } else {
            true
        };
        let ok = hash == job.xet_hash && ok_sha;
        if !ok {
            tracing::warn!(
                file = %job.file.path, round, got = %hash, expected = %job.xet_hash, sha256_ok = ok_sha,
                "file failed verification; refetching its fleet ranges from upstream"
            );
        }
        Ok(ok)
    }

    /// Renames the verified file into place, keeps its ranges in the local store and returns
    /// its terms.
    async fn finish(self) -> Result<Vec<ManifestTerm>, XetFileError> {
        let (job, ctx) = (self.job, &self.ctx);
        unshare(ctx.sharing.clone()).await;
        job.cache.commit_blob(&job.file.etag)?;
        // The first machine to verify the file tells the others its chunks (the tracker and
        // every reader check them against the file hash).
        if ctx.expected.is_none() {
            if let Some(m) = chunk_manifest(&ctx.units, &ctx.terms, &self.got) {
                job.sources.publish_chunk_manifest(&job.xet_hash, &m).await;
            }
        }
        let _ = std::fs::remove_file(&self.journal_path);
        keep_in_store(
            job.sources.store().cloned(),
            job.cache.blob(&job.file.etag)?,
            &ctx.units,
            &ctx.terms,
            &self.got,
        )
        .await;
        Ok(ctx
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
            .collect())
    }

    /// The units to fetch again after round `round` failed verification: what the fleet gave
    /// (everything, after round 0, or when everything came from upstream); resets the bar to
    /// what is kept.
    fn next_refetch(&self, round: usize) -> Vec<usize> {
        let mut refetch: Vec<usize> = self
            .used
            .iter()
            .copied()
            .filter(|&i| {
                self.got[i]
                    .as_ref()
                    .is_some_and(|h| h.source != Source::Upstream || round > 0)
            })
            .collect();
        if refetch.is_empty() {
            // Everything came from upstream and still fails: refetch all once more.
            refetch = self.used.clone();
        }
        self.refetching(refetch)
    }

    /// Units `refetch` are fetched again: the file's bar counts the rest as done.
    fn refetching(&self, refetch: Vec<usize>) -> Vec<usize> {
        let done: u64 = self
            .ctx
            .terms
            .iter()
            .filter(|t| !refetch.contains(&t.unit))
            .map(|t| t.len)
            .sum();
        self.job.bar.set_done(done);
        refetch
    }

    /// After the first round of a swarm member failed the file hash (a peer sent pending bytes
    /// that were wrong, and every machine it reached fails together): rather than each machine
    /// fetching all of the file's fleet ranges from upstream again, one of them claims the
    /// file's repair and does that, and publishes the chunk manifest when its file verifies;
    /// the others wait for the manifest (as long as a wait for the swarm may last for those
    /// bytes) and then fetch again only the units it shows wrong. A repairer that dies frees
    /// its lease for the next; without a tracker, or past the wait, everything is refetched.
    async fn repair(&mut self, round: usize) -> Repair {
        let (job, ctx) = (self.job, &self.ctx);
        if round != 0 || ctx.sharing.is_none() || ctx.expected.is_some() {
            return Repair::All;
        }
        let key = Unit {
            xorb: job.xet_hash,
            chunks: 0..1,
            upstream: None,
        };
        let fleet_bytes: u64 = self
            .used
            .iter()
            .filter(|&&i| {
                self.got[i]
                    .as_ref()
                    .is_some_and(|h| h.source != Source::Upstream)
            })
            .map(|&i| ctx.units[i].expected_bytes())
            .sum();
        let give_up = std::time::Instant::now() + swarm_wait_limit(fleet_bytes);
        let mut wait = SWARM_WAIT_FIRST;
        let manifest = loop {
            if let Some(m) = job.sources.chunk_manifest(&job.xet_hash).await {
                break m;
            }
            let ttl = CLAIM_TTL.as_millis() as u64;
            match job.sources.claim(&key, ttl, ClaimFor::Repair).await {
                crate::fleet::Claim::Granted => {
                    tracing::info!(file = %job.file.path, "repairing the file for the swarm: its fleet ranges again from upstream");
                    return Repair::Lease(Lease::keep(job.sources, &key, ClaimFor::Repair));
                }
                crate::fleet::Claim::Unavailable => return Repair::All,
                _ if std::time::Instant::now() >= give_up => {
                    tracing::info!(file = %job.file.path, "no chunk manifest in time from the machine repairing the file; refetching its fleet ranges");
                    return Repair::All;
                }
                _ => swarm_pause(&mut wait).await,
            }
        };
        let Some(expected) = expected_hashes(&ctx.units, &ctx.terms, &manifest) else {
            return Repair::All;
        };
        let wrong: Vec<usize> = self
            .used
            .iter()
            .copied()
            .filter(|&i| {
                self.got[i]
                    .as_ref()
                    .is_none_or(|h| check_expected(&expected[i], &h.hashes).is_err())
            })
            .collect();
        if wrong.is_empty() {
            // Every unit matches the manifest yet the file failed (its sha256?): start over.
            return Repair::All;
        }
        tracing::info!(file = %job.file.path, units = wrong.len(), of = self.used.len(), "the file's chunk manifest shows which ranges were wrong; fetching only those again");
        // The refetched units are checked against it too, and shared as proven.
        self.ctx.expected = Some(Arc::new(expected));
        Repair::Only(wrong)
    }

    /// Removes the `.incomplete` file and its journal (the file cannot be verified).
    fn discard(&self) {
        let _ = std::fs::remove_file(&self.tmp);
        let _ = std::fs::remove_file(&self.journal_path);
    }
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

/// The sha256 of `file`, hex.
fn sha256_of(file: &File) -> std::io::Result<String> {
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

/// Shares a unit just placed in the `.incomplete` file: each of its terms' chunk ranges goes
/// into the store as a reference to the term's bytes in that file and is queued for announcing.
/// The level says what is proven: a unit that starts at chunk 0 and whose chunk hashes give the
/// xorb hash is the whole xorb, proven on arrival (`XorbVerified`, its sub-ranges
/// `ChunkHashesVerified`); a unit checked against the file's chunk manifest is
/// `ChunkHashesVerified`; anything else is *pending* (`Structural`) until the file hash
/// proves it. Best effort: a store that refuses only logs.
fn share_unit(
    sh: &Sharing,
    unit: &Unit,
    terms: &[TermSlot],
    uses: &[usize],
    hashes: &[MerkleHash],
    lens: &[u32],
    manifest_checked: bool,
) {
    use xorbstore::VerificationLevel as L;
    let whole = unit.chunks.start == 0 && {
        let leaves: Vec<(MerkleHash, u64)> = hashes
            .iter()
            .zip(lens)
            .map(|(h, &l)| (*h, u64::from(l)))
            .collect();
        xet::hash::xorb_hash(&leaves) == unit.xorb
    };
    let mut seen = std::collections::HashSet::new();
    for &ti in uses {
        let t = &terms[ti];
        if !seen.insert((t.range.start, t.range.end)) {
            continue;
        }
        let Some(a) = t.range.start.checked_sub(unit.chunks.start) else {
            continue;
        };
        let (a, n) = (a as usize, (t.range.end - t.range.start) as usize);
        if a + n > hashes.len() || a + n > lens.len() {
            continue;
        }
        let level = match (whole, t.range == unit.chunks) {
            (true, true) => L::XorbVerified,
            (true, false) => L::ChunkHashesVerified,
            (false, _) if manifest_checked => L::ChunkHashesVerified,
            (false, _) => L::Structural,
        };
        match sh.store.insert_blob_ref_at(
            &t.xorb,
            t.range.clone(),
            &hashes[a..a + n],
            &lens[a..a + n],
            &sh.tmp,
            t.offset,
            level,
        ) {
            Ok(_) => sh.publisher.add(t.xorb, t.range.clone()),
            Err(e) => tracing::debug!(error = %e, "could not share a range while pulling"),
        }
    }
}

/// Stops sharing the `.incomplete` file (it is being renamed, refetched or discarded).
async fn unshare(sharing: Option<Arc<Sharing>>) {
    let Some(sh) = sharing else { return };
    let r = tokio::task::spawn_blocking(move || sh.store.remove_blob_refs_to(&sh.tmp)).await;
    match r {
        Ok(Err(e)) => tracing::warn!(error = %e, "could not drop shared ranges of a pull"),
        Err(e) => tracing::warn!(error = %e, "store task failed"),
        Ok(Ok(_)) => {}
    }
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
