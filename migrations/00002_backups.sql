-- +goose Up
-- Backups: the platform tenant for SYSTEM scope, attempts, verification results, working
-- progress and a point-in-time table that keeps listing fast at millions of backups.

-- platform is the tenant that owns SYSTEM-scope backups and recoveries: a copy of the whole
-- cluster belongs to no customer tenant. Platform admins act for it with X-Tenant-ID: platform.
INSERT INTO hub_tenant (tenant_hk, tenant_bk, record_source)
VALUES (hash_key('platform'), 'platform', 'readiness-migration') ON CONFLICT DO NOTHING;
INSERT INTO sat_tenant_profile (tenant_hk, hash_diff, display_name, changed_by, record_source)
SELECT hash_key('platform'), hash_key('Platform (SYSTEM backups)'), 'Platform (SYSTEM backups)', 'readiness-migration', 'readiness-migration'
WHERE NOT EXISTS (SELECT 1 FROM sat_tenant_profile WHERE tenant_hk = hash_key('platform'));

ALTER TABLE sat_backup_execution_status
    ADD COLUMN attempt   integer NOT NULL DEFAULT 1,
    ADD COLUMN location  text,
    ADD COLUMN duration_ms bigint;

-- Each verification run of a backup and what it found.
CREATE TABLE sat_backup_execution_verification (
    backup_hk       bytea       NOT NULL REFERENCES hub_backup_execution,
    load_date       timestamptz NOT NULL DEFAULT clock_timestamp(),
    tenant_hk       bytea       NOT NULL REFERENCES hub_tenant,
    status          text        NOT NULL CHECK (status IN ('QUEUED', 'RUNNING', 'PASSED', 'FAILED')),
    objects_checked integer     NOT NULL DEFAULT 0,
    bytes_checked   bigint      NOT NULL DEFAULT 0,
    findings        jsonb       NOT NULL DEFAULT '[]',
    record_source   text        NOT NULL,
    PRIMARY KEY (backup_hk, load_date)
);

-- backup_progress is working state, not history: one row per running backup, overwritten as
-- the bytes go by, so that any replica can show progress without a satellite row a second.
CREATE TABLE backup_progress (
    backup_hk   bytea       PRIMARY KEY REFERENCES hub_backup_execution,
    tenant_hk   bytea       NOT NULL REFERENCES hub_tenant,
    phase       text        NOT NULL,
    bytes_done  bigint      NOT NULL DEFAULT 0,
    bytes_total bigint      NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- pit_backup_execution is the point-in-time table of backups: per backup, the keys that lists
-- filter and sort on and the current status, kept by a trigger on every status row, so a list
-- page is an index range scan however many backups a tenant has.
CREATE TABLE pit_backup_execution (
    backup_hk    bytea       PRIMARY KEY REFERENCES hub_backup_execution,
    backup_bk    uuid        NOT NULL,
    tenant_hk    bytea       NOT NULL REFERENCES hub_tenant,
    created_at   timestamptz NOT NULL,
    backup_type  text        NOT NULL,
    backup_scope text        NOT NULL,
    schema_name  text,
    status       text        NOT NULL,
    status_date  timestamptz NOT NULL
);
CREATE INDEX pit_backup_execution_list_idx ON pit_backup_execution (tenant_hk, created_at DESC, backup_bk DESC);
CREATE INDEX pit_backup_execution_status_idx ON pit_backup_execution (tenant_hk, status, created_at DESC, backup_bk DESC);
CREATE INDEX pit_backup_execution_type_idx ON pit_backup_execution (tenant_hk, backup_type, created_at DESC, backup_bk DESC);
CREATE INDEX sat_backup_execution_status_latest_idx ON sat_backup_execution_status (backup_hk, load_date DESC);
CREATE INDEX link_backup_parent_parent_idx ON link_backup_parent (parent_backup_hk);
CREATE UNIQUE INDEX link_backup_parent_backup_idx ON link_backup_parent (backup_hk);

-- +goose StatementBegin
CREATE FUNCTION pit_backup_execution_refresh() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pit_backup_execution (backup_hk, backup_bk, tenant_hk, created_at, backup_type, backup_scope,
                                      schema_name, status, status_date)
    SELECT h.backup_hk, h.backup_bk, h.tenant_hk, h.load_date, r.backup_type, r.backup_scope, r.schema_name,
           NEW.status, NEW.load_date
    FROM hub_backup_execution h
    JOIN sat_backup_execution_request r USING (backup_hk)
    WHERE h.backup_hk = NEW.backup_hk
    ON CONFLICT (backup_hk) DO UPDATE SET status = EXCLUDED.status, status_date = EXCLUDED.status_date
    WHERE pit_backup_execution.status_date <= EXCLUDED.status_date;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER sat_backup_execution_status_pit AFTER INSERT ON sat_backup_execution_status
FOR EACH ROW EXECUTE FUNCTION pit_backup_execution_refresh();

-- current_backup_execution: a backup with its request, its latest status, parent and verification.
CREATE VIEW current_backup_execution WITH (security_invoker = true) AS
SELECT h.backup_hk, h.backup_bk, h.tenant_hk, h.load_date AS created_at,
       r.backup_type, r.backup_scope, r.schema_name, r.compression_enabled, r.verify_backup,
       r.storage_location, r.retention_period, r.priority, r.tags, r.requested_by,
       s.status, s.phase, s.attempt, s.started_at, s.completed_at, s.expires_at, s.size_bytes,
       s.stored_size_bytes, s.start_lsn, s.end_lsn, s.row_count, s.location, s.duration_ms,
       s.error_message, s.load_date AS status_date,
       p.backup_bk AS parent_backup_bk
FROM hub_backup_execution h
JOIN sat_backup_execution_request r ON r.backup_hk = h.backup_hk
CROSS JOIN LATERAL (
    SELECT * FROM sat_backup_execution_status st
    WHERE st.backup_hk = h.backup_hk ORDER BY st.load_date DESC LIMIT 1
) s
LEFT JOIN link_backup_parent l ON l.backup_hk = h.backup_hk
LEFT JOIN hub_backup_execution p ON p.backup_hk = l.parent_backup_hk;

-- +goose StatementBegin
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['sat_backup_execution_verification', 'backup_progress', 'pit_backup_execution']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_hk = current_tenant_hk()) WITH CHECK (tenant_hk = current_tenant_hk())', t);
    END LOOP;
END
$$;
-- +goose StatementEnd
GRANT SELECT, INSERT ON sat_backup_execution_verification TO readiness_app;
GRANT SELECT, INSERT, UPDATE ON backup_progress, pit_backup_execution TO readiness_app;
GRANT SELECT ON current_backup_execution TO readiness_app;

-- +goose Down
DROP VIEW current_backup_execution;
DROP TRIGGER sat_backup_execution_status_pit ON sat_backup_execution_status;
DROP FUNCTION pit_backup_execution_refresh();
DROP TABLE pit_backup_execution, backup_progress, sat_backup_execution_verification;
DROP INDEX link_backup_parent_backup_idx, link_backup_parent_parent_idx, sat_backup_execution_status_latest_idx;
ALTER TABLE sat_backup_execution_status DROP COLUMN attempt, DROP COLUMN location, DROP COLUMN duration_ms;
