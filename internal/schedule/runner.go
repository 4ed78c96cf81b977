package schedule

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jonboulle/clockwork"

	"github.com/onevault/readiness/gen/db"
	"github.com/onevault/readiness/internal/backup"
	"github.com/onevault/readiness/internal/leader"
	"github.com/onevault/readiness/internal/vault"
)

// Fire outcomes, as recorded in backup_schedule_fire.
const (
	FireEnqueued      = "ENQUEUED"
	FireOutsideWindow = "SKIPPED_OUTSIDE_WINDOW"
	FireMissed        = "MISSED"
	FireFailed        = "FAILED"
)

// errFired means the due time was claimed already, by another replica or a catch-up.
var errFired = errors.New("fire already claimed")

// RunnerOptions configure the scheduler.
type RunnerOptions struct {
	SyncEvery     time.Duration // how often schedules are re-read from the store (default 15s)
	CatchUpWithin time.Duration // a fire missed while no replica ran is taken late if this recent (default 1h)
	Logger        *slog.Logger
	// Clock is the runner's time: gocron's fires and the catch-up decisions. The real clock
	// unless a test sets a fake one (clockwork.NewFakeClock) and advances it.
	Clock clockwork.Clock
}

// SchedulerDuty is the name of the scheduler's leader lock (package leader).
const SchedulerDuty = "readiness:scheduler"

// Runner fires the enabled schedules of every tenant: gocron runs each schedule's cron
// expression in its time zone; a fire inside the schedule's window enqueues a backup of the
// schedule's type and retention, linked to the schedule.
//
// Policies (documented in the README):
//   - A fire outside the execution window is skipped and recorded SKIPPED_OUTSIDE_WINDOW.
//   - Several replicas: only the replica holding the scheduler's advisory lock (gocron's
//     elector) fires, and every fire is claimed by inserting its (schedule, due time) row in the
//     same transaction as its backup, so a due time makes one backup even across a failover.
//   - Catch-up: a due time that passed while no replica ran (or while the leader changed) is
//     fired once, late, when it is less than CatchUpWithin old and the window (if any) is still
//     open; otherwise it is recorded MISSED. Only the newest missed due time is caught up.
//   - Daylight saving: a wall-clock time that does not exist on the spring-forward day is
//     skipped that day; one that occurs twice on the fall-back day fires once (see NextRuns).
type Runner struct {
	store   *vault.Store
	backups *backup.Service
	opts    RunnerOptions
	now     func() time.Time

	mu      sync.Mutex
	cron    gocron.Scheduler
	elector *leader.Elector
	jobs    map[uuid.UUID]registered
	cancel  context.CancelFunc
	done    chan struct{}
}

type registered struct {
	version int32
	job     gocron.Job
	def     runnable
}

// runnable is a schedule as the runner needs it.
type runnable struct {
	id        uuid.UUID
	tenant    vault.TenantRef
	version   int32
	def       Definition
	loc       *time.Location
	updatedAt time.Time
}

// NewRunner returns a runner; Start starts it.
func NewRunner(store *vault.Store, backups *backup.Service, opts RunnerOptions) (*Runner, error) {
	if opts.SyncEvery <= 0 {
		opts.SyncEvery = 15 * time.Second
	}
	if opts.CatchUpWithin <= 0 {
		opts.CatchUpWithin = time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	r := &Runner{store: store, backups: backups, opts: opts, now: opts.Clock.Now, jobs: map[uuid.UUID]registered{},
		elector: leader.New(store.Pool.Config().ConnConfig, SchedulerDuty)}
	var err error
	r.cron, err = gocron.NewScheduler(gocron.WithDistributedElector(r.elector), gocron.WithLocation(time.UTC),
		gocron.WithClock(opts.Clock))
	return r, err
}

// Start starts gocron with the PostgreSQL elector and keeps its jobs in step with the store.
func (r *Runner) Start(ctx context.Context) error {
	s := r.cron
	ctx, r.cancel = context.WithCancel(ctx)
	r.done = make(chan struct{})
	if err := r.Sync(ctx); err != nil {
		r.opts.Logger.Error("schedule sync", "error", err.Error())
	}
	s.Start()
	go func() {
		defer close(r.done)
		t := r.opts.Clock.NewTicker(r.opts.SyncEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.Chan():
				if err := r.Sync(ctx); err != nil && ctx.Err() == nil {
					r.opts.Logger.Error("schedule sync", "error", err.Error())
				}
			}
		}
	}()
	return nil
}

// Stop stops firing; a fire in progress finishes.
func (r *Runner) Stop() error {
	defer r.elector.Close()
	if r.cancel == nil {
		return r.cron.Shutdown()
	}
	r.cancel()
	<-r.done
	return r.cron.Shutdown()
}

// Sync registers new and changed schedules with gocron, removes deleted and paused ones, and,
// on the leader, catches up or records fires that no replica took.
func (r *Runner) Sync(ctx context.Context) error {
	rows, err := r.store.Queries().ScheduleRunnable(ctx)
	if err != nil {
		return err
	}
	seen := map[uuid.UUID]bool{}
	leader := r.elector.IsLeader(ctx) == nil
	for _, row := range rows {
		rn := runnable{id: row.ScheduleBk, tenant: vault.TenantRef{ID: row.TenantBk, HK: row.TenantHk}, version: row.Version,
			def: definition(row.ScheduleName, row.BackupType, row.BackupScope, row.SchemaName, row.CronExpression,
				row.Timezone, row.RetentionPeriod, row.WindowStart, row.WindowEnd, row.NotifyOnSuccess,
				row.NotifyOnFailure, row.Recipients, row.Enabled),
			updatedAt: row.UpdatedAt}
		if rn.loc, err = LoadLocation(rn.def.Timezone); err != nil {
			r.opts.Logger.Error("schedule has a bad time zone", "schedule_id", rn.id.String(), "error", err.Error())
			continue
		}
		seen[rn.id] = true
		if err := r.register(rn); err != nil {
			r.opts.Logger.Error("register schedule", "schedule_id", rn.id.String(), "error", err.Error())
			continue
		}
		if leader {
			if err := r.catchUp(ctx, rn); err != nil {
				r.opts.Logger.Error("schedule catch-up", "schedule_id", rn.id.String(), "error", err.Error())
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, reg := range r.jobs {
		if !seen[id] {
			_ = r.cron.RemoveJob(reg.job.ID())
			delete(r.jobs, id)
		}
	}
	return nil
}

func (r *Runner) register(rn runnable) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if reg, ok := r.jobs[rn.id]; ok {
		if reg.version == rn.version {
			return nil
		}
		_ = r.cron.RemoveJob(reg.job.ID())
		delete(r.jobs, rn.id)
	}
	id := rn.id
	job, err := r.cron.NewJob(gocron.CronJob("TZ="+rn.def.Timezone+" "+rn.def.Cron, false),
		gocron.NewTask(func() { r.fireNow(id) }),
		gocron.WithName("schedule "+id.String()),
		gocron.WithSingletonMode(gocron.LimitModeReschedule))
	if err != nil {
		return err
	}
	r.jobs[rn.id] = registered{version: rn.version, job: job, def: rn}
	return nil
}

// fireNow is gocron's task: the due time is the current minute in the schedule's zone.
func (r *Runner) fireNow(id uuid.UUID) {
	r.mu.Lock()
	reg, ok := r.jobs[id]
	r.mu.Unlock()
	if !ok {
		return
	}
	due := r.now().In(reg.def.loc).Truncate(time.Minute)
	if err := r.fire(context.Background(), reg.def, due, false); err != nil && !errors.Is(err, errFired) {
		r.opts.Logger.Error("schedule fire", "schedule_id", id.String(), "due", due, "error", err.Error())
	}
}

// fire takes one due time of a schedule: skipped outside the window, else a backup enqueued
// with the fire claimed in the same transaction.
func (r *Runner) fire(ctx context.Context, rn runnable, due time.Time, late bool) error {
	log := r.opts.Logger.With("schedule_id", rn.id.String(), "tenant", rn.tenant.ID, "due", due.Format(time.RFC3339))
	if rn.def.Window != nil && !rn.def.Window.Contains(due.In(rn.loc)) {
		err := r.record(ctx, rn, due, FireOutsideWindow, nil, "outside the execution window "+rn.def.Window.Start+"-"+rn.def.Window.End)
		if err == nil {
			log.Info("schedule fire skipped: outside its window")
		}
		return err
	}
	detail := ""
	if late {
		detail = "caught up late: no replica fired it on time"
	}
	e, err := r.backups.Create(ctx, rn.tenant, backup.Request{
		Type: rn.def.BackupType, Scope: rn.def.BackupScope, SchemaName: rn.def.SchemaName, Compression: true,
		Retention: rn.def.Retention, Priority: 5, RequestedBy: "schedule:" + rn.def.Name, ScheduleID: &rn.id,
		Before: func(ctx context.Context, q *db.Queries, backupID uuid.UUID) error {
			_, err := q.ScheduleFireClaim(ctx, db.ScheduleFireClaimParams{ScheduleBk: rn.id, DueAt: due,
				TenantHk: rn.tenant.HK, Outcome: FireEnqueued, BackupBk: &backupID, Detail: optional(detail)})
			if errors.Is(err, pgx.ErrNoRows) {
				return errFired
			}
			return err
		},
	})
	switch {
	case errors.Is(err, errFired):
		return err
	case err != nil:
		// The backup could not even be queued (a DIFFERENTIAL with no FULL yet, say): the fire
		// is recorded FAILED with the reason, and counts in the schedule's metrics.
		if rerr := r.record(ctx, rn, due, FireFailed, nil, err.Error()); rerr != nil {
			return errors.Join(err, rerr)
		}
		log.Warn("schedule fire failed", "error", err.Error())
		return nil
	}
	log.Info("schedule fired", "backup_id", e.BackupBk.String(), "late", late)
	return nil
}

func (r *Runner) record(ctx context.Context, rn runnable, due time.Time, outcome string, backupID *uuid.UUID, detail string) error {
	err := r.store.InTenant(ctx, rn.tenant.HK, func(q *db.Queries) error {
		_, err := q.ScheduleFireClaim(ctx, db.ScheduleFireClaimParams{ScheduleBk: rn.id, DueAt: due,
			TenantHk: rn.tenant.HK, Outcome: outcome, BackupBk: backupID, Detail: optional(detail)})
		return err
	})
	if errors.Is(err, vault.ErrNotFound) {
		return errFired
	}
	return err
}

// catchUpGrace leaves a due time this recent to gocron's own fire.
const catchUpGrace = 90 * time.Second

// maxMissed bounds the MISSED rows one sync writes for one schedule.
const maxMissed = 100

// catchUp looks at the due times since the schedule's last fire (or its last change) that no
// replica took: the newest is fired late if recent enough and its window is open, the others are
// recorded MISSED.
func (r *Runner) catchUp(ctx context.Context, rn runnable) error {
	var last time.Time
	err := r.store.InTenant(ctx, rn.tenant.HK, func(q *db.Queries) error {
		var err error
		last, err = q.ScheduleFireLatest(ctx, rn.id)
		return err
	})
	if err != nil {
		return err
	}
	now := r.now()
	from := rn.updatedAt
	if last.After(from) {
		from = last
	}
	if from.Before(now.Add(-25 * time.Hour)) {
		from = now.Add(-25 * time.Hour)
	}
	sched, err := ParseCron(rn.def.Cron)
	if err != nil {
		return err
	}
	var dues []time.Time
	for t := sched.Next(from.In(rn.loc)); !t.IsZero() && t.Before(now.Add(-catchUpGrace)); t = sched.Next(t) {
		if rn.def.Window == nil || rn.def.Window.Contains(t) {
			dues = append(dues, t)
		}
	}
	if len(dues) == 0 {
		return nil
	}
	newest := dues[len(dues)-1]
	open := rn.def.Window == nil || rn.def.Window.Contains(now.In(rn.loc))
	if now.Sub(newest) <= r.opts.CatchUpWithin && open {
		dues = dues[:len(dues)-1]
		if err := r.fire(ctx, rn, newest, true); err != nil && !errors.Is(err, errFired) {
			return err
		}
	}
	if len(dues) > maxMissed {
		dues = dues[len(dues)-maxMissed:]
	}
	for _, d := range dues {
		if err := r.record(ctx, rn, d, FireMissed, nil, "no replica was running at the due time"); err != nil && !errors.Is(err, errFired) {
			return err
		}
	}
	return nil
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
