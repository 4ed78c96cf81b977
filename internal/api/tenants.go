package api

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	oapi "github.com/onevault/readiness/gen/api"
	"github.com/onevault/readiness/gen/db"
	"github.com/onevault/readiness/internal/audit"
	"github.com/onevault/readiness/internal/vault"
)

// ListTenants answers the tenant registry (platform admins: tenants:admin).
func (h *Handlers) ListTenants(ctx context.Context, _ oapi.ListTenantsRequestObject) (oapi.ListTenantsResponseObject, error) {
	rows, err := h.store.Queries().TenantList(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]oapi.Tenant, len(rows))
	for i, r := range rows {
		out[i] = oapi.Tenant{TenantId: r.TenantBk, DisplayName: r.DisplayName, CreatedAt: r.CreatedAt}
	}
	return oapi.ListTenants200JSONResponse{Success: true, Data: oapi.TenantList{Tenants: out}}, nil
}

// CreateTenant registers a tenant; an existing one is 409.
func (h *Handlers) CreateTenant(ctx context.Context, req oapi.CreateTenantRequestObject) (oapi.CreateTenantResponseObject, error) {
	row, err := h.store.Queries().TenantCreate(ctx, db.TenantCreateParams{TenantBk: req.Body.TenantId,
		DisplayName: req.Body.DisplayName, ChangedBy: subject(ctx), RecordSource: vault.RecordSource})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, Conflict("tenant " + req.Body.TenantId + " is already registered")
	}
	if err != nil {
		return nil, err
	}
	audit.SetResourceID(ctx, row.TenantBk)
	return oapi.CreateTenant201JSONResponse{Success: true,
		Data: oapi.Tenant{TenantId: row.TenantBk, DisplayName: req.Body.DisplayName, CreatedAt: row.CreatedAt}}, nil
}
