-- Per base tag and digest, when recorded builds first and last used it (the pull time, else
-- the build's own times, else its recording): the stale report, the deploy gate and the
-- dashboard read one tag's history here instead of reading every build (issues 13 and 22).
-- Filled from the existing builds when the ledger is migrated.
CREATE TABLE base_tag_digests (
    base_name   TEXT NOT NULL,
    base_tag    TEXT NOT NULL,
    base_digest TEXT NOT NULL,
    first_used  INTEGER NOT NULL,
    last_used   INTEGER NOT NULL,
    PRIMARY KEY (base_name, base_tag, base_digest)
);
