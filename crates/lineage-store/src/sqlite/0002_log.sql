-- The tamper-evident log over the journal (RFC 6962 / RFC 9162 Merkle tree). Leaf `i` is
-- `SHA-256(0x00 || body)` of the entry with idx = i + 1.
--
-- `log_hashes` holds every hash of the tree in append order (the Go tlog "stored hash"
-- layout): appending leaf n writes its leaf hash, then one node hash per perfect subtree the
-- leaf completes. `idx` is the 0-based position in that sequence. Rows are only ever appended,
-- in the same transaction as the entry they belong to.
CREATE TABLE log_hashes (
    idx  INTEGER PRIMARY KEY,
    hash BLOB NOT NULL
);

-- Signed checkpoints (C2SP tlog-checkpoint signed notes), one per tree size the log signed.
CREATE TABLE checkpoints (
    size    INTEGER PRIMARY KEY,
    text    TEXT NOT NULL,
    created TEXT NOT NULL
);
