-- +goose Up
-- pit_backup_count keeps, per tenant, type and status, how many backups there are, so that a list
-- page's total (filtered by type and status) is a sum of a few rows instead of a count of a
-- million; a trigger on the point-in-time table keeps it.
CREATE TABLE pit_backup_count (
    tenant_hk   bytea  NOT NULL REFERENCES hub_tenant,
    backup_type text   NOT NULL,
    status      text   NOT NULL,
    n           bigint NOT NULL,
    PRIMARY KEY (tenant_hk, backup_type, status)
);
INSERT INTO pit_backup_count (tenant_hk, backup_type, status, n)
SELECT tenant_hk, backup_type, status, count(*) FROM pit_backup_execution GROUP BY 1, 2, 3;

-- +goose StatementBegin
CREATE FUNCTION pit_backup_count_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.status = NEW.status THEN
            RETURN NEW;
        END IF;
        UPDATE pit_backup_count SET n = n - 1
        WHERE tenant_hk = OLD.tenant_hk AND backup_type = OLD.backup_type AND status = OLD.status;
    END IF;
    INSERT INTO pit_backup_count (tenant_hk, backup_type, status, n)
    VALUES (NEW.tenant_hk, NEW.backup_type, NEW.status, 1)
    ON CONFLICT (tenant_hk, backup_type, status) DO UPDATE SET n = pit_backup_count.n + 1;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER pit_backup_execution_count AFTER INSERT OR UPDATE OF status ON pit_backup_execution
FOR EACH ROW EXECUTE FUNCTION pit_backup_count_follow();

ALTER TABLE pit_backup_count ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON pit_backup_count USING (tenant_hk = current_tenant_hk())
    WITH CHECK (tenant_hk = current_tenant_hk());
GRANT SELECT, INSERT, UPDATE ON pit_backup_count TO readiness_app;

-- +goose Down
DROP TRIGGER pit_backup_execution_count ON pit_backup_execution;
DROP FUNCTION pit_backup_count_follow();
DROP TABLE pit_backup_count;
