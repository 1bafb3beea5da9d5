-- Lookups for the build and deploy gates and the stale report (issues 13 and 22), so that
-- none of them reads every build. All three are filled from the existing builds when a
-- ledger is migrated (`service_repos` from the services' newest changes).
--
-- Per base tag and digest, when recorded builds first and last used it (the pull time, else
-- the build's own times, else its recording): the stale report, the deploy gate and the
-- dashboard read one tag's history here.
CREATE TABLE base_tag_digests (
    base_name   TEXT NOT NULL,
    base_tag    TEXT NOT NULL,
    base_digest TEXT NOT NULL,
    first_used  BIGINT NOT NULL,
    last_used   BIGINT NOT NULL,
    PRIMARY KEY (base_name, base_tag, base_digest)
);

-- Per source repository and commit, the builds made from it: the build gate finds the other
-- services of a shared commit (B010), and the stale report a rebuild of the same commit, in
-- one indexed read, whatever the fleet's size.
CREATE TABLE build_commits (
    source_repo TEXT NOT NULL,
    commit_id   TEXT NOT NULL,
    service     TEXT NOT NULL,
    digest      TEXT NOT NULL,
    PRIMARY KEY (source_repo, commit_id, service, digest)
);

-- Per service, the CI job of its newest build ('' when it named none), for B011: the lowest
-- and highest job of the other services, read from the index, say whether all share one.
CREATE TABLE service_latest_build (
    service TEXT PRIMARY KEY,
    ci_job  TEXT NOT NULL,
    entry   BIGINT NOT NULL
);
CREATE INDEX service_latest_build_by_job ON service_latest_build (ci_job);

-- Per registered service, its source repository, for B012 (a build claiming another
-- service's repository).
CREATE TABLE service_repos (
    service     TEXT PRIMARY KEY,
    source_repo TEXT NOT NULL
);
CREATE INDEX service_repos_by_repo ON service_repos (source_repo);
INSERT INTO service_repos (service, source_repo)
    SELECT s.name, (e.body::jsonb #>> '{record,service,source_repo}') FROM services s JOIN entries e ON e.idx = s.entry
    WHERE (e.body::jsonb #>> '{record,service,source_repo}') IS NOT NULL;
