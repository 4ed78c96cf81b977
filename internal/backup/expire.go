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

// PeriodicJobs are the service's periodic jobs: retention every interval, and once at start.
func (s *Service) PeriodicJobs(interval time.Duration) []*river.PeriodicJob {
	return []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(interval),
		func() (river.JobArgs, *river.InsertOpts) { return ExpireArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true})}
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
