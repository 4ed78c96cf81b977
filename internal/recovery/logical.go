package recovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/onevault/readiness/gen/db"
	"github.com/onevault/readiness/internal/backup"
	"github.com/onevault/readiness/internal/vault"
)

// Recovery methods: how a recovery reaches its target.
const (
	// MethodWALReplay restores SYSTEM backups and replays the archived WAL to the target time
	// exactly.
	MethodWALReplay = "WAL_REPLAY"
	// MethodLogicalBackup loads one of the tenant's TENANT or SCHEMA backup chains. A logical
	// backup holds the rows of one snapshot and no WAL, so it restores the moment of that
	// snapshot (restoredTo), never the target itself when the target is later.
	MethodLogicalBackup = "LOGICAL_BACKUP"
)

// More documented errors, each carried by a Refusal that names the request's field.
var (
	// ErrSourceNotFound answers a sourceBackupId that is no backup of the tenant (404): another
	// tenant's backup is not found either.
	ErrSourceNotFound = errors.New("source backup not found")
	// ErrTargetExists refuses a database:<name> target that already exists on the managed
	// server (409): a recovery never writes into a database it did not create.
	ErrTargetExists = errors.New("recovery target exists")
)

// Refusal is a refused request that names the field at fault. Kind is ErrPreflight,
// ErrSourceNotFound or ErrTargetExists, so that errors.Is maps it to its answer.
type Refusal struct {
	Kind    error
	Field   string
	Message string
}

func (r *Refusal) Error() string { return r.Kind.Error() + ": " + r.Message }

// Unwrap lets errors.Is see the kind.
func (r *Refusal) Unwrap() error { return r.Kind }

func refuse(kind error, field, format string, args ...any) *Refusal {
	return &Refusal{Kind: kind, Field: field, Message: fmt.Sprintf(format, args...)}
}

// plan is what preflight decided: the chain to restore (FULL first), how, and to which moment.
type plan struct {
	source     []uuid.UUID
	method     string
	restoredTo time.Time
}

// planDatabase decides how a database:<name> recovery of a customer tenant is made, and runs
// the preflight of the logical method. A named sourceBackupId that is one of the tenant's own
// (TENANT or SCHEMA) backups is restored logically; one of the platform's SYSTEM backups is
// replayed on. Without sourceBackupId, WAL replay is used when the platform holds a SYSTEM
// backup completed at or before the target (and RESTORE_COMMAND lets a recovered instance fetch
// WAL), as a pgBackRest user expects of a time target; otherwise no replay can reach the
// target, and the tenant's newest good TENANT backup completed at or before it is restored,
// with the moment it holds answered as restoredTo. The bool is false when the WAL replay path
// is to be taken, whose preflight is the caller's.
func (s *Service) planDatabase(ctx context.Context, tenant, platform vault.TenantRef, r Request, name string) (plan, bool, error) {
	if r.TargetTime.After(s.now()) {
		return plan{}, false, refuse(ErrPreflight, "targetTimestamp", "targetTimestamp %s is in the future", r.TargetTime.UTC().Format(time.RFC3339))
	}
	if err := s.checkNewDatabase(ctx, name); err != nil {
		return plan{}, false, err
	}
	var src db.CurrentBackupExecution
	var found bool
	if r.SourceBackupID != nil {
		err := s.store.InTenant(ctx, tenant.HK, func(q *db.Queries) error {
			var err error
			src, err = q.BackupGetByID(ctx, db.BackupGetByIDParams{TenantHk: tenant.HK, BackupBk: *r.SourceBackupID})
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			found = err == nil
			return err
		})
		if err != nil {
			return plan{}, false, err
		}
		if found {
			return s.planLogical(ctx, tenant, r, src)
		}
		var system bool
		err = s.store.InTenant(ctx, platform.HK, func(q *db.Queries) error {
			_, err := q.BackupGetByID(ctx, db.BackupGetByIDParams{TenantHk: platform.HK, BackupBk: *r.SourceBackupID})
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			system = err == nil
			return err
		})
		if err != nil {
			return plan{}, false, err
		}
		if !system {
			return plan{}, false, refuse(ErrSourceNotFound, "sourceBackupId", "sourceBackupId %s is not a backup of tenant %s", *r.SourceBackupID, tenant.ID)
		}
		return plan{}, false, nil
	}
	// Without a restore_command no recovered instance can fetch WAL: no replay is possible.
	if s.cfg.RestoreCommand != "" {
		var hasSystem bool
		err := s.store.InTenant(ctx, platform.HK, func(q *db.Queries) error {
			_, err := q.BackupSystemBefore(ctx, db.BackupSystemBeforeParams{TenantHk: platform.HK, Before: r.TargetTime})
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			hasSystem = err == nil
			return err
		})
		if err != nil || hasSystem {
			return plan{}, false, err
		}
	}
	err := s.store.InTenant(ctx, tenant.HK, func(q *db.Queries) error {
		var err error
		src, err = q.BackupTenantBefore(ctx, db.BackupTenantBeforeParams{TenantHk: tenant.HK, Before: r.TargetTime})
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return plan{}, false, refuse(ErrPreflight, "targetTimestamp",
			"no SYSTEM backup of the platform to replay WAL on and no TENANT backup of %s completed at or before targetTimestamp %s",
			tenant.ID, r.TargetTime.UTC().Format(time.RFC3339Nano))
	}
	if err != nil {
		return plan{}, false, err
	}
	return s.planLogical(ctx, tenant, r, src)
}

// planLogical checks that a backup of the tenant can be restored logically to the target: it
// is a good TENANT or SCHEMA backup whose chain opens, and its snapshot is not after the target
// (a logical backup cannot go back before the moment it holds).
func (s *Service) planLogical(ctx context.Context, tenant vault.TenantRef, r Request, src db.CurrentBackupExecution) (plan, bool, error) {
	switch {
	case src.BackupScope != backup.ScopeTenant && src.BackupScope != backup.ScopeSchema:
		return plan{}, false, refuse(ErrPreflight, "sourceBackupId", "source backup %s is a %s backup; a database is restored from a TENANT or SCHEMA backup", src.BackupBk, src.BackupScope)
	case src.Status == backup.StatusExpired:
		return plan{}, false, refuse(ErrPreflight, "sourceBackupId", "source backup %s has expired", src.BackupBk)
	case src.Status == backup.StatusVerifyFailed:
		return plan{}, false, refuse(ErrPreflight, "sourceBackupId", "source backup %s failed verification", src.BackupBk)
	case src.Status != backup.StatusCompleted && src.Status != backup.StatusVerified:
		return plan{}, false, refuse(ErrPreflight, "sourceBackupId", "source backup %s is %s", src.BackupBk, src.Status)
	}
	chain, err := s.backups.OpenChain(ctx, tenant.HK, src.BackupBk)
	if errors.Is(err, backup.ErrNotRestorable) {
		return plan{}, false, refuse(ErrPreflight, "sourceBackupId", "%v", err)
	}
	if err != nil {
		return plan{}, false, err
	}
	at := chain.Manifests[len(chain.Manifests)-1].SnapshotTime()
	if r.TargetTime.Before(at) {
		return plan{}, false, refuse(ErrPreflight, "targetTimestamp",
			"targetTimestamp %s is before backup %s's snapshot at %s; a logical backup restores the moment of its snapshot only, so choose a target at or after it or an earlier backup",
			r.TargetTime.UTC().Format(time.RFC3339Nano), src.BackupBk, at.UTC().Format(time.RFC3339Nano))
	}
	p := plan{method: MethodLogicalBackup, restoredTo: at}
	for _, e := range chain.Executions {
		p.source = append(p.source, e.BackupBk)
	}
	return p, true, nil
}

// checkNewDatabase refuses a database:<name> target that exists on the managed server already.
func (s *Service) checkNewDatabase(ctx context.Context, name string) error {
	if s.cfg.ManagedURL == "" {
		return refuse(ErrPreflight, "recoveryTarget", "MANAGED_DATABASE_URL is not configured, so there is no server to make database %q on", name)
	}
	admin, err := pgx.Connect(ctx, s.cfg.ManagedURL)
	if err != nil {
		return fmt.Errorf("connect to the managed server: %w", err)
	}
	defer admin.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return refuse(ErrTargetExists, "recoveryTarget", "database %q already exists on the managed server; choose another name", name)
	}
	return nil
}

// runLogical executes a queued LOGICAL_BACKUP recovery: the chain recorded at the request is
// loaded into a new database on the managed server (RESTORING -> COMPLETED), or the recovery
// ends FAILED with the reason and the half-made database is dropped. A SCHEMA backup holds the
// rows of every tenant of its schema, so the other tenants' rows are removed before the
// database is handed over: a tenant's recovery never gives it another tenant's rows.
func (s *Service) runLogical(ctx context.Context, tenant vault.TenantRef, op Operation, started time.Time, log *slog.Logger) error {
	id, tenantHK := op.RecoveryBk, tenant.HK
	fail := func(err error) error {
		log.Error("recovery failed", "error", err.Error())
		return s.set(ctx, tenantHK, id, progress{status: StatusFailed, errMsg: err.Error()})
	}
	if err := s.set(ctx, tenantHK, id, progress{status: StatusRestoring}); err != nil {
		return err
	}
	log.Info("recovery phase", "phase", StatusRestoring, "method", MethodLogicalBackup)
	if len(op.SourceBackups) == 0 {
		return fail(errors.New("no source backup recorded"))
	}
	chain, err := s.backups.OpenChain(ctx, tenantHK, op.SourceBackups[len(op.SourceBackups)-1])
	if err != nil {
		return fail(fmt.Errorf("open the backup chain: %w", err))
	}
	ids := make([]uuid.UUID, len(chain.Executions))
	for i, e := range chain.Executions {
		ids[i] = e.BackupBk
	}
	if !slices.Equal(ids, op.SourceBackups) {
		return fail(fmt.Errorf("the chain of backup %s is %v now, not the %v checked at the request", ids[len(ids)-1], ids, op.SourceBackups))
	}
	target, _ := ParseTarget(op.RecoveryTarget)
	url, drop, err := s.createDatabase(ctx, target.Name)
	if err != nil {
		return fail(err)
	}
	rep, err := s.backups.RestoreLogical(ctx, chain, url.String())
	if err != nil {
		drop()
		return fail(fmt.Errorf("restore the backup chain into %q: %w", target.Name, err))
	}
	if chain.Manifests[len(chain.Manifests)-1].SchemaData != nil {
		removed, err := keepTenantRows(ctx, url.String(), s.tenantKeyColumn(), vault.HashKey(tenant.ID))
		if err != nil {
			drop()
			return fail(fmt.Errorf("remove other tenants' rows from %q: %w", target.Name, err))
		}
		log.Info("other tenants' rows removed from the SCHEMA restore", "rows", removed)
	}
	rto := s.now().Sub(started).Seconds()
	if err := s.set(ctx, tenantHK, id, progress{status: StatusCompleted, conn: url.Redacted(), rto: &rto}); err != nil {
		return err
	}
	log.Info("recovery completed", "rto_seconds", rto, "tables", rep.Tables, "rows", rep.Rows,
		"skipped_statements", len(rep.SkippedStatements))
	return nil
}

// tenantKeyColumn is the managed database's tenant column.
func (s *Service) tenantKeyColumn() string {
	if s.cfg.TenantKeyCol == "" {
		return "tenant_hk"
	}
	return s.cfg.TenantKeyCol
}

// keepTenantRows deletes, in one transaction, every row of the database at url whose tenant
// column is not key, in every table that has that column, and answers how many it deleted.
// Foreign-key triggers are off meanwhile (session_replication_role = replica, which needs the
// superuser the service's managed connection is): a row referencing a deleted row is another
// tenant's row too, deleted in its own table, and the order of the tables does not matter.
func keepTenantRows(ctx context.Context, url, column string, key []byte) (int64, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
		return 0, err
	}
	rows, err := tx.Query(ctx, `
SELECT format('DELETE FROM ONLY %I.%I WHERE %I IS DISTINCT FROM $1', n.nspname, c.relname, a.attname)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid AND c.relkind = 'r'
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE a.attname = $1 AND a.attnum > 0 AND NOT a.attisdropped
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'`, column)
	if err != nil {
		return 0, err
	}
	statements, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, err
	}
	var removed int64
	for _, st := range statements {
		tag, err := tx.Exec(ctx, st, key)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", st, err)
		}
		removed += tag.RowsAffected()
	}
	return removed, tx.Commit(ctx)
}
