package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/onevault/readiness/gen/db"
	"github.com/onevault/readiness/internal/backup/logical"
	"github.com/onevault/readiness/internal/backup/physical"
	"github.com/onevault/readiness/internal/retention"
	"github.com/onevault/readiness/internal/storage"
	"github.com/onevault/readiness/internal/vault"
)

// RunArgs is the job that takes one backup.
type RunArgs struct {
	BackupID uuid.UUID `json:"backupId"`
	Tenant   string    `json:"tenant"`
	RetryOf  int       `json:"retryOf,omitempty"` // the interrupted attempt this job retries, for reaped backups
}

// Kind names the job.
func (RunArgs) Kind() string { return "backup.run" }

// RunWorker works RunArgs jobs.
type RunWorker struct {
	river.WorkerDefaults[RunArgs]
	svc *Service
}

// Work takes the backup. When the last attempt fails before the backup even started (the
// database unreachable, say), the backup is recorded FAILED rather than left QUEUED.
func (w *RunWorker) Work(ctx context.Context, job *river.Job[RunArgs]) error {
	err := w.svc.run(ctx, job.Args)
	if err != nil && job.Attempt >= job.MaxAttempts {
		w.svc.giveUp(context.WithoutCancel(ctx), job.Args, job.Attempt, err)
	}
	return err
}

// DefaultMaxAttempts is how many times a backup is tried unless configured (BACKUP_MAX_ATTEMPTS),
// counting attempts cut short by a dead worker; river waits longer before each retry.
const DefaultMaxAttempts = 3

// giveUp records a backup FAILED after its last attempt, unless it already is.
func (s *Service) giveUp(ctx context.Context, args RunArgs, attempt int, cause error) {
	tenantHK, err := s.store.TenantHK(ctx, args.Tenant)
	if err != nil {
		return
	}
	cur, err := s.Get(ctx, tenantHK, args.BackupID)
	if err != nil || cur.Status == StatusFailed || cur.Status == StatusCompleted {
		return
	}
	if s.setStatus(ctx, tenantHK, args.BackupID, statusRow{status: StatusFailed, attempt: attempt,
		errorMessage: fmt.Sprintf("gave up after %d attempts: %v", attempt, cause)}) == nil {
		s.finished(ctx, tenantHK, args.BackupID)
	}
}

// finished tells Config.OnFinished that a backup reached its final state (COMPLETED, or FAILED
// with no attempt left).
func (s *Service) finished(ctx context.Context, tenantHK []byte, id uuid.UUID) {
	if s.cfg.OnFinished == nil {
		return
	}
	e, err := s.Get(ctx, tenantHK, id)
	if err != nil {
		s.cfg.Logger.Error("read finished backup", "backup_id", id.String(), "error", err.Error())
		return
	}
	s.cfg.OnFinished(ctx, e)
}

// Register adds the service's workers.
func (s *Service) Register(workers *river.Workers) {
	river.AddWorker(workers, &RunWorker{svc: s})
	river.AddWorker(workers, &VerifyWorker{svc: s})
	river.AddWorker(workers, &ExpireWorker{svc: s})
	river.AddWorker(workers, &ReapWorker{svc: s})
}

// Manifest is what a committed backup's manifest.json holds: the backup's identity, its
// parent, its timings, every object with its size and SHA-256, and the engine's own manifest
// (files with LSNs for SYSTEM, tables with row counts and high-water marks for TENANT, the
// dump for SCHEMA).
type Manifest struct {
	Version     int                     `json:"version"`
	BackupID    uuid.UUID               `json:"backupId"`
	Tenant      string                  `json:"tenant"`
	Type        string                  `json:"backupType"`
	Scope       string                  `json:"backupScope"`
	Schema      string                  `json:"schemaName,omitempty"`
	Parent      *uuid.UUID              `json:"parentBackupId,omitempty"`
	Compressed  bool                    `json:"compressed"`
	StartedAt   time.Time               `json:"startedAt"`
	CompletedAt time.Time               `json:"completedAt"`
	PGVersion   int                     `json:"pgVersion"`
	Objects     []storage.ObjectInfo    `json:"objects"`
	Physical    *physical.Manifest      `json:"physical,omitempty"`
	TenantData  *logical.TenantManifest `json:"tenantData,omitempty"`
	SchemaData  *logical.SchemaManifest `json:"schemaData,omitempty"`
}

// errLocked means another live process runs this backup (it holds the backup's advisory lock).
var errLocked = errors.New("backup is running in another process")

// run takes one backup. It is safe to run again after a crash: a backup found RUNNING was
// interrupted (its process died, so its lock is free) and is recorded FAILED before the new
// attempt; anything the dead attempt wrote is removed; a completed backup is left alone.
func (s *Service) run(ctx context.Context, args RunArgs) error {
	tenantHK, err := s.store.TenantHK(ctx, args.Tenant)
	if err != nil {
		return err
	}
	unlock, err := s.lock(ctx, args.BackupID)
	if errors.Is(err, errLocked) {
		return river.JobSnooze(30 * time.Second)
	}
	if err != nil {
		return err
	}
	defer unlock()

	cur, err := s.Get(ctx, tenantHK, args.BackupID)
	if errors.Is(err, vault.ErrNotFound) {
		return river.JobCancel(fmt.Errorf("backup %s no longer exists", args.BackupID))
	}
	if err != nil {
		return err
	}
	switch cur.Status {
	case StatusQueued, StatusFailed:
	case StatusRunning:
		if err := s.setStatus(ctx, tenantHK, args.BackupID, statusRow{status: StatusFailed, attempt: int(cur.Attempt),
			errorMessage: fmt.Sprintf("attempt %d was interrupted: the worker stopped before the backup completed", cur.Attempt)}); err != nil {
			return err
		}
	default:
		return nil // COMPLETED, VERIFIED, ...: done already
	}
	attempt := int(cur.Attempt) + 1
	if attempt > s.cfg.MaxAttempts {
		return river.JobCancel(fmt.Errorf("backup %s failed %d attempts", args.BackupID, cur.Attempt))
	}

	log := s.cfg.Logger.With("backup_id", args.BackupID.String(), "tenant", args.Tenant,
		"type", cur.BackupType, "scope", cur.BackupScope, "attempt", attempt)
	started := s.now().UTC()
	if err := s.setStatus(ctx, tenantHK, args.BackupID, statusRow{status: StatusRunning, attempt: attempt,
		phase: "starting", startedAt: &started}); err != nil {
		return err
	}
	log.Info("backup phase", "phase", "starting")

	m, w, err := s.take(ctx, tenantHK, args, cur, log)
	if err != nil {
		if w != nil {
			_ = w.Abort()
		}
		log.Error("backup failed", "error", err.Error())
		if serr := s.setStatus(context.WithoutCancel(ctx), tenantHK, args.BackupID, statusRow{status: StatusFailed,
			attempt: attempt, startedAt: &started, errorMessage: err.Error()}); serr != nil {
			return serr
		}
		final := errors.Is(err, ErrUnsupported) || attempt >= s.cfg.MaxAttempts
		if final {
			s.finished(context.WithoutCancel(ctx), tenantHK, args.BackupID)
		}
		if errors.Is(err, ErrUnsupported) {
			return river.JobCancel(err) // retrying cannot help
		}
		return err
	}
	m.StartedAt, m.CompletedAt = started, s.now().UTC()
	if err := w.Commit(m); err != nil {
		_ = w.Abort()
		_ = s.setStatus(context.WithoutCancel(ctx), tenantHK, args.BackupID, statusRow{status: StatusFailed,
			attempt: attempt, startedAt: &started, errorMessage: "commit: " + err.Error()})
		return err
	}
	period, err := retention.ParsePeriod(cur.RetentionPeriod)
	if err != nil {
		period = s.cfg.DefaultRetention
	}
	expires := period.AddTo(m.CompletedAt)
	row := statusRow{status: StatusCompleted, attempt: attempt, phase: "done", startedAt: &started,
		completedAt: &m.CompletedAt, expiresAt: &expires, location: cur.StorageLocation,
		durationMs: m.CompletedAt.Sub(started).Milliseconds()}
	row.fillResult(m, w)
	if err := s.setStatus(context.WithoutCancel(ctx), tenantHK, args.BackupID, row); err != nil {
		return err
	}
	log.Info("backup phase", "phase", "completed", "size_bytes", *row.sizeBytes, "stored_bytes", *row.storedBytes,
		"duration_ms", row.durationMs)
	s.finished(context.WithoutCancel(ctx), tenantHK, args.BackupID)
	if cur.VerifyBackup {
		if _, err := s.RequestVerify(context.WithoutCancel(ctx), vault.TenantRef{ID: args.Tenant, HK: tenantHK}, args.BackupID); err != nil {
			log.Error("queue verification", "error", err.Error())
		}
	}
	return nil
}

// take runs the engine of the backup's scope into a new repository entry, logging to log.
func (s *Service) take(ctx context.Context, tenantHK []byte, args RunArgs, cur Execution, log *slog.Logger) (*Manifest, *storage.Writer, error) {
	m := &Manifest{Version: 1, BackupID: args.BackupID, Tenant: args.Tenant, Type: cur.BackupType,
		Scope: cur.BackupScope, Compressed: cur.CompressionEnabled}
	if cur.SchemaName != nil {
		m.Schema = *cur.SchemaName
	}
	req := Request{Type: cur.BackupType, Scope: cur.BackupScope, SchemaName: m.Schema}

	var parent *Manifest
	if cur.BackupType != TypeFull {
		var p db.CurrentBackupExecution
		err := s.store.InTenant(ctx, tenantHK, func(q *db.Queries) error {
			var err error
			if p, err = s.parent(ctx, q, tenantHK, args.BackupID, req); err != nil {
				return err
			}
			return q.BackupParentLinkInsert(ctx, db.BackupParentLinkInsertParams{BackupBk: args.BackupID,
				ParentBk: p.BackupBk, TenantHk: tenantHK, RecordSource: vault.RecordSource})
		})
		if err != nil {
			return nil, nil, err
		}
		parent = &Manifest{}
		rd, err := s.repo.OpenBackup(deref(p.Location), p.BackupBk.String())
		if err != nil {
			return nil, nil, fmt.Errorf("open parent backup %s: %w", p.BackupBk, err)
		}
		if err := rd.Manifest(parent); err != nil {
			return nil, nil, fmt.Errorf("read parent manifest: %w", err)
		}
		m.Parent = &p.BackupBk
	}

	// A previous attempt may have committed files without recording COMPLETED: not trusted.
	if err := s.repo.Delete(cur.StorageLocation, args.BackupID.String()); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, nil, err
	}
	w, err := s.repo.NewBackup(cur.StorageLocation, args.BackupID.String())
	if err != nil {
		return nil, nil, err
	}
	rep := s.reporter(ctx, tenantHK, args.BackupID, log.Info)
	defer rep.stop()
	out := sink{w: w, compress: cur.CompressionEnabled}

	switch cur.BackupScope {
	case ScopeSystem:
		opts := physical.Options{ConnString: s.cfg.ManagedURL, Label: "readiness " + args.BackupID.String(),
			Concurrency: 2, Progress: func(p physical.Progress) { rep.set(p.Phase, p.BytesDone, p.BytesTotal) },
			Logger: log}
		if parent != nil {
			opts.Parent = parent.Physical
		}
		pm, err := physical.Backup(ctx, out, opts)
		if err != nil {
			return nil, w, err
		}
		m.Physical, m.PGVersion = pm, pm.PGVersion
	case ScopeTenant:
		opts := logical.TenantOptions{ConnString: s.cfg.ManagedURL, TenantKeyColumn: s.cfg.TenantKeyColumn,
			TenantKey: vault.HashKey(args.Tenant),
			Progress:  func(p logical.Progress) { rep.set(p.Phase, p.BytesDone, p.BytesTotal) }}
		if parent != nil {
			opts.Parent = parent.TenantData
		}
		tm, err := logical.BackupTenant(ctx, out, opts)
		if err != nil {
			return nil, w, err
		}
		if tm.FullReason != "" {
			// The backup stays in its chain, but holds what a FULL holds.
			s.cfg.Logger.Warn("backup takes every table whole", "backup_id", args.BackupID.String(), "tenant", args.Tenant,
				"type", cur.BackupType, "reason", tm.FullReason)
		}
		m.TenantData, m.PGVersion = tm, tm.PGVersion
	case ScopeSchema:
		sm, err := logical.BackupSchema(ctx, out, logical.SchemaOptions{ConnString: s.cfg.ManagedURL, Schema: m.Schema,
			BinDir: s.cfg.BinDir, Progress: func(p logical.Progress) { rep.set(p.Phase, p.BytesDone, p.BytesTotal) }})
		if err != nil {
			return nil, w, err
		}
		m.SchemaData, m.PGVersion = sm, sm.PGVersion
	}
	m.Objects = w.Objects()
	return m, w, nil
}

// sink adapts a repository writer to the engines' Sink.
type sink struct {
	w        *storage.Writer
	compress bool
}

func (s sink) Create(name string) (io.WriteCloser, error) { return s.w.Create(name, s.compress) }

// lock takes the backup's advisory lock on a connection of its own (outside the pool, which the
// backup's own queries need), held until unlock or until this process dies.
func (s *Service) lock(ctx context.Context, id uuid.UUID) (func(), error) {
	conn, err := pgx.ConnectConfig(ctx, s.store.Pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, err
	}
	ok, err := db.New(conn).BackupLockTry(ctx, id)
	if err != nil || !ok {
		_ = conn.Close(context.WithoutCancel(ctx))
		if err == nil {
			err = errLocked
		}
		return nil, err
	}
	return func() {
		_ = db.New(conn).BackupLockRelease(context.WithoutCancel(ctx), id)
		_ = conn.Close(context.WithoutCancel(ctx))
	}, nil
}

// statusRow is one status satellite row to write.
type statusRow struct {
	status, phase, errorMessage, location string
	attempt                               int
	startedAt, completedAt, expiresAt     *time.Time
	sizeBytes, storedBytes, rowCount      *int64
	startLSN, endLSN                      *string
	durationMs                            int64
}

func (r *statusRow) fillResult(m *Manifest, w *storage.Writer) {
	var size int64
	for _, o := range m.Objects {
		size += o.Size
	}
	stored := w.StoredBytes()
	r.sizeBytes, r.storedBytes = &size, &stored
	r.fillRows(m)
}

// fillRows sets what the engine's manifest says of the data: LSNs for SYSTEM, rows otherwise.
func (r *statusRow) fillRows(m *Manifest) {
	switch {
	case m.Physical != nil:
		r.startLSN, r.endLSN = &m.Physical.StartLSN, &m.Physical.StopLSN
	case m.TenantData != nil:
		r.rowCount = &m.TenantData.Rows
	case m.SchemaData != nil:
		var rows int64
		for _, t := range m.SchemaData.Tables {
			rows += t.Rows
		}
		r.rowCount = &rows
	}
}

func (s *Service) setStatus(ctx context.Context, tenantHK []byte, id uuid.UUID, r statusRow) error {
	return s.store.InTenant(ctx, tenantHK, func(q *db.Queries) error {
		p := db.BackupStatusInsertParams{BackupBk: id, TenantHk: tenantHK, Status: r.status, Phase: optional(r.phase),
			Attempt: int32(r.attempt), StartedAt: r.startedAt, CompletedAt: r.completedAt, ExpiresAt: r.expiresAt,
			SizeBytes: r.sizeBytes, StoredSizeBytes: r.storedBytes, StartLsn: r.startLSN, EndLsn: r.endLSN,
			RowCount: r.rowCount, Location: optional(r.location), ErrorMessage: optional(r.errorMessage),
			RecordSource: vault.RecordSource}
		if r.durationMs > 0 {
			p.DurationMs = &r.durationMs
		}
		return q.BackupStatusInsert(ctx, p)
	})
}

// reporter keeps the progress of a running backup in backup_progress, at most once a second,
// and logs one line per phase.
type reporter struct {
	mu                sync.Mutex
	phase, lastLogged string
	done, total       int64
	logf              func(string, ...any)
	cancel            context.CancelFunc
	finished          chan struct{}
}

func (s *Service) reporter(ctx context.Context, tenantHK []byte, id uuid.UUID, logf func(string, ...any)) *reporter {
	ctx, cancel := context.WithCancel(ctx)
	r := &reporter{logf: logf, cancel: cancel, finished: make(chan struct{}), phase: "starting", lastLogged: "starting"}
	write := func(ctx context.Context) {
		r.mu.Lock()
		phase, done, total := r.phase, r.done, r.total
		r.mu.Unlock()
		_ = s.store.InTenant(ctx, tenantHK, func(q *db.Queries) error {
			return q.BackupProgressUpsert(ctx, db.BackupProgressUpsertParams{BackupBk: id, TenantHk: tenantHK,
				Phase: phase, BytesDone: done, BytesTotal: total})
		})
	}
	go func() {
		defer close(r.finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		write(ctx)
		for {
			select {
			case <-ctx.Done():
				write(context.WithoutCancel(ctx))
				return
			case <-t.C:
				write(ctx)
			}
		}
	}()
	return r
}

func (r *reporter) set(phase string, done, total int64) {
	r.mu.Lock()
	r.phase, r.done, r.total = phase, done, total
	changed := phase != r.lastLogged
	r.lastLogged = phase
	r.mu.Unlock()
	if changed {
		r.logf("backup phase", "phase", phase, "bytes_total", total)
	}
}

func (r *reporter) stop() {
	r.cancel()
	<-r.finished
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
