-- +goose Up
-- The service's own store in Data Vault 2.0 form: hubs hold business keys, links relate hubs,
-- satellites hold insert-only descriptive history. Current state is read through views.

-- hash_key is the one hash-key function: SHA-256 of the normalised (trimmed, upper-cased)
-- business key parts joined with '||'. Every hub, link and lookup uses it.
-- +goose StatementBegin
CREATE FUNCTION hash_key(VARIADIC parts text[]) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT sha256(convert_to(array_to_string(
        ARRAY(SELECT upper(btrim(coalesce(p, ''))) FROM unnest(parts) AS p), '||'), 'UTF8'))
$$;
-- +goose StatementEnd

-- current_tenant_hk is the tenant that the current transaction acts for, set with
-- set_config('readiness.tenant_hk', <hex>, true) by the store; NULL outside a tenant transaction.
-- +goose StatementBegin
CREATE FUNCTION current_tenant_hk() RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT decode(nullif(current_setting('readiness.tenant_hk', true), ''), 'hex')
$$;
-- +goose StatementEnd

-- readiness_app is the role tenant transactions switch to (SET LOCAL ROLE), so that row-level
-- security applies even when the service connects as the database owner or a superuser.
-- +goose StatementBegin
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'readiness_app') THEN
        CREATE ROLE readiness_app NOLOGIN;
    END IF;
    EXECUTE format('GRANT readiness_app TO %I', current_user);
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'could not grant readiness_app to %', current_user;
END
$$;
-- +goose StatementEnd

CREATE TABLE hub_tenant (
    tenant_hk     bytea       PRIMARY KEY,
    tenant_bk     text        NOT NULL UNIQUE,
    load_date     timestamptz NOT NULL DEFAULT clock_timestamp(),
    record_source text        NOT NULL
);

CREATE TABLE sat_tenant_profile (
    tenant_hk     bytea       NOT NULL REFERENCES hub_tenant,
    load_date     timestamptz NOT NULL DEFAULT clock_timestamp(),
    hash_diff     bytea       NOT NULL,
    display_name  text        NOT NULL,
    changed_by    text        NOT NULL,
    record_source text        NOT NULL,
    PRIMARY KEY (tenant_hk, load_date)
);

CREATE VIEW current_tenant WITH (security_invoker = true) AS
SELECT DISTINCT ON (h.tenant_hk)
       h.tenant_hk, h.tenant_bk, h.load_date AS created_at, s.display_name
FROM hub_tenant h
JOIN sat_tenant_profile s USING (tenant_hk)
ORDER BY h.tenant_hk, s.load_date DESC;

-- Backup schedules.
CREATE TABLE hub_backup_schedule (
    schedule_hk   bytea       PRIMARY KEY,
    schedule_bk   uuid        NOT NULL UNIQUE,
    tenant_hk     bytea       NOT NULL REFERENCES hub_tenant,
    load_date     timestamptz NOT NULL DEFAULT clock_timestamp(),
    record_source text        NOT NULL
);
CREATE INDEX hub_backup_schedule_tenant_idx ON hub_backup_schedule (tenant_hk, load_date, schedule_bk);

-- Each change of a schedule is a new row with the next version; (schedule_hk, version) is unique,
-- so two concurrent updates cannot both win.
CREATE TABLE sat_backup_schedule_definition (
    schedule_hk       bytea       NOT NULL REFERENCES hub_backup_schedule,
    load_date         timestamptz NOT NULL DEFAULT clock_timestamp(),
    hash_diff         bytea       NOT NULL,
    tenant_hk         bytea       NOT NULL REFERENCES hub_tenant,
    version           integer     NOT NULL,
    change            text        NOT NULL CHECK (change IN ('CREATED', 'UPDATED', 'DELETED')),
    schedule_name     text        NOT NULL,
    backup_type       text        NOT NULL,
    backup_scope      text        NOT NULL,
    schema_name       text,
    cron_expression   text        NOT NULL,
    timezone          text        NOT NULL,
    retention_period  text        NOT NULL,
    window_start      text,
    window_end        text,
    notify_on_success boolean     NOT NULL,
    notify_on_failure boolean     NOT NULL,
    recipients        text[]      NOT NULL,
    enabled           boolean     NOT NULL,
    is_deleted        boolean     NOT NULL DEFAULT false,
    changed_by        text        NOT NULL,
    record_source     text        NOT NULL,
    PRIMARY KEY (schedule_hk, load_date),
    UNIQUE (schedule_hk, version)
);

-- The run state of a schedule (filled by the scheduler): last fire, its outcome, the next fire.
CREATE TABLE sat_backup_schedule_run_state (
    schedule_hk   bytea       NOT NULL REFERENCES hub_backup_schedule,
    load_date     timestamptz NOT NULL DEFAULT clock_timestamp(),
    tenant_hk     bytea       NOT NULL REFERENCES hub_tenant,
    last_run_at   timestamptz,
    last_status   text,
    next_run_at   timestamptz,
    record_source text        NOT NULL,
    PRIMARY KEY (schedule_hk, load_date)
);

CREATE VIEW current_backup_schedule WITH (security_invoker = true) AS
SELECT h.schedule_bk, h.tenant_hk, h.load_date AS created_at, d.*, r.last_run_at, r.last_status, r.next_run_at,
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
    SELECT rs.last_run_at, rs.last_status, rs.next_run_at
    FROM sat_backup_schedule_run_state rs
    WHERE rs.schedule_hk = h.schedule_hk
    ORDER BY rs.load_date DESC LIMIT 1
) r ON true;

-- Backup executions (phase 1): the request, its status history, its parent and schedule.
CREATE TABLE hub_backup_execution (
    backup_hk     bytea       PRIMARY KEY,
    backup_bk     uuid        NOT NULL UNIQUE,
    tenant_hk     bytea       NOT NULL REFERENCES hub_tenant,
    load_date     timestamptz NOT NULL DEFAULT clock_timestamp(),
    record_source text        NOT NULL
);
CREATE INDEX hub_backup_execution_tenant_idx ON hub_backup_execution (tenant_hk, load_date DESC, backup_bk);

CREATE TABLE sat_backup_execution_request (
    backup_hk           bytea       NOT NULL REFERENCES hub_backup_execution,
    load_date           timestamptz NOT NULL DEFAULT clock_timestamp(),
    hash_diff           bytea       NOT NULL,
    tenant_hk           bytea       NOT NULL REFERENCES hub_tenant,
    backup_type         text        NOT NULL,
    backup_scope        text        NOT NULL,
    schema_name         text,
    compression_enabled boolean     NOT NULL,
    verify_backup       boolean     NOT NULL,
    storage_location    text        NOT NULL,
    retention_period    text        NOT NULL,
    priority            integer     NOT NULL,
    tags                jsonb       NOT NULL DEFAULT '{}',
    requested_by        text        NOT NULL,
    record_source       text        NOT NULL,
    PRIMARY KEY (backup_hk, load_date)
);

CREATE TABLE sat_backup_execution_status (
    backup_hk         bytea       NOT NULL REFERENCES hub_backup_execution,
    load_date         timestamptz NOT NULL DEFAULT clock_timestamp(),
    tenant_hk         bytea       NOT NULL REFERENCES hub_tenant,
    status            text        NOT NULL,
    phase             text,
    bytes_done        bigint,
    bytes_total       bigint,
    started_at        timestamptz,
    completed_at      timestamptz,
    expires_at        timestamptz,
    size_bytes        bigint,
    stored_size_bytes bigint,
    start_lsn         text,
    end_lsn           text,
    row_count         bigint,
    manifest_path     text,
    error_message     text,
    record_source     text        NOT NULL,
    PRIMARY KEY (backup_hk, load_date)
);

CREATE TABLE link_backup_parent (
    link_hk          bytea       PRIMARY KEY,
    backup_hk        bytea       NOT NULL REFERENCES hub_backup_execution,
    parent_backup_hk bytea       NOT NULL REFERENCES hub_backup_execution,
    tenant_hk        bytea       NOT NULL REFERENCES hub_tenant,
    load_date        timestamptz NOT NULL DEFAULT clock_timestamp(),
    record_source    text        NOT NULL
);

CREATE TABLE link_backup_schedule (
    link_hk       bytea       PRIMARY KEY,
    backup_hk     bytea       NOT NULL REFERENCES hub_backup_execution,
    schedule_hk   bytea       NOT NULL REFERENCES hub_backup_schedule,
    tenant_hk     bytea       NOT NULL REFERENCES hub_tenant,
    load_date     timestamptz NOT NULL DEFAULT clock_timestamp(),
    record_source text        NOT NULL
);

-- Recovery operations (phase 1): the request, its status history, its approvals and its backups.
CREATE TABLE hub_recovery_operation (
    recovery_hk   bytea       PRIMARY KEY,
    recovery_bk   uuid        NOT NULL UNIQUE,
    tenant_hk     bytea       NOT NULL REFERENCES hub_tenant,
    load_date     timestamptz NOT NULL DEFAULT clock_timestamp(),
    record_source text        NOT NULL
);

CREATE TABLE sat_recovery_operation_request (
    recovery_hk       bytea       NOT NULL REFERENCES hub_recovery_operation,
    load_date         timestamptz NOT NULL DEFAULT clock_timestamp(),
    hash_diff         bytea       NOT NULL,
    tenant_hk         bytea       NOT NULL REFERENCES hub_tenant,
    target_timestamp  timestamptz NOT NULL,
    recovery_target   text        NOT NULL,
    approval_required boolean     NOT NULL,
    requested_by      text        NOT NULL,
    record_source     text        NOT NULL,
    PRIMARY KEY (recovery_hk, load_date)
);

CREATE TABLE sat_recovery_operation_status (
    recovery_hk       bytea       NOT NULL REFERENCES hub_recovery_operation,
    load_date         timestamptz NOT NULL DEFAULT clock_timestamp(),
    tenant_hk         bytea       NOT NULL REFERENCES hub_tenant,
    status            text        NOT NULL,
    replay_lsn        text,
    replay_timestamp  timestamptz,
    connection_string text,
    rto_seconds       double precision,
    error_message     text,
    record_source     text        NOT NULL,
    PRIMARY KEY (recovery_hk, load_date)
);

CREATE TABLE sat_recovery_operation_approval (
    recovery_hk   bytea       NOT NULL REFERENCES hub_recovery_operation,
    load_date     timestamptz NOT NULL DEFAULT clock_timestamp(),
    tenant_hk     bytea       NOT NULL REFERENCES hub_tenant,
    decision      text        NOT NULL CHECK (decision IN ('APPROVED', 'REJECTED', 'EXPIRED')),
    decided_by    text        NOT NULL,
    notes         text,
    record_source text        NOT NULL,
    PRIMARY KEY (recovery_hk, load_date)
);

CREATE TABLE link_recovery_backup (
    link_hk       bytea       PRIMARY KEY,
    recovery_hk   bytea       NOT NULL REFERENCES hub_recovery_operation,
    backup_hk     bytea       NOT NULL REFERENCES hub_backup_execution,
    tenant_hk     bytea       NOT NULL REFERENCES hub_tenant,
    load_date     timestamptz NOT NULL DEFAULT clock_timestamp(),
    record_source text        NOT NULL
);

-- Security events: every denied request (and later, events read from the managed database).
CREATE TABLE security_event (
    event_id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    tenant_bk     text,
    kind          text        NOT NULL,
    severity      text        NOT NULL,
    subject       text,
    source_addr   text,
    operation     text,
    detail        text        NOT NULL,
    request_id    text
);
CREATE INDEX security_event_tenant_idx ON security_event (tenant_bk, occurred_at DESC);

-- The audit log: one record per mutating request, hash-chained in seq order
-- (record_hash = SHA-256(prev_hash || canonical record)), so an edit or a deletion is detected.
CREATE TABLE audit_log (
    seq           bigint      PRIMARY KEY,
    occurred_at   timestamptz NOT NULL,
    tenant_bk     text,
    subject       text,
    operation     text        NOT NULL,
    method        text        NOT NULL,
    path          text        NOT NULL,
    resource_id   text,
    outcome       integer     NOT NULL,
    request_id    text        NOT NULL,
    body          text,
    prev_hash     bytea       NOT NULL,
    record_hash   bytea       NOT NULL UNIQUE
);

-- Row-level security: the second wall behind every query's tenant filter.
-- +goose StatementBegin
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'hub_backup_schedule', 'sat_backup_schedule_definition', 'sat_backup_schedule_run_state',
        'hub_backup_execution', 'sat_backup_execution_request', 'sat_backup_execution_status',
        'link_backup_parent', 'link_backup_schedule',
        'hub_recovery_operation', 'sat_recovery_operation_request', 'sat_recovery_operation_status',
        'sat_recovery_operation_approval', 'link_recovery_backup']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_hk = current_tenant_hk()) WITH CHECK (tenant_hk = current_tenant_hk())', t);
        EXECUTE format('GRANT SELECT, INSERT ON %I TO readiness_app', t);
    END LOOP;
END
$$;
-- +goose StatementEnd
GRANT SELECT ON hub_tenant, sat_tenant_profile, current_tenant, current_backup_schedule TO readiness_app;
GRANT INSERT ON security_event, audit_log TO readiness_app;

-- +goose Down
DROP TABLE audit_log, security_event, link_recovery_backup, sat_recovery_operation_approval,
    sat_recovery_operation_status, sat_recovery_operation_request, hub_recovery_operation,
    link_backup_schedule, link_backup_parent, sat_backup_execution_status, sat_backup_execution_request,
    hub_backup_execution CASCADE;
DROP VIEW current_backup_schedule;
DROP TABLE sat_backup_schedule_run_state, sat_backup_schedule_definition, hub_backup_schedule;
DROP VIEW current_tenant;
DROP TABLE sat_tenant_profile, hub_tenant;
DROP FUNCTION current_tenant_hk();
DROP FUNCTION hash_key(text[]);
