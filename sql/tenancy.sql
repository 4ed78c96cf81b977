-- name: TenantScopeSet :exec
-- TenantScopeSet makes the current transaction act for one tenant: row-level security policies
-- read this setting through current_tenant_hk().
SELECT set_config('readiness.tenant_hk', encode(@tenant_hk::bytea, 'hex'), true);

-- name: TenantRoleSet :exec
-- TenantRoleSet switches the transaction to the readiness_app role, which row-level security
-- applies to even when the service connects as the owner of the tables.
SET LOCAL ROLE readiness_app;

-- name: TenantRoleReset :exec
-- TenantRoleReset returns the transaction to the service's own role, for the job queue's
-- insert in the same transaction (the job tables are not tenant tables).
RESET ROLE;
