-- `current` and `base_usage` are small tables that every deploy or build updates in place, so
-- they collect dead row versions fast: with the default thresholds (20% of the table) a
-- 3,000-row `current` is vacuumed only after hundreds of thousands of updates, and by then
-- queries on it scan the bloat. Vacuum and analyze them after a fixed number of changes.
ALTER TABLE current SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 2000,
    autovacuum_analyze_scale_factor = 0,
    autovacuum_analyze_threshold = 2000
);
ALTER TABLE base_usage SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_analyze_scale_factor = 0,
    autovacuum_analyze_threshold = 5000
);
