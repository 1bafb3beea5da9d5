-- SBOMs and vulnerability scans (`sbom` records, issue 18). Every import keeps its package
-- and finding rows; `sbom_imports` names the newest import of each kind and format per image
-- digest (newest by the document's own time, never later than its recording), and queries
-- read packages and findings through it, so a newer scan of a digest replaces an older one.
CREATE TABLE sbom_imports (
    digest     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    format     TEXT NOT NULL,
    entry      INTEGER NOT NULL REFERENCES entries (idx),
    scanned_at INTEGER NOT NULL,
    document   TEXT NOT NULL,
    -- Every layer id (blob digest or diff id) the document names, space-separated.
    layers     TEXT NOT NULL,
    PRIMARY KEY (digest, kind, format)
);
CREATE INDEX sbom_imports_by_entry ON sbom_imports (entry);

-- One row per package of an import; `pkg` is its position in the record.
CREATE TABLE sbom_packages (
    entry    INTEGER NOT NULL REFERENCES entries (idx),
    pkg      INTEGER NOT NULL,
    digest   TEXT NOT NULL,
    -- The purl name, lowercase, with runs of `-`, `_`, `.` as one `-`.
    name_key TEXT NOT NULL,
    purl     TEXT NOT NULL,
    -- The layer's blob digest and/or diff id, space-separated; empty when not known.
    layer    TEXT NOT NULL,
    PRIMARY KEY (entry, pkg)
);
CREATE INDEX sbom_packages_by_name ON sbom_packages (name_key);

-- One row per finding and id it is known by: `alias` 0 is its own id, 1.. its aliases;
-- `vuln_id` is that id in uppercase, for lookups, and `id` the finding's own id as written.
CREATE TABLE sbom_findings (
    entry    INTEGER NOT NULL REFERENCES entries (idx),
    finding  INTEGER NOT NULL,
    alias    INTEGER NOT NULL,
    vuln_id  TEXT NOT NULL,
    id       TEXT NOT NULL,
    pkg      INTEGER NOT NULL,
    digest   TEXT NOT NULL,
    severity TEXT NOT NULL,
    fixed    TEXT NOT NULL,
    PRIMARY KEY (entry, finding, alias)
);
CREATE INDEX sbom_findings_by_id ON sbom_findings (vuln_id);
