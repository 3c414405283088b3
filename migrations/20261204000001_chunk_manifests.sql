-- Chunk manifests: every chunk hash and length of one Xet file, in file order, as published by
-- the first pull that verified the file (the tracker checked them against the file hash). Keyed
-- by the Xet file hash; immutable.
CREATE TABLE chunk_manifests (
    xet_hash    TEXT PRIMARY KEY,
    doc         TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
