package auth

import (
	"context"
	"slices"
)

// Principal is the verified identity behind a request: who it is, which tenants
// it may act in, and which roles it holds there. It is built only by
// Verifier.Verify (or by tests), so holding one means the token was valid.
type Principal struct {
	// Subject is the token's sub claim, the stable id of the user or service.
	Subject string
	// Tenants are the business keys of the tenants the principal may access.
	Tenants []string
	// Roles are the role names from the token; see ScopesForRoles.
	Roles []string
}

// Scopes returns the scopes that the principal's roles grant, as a new map.
func (p *Principal) Scopes() map[string]bool {
	if p == nil {
		return map[string]bool{}
	}
	return ScopesForRoles(p.Roles)
}

// HasScope reports whether the principal's roles grant scope. A nil principal
// has no scopes, so a missing authentication step fails closed.
func (p *Principal) HasScope(scope string) bool {
	if p == nil {
		return false
	}
	return rolesGrant(p.Roles, scope)
}

// HasRole reports whether the principal holds role exactly (role names are
// case-sensitive, as the token issuer writes them).
func (p *Principal) HasRole(role string) bool {
	if p == nil {
		return false
	}
	return slices.Contains(p.Roles, role)
}

// MayAccessTenant reports whether the principal may act in tenant: it must be
// one of the token's tenants, unless the principal is a platform_admin, who
// operates the tenant registry and SYSTEM-scope backups across all tenants. An
// empty tenant is never accessible, so a missing X-Tenant-ID cannot match.
func (p *Principal) MayAccessTenant(tenant string) bool {
	if p == nil || tenant == "" {
		return false
	}
	if p.HasRole(RolePlatformAdmin) {
		return true
	}
	return slices.Contains(p.Tenants, tenant)
}

// principalKey is the context key for the principal. It is an unexported type,
// so no other package can read or overwrite the value except through
// WithPrincipal and PrincipalFrom.
type principalKey struct{}

// WithPrincipal returns a copy of ctx that carries p, for handlers and domain
// services further down the request.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal stored by WithPrincipal. ok is false when
// there is none (or it is nil), which callers must treat as unauthenticated.
func PrincipalFrom(ctx context.Context) (p *Principal, ok bool) {
	p, ok = ctx.Value(principalKey{}).(*Principal)
	return p, ok && p != nil
}
