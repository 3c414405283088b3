-- zest-tracker: durable state. Hot state (liveness, holdings) lives in Redis.

-- Every peer that ever announced; liveness itself is in Redis.
CREATE TABLE peers (
    id          TEXT PRIMARY KEY,
    addr        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('edge', 'client')),
    zone        TEXT NOT NULL DEFAULT '',
    first_seen  TIMESTAMPTZ NOT NULL,
    last_seen   TIMESTAMPTZ NOT NULL,
    left_at     TIMESTAMPTZ
);

-- What a pull learned from upstream about one revision (no signed URLs).
CREATE TABLE manifests (
    org         TEXT NOT NULL,
    name        TEXT NOT NULL,
    revision    TEXT NOT NULL,
    commit_sha  TEXT NOT NULL,
    doc         JSONB NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (org, name, revision)
);

-- One row per finished pull: where its bytes came from.
CREATE TABLE reports (
    id              BIGSERIAL PRIMARY KEY,
    received_at     TIMESTAMPTZ NOT NULL,
    peer_id         TEXT,
    repo            TEXT NOT NULL,
    revision        TEXT NOT NULL,
    bytes_local     BIGINT NOT NULL DEFAULT 0,
    bytes_peers     BIGINT NOT NULL DEFAULT 0,
    bytes_edges     BIGINT NOT NULL DEFAULT 0,
    bytes_upstream  BIGINT NOT NULL DEFAULT 0,
    files           BIGINT NOT NULL DEFAULT 0,
    duration_ms     BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX reports_repo_idx ON reports (repo, revision);

-- API tokens: only the SHA-256 of the secret is stored.
CREATE TABLE tokens (
    name        TEXT PRIMARY KEY,
    sha256      BYTEA NOT NULL UNIQUE CHECK (length(sha256) = 32),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
