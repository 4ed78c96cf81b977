package api

import (
	"context"

	"github.com/onevault/readiness/internal/vault"
)

// Tenant is the tenant a request acts for: X-Tenant-ID, checked against the token and the registry.
type Tenant = vault.TenantRef

type tenantKey struct{}

// WithTenant returns ctx acting for t.
func WithTenant(ctx context.Context, t Tenant) context.Context {
	return context.WithValue(ctx, tenantKey{}, t)
}

// TenantFrom returns the tenant of the request; ok is false on operations without a tenant.
func TenantFrom(ctx context.Context) (Tenant, bool) {
	t, ok := ctx.Value(tenantKey{}).(Tenant)
	return t, ok
}
