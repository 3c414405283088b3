//! Integration tests of zest-tracker: the real server in-process, against the embedded store
//! and against PostgreSQL + Redis (a fresh database and an own `redis-server` per test).
//! Every case in `cases` runs against both; `faults` has the Redis-only failure tests.

mod cases;
mod faults;
mod harness;

/// Runs each named case of `cases` once per backend.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::cases::$name(crate::harness::Backend::Embedded).await
                }
            )*
        }
        mod pg_redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::cases::$name(crate::harness::Backend::PgRedis).await
                }
            )*
        }
    };
}

both_backends!(
    announce_then_lookup,
    deltas_add_and_remove_ranges,
    full_list_replaces_holdings,
    ttl_expiry_drops_peer,
    ranking_zone_role_load_never_asker,
    ranking_spreads_among_equals,
    manifest_round_trip,
    reports_are_summed,
    restart_durability_and_rebuild,
    auth_refusals,
    bad_input_gets_400,
    delete_peer,
    batch_lookup_of_2000_xorbs,
    health_ready_metrics,
    claims_lease_upstream_fetches,
    chunk_manifests_are_checked_against_the_file_hash,
);
