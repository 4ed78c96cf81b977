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

// Refusal is a request the backup domain refuses, with the reason a user reads. Errors.Is
// matches it with its Kind (ErrUnsupported or ErrState), and the handler answers Reason
// without having to cut the kind's prefix off the message.
type Refusal struct {
	Kind   error
	Field  string // the request field at fault, when one is
	Reason string
}

func (r *Refusal) Error() string { return r.Kind.Error() + ": " + r.Reason }

// Unwrap makes errors.Is(err, r.Kind) hold.
func (r *Refusal) Unwrap() error { return r.Kind }

// refuse returns a Refusal of kind with the formatted reason.
func refuse(kind error, format string, args ...any) error {
	return &Refusal{Kind: kind, Reason: fmt.Sprintf(format, args...)}
}

// refuseField returns a Refusal of ErrUnsupported that names the request field at fault.
func refuseField(field, reason string) error {
	return &Refusal{Kind: ErrUnsupported, Field: field, Reason: reason}
}

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

// Execution is a backup's current state. It is the domain's own type, converted from the
// store's row at its edge (execution), so that callers do not depend on the generated rows.
type Execution struct {
	BackupHk           []byte
	BackupBk           uuid.UUID
	TenantHk           []byte
	CreatedAt          time.Time
	BackupType         string
	BackupScope        string
	SchemaName         *string
	CompressionEnabled bool
	VerifyBackup       bool
	StorageLocation    string
	RetentionPeriod    string
	Priority           int32
	Tags               map[string]string
	RequestedBy        string
	Status             string
	Phase              *string
	Attempt            int32
	StartedAt          *time.Time
	CompletedAt        *time.Time
	ExpiresAt          *time.Time
	SizeBytes          *int64
	StoredSizeBytes    *int64
	StartLsn           *string
	EndLsn             *string
	RowCount           *int64
	// Location is the backup's folder in the repository, once it has one.
	Location   *string
	DurationMs *int64
	// ErrorMessage is the reason of a FAILED backup.
	ErrorMessage *string
	// StatusDate is when the current status was recorded.
	StatusDate     time.Time
	ParentBackupBk *uuid.UUID
	Progress       *Progress
	Verification   *Verification
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
	queue     jobs.Inserter
	now       func() time.Time
	deadAfter time.Duration // a RUNNING backup whose progress is older is taken for dead
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
func (s *Service) SetQueue(q jobs.Inserter) { s.queue = q }

// Validate checks a request against what is supported, before anything is stored.
func Validate(r Request) error {
	switch r.Scope {
	case ScopeSystem, ScopeTenant:
		if r.SchemaName != "" {
			return refuseField("schemaName", "schemaName is only for SCHEMA scope")
		}
	case ScopeSchema:
		if r.Type != TypeFull {
			return refuseField("backupType", "SCHEMA scope supports FULL only (SYSTEM and TENANT support FULL, DIFFERENTIAL and INCREMENTAL)")
		}
		if r.SchemaName == "" {
			return refuseField("schemaName", "SCHEMA scope needs schemaName")
		}
	default:
		return refuseField("backupScope", "backupScope must be SYSTEM, TENANT or SCHEMA")
	}
	switch r.Type {
	case TypeFull, TypeDifferential, TypeIncremental:
	default:
		return refuseField("backupType", "backupType must be FULL, DIFFERENTIAL or INCREMENTAL")
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
		return Execution{}, refuse(ErrUnsupported, "SYSTEM backups belong to the platform tenant: send X-Tenant-ID: %s", PlatformTenant)
	}
	if r.Scope != ScopeSystem && tenant.ID == PlatformTenant {
		return Execution{}, refuse(ErrUnsupported, "the platform tenant holds SYSTEM backups only")
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
		return jobs.InsertTx(ctx, s.queue, tx, RunArgs{BackupID: id, Tenant: tenant.ID},
			&river.InsertOpts{Priority: jobs.Priority(r.Priority), MaxAttempts: s.cfg.MaxAttempts})
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
		return p, refuse(ErrUnsupported, "a %s %s backup needs a %s of the same scope to build on; take a FULL first", r.Type, r.Scope, what)
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
			return refuse(ErrState, "backup is %s; only a completed backup can be verified", row.Status)
		}
		if err := q.BackupVerificationInsert(ctx, db.BackupVerificationInsertParams{BackupBk: id, TenantHk: tenant.HK,
			Status: "QUEUED", Findings: []byte("[]"), RecordSource: vault.RecordSource}); err != nil {
			return err
		}
		at = s.now()
		return jobs.InsertTx(ctx, s.queue, tx, VerifyArgs{BackupID: id, Tenant: tenant.ID}, &river.InsertOpts{MaxAttempts: 3})
	})
	return at, err
}

func execution(r db.CurrentBackupExecution) Execution {
	e := Execution{BackupHk: r.BackupHk, BackupBk: r.BackupBk, TenantHk: r.TenantHk, CreatedAt: r.CreatedAt,
		BackupType: r.BackupType, BackupScope: r.BackupScope, SchemaName: r.SchemaName,
		CompressionEnabled: r.CompressionEnabled, VerifyBackup: r.VerifyBackup, StorageLocation: r.StorageLocation,
		RetentionPeriod: r.RetentionPeriod, Priority: r.Priority, Tags: map[string]string{}, RequestedBy: r.RequestedBy,
		Status: r.Status, Phase: r.Phase, Attempt: r.Attempt, StartedAt: r.StartedAt, CompletedAt: r.CompletedAt,
		ExpiresAt: r.ExpiresAt, SizeBytes: r.SizeBytes, StoredSizeBytes: r.StoredSizeBytes, StartLsn: r.StartLsn,
		EndLsn: r.EndLsn, RowCount: r.RowCount, Location: r.Location, DurationMs: r.DurationMs,
		ErrorMessage: r.ErrorMessage, StatusDate: r.StatusDate, ParentBackupBk: r.ParentBackupBk}
	_ = json.Unmarshal(r.Tags, &e.Tags)
	return e
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Figures are a running backup's progress as a user reads it: how far, how fast, how long to go.
type Figures struct {
	Phase     string
	BytesDone int64
	// BytesTotal and Percent are nil while the total is not known yet.
	BytesTotal *int64
	Percent    *float64
	// ThroughputBytesPerSec is the average since the backup started; EtaSeconds is the time
	// left at that rate. Both are nil until some bytes are done.
	ThroughputBytesPerSec *float64
	EtaSeconds            *int64
}

// FiguresAt returns the progress of a running backup at now, or nil when the backup is not
// running or has not reported progress yet.
func (e Execution) FiguresAt(now time.Time) *Figures {
	if e.Status != StatusRunning || e.Progress == nil || e.StartedAt == nil {
		return nil
	}
	f := Figures{Phase: e.Progress.Phase, BytesDone: e.Progress.BytesDone}
	if e.Progress.BytesTotal > 0 {
		total := e.Progress.BytesTotal
		// The total is estimated when the copy starts; files that grow during a physical
		// backup can take the bytes done past it, which is still at most 100%.
		pct := min(float64(e.Progress.BytesDone)*100/float64(total), 100)
		f.BytesTotal, f.Percent = &total, &pct
	}
	if secs := now.Sub(*e.StartedAt).Seconds(); secs > 0 && e.Progress.BytesDone > 0 {
		rate := float64(e.Progress.BytesDone) / secs
		f.ThroughputBytesPerSec = &rate
		if e.Progress.BytesTotal > e.Progress.BytesDone {
			eta := int64(float64(e.Progress.BytesTotal-e.Progress.BytesDone) / rate)
			f.EtaSeconds = &eta
		}
	}
	return &f
}
