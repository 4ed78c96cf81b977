-- name: TenantCreate :one
-- TenantCreate registers a tenant: its hub row and first profile row. It returns no row when
-- the tenant already exists.
WITH hub AS (
    INSERT INTO hub_tenant (tenant_hk, tenant_bk, record_source)
    VALUES (hash_key(@tenant_bk::text), @tenant_bk::text, @record_source::text)
    ON CONFLICT DO NOTHING
    RETURNING tenant_hk, tenant_bk, load_date
), sat AS (
    INSERT INTO sat_tenant_profile (tenant_hk, load_date, hash_diff, display_name, changed_by, record_source)
    SELECT hub.tenant_hk, hub.load_date, hash_key(@display_name::text), @display_name::text, @changed_by::text, @record_source::text
    FROM hub
    RETURNING tenant_hk
)
SELECT hub.tenant_hk, hub.tenant_bk, hub.load_date AS created_at FROM hub JOIN sat USING (tenant_hk);

-- name: TenantGetByBK :one
SELECT tenant_hk, tenant_bk, display_name, created_at FROM current_tenant WHERE tenant_bk = @tenant_bk::text;

-- name: TenantList :many
SELECT tenant_hk, tenant_bk, display_name, created_at FROM current_tenant ORDER BY tenant_bk;

-- name: TenantGetByHK :one
SELECT tenant_hk, tenant_bk, display_name, created_at FROM current_tenant WHERE tenant_hk = @tenant_hk;
