package api

import (
	"context"
	"errors"

	oapi "github.com/onevault/readiness/gen/api"
	"github.com/onevault/readiness/internal/audit"
	"github.com/onevault/readiness/internal/vault"
)

// ListTenants answers the tenant registry (platform admins: tenants:admin).
func (h *Handlers) ListTenants(ctx context.Context, _ oapi.ListTenantsRequestObject) (oapi.ListTenantsResponseObject, error) {
	tenants, err := h.store.Tenants(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]oapi.Tenant, len(tenants))
	for i, t := range tenants {
		out[i] = oapi.Tenant{TenantId: t.ID, DisplayName: t.DisplayName, CreatedAt: t.CreatedAt}
	}
	return oapi.ListTenants200JSONResponse{Success: true, Data: oapi.TenantList{Tenants: out}}, nil
}

// CreateTenant registers a tenant; an existing one is 409.
func (h *Handlers) CreateTenant(ctx context.Context, req oapi.CreateTenantRequestObject) (oapi.CreateTenantResponseObject, error) {
	t, err := h.store.RegisterTenant(ctx, req.Body.TenantId, req.Body.DisplayName, subject(ctx))
	if errors.Is(err, vault.ErrConflict) {
		return nil, Conflict("tenant " + req.Body.TenantId + " is already registered")
	}
	if err != nil {
		return nil, err
	}
	audit.SetResourceID(ctx, t.ID)
	return oapi.CreateTenant201JSONResponse{Success: true,
		Data: oapi.Tenant{TenantId: t.ID, DisplayName: t.DisplayName, CreatedAt: t.CreatedAt}}, nil
}
