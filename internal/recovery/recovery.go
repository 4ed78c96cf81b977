// Package recovery recovers the managed database to a point in time, under a four-eyes rule.
//
// A request names a target time and a recovery target:
//
//	instance:<name>  a new PostgreSQL instance on this host, recovered to the target time from
//	                 the SYSTEM backups and the archived WAL (platform_admin, tenant platform)
//	database:<name>  one tenant's rows as they were at the target time, in a new database of the
//	                 managed server: a temporary instance is recovered to the target time from
//	                 the SYSTEM backups and the WAL, the tenant's rows are taken from it (as a
//	                 TENANT backup takes them) and loaded into the new database, and the
//	                 temporary instance is removed
//
//	database:<name>  with a TENANT or SCHEMA backup of the tenant as source (or, without a
//	                 source, when the platform has no SYSTEM backup to replay from): that
//	                 backup's chain, loaded into a new database of the managed server as it was
//	                 at the backup's snapshot (LOGICAL_BACKUP; see planDatabase)
//
// Before anything is touched the request is checked (preflight): the target must not be in the
// future, must follow the chosen backup's consistent point, must be inside the archived WAL
// (no segment missing after the backup, archived through the target), and a commit must follow
// it in the archive; the source backup must be restorable. A request that needs approval waits in
// PENDING_APPROVAL until someone other than the requester approves (or rejects) it, or it
// expires. Then a job restores the backup chain into a new data directory, configures recovery
// (restore_command from the WAL archive, recovery_target_time, promote), starts PostgreSQL and
// follows replay until the instance is promoted: RESTORING -> REPLAYING_WAL -> PROMOTING ->
// COMPLETED, or FAILED with PostgreSQL's reason, leaving nothing running.
package recovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/onevault/readiness/gen/db"
	"github.com/onevault/readiness/internal/backup"
	"github.com/onevault/readiness/internal/jobs"
	"github.com/onevault/readiness/internal/vault"
	"github.com/onevault/readiness/internal/wal"
)

// Statuses of a recovery.
const (
	StatusPendingApproval = "PENDING_APPROVAL"
	StatusQueued          = "QUEUED"
	StatusRestoring       = "RESTORING"
	StatusReplaying       = "REPLAYING_WAL"
	StatusPromoting       = "PROMOTING"
	StatusCompleted       = "COMPLETED"
	StatusFailed          = "FAILED"
	StatusRejected        = "REJECTED"
	StatusExpired         = "EXPIRED"
)

// Documented errors, mapped to answers by the handlers.
var (
	// ErrPreflight refuses a request that cannot succeed (422); its message says why.
	ErrPreflight = errors.New("recovery refused")
	// ErrSelfApproval refuses an approval by the requester (403).
	ErrSelfApproval = errors.New("the requester cannot approve or reject their own recovery")
	// ErrState refuses a decision on a recovery that is not waiting for one (409).
	ErrState = errors.New("recovery is not waiting for a decision")
)

// targetPattern is the recoveryTarget grammar.
var targetPattern = regexp.MustCompile(`^(instance|database):([a-z][a-z0-9_]{0,62})$`)

// Target is a parsed recoveryTarget.
type Target struct{ Kind, Name string }

// ParseTarget reads "instance:<name>" or "database:<name>".
func ParseTarget(s string) (Target, error) {
	m := targetPattern.FindStringSubmatch(s)
	if m == nil {
		return Target{}, refuse(ErrPreflight, "recoveryTarget", "recoveryTarget must be instance:<name> or database:<name>")
	}
	return Target{Kind: m[1], Name: m[2]}, nil
}

// Request is a recovery as asked for.
type Request struct {
	TargetTime       time.Time
	Target           string
	SourceBackupID   *uuid.UUID
	ApprovalRequired bool
	RequestedBy      string
}

// Config configures the service.
type Config struct {
	DataPath       string     // where recovered instances' data directories are made
	WAL            wal.Config // the archive, for preflight
	RestoreCommand string     // restore_command of recovered instances (readiness wal-fetch ...)
	ManagedURL     string     // the managed database: tenant recoveries make their database on its server
	BinDir         string     // PostgreSQL client binaries (pg_dump) for tenant recoveries
	TenantKeyCol   string     // the managed database's tenant column (TENANT_KEY_COLUMN)
	ApprovalTTL    time.Duration
	Logger         *slog.Logger
}

// Service runs recoveries.
type Service struct {
	store   *vault.Store
	backups *backup.Service
	cfg     Config
	queue   jobs.Inserter
	now     func() time.Time
}

// New returns the service.
func New(store *vault.Store, backups *backup.Service, cfg Config) *Service {
	if cfg.ApprovalTTL <= 0 {
		cfg.ApprovalTTL = 24 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{store: store, backups: backups, cfg: cfg, now: time.Now}
}

// SetQueue gives the service the job client it enqueues on.
func (s *Service) SetQueue(q jobs.Inserter) { s.queue = q }

// Operation is a recovery's current state.
type Operation = db.CurrentRecoveryOperation

// Create checks the request and records it: PENDING_APPROVAL, or QUEUED with its job.
func (s *Service) Create(ctx context.Context, tenant vault.TenantRef, r Request) (Operation, error) {
	target, err := ParseTarget(r.Target)
	if err != nil {
		return Operation{}, err
	}
	if target.Kind == "instance" && tenant.ID != backup.PlatformTenant {
		return Operation{}, refuse(ErrPreflight, "recoveryTarget", "an instance recovery restores the whole cluster: send X-Tenant-ID: %s", backup.PlatformTenant)
	}
	if target.Kind == "database" && tenant.ID == backup.PlatformTenant {
		return Operation{}, refuse(ErrPreflight, "recoveryTarget", "a database recovery takes one customer tenant's rows: send that tenant's X-Tenant-ID")
	}
	platform, err := s.platform(ctx)
	if err != nil {
		return Operation{}, err
	}
	// A database recovery may restore the tenant's own logical backups; everything else
	// recovers from the platform's SYSTEM backups and the archived WAL.
	p, logical := plan{}, false
	if target.Kind == "database" {
		if p, logical, err = s.planDatabase(ctx, tenant, platform, r, target.Name); err != nil {
			return Operation{}, err
		}
	}
	if !logical {
		if s.cfg.RestoreCommand == "" {
			return Operation{}, refuse(ErrPreflight, "", "RESTORE_COMMAND is not configured, so a recovered instance could not fetch archived WAL")
		}
		source, err := s.preflight(ctx, platform, r)
		if err != nil {
			return Operation{}, err
		}
		p = plan{source: source, method: MethodWALReplay, restoredTo: r.TargetTime}
	}
	source := p.source
	id := uuid.New()
	status := StatusQueued
	if r.ApprovalRequired {
		status = StatusPendingApproval
	}
	var out Operation
	err = s.store.InTenantTx(ctx, tenant.HK, func(tx pgx.Tx, q *db.Queries) error {
		if err := q.RecoveryHubInsert(ctx, db.RecoveryHubInsertParams{RecoveryBk: id, TenantHk: tenant.HK, RecordSource: vault.RecordSource}); err != nil {
			return err
		}
		if err := q.RecoveryRequestInsert(ctx, db.RecoveryRequestInsertParams{RecoveryBk: id, TenantHk: tenant.HK,
			TargetTimestamp: r.TargetTime, RecoveryTarget: r.Target, ApprovalRequired: r.ApprovalRequired,
			RequestedBy: r.RequestedBy, SourceBackups: source, RecoveryMethod: p.method, RestoredTo: p.restoredTo,
			RecordSource: vault.RecordSource}); err != nil {
			return err
		}
		for _, b := range source {
			if err := q.RecoveryBackupLinkInsert(ctx, db.RecoveryBackupLinkInsertParams{RecoveryBk: id, BackupBk: b,
				TenantHk: tenant.HK, RecordSource: vault.RecordSource}); err != nil {
				return err
			}
		}
		if err := q.RecoveryStatusInsert(ctx, db.RecoveryStatusInsertParams{RecoveryBk: id, TenantHk: tenant.HK,
			Status: status, RecordSource: vault.RecordSource}); err != nil {
			return err
		}
		if out, err = q.RecoveryGetByID(ctx, db.RecoveryGetByIDParams{TenantHk: tenant.HK, RecoveryBk: id}); err != nil {
			return err
		}
		if status != StatusQueued {
			return nil
		}
		return s.enqueue(ctx, tx, q, tenant, id)
	})
	return out, err
}

func (s *Service) enqueue(ctx context.Context, tx pgx.Tx, q *db.Queries, tenant vault.TenantRef, id uuid.UUID) error {
	return jobs.InsertTx(ctx, s.queue, tx, RunArgs{RecoveryID: id, Tenant: tenant.ID}, &river.InsertOpts{MaxAttempts: 1})
}

// platform is the tenant that owns SYSTEM backups.
func (s *Service) platform(ctx context.Context) (vault.TenantRef, error) {
	hk, err := s.store.TenantHK(ctx, backup.PlatformTenant)
	return vault.TenantRef{ID: backup.PlatformTenant, HK: hk}, err
}

// preflight refuses, before anything is touched, what PostgreSQL would otherwise answer with a
// FATAL in the middle of a restore. It returns the chain of backups to restore, FULL first.
func (s *Service) preflight(ctx context.Context, tenant vault.TenantRef, r Request) ([]uuid.UUID, error) {
	now := s.now()
	if r.TargetTime.After(now) {
		return nil, refuse(ErrPreflight, "targetTimestamp", "targetTimestamp %s is in the future", r.TargetTime.UTC().Format(time.RFC3339))
	}
	var src db.CurrentBackupExecution
	err := s.store.InTenant(ctx, tenant.HK, func(q *db.Queries) error {
		var err error
		if r.SourceBackupID != nil {
			src, err = q.BackupGetByID(ctx, db.BackupGetByIDParams{TenantHk: tenant.HK, BackupBk: *r.SourceBackupID})
			if errors.Is(err, pgx.ErrNoRows) {
				return refuse(ErrSourceNotFound, "sourceBackupId", "sourceBackupId %s is not a backup of tenant %s", *r.SourceBackupID, tenant.ID)
			}
			return err
		}
		src, err = q.BackupSystemBefore(ctx, db.BackupSystemBeforeParams{TenantHk: tenant.HK, Before: r.TargetTime})
		if errors.Is(err, pgx.ErrNoRows) {
			return refuse(ErrPreflight, "targetTimestamp", "no SYSTEM backup completed before %s; the target is before every backup's consistent point",
				r.TargetTime.UTC().Format(time.RFC3339))
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	switch {
	case src.BackupScope != backup.ScopeSystem:
		return nil, refuse(ErrPreflight, "sourceBackupId", "source backup %s is a %s backup; an instance is recovered from SYSTEM backups", src.BackupBk, src.BackupScope)
	case src.Status == backup.StatusExpired:
		return nil, refuse(ErrPreflight, "sourceBackupId", "source backup %s has expired", src.BackupBk)
	case src.Status == backup.StatusVerifyFailed:
		return nil, refuse(ErrPreflight, "sourceBackupId", "source backup %s failed verification", src.BackupBk)
	case src.Status != backup.StatusCompleted && src.Status != backup.StatusVerified:
		return nil, refuse(ErrPreflight, "sourceBackupId", "source backup %s is %s", src.BackupBk, src.Status)
	}
	chain, err := s.backups.OpenChain(ctx, tenant.HK, src.BackupBk)
	if err != nil {
		return nil, refuse(ErrPreflight, "sourceBackupId", "%v", err)
	}
	last := chain.Manifests[len(chain.Manifests)-1].Physical
	if r.TargetTime.Before(last.StopTime) {
		return nil, refuse(ErrPreflight, "targetTimestamp", "targetTimestamp %s is before backup %s's consistent point %s",
			r.TargetTime.UTC().Format(time.RFC3339Nano), src.BackupBk, last.StopTime.UTC().Format(time.RFC3339Nano))
	}
	if err := checkArchive(ctx, s.cfg.WAL, last, r.TargetTime); err != nil {
		return nil, err
	}
	ids := make([]uuid.UUID, len(chain.Executions))
	for i, e := range chain.Executions {
		ids[i] = e.BackupBk
	}
	return ids, nil
}

// Get answers a recovery of the tenant.
func (s *Service) Get(ctx context.Context, tenantHK []byte, id uuid.UUID) (Operation, error) {
	var out Operation
	err := s.store.InTenant(ctx, tenantHK, func(q *db.Queries) error {
		var err error
		out, err = q.RecoveryGetByID(ctx, db.RecoveryGetByIDParams{TenantHk: tenantHK, RecoveryBk: id})
		return err
	})
	return out, err
}

// Decide approves (queueing the recovery) or rejects a pending recovery. The requester may do
// neither; a recovery already decided answers ErrState.
func (s *Service) Decide(ctx context.Context, tenant vault.TenantRef, id uuid.UUID, by string, approve bool, notes string) (Operation, error) {
	var out Operation
	err := s.store.InTenantTx(ctx, tenant.HK, func(tx pgx.Tx, q *db.Queries) error {
		if err := q.RecoveryDecisionLock(ctx, id); err != nil {
			return err
		}
		cur, err := q.RecoveryGetByID(ctx, db.RecoveryGetByIDParams{TenantHk: tenant.HK, RecoveryBk: id})
		if err != nil {
			return err
		}
		if cur.Status != StatusPendingApproval {
			return fmt.Errorf("%w: it is %s", ErrState, cur.Status)
		}
		if strings.EqualFold(cur.RequestedBy, by) {
			return ErrSelfApproval
		}
		decision, status := "REJECTED", StatusRejected
		if approve {
			decision, status = "APPROVED", StatusQueued
		}
		if err := q.RecoveryDecisionInsert(ctx, db.RecoveryDecisionInsertParams{RecoveryBk: id, TenantHk: tenant.HK,
			Decision: decision, DecidedBy: by, Notes: optional(notes), RecordSource: vault.RecordSource}); err != nil {
			return err
		}
		if err := q.RecoveryStatusInsert(ctx, db.RecoveryStatusInsertParams{RecoveryBk: id, TenantHk: tenant.HK,
			Status: status, RecordSource: vault.RecordSource}); err != nil {
			return err
		}
		if out, err = q.RecoveryGetByID(ctx, db.RecoveryGetByIDParams{TenantHk: tenant.HK, RecoveryBk: id}); err != nil {
			return err
		}
		if approve {
			return s.enqueue(ctx, tx, q, tenant, id)
		}
		return nil
	})
	return out, err
}

// ExpirePending expires requests that waited longer than ApprovalTTL for a decision.
func (s *Service) ExpirePending(ctx context.Context) (int, error) {
	rows, err := s.store.Queries().RecoveryPendingOlderThan(ctx, s.now().Add(-s.cfg.ApprovalTTL))
	if err != nil {
		return 0, err
	}
	for _, r := range rows {
		err := s.store.InTenant(ctx, r.TenantHk, func(q *db.Queries) error {
			if err := q.RecoveryDecisionInsert(ctx, db.RecoveryDecisionInsertParams{RecoveryBk: r.RecoveryBk, TenantHk: r.TenantHk,
				Decision: "EXPIRED", DecidedBy: "readiness", Notes: optional(fmt.Sprintf("no decision within %s", s.cfg.ApprovalTTL)),
				RecordSource: vault.RecordSource}); err != nil {
				return err
			}
			return q.RecoveryStatusInsert(ctx, db.RecoveryStatusInsertParams{RecoveryBk: r.RecoveryBk, TenantHk: r.TenantHk,
				Status: StatusExpired, RecordSource: vault.RecordSource})
		})
		if err != nil {
			return 0, err
		}
	}
	return len(rows), nil
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
