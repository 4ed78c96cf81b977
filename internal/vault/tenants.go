package vault

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/onevault/readiness/gen/db"
)

// Tenant is one entry of the tenant registry.
type Tenant struct {
	ID          string // the business key, e.g. acme
	HK          []byte // its hash key
	DisplayName string
	CreatedAt   time.Time
}

// Tenants answers the registry, ordered by id.
func (s *Store) Tenants(ctx context.Context) ([]Tenant, error) {
	rows, err := s.Queries().TenantList(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Tenant, len(rows))
	for i, r := range rows {
		out[i] = Tenant{ID: r.TenantBk, HK: r.TenantHk, DisplayName: r.DisplayName, CreatedAt: r.CreatedAt}
	}
	return out, nil
}

// RegisterTenant adds a tenant to the registry; one that is registered already answers an
// error wrapping ErrConflict.
func (s *Store) RegisterTenant(ctx context.Context, id, displayName, by string) (Tenant, error) {
	row, err := s.Queries().TenantCreate(ctx, db.TenantCreateParams{TenantBk: id,
		DisplayName: displayName, ChangedBy: by, RecordSource: RecordSource})
	if errors.Is(err, pgx.ErrNoRows) {
		return Tenant{}, fmt.Errorf("%w: tenant %s is already registered", ErrConflict, id)
	}
	if err != nil {
		return Tenant{}, err
	}
	return Tenant{ID: row.TenantBk, HK: row.TenantHk, DisplayName: displayName, CreatedAt: row.CreatedAt}, nil
}
