-- The journal: every record, in order, as canonical JSON. `idx` is 1-based in SQLite; the
-- ledger index (the log leaf index) is idx - 1. Nothing ever updates or deletes a row here.
CREATE TABLE entries (
    idx         INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    body        TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    recorded_by TEXT
);

-- Projections of the journal for queries. Each row points at the entry it came from.
CREATE TABLE services (
    name  TEXT PRIMARY KEY,
    entry INTEGER NOT NULL REFERENCES entries (idx)
);
CREATE TABLE service_changes (
    service TEXT NOT NULL,
    entry   INTEGER NOT NULL REFERENCES entries (idx),
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
    entry   INTEGER NOT NULL REFERENCES entries (idx)
);
CREATE INDEX builds_by_service ON builds (service, entry);

CREATE TABLE build_tags (
    image TEXT NOT NULL,
    tag   TEXT NOT NULL,
    entry INTEGER NOT NULL
);
CREATE INDEX build_tags_by_tag ON build_tags (image, tag, entry);

-- Unknown tag or digest is stored as '' so that uniqueness works without NULL semantics.
CREATE TABLE build_bases (
    digest      TEXT NOT NULL,
    base_name   TEXT NOT NULL,
    base_tag    TEXT NOT NULL,
    base_digest TEXT NOT NULL,
    final_stage INTEGER NOT NULL
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
    builds       INTEGER NOT NULL,
    latest_entry INTEGER NOT NULL,
    PRIMARY KEY (service, base_name, base_tag, base_digest)
);
CREATE INDEX base_usage_by_digest ON base_usage (base_digest);
CREATE INDEX base_usage_by_name ON base_usage (base_name, base_tag);

CREATE TABLE deploys (
    entry   INTEGER PRIMARY KEY REFERENCES entries (idx),
    service TEXT NOT NULL,
    env     TEXT NOT NULL,
    digest  TEXT NOT NULL,
    at      INTEGER NOT NULL
);
CREATE INDEX deploys_by_digest ON deploys (digest, at);

-- What runs now: the newest deploy per service and environment.
CREATE TABLE current (
    service TEXT NOT NULL,
    env     TEXT NOT NULL,
    entry   INTEGER NOT NULL,
    digest  TEXT NOT NULL,
    at      INTEGER NOT NULL,
    PRIMARY KEY (service, env)
);
CREATE INDEX current_by_digest ON current (digest);
