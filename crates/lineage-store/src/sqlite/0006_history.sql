-- A service's deploys over time, for `lineage history` and `lineage rollback` (issue 19).
CREATE INDEX deploys_by_service ON deploys (service, env, at);
