package schedule

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/onevault/readiness/gen/db"
	"github.com/onevault/readiness/internal/vault"
)

// Changes recorded in a schedule's history.
const (
	ChangeCreated = "CREATED"
	ChangeUpdated = "UPDATED"
	ChangeDeleted = "DELETED"
)

// Schedule is a stored schedule: its current definition and bookkeeping.
type Schedule struct {
	ID uuid.UUID
	Definition
	Version    int
	CreatedAt  time.Time
	CreatedBy  string
	UpdatedAt  time.Time
	UpdatedBy  string
	LastRunAt  *time.Time
	LastStatus *string
}

// Version is one entry of a schedule's history: the definition as it was after a change.
type Version struct {
	Version   int
	Change    string
	ChangedAt time.Time
	ChangedBy string
	Definition
}

// Store keeps schedules in the Data Vault: one hub row per schedule and one insert-only
// satellite row per change, so the history of every schedule is its audit trail.
type Store struct {
	vault *vault.Store
}

// NewStore returns a schedule store on v.
func NewStore(v *vault.Store) *Store { return &Store{vault: v} }

// Create validates d and stores it as version 1 of a new schedule.
func (s *Store) Create(ctx context.Context, tenantHK []byte, d Definition, by string) (Schedule, error) {
	if err := d.Validate(); err != nil {
		return Schedule{}, err
	}
	id := uuid.New()
	var out Schedule
	err := s.vault.InTenant(ctx, tenantHK, func(q *db.Queries) error {
		if err := q.ScheduleHubInsert(ctx, db.ScheduleHubInsertParams{ScheduleBk: id, TenantHk: tenantHK,
			RecordSource: vault.RecordSource}); err != nil {
			return err
		}
		if err := q.ScheduleDefinitionInsert(ctx, definitionRow(tenantHK, id, 1, ChangeCreated, d, by)); err != nil {
			return err
		}
		row, err := q.ScheduleGetByID(ctx, db.ScheduleGetByIDParams{TenantHk: tenantHK, ScheduleBk: id})
		out = fromRow(row)
		return err
	})
	return out, err
}

// Get returns a schedule of the tenant, or vault.ErrNotFound (also for another tenant's).
func (s *Store) Get(ctx context.Context, tenantHK []byte, id uuid.UUID) (Schedule, error) {
	var out Schedule
	err := s.vault.InTenant(ctx, tenantHK, func(q *db.Queries) error {
		row, err := q.ScheduleGetByID(ctx, db.ScheduleGetByIDParams{TenantHk: tenantHK, ScheduleBk: id})
		out = fromRow(row)
		return err
	})
	return out, err
}

// List returns one page of the tenant's schedules, oldest first, and how many there are.
func (s *Store) List(ctx context.Context, tenantHK []byte, enabled *bool, offset, limit int) ([]Schedule, int64, error) {
	var out []Schedule
	var total int64
	err := s.vault.InTenant(ctx, tenantHK, func(q *db.Queries) error {
		var err error
		total, err = q.ScheduleCount(ctx, db.ScheduleCountParams{TenantHk: tenantHK, Enabled: enabled})
		if err != nil {
			return err
		}
		rows, err := q.ScheduleList(ctx, db.ScheduleListParams{TenantHk: tenantHK, Enabled: enabled,
			PageOffset: int32(offset), PageSize: int32(limit)})
		for _, r := range rows {
			out = append(out, fromRow(r))
		}
		return err
	})
	return out, total, err
}

// Update applies change to the current definition, validates the result and stores it as the
// next version. An error from change (a caller's refusal of the result, such as a scope the
// caller may not manage) aborts the update and is returned as it is. A concurrent update that
// took the same version first makes this one retry on the newer definition.
func (s *Store) Update(ctx context.Context, tenantHK []byte, id uuid.UUID, change func(*Definition) error, by string) (Schedule, error) {
	return s.write(ctx, tenantHK, id, ChangeUpdated, change, by)
}

// Delete marks a schedule deleted: a last version in its history; it no longer lists or fires.
func (s *Store) Delete(ctx context.Context, tenantHK []byte, id uuid.UUID, by string) error {
	_, err := s.write(ctx, tenantHK, id, ChangeDeleted, func(*Definition) error { return nil }, by)
	return err
}

func (s *Store) write(ctx context.Context, tenantHK []byte, id uuid.UUID, kind string, change func(*Definition) error, by string) (Schedule, error) {
	for attempt := 0; ; attempt++ {
		var out Schedule
		err := s.vault.InTenant(ctx, tenantHK, func(q *db.Queries) error {
			row, err := q.ScheduleGetByID(ctx, db.ScheduleGetByIDParams{TenantHk: tenantHK, ScheduleBk: id})
			if err != nil {
				return err
			}
			cur := fromRow(row)
			d := cur.Definition
			if err := change(&d); err != nil {
				return err
			}
			if kind != ChangeDeleted {
				if err := d.Validate(); err != nil {
					return err
				}
			}
			p := definitionRow(tenantHK, id, cur.Version+1, kind, d, by)
			p.IsDeleted = kind == ChangeDeleted
			if err := q.ScheduleDefinitionInsert(ctx, p); err != nil {
				return err
			}
			if kind == ChangeDeleted {
				return nil
			}
			row, err = q.ScheduleGetByID(ctx, db.ScheduleGetByIDParams{TenantHk: tenantHK, ScheduleBk: id})
			out = fromRow(row)
			return err
		})
		if errors.Is(err, vault.ErrConflict) && attempt < 5 {
			continue
		}
		return out, err
	}
}

// History returns every version of a schedule, oldest first; vault.ErrNotFound when the
// tenant has no such schedule.
func (s *Store) History(ctx context.Context, tenantHK []byte, id uuid.UUID) ([]Version, error) {
	var out []Version
	err := s.vault.InTenant(ctx, tenantHK, func(q *db.Queries) error {
		rows, err := q.ScheduleHistory(ctx, db.ScheduleHistoryParams{TenantHk: tenantHK, ScheduleBk: id})
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return vault.ErrNotFound
		}
		for _, r := range rows {
			out = append(out, Version{Version: int(r.Version), Change: r.Change, ChangedAt: r.ChangedAt,
				ChangedBy: r.ChangedBy, Definition: definition(r.ScheduleName, r.BackupType, r.BackupScope,
					r.SchemaName, r.CronExpression, r.Timezone, r.RetentionPeriod, r.WindowStart, r.WindowEnd,
					r.NotifyOnSuccess, r.NotifyOnFailure, r.Recipients, r.Enabled)})
		}
		return nil
	})
	return out, err
}

func definitionRow(tenantHK []byte, id uuid.UUID, version int, change string, d Definition, by string) db.ScheduleDefinitionInsertParams {
	p := db.ScheduleDefinitionInsertParams{
		TenantHk: tenantHK, Version: int32(version), Change: change, ChangedBy: by, RecordSource: vault.RecordSource,
		ScheduleBk: id, ScheduleName: d.Name, BackupType: d.BackupType, BackupScope: d.BackupScope,
		CronExpression: d.Cron, Timezone: d.Timezone, RetentionPeriod: d.Retention,
		NotifyOnSuccess: d.Notify.OnSuccess, NotifyOnFailure: d.Notify.OnFailure,
		Recipients: append([]string{}, d.Notify.Recipients...), Enabled: d.Enabled,
	}
	if d.SchemaName != "" {
		p.SchemaName = &d.SchemaName
	}
	if d.Window != nil {
		p.WindowStart, p.WindowEnd = &d.Window.Start, &d.Window.End
	}
	return p
}

func definition(name, typ, scope string, schema *string, cron, tz, ret string, ws, we *string,
	onSuccess, onFailure bool, recipients []string, enabled bool) Definition {
	d := Definition{Name: name, BackupType: typ, BackupScope: scope, Cron: cron, Timezone: tz, Retention: ret,
		Notify: Notification{OnSuccess: onSuccess, OnFailure: onFailure, Recipients: recipients}, Enabled: enabled}
	if schema != nil {
		d.SchemaName = *schema
	}
	if ws != nil && we != nil {
		d.Window = &Window{Start: *ws, End: *we}
	}
	return d
}

func fromRow(r db.CurrentBackupSchedule) Schedule {
	return Schedule{
		ID: r.ScheduleBk,
		Definition: definition(r.ScheduleName, r.BackupType, r.BackupScope, r.SchemaName, r.CronExpression,
			r.Timezone, r.RetentionPeriod, r.WindowStart, r.WindowEnd, r.NotifyOnSuccess, r.NotifyOnFailure,
			r.Recipients, r.Enabled),
		Version: int(r.Version), CreatedAt: r.CreatedAt, CreatedBy: r.CreatedBy, UpdatedAt: r.UpdatedAt,
		UpdatedBy: r.UpdatedBy, LastRunAt: r.LastRunAt, LastStatus: r.LastStatus,
	}
}
