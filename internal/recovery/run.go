package recovery

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/onevault/readiness/gen/db"
	"github.com/onevault/readiness/internal/backup/physical"
	"github.com/onevault/readiness/internal/pgcluster"
	"github.com/onevault/readiness/internal/vault"
	"github.com/onevault/readiness/internal/wal"
)

// RunArgs is the job that executes one approved recovery.
type RunArgs struct {
	RecoveryID uuid.UUID `json:"recoveryId"`
	Tenant     string    `json:"tenant"`
}

// Kind names the job.
func (RunArgs) Kind() string { return "recovery.run" }

// RunWorker works RunArgs jobs.
type RunWorker struct {
	river.WorkerDefaults[RunArgs]
	svc *Service
}

// Work executes the recovery.
func (w *RunWorker) Work(ctx context.Context, job *river.Job[RunArgs]) error {
	return w.svc.run(ctx, job.Args)
}

// ExpireArgs is the periodic job that expires requests nobody decided on.
type ExpireArgs struct{}

// Kind names the job.
func (ExpireArgs) Kind() string { return "recovery.expire" }

// ExpireWorker works ExpireArgs jobs.
type ExpireWorker struct {
	river.WorkerDefaults[ExpireArgs]
	svc *Service
}

// Work expires stale requests.
func (w *ExpireWorker) Work(ctx context.Context, _ *river.Job[ExpireArgs]) error {
	_, err := w.svc.ExpirePending(ctx)
	return err
}

// Register adds the service's workers.
func (s *Service) Register(workers *river.Workers) {
	river.AddWorker(workers, &RunWorker{svc: s})
	river.AddWorker(workers, &ExpireWorker{svc: s})
}

// PeriodicJobs expires undecided requests every interval.
func (s *Service) PeriodicJobs(interval time.Duration) []*river.PeriodicJob {
	return []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(interval),
		func() (river.JobArgs, *river.InsertOpts) { return ExpireArgs{}, nil }, &river.PeriodicJobOpts{RunOnStart: true})}
}

type progress struct {
	status, lsn, conn, dir, errMsg string
	replayed                       *time.Time
	rto                            *float64
}

// statusWriteTimeout bounds the writing of one status row once the job's context may have ended.
const statusWriteTimeout = 30 * time.Second

// set records the recovery's status. The row, above all the final FAILED one, must be written
// when the job's ctx has just ended (a job timeout or a shutdown), so it is written on a ctx
// that cannot be cancelled, and the job's ctx is out of scope.
func (s *Service) set(ctx context.Context, tenantHK []byte, id uuid.UUID, p progress) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), statusWriteTimeout)
	defer cancel()
	return s.store.InTenant(ctx, tenantHK, func(q *db.Queries) error {
		return q.RecoveryStatusInsert(ctx, db.RecoveryStatusInsertParams{RecoveryBk: id, TenantHk: tenantHK, Status: p.status,
			ReplayLsn: optional(p.lsn), ReplayTimestamp: p.replayed, ConnectionString: optional(p.conn), RtoSeconds: p.rto,
			ErrorMessage: optional(p.errMsg), DataDir: optional(p.dir), RecordSource: vault.RecordSource})
	})
}

// run executes a queued recovery: restore the chain, configure recovery to the target time,
// start PostgreSQL, follow replay until promotion. A failure ends FAILED with the reason and
// stops the instance it started.
func (s *Service) run(ctx context.Context, args RunArgs) error {
	tenantHK, err := s.store.TenantHK(ctx, args.Tenant)
	if err != nil {
		return err
	}
	op, err := s.Get(ctx, tenantHK, args.RecoveryID)
	if errors.Is(err, vault.ErrNotFound) {
		return river.JobCancel(err)
	}
	if err != nil {
		return err
	}
	if op.Status != StatusQueued {
		return nil
	}
	started := op.CreatedAt
	if op.DecidedAt != nil {
		started = *op.DecidedAt // the RTO runs from the moment recovery may start
	}
	if op.RecoveryMethod == MethodLogicalBackup {
		return s.runLogical(ctx, vault.TenantRef{ID: args.Tenant, HK: tenantHK}, op, started,
			s.cfg.Logger.With("recovery_id", args.RecoveryID.String(), "target", op.RecoveryTarget))
	}
	target, _ := ParseTarget(op.RecoveryTarget)
	dir := filepath.Join(s.cfg.DataPath, target.Name+"-"+args.RecoveryID.String()[:8])
	log := s.cfg.Logger.With("recovery_id", args.RecoveryID.String(), "target", op.RecoveryTarget)
	fail := func(err error, c *pgcluster.Cluster) error {
		if c != nil {
			_ = c.Stop(context.WithoutCancel(ctx))
			if reason := c.Failure(); reason != "" && !strings.Contains(err.Error(), reason) {
				err = fmt.Errorf("%w; PostgreSQL: %s", err, reason)
			}
		}
		// A step that failed because the job was cancelled says so, whatever error it gave.
		if cerr := ctx.Err(); cerr != nil {
			if !errors.Is(err, cerr) {
				err = fmt.Errorf("%w: %w", cerr, err)
			}
			err = fmt.Errorf("interrupted (a job timeout or a shutdown): %w", err)
		}
		log.Error("recovery failed", "error", err.Error())
		return s.set(ctx, tenantHK, args.RecoveryID, progress{status: StatusFailed, errMsg: err.Error(), dir: dir})
	}

	if err := s.set(ctx, tenantHK, args.RecoveryID, progress{status: StatusRestoring, dir: dir}); err != nil {
		return err
	}
	log.Info("recovery phase", "phase", StatusRestoring)
	if len(op.SourceBackups) == 0 {
		return fail(errors.New("no source backup recorded"), nil)
	}
	platform, err := s.platform(ctx)
	if err != nil {
		return fail(err, nil)
	}
	chain, err := s.backups.OpenChain(ctx, platform.HK, op.SourceBackups[len(op.SourceBackups)-1])
	if err != nil {
		return fail(err, nil)
	}
	if target.Kind == "database" {
		dir += "-tmp" // the temporary instance the tenant's rows are taken from
	}
	if err := os.MkdirAll(s.cfg.DataPath, 0o755); err != nil {
		return fail(err, nil)
	}
	restoreStarted, phase := time.Now(), ""
	logPhase := func(p physical.Progress) {
		if p.Phase != phase {
			log.Info("restore phase", "phase", p.Phase, "elapsed_ms", time.Since(restoreStarted).Milliseconds())
			phase = p.Phase
		}
	}
	if err := s.backups.RestoreSystem(ctx, chain, dir, logPhase); err != nil {
		return fail(fmt.Errorf("restore the backup chain: %w", err), nil)
	}
	c, err := pgcluster.New(pgcluster.Options{DataDir: dir, Settings: map[string]string{
		"restore_command":           s.cfg.RestoreCommand,
		"recovery_target_time":      op.TargetTimestamp.UTC().Format("2006-01-02 15:04:05.999999-07"),
		"recovery_target_inclusive": "true",
		"recovery_target_action":    targetAction(target),
		"archive_mode":              "off",
		// The restore synced its files already; one syncfs replaces an fsync of each at start.
		"recovery_init_sync_method": "syncfs",
		"hot_standby":               "on",
	}})
	if err != nil {
		return fail(err, nil)
	}
	if err := os.WriteFile(filepath.Join(dir, "recovery.signal"), nil, 0o600); err != nil {
		return fail(err, nil)
	}
	if err := c.Own(filepath.Join(dir, "recovery.signal")); err != nil {
		return fail(err, nil)
	}
	if err := s.set(ctx, tenantHK, args.RecoveryID, progress{status: StatusReplaying, dir: dir}); err != nil {
		return err
	}
	log.Info("recovery phase", "phase", StatusReplaying)
	replayStarted := time.Now()
	if err := c.Start(ctx); err != nil {
		return fail(fmt.Errorf("start the recovered instance: %w", err), c)
	}
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fail(err, c)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := s.followReplay(ctx, conn, tenantHK, args.RecoveryID, dir, targetAction(target) == "pause"); err != nil {
		return fail(err, c)
	}
	_ = os.RemoveAll(filepath.Join(dir, "pg_wal", wal.SpoolDir)) // segments wal-fetch fetched ahead
	if target.Kind == "database" {
		log.Info("recovery phase", "phase", StatusPromoting, "step", "loading the tenant's rows",
			"replay_ms", time.Since(replayStarted).Milliseconds())
		_ = s.set(ctx, tenantHK, args.RecoveryID, progress{status: StatusPromoting, dir: dir})
		loadStarted := time.Now()
		connString, err := s.loadTenant(ctx, c, dir, args.Tenant, target.Name)
		stopStarted := time.Now()
		_ = c.Discard(context.WithoutCancel(ctx))
		log.Info("temporary instance stopped", "load_ms", stopStarted.Sub(loadStarted).Milliseconds(),
			"stop_ms", time.Since(stopStarted).Milliseconds())
		_ = os.RemoveAll(dir)
		if err != nil {
			return fail(err, nil)
		}
		rto := s.now().Sub(started).Seconds()
		if err := s.set(ctx, tenantHK, args.RecoveryID, progress{status: StatusCompleted, conn: connString, rto: &rto}); err != nil {
			return err
		}
		log.Info("recovery completed", "rto_seconds", rto)
		return nil
	}
	rto := s.now().Sub(started).Seconds()
	// The connection string names the instance, not the service's credentials.
	p := progress{status: StatusCompleted, conn: c.URL("postgres"), rto: &rto, dir: dir}
	if err := s.set(ctx, tenantHK, args.RecoveryID, p); err != nil {
		return err
	}
	log.Info("recovery completed", "rto_seconds", rto, "connection", c.URL("postgres"))
	return nil
}

// followReplay reports replay's position until the instance has reached the target and been
// promoted (recovery_target_action = promote), or, with paused, until replay has paused at the
// target (recovery_target_action = pause, see targetAction). Promotion by pg_promote after a
// pause at the target was measured slower: the paused startup process notices the request only
// within a second, where the end-of-recovery checkpoint of promote took a quarter of one
// (make bench-recovery).
func (s *Service) followReplay(ctx context.Context, conn *pgx.Conn, tenantHK []byte, id uuid.UUID, dir string, paused bool) error {
	const (
		poll        = 100 * time.Millisecond
		reportEvery = time.Second
		limit       = 2 * time.Hour
	)
	deadline := time.Now().Add(limit)
	var reported time.Time
	reportedPromoting := false
	for {
		var inRecovery, promoting, atPause bool
		var lsn *string
		var replayed *time.Time
		// Having reached the target, the startup process ends recovery and waits for the
		// end-of-recovery checkpoint: that is the promotion.
		err := conn.QueryRow(ctx, `SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, pg_last_xact_replay_timestamp(),
			EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'startup' AND wait_event = 'CheckpointDone'),
			pg_is_in_recovery() AND pg_get_wal_replay_pause_state() = 'paused'`).
			Scan(&inRecovery, &lsn, &replayed, &promoting, &atPause)
		if err != nil {
			return fmt.Errorf("follow replay: %w", err)
		}
		if !inRecovery || (paused && atPause) {
			return nil
		}
		status := StatusReplaying
		if promoting {
			status = StatusPromoting
		}
		if time.Since(reported) >= reportEvery || (promoting && !reportedPromoting) {
			_ = s.set(ctx, tenantHK, id, progress{status: status, replayed: replayed, lsn: deref(lsn), dir: dir})
			reported, reportedPromoting = time.Now(), promoting
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replay did not reach the target within %s", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
