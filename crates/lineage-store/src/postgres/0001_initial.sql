-- The PostgreSQL ledger, version 1: the same journal, projections and log as SQLite schema
-- version 3, so that the same records give the same bodies, leaf hashes and roots.
--
-- `lineage_meta` plays the part of SQLite's `application_id` and `user_version`: it marks
-- the schema as a Lineage ledger and says which migration it is at.
CREATE TABLE lineage_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- The journal: every record, in order, as canonical JSON. `idx` is 1-based, as in SQLite; the
-- ledger index (the log leaf index) is idx - 1. Nothing ever updates or deletes a row here.
CREATE TABLE entries (
    idx         BIGINT PRIMARY KEY,
    kind        TEXT NOT NULL,
    body        TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    recorded_by TEXT
);

-- Projections of the journal for queries. Each row points at the entry it came from.
CREATE TABLE services (
    name  TEXT PRIMARY KEY,
    entry BIGINT NOT NULL REFERENCES entries (idx)
);
CREATE TABLE service_changes (
    service TEXT NOT NULL,
    entry   BIGINT NOT NULL REFERENCES entries (idx),
    PRIMARY KEY (service, entry)
);
CREATE TABLE service_images (
    image   TEXT PRIMARY KEY,
    service TEXT NOT NULL
);

CREATE TABLE builds (
    digest  TEXT PRIMARY KEY,
    service TEXT NOT NULL,
    image   TEXT NOT NULL,
    entry   BIGINT NOT NULL REFERENCES entries (idx)
);
CREATE INDEX builds_by_service ON builds (service, entry);

CREATE TABLE build_tags (
    image TEXT NOT NULL,
    tag   TEXT NOT NULL,
    entry BIGINT NOT NULL
);
CREATE INDEX build_tags_by_tag ON build_tags (image, tag, entry);

-- Unknown tag or digest is stored as '' so that uniqueness works without NULL semantics.
CREATE TABLE build_bases (
    digest      TEXT NOT NULL,
    base_name   TEXT NOT NULL,
    base_tag    TEXT NOT NULL,
    base_digest TEXT NOT NULL,
    final_stage BOOLEAN NOT NULL
);
CREATE INDEX build_bases_by_digest ON build_bases (digest);
CREATE INDEX build_bases_by_base ON build_bases (base_digest);

-- Per service and base, how many builds used it and the newest of them: `affected` reads
-- this instead of scanning every build on a popular base.
CREATE TABLE base_usage (
    service      TEXT NOT NULL,
    base_name    TEXT NOT NULL,
    base_tag     TEXT NOT NULL,
    base_digest  TEXT NOT NULL,
    builds       BIGINT NOT NULL,
    latest_entry BIGINT NOT NULL,
    PRIMARY KEY (service, base_name, base_tag, base_digest)
);
CREATE INDEX base_usage_by_digest ON base_usage (base_digest);
CREATE INDEX base_usage_by_name ON base_usage (base_name, base_tag);

CREATE TABLE deploys (
    entry   BIGINT PRIMARY KEY REFERENCES entries (idx),
    service TEXT NOT NULL,
    env     TEXT NOT NULL,
    digest  TEXT NOT NULL,
    at      BIGINT NOT NULL
);
CREATE INDEX deploys_by_digest ON deploys (digest, at);

-- What runs now: the newest deploy per service and environment.
CREATE TABLE current (
    service TEXT NOT NULL,
    env     TEXT NOT NULL,
    entry   BIGINT NOT NULL,
    digest  TEXT NOT NULL,
    at      BIGINT NOT NULL,
    PRIMARY KEY (service, env)
);
CREATE INDEX current_by_digest ON current (digest);

-- The tamper-evident log over the journal (RFC 6962 / RFC 9162), in the Go tlog "stored
-- hash" layout: appending leaf n writes its leaf hash, then one node hash per perfect subtree
-- the leaf completes. `idx` is the 0-based position in that sequence.
CREATE TABLE log_hashes (
    idx  BIGINT PRIMARY KEY,
    hash BYTEA NOT NULL
);

-- Signed checkpoints (C2SP tlog-checkpoint signed notes), one per tree size the log signed.
CREATE TABLE checkpoints (
    size    BIGINT PRIMARY KEY,
    text    TEXT NOT NULL,
    created TEXT NOT NULL
);

-- Facts: bases seen, exceptions, retirements, attestations and gate results, keyed by what
-- they are looked up by (base repository, service or digest).
CREATE TABLE facts (
    kind  TEXT NOT NULL,
    key   TEXT NOT NULL,
    entry BIGINT NOT NULL REFERENCES entries (idx)
);
CREATE INDEX facts_by_key ON facts (kind, key, entry);
