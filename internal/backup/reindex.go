package backup

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/onevault/readiness/gen/db"
	"github.com/onevault/readiness/internal/retention"
	"github.com/onevault/readiness/internal/vault"
)

// ReindexReport says what Reindex did.
type ReindexReport struct {
	Found, Inserted, Existing, TenantsCreated int
}

// reindexSource is the record_source and requested_by of what Reindex writes.
const reindexSource = "readiness repo reindex"

// Reindex rebuilds the catalogue from the repository's manifests: each backup the catalogue
// lacks is recorded COMPLETED, as its manifest says it was (type, scope, parent, times, sizes,
// rows, LSNs), with the retention given counted from its completion, since the manifest does
// not record it. A backup the catalogue has is left untouched, so running it again changes
// nothing. A tenant the registry lacks is registered under its id. Backups are recorded oldest
// first, so that every parent is recorded before the backups that build on it.
func Reindex(ctx context.Context, store *vault.Store, stored map[uuid.UUID]Stored, keep retention.Period) (ReindexReport, error) {
	rep := ReindexReport{Found: len(stored)}
	all := make([]Stored, 0, len(stored))
	for _, s := range stored {
		all = append(all, s)
	}
	slices.SortFunc(all, func(a, b Stored) int { return a.Manifest.CompletedAt.Compare(b.Manifest.CompletedAt) })
	for _, s := range all {
		m := s.Manifest
		hk, err := store.TenantHK(ctx, m.Tenant)
		if errors.Is(err, vault.ErrTenantNotRegistered) {
			if _, err := store.Queries().TenantCreate(ctx, db.TenantCreateParams{TenantBk: m.Tenant, DisplayName: m.Tenant,
				ChangedBy: reindexSource, RecordSource: reindexSource}); err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return rep, fmt.Errorf("register tenant %s: %w", m.Tenant, err)
			}
			rep.TenantsCreated++
			hk, err = store.TenantHK(ctx, m.Tenant)
		}
		if err != nil {
			return rep, fmt.Errorf("tenant %s of backup %s: %w", m.Tenant, m.BackupID, err)
		}
		inserted := false
		err = store.InTenant(ctx, hk, func(q *db.Queries) error {
			if _, err := q.BackupGetByID(ctx, db.BackupGetByIDParams{TenantHk: hk, BackupBk: m.BackupID}); err == nil {
				return nil
			} else if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			inserted = true
			return recordStored(ctx, q, hk, s, keep)
		})
		if err != nil {
			return rep, fmt.Errorf("record backup %s: %w", m.BackupID, err)
		}
		if inserted {
			rep.Inserted++
		} else {
			rep.Existing++
		}
	}
	return rep, nil
}

// recordStored writes one backup of the repository into the catalogue: hub, request, a
// COMPLETED status and the link to its parent when the parent is recorded.
func recordStored(ctx context.Context, q *db.Queries, hk []byte, s Stored, keep retention.Period) error {
	m := s.Manifest
	if err := q.BackupHubInsert(ctx, db.BackupHubInsertParams{BackupBk: m.BackupID, TenantHk: hk, RecordSource: reindexSource}); err != nil {
		return err
	}
	var schema *string
	if m.Schema != "" {
		schema = &m.Schema
	}
	if err := q.BackupRequestInsert(ctx, db.BackupRequestInsertParams{BackupBk: m.BackupID, TenantHk: hk,
		BackupType: m.Type, BackupScope: m.Scope, SchemaName: schema, CompressionEnabled: m.Compressed,
		StorageLocation: s.Location, RetentionPeriod: keep.String(), Priority: 5, Tags: []byte("{}"),
		RequestedBy: reindexSource, RecordSource: reindexSource}); err != nil {
		return err
	}
	expires := keep.AddTo(m.CompletedAt)
	row := statusRow{status: StatusCompleted, attempt: 1, phase: "done", startedAt: &m.StartedAt,
		completedAt: &m.CompletedAt, expiresAt: &expires, location: s.Location,
		durationMs: m.CompletedAt.Sub(m.StartedAt).Milliseconds()}
	var size, stored int64
	for _, o := range m.Objects {
		size, stored = size+o.Size, stored+o.StoredSize
	}
	row.sizeBytes, row.storedBytes = &size, &stored
	row.fillRows(m)
	p := db.BackupStatusInsertParams{BackupBk: m.BackupID, TenantHk: hk, Status: row.status, Phase: optional(row.phase),
		Attempt: int32(row.attempt), StartedAt: row.startedAt, CompletedAt: row.completedAt, ExpiresAt: row.expiresAt,
		SizeBytes: row.sizeBytes, StoredSizeBytes: row.storedBytes, StartLsn: row.startLSN, EndLsn: row.endLSN,
		RowCount: row.rowCount, Location: optional(row.location), RecordSource: reindexSource}
	if row.durationMs > 0 {
		p.DurationMs = &row.durationMs
	}
	if err := q.BackupStatusInsert(ctx, p); err != nil {
		return err
	}
	if m.Parent == nil {
		return nil
	}
	if _, err := q.BackupGetByID(ctx, db.BackupGetByIDParams{TenantHk: hk, BackupBk: *m.Parent}); errors.Is(err, pgx.ErrNoRows) {
		return nil // the parent expired and was deleted: the chain cannot be restored either way
	} else if err != nil {
		return err
	}
	return q.BackupParentLinkInsert(ctx, db.BackupParentLinkInsertParams{BackupBk: m.BackupID, ParentBk: *m.Parent,
		TenantHk: hk, RecordSource: reindexSource})
}
