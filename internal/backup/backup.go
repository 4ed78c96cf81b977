// Package backup takes, verifies and expires backups of the managed One Vault database.
//
// A backup request is recorded (hub, request satellite, status QUEUED) and its river job is
// inserted in the same transaction. A worker runs the job: QUEUED -> RUNNING -> COMPLETED or
// FAILED (with its reason); verification later makes it VERIFIED or VERIFY_FAILED, and the
// retention job EXPIRED. Every change of state is a new status row, so the history of a backup
// is its audit trail.
//
// Supported combinations (others are refused with ErrUnsupported):
//
//	SYSTEM  FULL, DIFFERENTIAL, INCREMENTAL  physical, whole cluster, block-level deltas (platform tenant only)
//	TENANT  FULL, DIFFERENTIAL, INCREMENTAL  logical, one tenant's rows; deltas by transaction id
//	SCHEMA  FULL                             logical, one schema, pg_dump custom format
//
// DIFFERENTIAL takes what changed since the newest completed FULL of the same scope (and
// tenant, and schema); INCREMENTAL what changed since the newest completed backup of any type.
//
// A TENANT delta holds the rows of the insert-only tables that its parent's snapshot did not
// see, by the transaction ids of the rows (the parent records pg_current_snapshot() and the
// ids it saw), not the rows with a load_date after the parent's greatest one, which lost every
// row stamped before a backup and committed after it. Package logical documents the method
// and what it costs: the server reads all of the tenant's rows of those tables, as for a FULL,
// and only the new rows are sent, stored and restored.
//
// Chains made before that method stay restorable. Their backups record no snapshot, so the
// next DIFFERENTIAL or INCREMENTAL of such a chain takes every table whole: it keeps its type
// and its parent, holds what a FULL holds, and its run logs "backup takes every table whole"
// with the reason. The INCREMENTAL after it is a delta again. (A DIFFERENTIAL is whole until
// the next FULL, since its parent is the old FULL.)
package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/onevault/readiness/gen/db"
	"github.com/onevault/readiness/internal/jobs"
	"github.com/onevault/readiness/internal/retention"
	"github.com/onevault/readiness/internal/storage"
	"github.com/onevault/readiness/internal/vault"
)

// Backup types.
const (
	TypeFull         = "FULL"
	TypeDifferential = "DIFFERENTIAL"
	TypeIncremental  = "INCREMENTAL"
)

// Backup scopes.
const (
	ScopeSystem = "SYSTEM"
	ScopeTenant = "TENANT"
	ScopeSchema = "SCHEMA"
)

// Backup statuses.
const (
	StatusQueued       = "QUEUED"
	StatusRunning      = "RUNNING"
	StatusCompleted    = "COMPLETED"
	StatusFailed       = "FAILED"
	StatusVerified     = "VERIFIED"
	StatusVerifyFailed = "VERIFY_FAILED"
	StatusExpired      = "EXPIRED"
)

// PlatformTenant owns SYSTEM-scope backups: a copy of the whole cluster belongs to no customer.
const PlatformTenant = "platform"

// ErrUnsupported refuses a type and scope combination, or a request the domain cannot do
// (a DIFFERENTIAL with no FULL to differ from); its message says what is supported.
var ErrUnsupported = errors.New("unsupported backup request")

// ErrState refuses an action the backup's current status does not allow (verifying a backup
// that has not completed).
var ErrState = errors.New("backup state does not allow this")

// Request is a backup as asked for.
type Request struct {
	Type        string
	Scope       string
	SchemaName  string
	Compression bool
	Verify      bool
	Location    string
	Retention   string // ISO 8601; "" takes the default
	Priority    int
	Tags        map[string]string
	RequestedBy string
	ScheduleID  *uuid.UUID
	// Before, when set, runs inside the transaction that records the backup, before anything
	// is written; its error aborts the request (the scheduler claims its fire here).
	Before func(ctx context.Context, q *db.Queries, backupID uuid.UUID) error
}

// Execution is a backup's current state.
type Execution struct {
	db.CurrentBackupExecution
	Tags         map[string]string
	Progress     *Progress
	Verification *Verification
}

// Progress is how far a running backup has come.
type Progress struct {
	Phase      string
	BytesDone  int64
	BytesTotal int64
	UpdatedAt  time.Time
}

// Verification is the latest verification of a backup.
type Verification struct {
	Status         string
	ObjectsChecked int
	BytesChecked   int64
	Findings       []Finding
	At             time.Time
}

// Finding is one problem a verification found, naming the object.
type Finding struct {
	Object  string `json:"object"`
	Message string `json:"message"`
}

// Config configures the service.
type Config struct {
	ManagedURL       string // superuser connection to the managed database
	BinDir           string // PostgreSQL client binaries (pg_dump, pg_restore)
	TenantKeyColumn  string // default tenant_hk
	DefaultRetention retention.Period
	MaxAttempts      int // tries per backup (default DefaultMaxAttempts)
	// OnFinished, when set, hears of every backup that reached its final state: COMPLETED, or
	// FAILED with no attempt left (schedule notifications hang here).
	OnFinished func(ctx context.Context, e Execution)
	Logger     *slog.Logger
}

// Service is the backup service.
type Service struct {
	store     *vault.Store
	repo      *storage.Repository
	cfg       Config
	queue     Enqueuer
	now       func() time.Time
	deadAfter time.Duration // a RUNNING backup whose progress is older is taken for dead
}

// Enqueuer inserts jobs; *jobs.Client is one. Set with SetQueue once the client exists (its
// workers need the service first).
type Enqueuer interface {
	InsertTx(ctx context.Context, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
}

// New returns the service.
func New(store *vault.Store, repo *storage.Repository, cfg Config) *Service {
	if cfg.TenantKeyColumn == "" {
		cfg.TenantKeyColumn = "tenant_hk"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.DefaultRetention == (retention.Period{}) {
		cfg.DefaultRetention = retention.Years(7)
	}
	return &Service{store: store, repo: repo, cfg: cfg, now: time.Now, deadAfter: time.Minute}
}

// SetQueue gives the service the job client it enqueues on.
func (s *Service) SetQueue(q Enqueuer) { s.queue = q }

// Validate checks a request against what is supported, before anything is stored.
func Validate(r Request) error {
	switch r.Scope {
	case ScopeSystem, ScopeTenant:
		if r.SchemaName != "" {
			return fmt.Errorf("%w: schemaName is only for SCHEMA scope", ErrUnsupported)
		}
	case ScopeSchema:
		if r.Type != TypeFull {
			return fmt.Errorf("%w: SCHEMA scope supports FULL only (SYSTEM and TENANT support FULL, DIFFERENTIAL and INCREMENTAL)", ErrUnsupported)
		}
		if r.SchemaName == "" {
			return fmt.Errorf("%w: SCHEMA scope needs schemaName", ErrUnsupported)
		}
	default:
		return fmt.Errorf("%w: backupScope must be SYSTEM, TENANT or SCHEMA", ErrUnsupported)
	}
	switch r.Type {
	case TypeFull, TypeDifferential, TypeIncremental:
	default:
		return fmt.Errorf("%w: backupType must be FULL, DIFFERENTIAL or INCREMENTAL", ErrUnsupported)
	}
	if r.Retention != "" {
		if _, err := retention.ParsePeriod(r.Retention); err != nil {
			return fmt.Errorf("retentionPeriod: %w", err)
		}
	}
	return nil
}

// Create records the backup and inserts its job in one transaction, answering the QUEUED
// execution. A DIFFERENTIAL or INCREMENTAL with nothing to build on is refused here already.
func (s *Service) Create(ctx context.Context, tenant vault.TenantRef, r Request) (Execution, error) {
	if err := Validate(r); err != nil {
		return Execution{}, err
	}
	if r.Scope == ScopeSystem && tenant.ID != PlatformTenant {
		return Execution{}, fmt.Errorf("%w: SYSTEM backups belong to the platform tenant: send X-Tenant-ID: %s", ErrUnsupported, PlatformTenant)
	}
	if r.Scope != ScopeSystem && tenant.ID == PlatformTenant {
		return Execution{}, fmt.Errorf("%w: the platform tenant holds SYSTEM backups only", ErrUnsupported)
	}
	location, err := s.repo.Location(r.Location)
	if err != nil {
		return Execution{}, err
	}
	if r.Retention == "" {
		r.Retention = s.cfg.DefaultRetention.String()
	}
	if r.Priority == 0 {
		r.Priority = 5
	}
	if r.Tags == nil {
		r.Tags = map[string]string{}
	}
	tags, err := json.Marshal(r.Tags)
	if err != nil {
		return Execution{}, err
	}
	id := uuid.New()
	var out Execution
	err = s.store.InTenantTx(ctx, tenant.HK, func(tx pgx.Tx, q *db.Queries) error {
		if r.Before != nil {
			if err := r.Before(ctx, q, id); err != nil {
				return err
			}
		}
		if r.Type != TypeFull {
			if _, err := s.parent(ctx, q, tenant.HK, id, r); err != nil {
				return err
			}
		}
		if err := q.BackupHubInsert(ctx, db.BackupHubInsertParams{BackupBk: id, TenantHk: tenant.HK, RecordSource: vault.RecordSource}); err != nil {
			return err
		}
		if err := q.BackupRequestInsert(ctx, db.BackupRequestInsertParams{
			BackupBk: id, TenantHk: tenant.HK, BackupType: r.Type, BackupScope: r.Scope, SchemaName: optional(r.SchemaName),
			CompressionEnabled: r.Compression, VerifyBackup: r.Verify, StorageLocation: location,
			RetentionPeriod: r.Retention, Priority: int32(r.Priority), Tags: tags, RequestedBy: r.RequestedBy,
			RecordSource: vault.RecordSource,
		}); err != nil {
			return err
		}
		if err := q.BackupStatusInsert(ctx, db.BackupStatusInsertParams{BackupBk: id, TenantHk: tenant.HK,
			Status: StatusQueued, Attempt: 0, RecordSource: vault.RecordSource}); err != nil {
			return err
		}
		if r.ScheduleID != nil {
			if err := q.BackupScheduleLinkInsert(ctx, db.BackupScheduleLinkInsertParams{BackupBk: id, ScheduleBk: *r.ScheduleID,
				TenantHk: tenant.HK, RecordSource: vault.RecordSource}); err != nil {
				return err
			}
		}
		row, err := q.BackupGetByID(ctx, db.BackupGetByIDParams{TenantHk: tenant.HK, BackupBk: id})
		if err != nil {
			return err
		}
		out = execution(row)
		// The job tables are not tenant tables: insert the job as the service's own role, in
		// the same transaction, so a backup is never recorded without its job or the reverse.
		if err := q.TenantRoleReset(ctx); err != nil {
			return err
		}
		_, err = s.queue.InsertTx(ctx, tx, RunArgs{BackupID: id, Tenant: tenant.ID},
			&river.InsertOpts{Priority: jobs.Priority(r.Priority), MaxAttempts: s.cfg.MaxAttempts})
		return err
	})
	return out, err
}

// parent finds what a DIFFERENTIAL or INCREMENTAL builds on.
func (s *Service) parent(ctx context.Context, q *db.Queries, tenantHK []byte, id uuid.UUID, r Request) (db.CurrentBackupExecution, error) {
	p, err := q.BackupLatestUsable(ctx, db.BackupLatestUsableParams{TenantHk: tenantHK, BackupScope: r.Scope,
		SchemaName: optional(r.SchemaName), FullOnly: r.Type == TypeDifferential, ExcludeBk: id})
	if errors.Is(err, pgx.ErrNoRows) {
		what := "completed backup"
		if r.Type == TypeDifferential {
			what = "completed FULL backup"
		}
		return p, fmt.Errorf("%w: a %s %s backup needs a %s of the same scope to build on; take a FULL first", ErrUnsupported, r.Type, r.Scope, what)
	}
	return p, err
}

// Get answers a backup of the tenant with its progress and latest verification.
func (s *Service) Get(ctx context.Context, tenantHK []byte, id uuid.UUID) (Execution, error) {
	var out Execution
	err := s.store.InTenant(ctx, tenantHK, func(q *db.Queries) error {
		row, err := q.BackupGetByID(ctx, db.BackupGetByIDParams{TenantHk: tenantHK, BackupBk: id})
		if err != nil {
			return err
		}
		out = execution(row)
		if p, err := q.BackupProgressGet(ctx, db.BackupProgressGetParams{TenantHk: tenantHK, BackupBk: id}); err == nil {
			out.Progress = &Progress{Phase: p.Phase, BytesDone: p.BytesDone, BytesTotal: p.BytesTotal, UpdatedAt: p.UpdatedAt}
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		v, err := q.BackupVerificationLatest(ctx, db.BackupVerificationLatestParams{TenantHk: tenantHK, BackupBk: id})
		switch {
		case err == nil:
			ver := &Verification{Status: v.Status, ObjectsChecked: int(v.ObjectsChecked), BytesChecked: v.BytesChecked, At: v.LoadDate}
			if err := json.Unmarshal(v.Findings, &ver.Findings); err != nil {
				return err
			}
			out.Verification = ver
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		return nil
	})
	return out, err
}

// Filter selects backups in List.
type Filter struct {
	Type, Status     *string
	Start, End       *time.Time
	Offset, PageSize int
}

// List answers one page of the tenant's backups, newest first, and how many match.
func (s *Service) List(ctx context.Context, tenantHK []byte, f Filter) ([]Execution, int64, error) {
	var out []Execution
	var total int64
	err := s.store.InTenant(ctx, tenantHK, func(q *db.Queries) error {
		var err error
		if f.Start == nil && f.End == nil {
			total, err = q.BackupCountByKind(ctx, db.BackupCountByKindParams{TenantHk: tenantHK, BackupType: f.Type, Status: f.Status})
		} else {
			total, err = q.BackupCount(ctx, db.BackupCountParams{TenantHk: tenantHK, BackupType: f.Type, Status: f.Status,
				StartDate: f.Start, EndDate: f.End})
		}
		if err != nil {
			return err
		}
		rows, err := q.BackupList(ctx, db.BackupListParams{TenantHk: tenantHK, BackupType: f.Type, Status: f.Status,
			StartDate: f.Start, EndDate: f.End, PageOffset: int32(f.Offset), PageSize: int32(f.PageSize)})
		for _, r := range rows {
			out = append(out, execution(r))
		}
		return err
	})
	return out, total, err
}

// RequestVerify queues a verification of a completed backup.
func (s *Service) RequestVerify(ctx context.Context, tenant vault.TenantRef, id uuid.UUID) (time.Time, error) {
	var at time.Time
	err := s.store.InTenantTx(ctx, tenant.HK, func(tx pgx.Tx, q *db.Queries) error {
		row, err := q.BackupGetByID(ctx, db.BackupGetByIDParams{TenantHk: tenant.HK, BackupBk: id})
		if err != nil {
			return err
		}
		switch row.Status {
		case StatusCompleted, StatusVerified, StatusVerifyFailed:
		default:
			return fmt.Errorf("%w: backup is %s; only a completed backup can be verified", ErrState, row.Status)
		}
		if err := q.BackupVerificationInsert(ctx, db.BackupVerificationInsertParams{BackupBk: id, TenantHk: tenant.HK,
			Status: "QUEUED", Findings: []byte("[]"), RecordSource: vault.RecordSource}); err != nil {
			return err
		}
		at = s.now()
		if err := q.TenantRoleReset(ctx); err != nil {
			return err
		}
		_, err = s.queue.InsertTx(ctx, tx, VerifyArgs{BackupID: id, Tenant: tenant.ID}, &river.InsertOpts{MaxAttempts: 3})
		return err
	})
	return at, err
}

func execution(r db.CurrentBackupExecution) Execution {
	e := Execution{CurrentBackupExecution: r, Tags: map[string]string{}}
	_ = json.Unmarshal(r.Tags, &e.Tags)
	return e
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
