-- Runtime truth: placements that end, and what runtime sources observed.
--
-- A placement ends with a `deploy_end` entry: its `current` row is deleted, and the newest end
-- per service and environment is kept here, so that a deploy recorded late (dated before the
-- end) does not bring the ended placement back.
CREATE TABLE placement_ends (
    service TEXT NOT NULL,
    env     TEXT NOT NULL,
    entry   INTEGER NOT NULL REFERENCES entries (idx),
    at      INTEGER NOT NULL,
    PRIMARY KEY (service, env)
);

-- The newest observation batch of each runtime source (a cluster, an inventory, admission).
-- A complete batch lists everything running at its source.
CREATE TABLE observation_sources (
    source   TEXT PRIMARY KEY,
    entry    INTEGER NOT NULL REFERENCES entries (idx),
    at       INTEGER NOT NULL,
    complete INTEGER NOT NULL
);

-- The environments each source's batches spoke for, with the newest batch that did.
CREATE TABLE observation_envs (
    source TEXT NOT NULL,
    env    TEXT NOT NULL,
    entry  INTEGER NOT NULL REFERENCES entries (idx),
    PRIMARY KEY (source, env)
);

-- Per source, environment, image and digest: when it was last seen, in which batch, and one
-- workload it ran as ('' when unknown). A row whose entry is its source's newest batch is
-- running now, as far as that source knows.
CREATE TABLE observations (
    source    TEXT NOT NULL,
    env       TEXT NOT NULL,
    image     TEXT NOT NULL,
    digest    TEXT NOT NULL,
    last_seen INTEGER NOT NULL,
    entry     INTEGER NOT NULL REFERENCES entries (idx),
    workload  TEXT NOT NULL,
    PRIMARY KEY (source, env, image, digest)
);
CREATE INDEX observations_by_digest ON observations (digest);
CREATE INDEX observations_by_env ON observations (env);
