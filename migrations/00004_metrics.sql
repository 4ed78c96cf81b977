-- +goose Up
-- Backup metrics: the point-in-time table of backups also carries the figures that metrics
-- aggregate (completion time, duration, sizes), so the metrics endpoint and the Prometheus
-- scrape read one narrow table instead of the latest status row of every backup, which is a
-- lateral lookup per backup and too slow at a million backups.
ALTER TABLE pit_backup_execution
    ADD COLUMN completed_at      timestamptz,
    ADD COLUMN duration_ms       bigint,
    ADD COLUMN size_bytes        bigint,
    ADD COLUMN stored_size_bytes bigint;

UPDATE pit_backup_execution p
SET completed_at = s.completed_at, duration_ms = s.duration_ms, size_bytes = s.size_bytes,
    stored_size_bytes = s.stored_size_bytes
FROM sat_backup_execution_status s
WHERE s.backup_hk = p.backup_hk AND s.load_date = p.status_date;

-- pit_backup_execution_measure copies the figures of a new status row to the backup's point-in-
-- time row when that row now reflects it (its status_date is this row's load_date): the
-- sat_backup_execution_status_pit trigger runs first (triggers run in name order) and moves
-- status_date forward only for the newest status row.
-- +goose StatementBegin
CREATE FUNCTION pit_backup_execution_measure() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE pit_backup_execution
    SET completed_at = NEW.completed_at, duration_ms = NEW.duration_ms, size_bytes = NEW.size_bytes,
        stored_size_bytes = NEW.stored_size_bytes
    WHERE backup_hk = NEW.backup_hk AND status_date = NEW.load_date;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER sat_backup_execution_status_pit_measure AFTER INSERT ON sat_backup_execution_status
FOR EACH ROW EXECUTE FUNCTION pit_backup_execution_measure();

-- The newest good backup of a scope and type (freshness, recovery point age) is one probe.
CREATE INDEX pit_backup_execution_good_idx ON pit_backup_execution (tenant_hk, backup_scope, backup_type, completed_at DESC)
    WHERE status IN ('COMPLETED', 'VERIFIED') AND completed_at IS NOT NULL;
-- Recent failures (health) are found by when they failed, among the few failed backups.
CREATE INDEX pit_backup_execution_failed_idx ON pit_backup_execution (tenant_hk, status_date DESC)
    WHERE status IN ('FAILED', 'VERIFY_FAILED');

-- +goose Down
DROP INDEX pit_backup_execution_failed_idx, pit_backup_execution_good_idx;
DROP TRIGGER sat_backup_execution_status_pit_measure ON sat_backup_execution_status;
DROP FUNCTION pit_backup_execution_measure();
ALTER TABLE pit_backup_execution DROP COLUMN completed_at, DROP COLUMN duration_ms, DROP COLUMN size_bytes,
    DROP COLUMN stored_size_bytes;
