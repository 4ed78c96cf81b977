-- name: TenantScopeSet :exec
-- TenantScopeSet makes the current transaction act for one tenant: row-level security policies
-- read this setting through current_tenant_hk().
SELECT set_config('readiness.tenant_hk', encode(@tenant_hk::bytea, 'hex'), true);

-- name: TenantRoleSet :exec
-- TenantRoleSet switches the transaction to the readiness_app role, which row-level security
-- applies to even when the service connects as the owner of the tables.
SET LOCAL ROLE readiness_app;
