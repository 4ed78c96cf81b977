-- +goose Up
-- Schedule fires: every due time of every schedule, once. The primary key (schedule, due time)
-- is what makes several replicas fire a schedule once: the fire is claimed by inserting its row
-- in the same transaction as the backup it enqueues.
CREATE TABLE backup_schedule_fire (
    schedule_hk bytea       NOT NULL REFERENCES hub_backup_schedule,
    due_at      timestamptz NOT NULL,
    tenant_hk   bytea       NOT NULL REFERENCES hub_tenant,
    fired_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    outcome     text        NOT NULL CHECK (outcome IN ('ENQUEUED', 'SKIPPED_OUTSIDE_WINDOW', 'MISSED', 'FAILED')),
    backup_bk   uuid,
    detail      text,
    PRIMARY KEY (schedule_hk, due_at)
);
CREATE INDEX backup_schedule_fire_tenant_idx ON backup_schedule_fire (tenant_hk, fired_at DESC);
ALTER TABLE backup_schedule_fire ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON backup_schedule_fire USING (tenant_hk = current_tenant_hk())
    WITH CHECK (tenant_hk = current_tenant_hk());
GRANT SELECT, INSERT ON backup_schedule_fire TO readiness_app;
CREATE INDEX link_backup_schedule_schedule_idx ON link_backup_schedule (schedule_hk, load_date DESC);

-- The run state is read from the fires and the backups they made, not kept twice.
DROP VIEW current_backup_schedule;
DROP TABLE sat_backup_schedule_run_state;

CREATE VIEW current_backup_schedule WITH (security_invoker = true) AS
SELECT h.schedule_bk, h.tenant_hk, h.load_date AS created_at, d.*, f.last_run_at, b.status AS last_status,
       (SELECT changed_by FROM sat_backup_schedule_definition f
         WHERE f.schedule_hk = h.schedule_hk ORDER BY f.version LIMIT 1) AS created_by
FROM hub_backup_schedule h
CROSS JOIN LATERAL (
    SELECT s.version, s.change, s.schedule_name, s.backup_type, s.backup_scope, s.schema_name,
           s.cron_expression, s.timezone, s.retention_period, s.window_start, s.window_end,
           s.notify_on_success, s.notify_on_failure, s.recipients, s.enabled, s.is_deleted,
           s.changed_by AS updated_by, s.load_date AS updated_at
    FROM sat_backup_schedule_definition s
    WHERE s.schedule_hk = h.schedule_hk
    ORDER BY s.version DESC LIMIT 1
) d
LEFT JOIN LATERAL (
    SELECT fi.fired_at AS last_run_at, fi.backup_bk
    FROM backup_schedule_fire fi
    WHERE fi.schedule_hk = h.schedule_hk AND fi.outcome = 'ENQUEUED'
    ORDER BY fi.due_at DESC LIMIT 1
) f ON true
LEFT JOIN pit_backup_execution b ON b.backup_bk = f.backup_bk;
GRANT SELECT ON current_backup_schedule TO readiness_app;

-- +goose Down
DROP VIEW current_backup_schedule;
DROP TABLE backup_schedule_fire;
CREATE TABLE sat_backup_schedule_run_state (
    schedule_hk bytea NOT NULL REFERENCES hub_backup_schedule, load_date timestamptz NOT NULL DEFAULT clock_timestamp(),
    tenant_hk bytea NOT NULL REFERENCES hub_tenant, last_run_at timestamptz, last_status text, next_run_at timestamptz,
    record_source text NOT NULL, PRIMARY KEY (schedule_hk, load_date));
