-- Facts: bases seen, exceptions, retirements, attestations and gate results. One projection
-- for all of them, keyed by what they are looked up by (base repository, service or digest).
CREATE TABLE facts (
    kind  TEXT NOT NULL,
    key   TEXT NOT NULL,
    entry INTEGER NOT NULL REFERENCES entries (idx)
);
CREATE INDEX facts_by_key ON facts (kind, key, entry);
