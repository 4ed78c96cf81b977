// Package api holds the handlers of the generated strict server (gen/api), one file per tag.
// Handlers translate between the contract's models and the domain packages; they never touch
// echo, and they report expected failures as *Error, which the server writes in the envelope.
package api

import (
	"context"
	"errors"
	"time"

	oapi "github.com/onevault/readiness/gen/api"
	"github.com/onevault/readiness/internal/auth"
	"github.com/onevault/readiness/internal/backup"
	"github.com/onevault/readiness/internal/monitor"
	"github.com/onevault/readiness/internal/recovery"
	"github.com/onevault/readiness/internal/schedule"
	"github.com/onevault/readiness/internal/vault"
)

// Settings are the service settings that handlers apply.
type Settings struct {
	RetentionYears int // default retention of backups and schedules
}

// Handlers implements the contract.
type Handlers struct {
	store      *vault.Store
	backups    *backup.Service
	monitor    *monitor.Service
	recoveries *recovery.Service
	schedules  *schedule.Store
	settings   Settings
	now        func() time.Time
}

var _ oapi.StrictServerInterface = (*Handlers)(nil)

// Deps are the domain services the handlers call.
type Deps struct {
	Store      *vault.Store
	Backups    *backup.Service
	Monitor    *monitor.Service
	Recoveries *recovery.Service
}

// NewHandlers returns the handlers on the domain services.
func NewHandlers(d Deps, settings Settings) *Handlers {
	if settings.RetentionYears <= 0 {
		settings.RetentionYears = 7
	}
	return &Handlers{store: d.Store, backups: d.Backups, monitor: d.Monitor, recoveries: d.Recoveries,
		schedules: schedule.NewStore(d.Store), settings: settings, now: time.Now}
}

// subject is who makes the request, for the records it writes.
func subject(ctx context.Context) string {
	if p, ok := auth.PrincipalFrom(ctx); ok {
		return p.Subject
	}
	return "unknown"
}

// tenant is the tenant of a tenant operation; the authenticator has resolved it before any
// handler runs, so its absence is a wiring bug.
func tenant(ctx context.Context) (Tenant, error) {
	t, ok := TenantFrom(ctx)
	if !ok {
		return Tenant{}, errors.New("api: tenant operation without a resolved tenant")
	}
	return t, nil
}

// domainError maps the domain's sentinel errors to answers: validation to 400 naming each
// field, not found (also another tenant's resource) to 404, a lost race to 409.
func domainError(err error, what string) error {
	var ve schedule.ValidationError
	switch {
	case errors.As(err, &ve):
		details := make([]Detail, len(ve))
		for i, fe := range ve {
			details[i] = Detail{Field: fe.Field, Message: fe.Message}
		}
		return BadRequest(ve.Error(), details...)
	case errors.Is(err, vault.ErrNotFound):
		return NotFound(what)
	case errors.Is(err, vault.ErrConflict):
		return Conflict(what + " was changed concurrently; retry")
	}
	return err
}

// pageBounds turns page and pageSize (already range-checked by the validator) into an offset.
func pageBounds(page, size *int) (p, s, offset int) {
	p, s = 1, 20
	if page != nil {
		p = *page
	}
	if size != nil {
		s = *size
	}
	return p, s, (p - 1) * s
}

func pagination(page, size int, total int64) oapi.Pagination {
	return oapi.Pagination{Page: page, PageSize: size, TotalItems: int(total),
		TotalPages: int((total + int64(size) - 1) / int64(size))}
}
