-- A service's deploys over time, for `lineage history` and `lineage rollback` (issue 19).
CREATE INDEX deploys_by_service ON deploys (service, env, at);
-- A service change replaces the service's image rows: without this, each change scanned
-- every image row, and importing 80,000 services took minutes (issue 14).
CREATE INDEX service_images_by_service ON service_images (service);
