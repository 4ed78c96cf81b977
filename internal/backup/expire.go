package backup

import (
	"context"
	"errors"
	"time"

	"github.com/riverqueue/river"

	"github.com/onevault/readiness/gen/db"
	"github.com/onevault/readiness/internal/storage"
)

// ExpireArgs is the periodic job that applies retention.
type ExpireArgs struct{}

// Kind names the job.
func (ExpireArgs) Kind() string { return "backup.expire" }

// ExpireWorker works ExpireArgs jobs.
type ExpireWorker struct {
	river.WorkerDefaults[ExpireArgs]
	svc *Service
}

// Work applies retention.
func (w *ExpireWorker) Work(ctx context.Context, _ *river.Job[ExpireArgs]) error {
	_, err := w.svc.Expire(ctx)
	return err
}

// PeriodicJobs are the service's periodic jobs: retention every interval (and once at start),
// and the search for backups whose worker died, every deadAfter/2.
func (s *Service) PeriodicJobs(interval, deadAfter time.Duration) []*river.PeriodicJob {
	s.deadAfter = deadAfter
	return []*river.PeriodicJob{
		river.NewPeriodicJob(river.PeriodicInterval(interval),
			func() (river.JobArgs, *river.InsertOpts) { return ExpireArgs{}, nil },
			&river.PeriodicJobOpts{RunOnStart: true}),
		river.NewPeriodicJob(river.PeriodicInterval(max(deadAfter/2, time.Second)),
			func() (river.JobArgs, *river.InsertOpts) { return ReapArgs{}, nil },
			&river.PeriodicJobOpts{RunOnStart: true}),
	}
}

// ReapArgs is the periodic job that finds backups whose worker died.
type ReapArgs struct{}

// Kind names the job.
func (ReapArgs) Kind() string { return "backup.reap" }

// ReapWorker works ReapArgs jobs.
type ReapWorker struct {
	river.WorkerDefaults[ReapArgs]
	svc *Service
}

// Work queues a new attempt for every backup whose worker seems dead.
func (w *ReapWorker) Work(ctx context.Context, _ *river.Job[ReapArgs]) error {
	_, err := w.svc.Reap(ctx)
	return err
}

// Reap finds RUNNING backups whose progress has not moved for deadAfter (a live worker reports
// every second) and queues a new attempt for each. The attempt takes the backup's advisory
// lock first: if the first worker is alive after all, the new attempt waits; if it is dead (its
// connection, and so its lock, went with it), the attempt records the interrupted one FAILED
// and runs again. A process killed mid-backup is therefore retried within about deadAfter.
func (s *Service) Reap(ctx context.Context) (int, error) {
	rows, err := s.store.Queries().BackupStaleRunning(ctx, s.now().Add(-s.deadAfter))
	if err != nil {
		return 0, err
	}
	for _, r := range rows {
		// RetryOf makes the job unique per interrupted attempt: reaping again before the new
		// attempt starts inserts nothing more.
		_, err := s.queue.Insert(ctx, RunArgs{BackupID: r.BackupBk, Tenant: r.TenantBk, RetryOf: int(r.Attempt)},
			&river.InsertOpts{MaxAttempts: s.cfg.MaxAttempts, UniqueOpts: river.UniqueOpts{ByArgs: true}})
		if err != nil {
			return 0, err
		}
		s.cfg.Logger.Warn("backup worker seems dead; queued a new attempt", "backup_id", r.BackupBk.String(),
			"tenant", r.TenantBk, "attempt", r.Attempt)
	}
	return len(rows), nil
}

// Expire deletes the data of backups past their expiry and records them EXPIRED. A backup
// that a retained backup depends on (its chain's FULL or an earlier delta) is kept until
// nothing retained needs it; the history of every backup stays.
func (s *Service) Expire(ctx context.Context) (int, error) {
	rows, err := s.store.Queries().BackupExpiredUnneeded(ctx, s.now())
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range rows {
		if err := s.repo.Delete(deref(r.Location), r.BackupBk.String()); err != nil && !errors.Is(err, storage.ErrNotFound) {
			s.cfg.Logger.Error("delete expired backup", "backup_id", r.BackupBk.String(), "error", err.Error())
			continue
		}
		err := s.store.InTenant(ctx, r.TenantHk, func(q *db.Queries) error {
			// The row keeps what the backup was (sizes, LSNs, timings); only its data is gone.
			return q.BackupStatusInsert(ctx, db.BackupStatusInsertParams{BackupBk: r.BackupBk, TenantHk: r.TenantHk,
				Status: StatusExpired, Phase: optional("expired"), Attempt: r.Attempt, StartedAt: r.StartedAt,
				CompletedAt: r.CompletedAt, ExpiresAt: r.ExpiresAt, SizeBytes: r.SizeBytes,
				StoredSizeBytes: r.StoredSizeBytes, StartLsn: r.StartLsn, EndLsn: r.EndLsn, RowCount: r.RowCount,
				Location: r.Location, DurationMs: r.DurationMs, RecordSource: "readiness-retention"})
		})
		if err != nil {
			return n, err
		}
		s.cfg.Logger.Info("backup expired", "backup_id", r.BackupBk.String())
		n++
	}
	return n, nil
}
