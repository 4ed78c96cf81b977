package schedule

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/onevault/readiness/gen/db"
	"github.com/onevault/readiness/internal/backup"
	"github.com/onevault/readiness/internal/jobs"
	"github.com/onevault/readiness/internal/notify"
	"github.com/onevault/readiness/internal/vault"
)

// Notifications sends the e-mails that schedules' notificationSettings ask for when one of
// their backups finishes (COMPLETED, or FAILED with no attempt left). Each e-mail is a job of
// its own, retried with backoff: a failed send is logged and retried and never fails the backup.
type Notifications struct {
	Store  *vault.Store
	Queue  func() jobs.Inserter // the job client, which exists after the backup service
	Logger *slog.Logger
}

// BackupFinished is backup.Config.OnFinished.
func (n *Notifications) BackupFinished(ctx context.Context, e backup.Execution) {
	var sched db.BackupScheduleOfRow
	err := n.Store.InTenant(ctx, e.TenantHk, func(q *db.Queries) error {
		var err error
		sched, err = q.BackupScheduleOf(ctx, db.BackupScheduleOfParams{BackupBk: e.BackupBk, TenantHk: e.TenantHk})
		return err
	})
	if errors.Is(err, vault.ErrNotFound) {
		return // not a scheduled backup
	}
	if err != nil {
		n.Logger.Error("read the schedule of a finished backup", "backup_id", e.BackupBk.String(), "error", err.Error())
		return
	}
	failed := e.Status == backup.StatusFailed
	if len(sched.Recipients) == 0 || (failed && !sched.NotifyOnFailure) || (!failed && !sched.NotifyOnSuccess) {
		return
	}
	tenant := "?"
	if t, err := n.Store.Queries().TenantGetByHK(ctx, e.TenantHk); err == nil {
		tenant = t.TenantBk
	}
	r := notify.BackupReport{Tenant: tenant, ScheduleName: sched.ScheduleName, ScheduleID: sched.ScheduleBk.String(),
		BackupID: e.BackupBk.String(), BackupType: e.BackupType, BackupScope: e.BackupScope, Status: e.Status,
		Attempts: int(e.Attempt)}
	if e.SizeBytes != nil {
		r.SizeBytes = *e.SizeBytes
	}
	if e.StoredSizeBytes != nil {
		r.StoredSizeBytes = *e.StoredSizeBytes
	}
	if e.DurationMs != nil {
		r.Duration = time.Duration(*e.DurationMs) * time.Millisecond
	}
	if e.StartedAt != nil {
		r.StartedAt = *e.StartedAt
	}
	if e.CompletedAt != nil {
		r.CompletedAt = *e.CompletedAt
	}
	if e.ErrorMessage != nil {
		r.ErrorMessage = *e.ErrorMessage
	}
	msg := r.Message(sched.Recipients)
	if _, err := n.Queue().Insert(ctx, notify.EmailArgs{Message: msg, Category: "schedule.backup"}, nil); err != nil {
		n.Logger.Error("queue schedule notification", "backup_id", e.BackupBk.String(), "error", err.Error())
	}
}
