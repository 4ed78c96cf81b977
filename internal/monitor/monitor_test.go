package monitor_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/gen/db"
	"github.com/onevault/readiness/internal/backup"
	"github.com/onevault/readiness/internal/monitor"
	"github.com/onevault/readiness/internal/pgtest"
	"github.com/onevault/readiness/internal/schedule"
	"github.com/onevault/readiness/internal/vault"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// fixture is a migrated database with registered tenants, into which tests write backups,
// schedules and fires as the service writes them, at the times they choose.
type fixture struct {
	t       *testing.T
	ctx     context.Context
	url     string
	store   *vault.Store
	tenants map[string]vault.TenantRef
}

func newFixture(t *testing.T, tenants ...string) *fixture {
	t.Helper()
	ctx := context.Background()
	url := pgtest.Server(t).NewDatabaseFrom(t, "migrated", vault.Migrate)
	store, err := vault.Open(ctx, url)
	require.NoError(t, err)
	t.Cleanup(store.Close)
	for _, name := range tenants {
		_, err := store.Queries().TenantCreate(ctx, db.TenantCreateParams{TenantBk: name, DisplayName: name,
			ChangedBy: "test", RecordSource: "test"})
		require.NoError(t, err)
	}
	f := fixtureOn(t, store, tenants...)
	f.url = url
	return f
}

// fixtureOn is a fixture on a store whose tenants are registered already.
func fixtureOn(t *testing.T, store *vault.Store, tenants ...string) *fixture {
	t.Helper()
	f := &fixture{t: t, ctx: context.Background(), store: store, tenants: map[string]vault.TenantRef{}}
	for _, name := range tenants {
		hk, err := store.TenantHK(f.ctx, name)
		require.NoError(t, err)
		f.tenants[name] = vault.TenantRef{ID: name, HK: hk}
	}
	return f
}

func (f *fixture) hk(tenant string) []byte { return f.tenants[tenant].HK }

// spec is a backup to write: its request, when it was created, where it got to and its figures.
type spec struct {
	tenant, typ, scope, schema, status string
	created                            time.Time
	run                                time.Duration // how long the run took (done and FAILED backups)
	size, stored                       int64
	schedule                           uuid.UUID // the schedule that made it; zero for none
}

// written is a backup as written.
type written struct {
	id        uuid.UUID
	completed time.Time // when its run completed; zero unless it is done
	finished  time.Time // when it reached its status
}

// backup writes a backup the way the service does: hub, request, then one status row per step
// (QUEUED, RUNNING, COMPLETED or FAILED, then VERIFIED, VERIFY_FAILED or EXPIRED, each
// carrying the figures forward), in a tenant transaction, so the triggers fill the
// point-in-time row.
func (f *fixture) backup(s spec) written {
	f.t.Helper()
	if s.typ == "" {
		s.typ = backup.TypeFull
	}
	if s.scope == "" {
		s.scope = backup.ScopeTenant
	}
	var schema *string
	if s.schema != "" {
		schema = &s.schema
	}
	id := uuid.New()
	hk := f.hk(s.tenant)
	w := written{id: id}
	err := f.store.InTenantTx(f.ctx, hk, func(tx pgx.Tx, _ *db.Queries) error {
		if _, err := tx.Exec(f.ctx, `INSERT INTO hub_backup_execution (backup_hk, backup_bk, tenant_hk, load_date, record_source)
			VALUES (hash_key($1::uuid::text), $1, $2, $3, 'test')`, id, hk, s.created); err != nil {
			return err
		}
		if _, err := tx.Exec(f.ctx, `INSERT INTO sat_backup_execution_request (backup_hk, load_date, hash_diff, tenant_hk,
				backup_type, backup_scope, schema_name, compression_enabled, verify_backup, storage_location,
				retention_period, priority, requested_by, record_source)
			VALUES (hash_key($1::uuid::text), $2, hash_key($1::uuid::text), $3, $4, $5, $6, true, false, '', 'P7Y', 5, 'test', 'test')`,
			id, s.created, hk, s.typ, s.scope, schema); err != nil {
			return err
		}
		if s.schedule != uuid.Nil {
			if _, err := tx.Exec(f.ctx, `INSERT INTO link_backup_schedule (link_hk, backup_hk, schedule_hk, tenant_hk, load_date, record_source)
				VALUES (hash_key($1::uuid::text, $2::uuid::text), hash_key($1::uuid::text), hash_key($2::uuid::text), $3, $4, 'test')`,
				id, s.schedule, hk, s.created); err != nil {
				return err
			}
		}
		row := func(at time.Time, status string, started, completed *time.Time, withFigures bool, errMsg *string) error {
			var duration, size, stored *int64
			if withFigures {
				ms := s.run.Milliseconds()
				duration, size, stored = &ms, &s.size, &s.stored
			}
			w.finished = at
			_, err := tx.Exec(f.ctx, `INSERT INTO sat_backup_execution_status (backup_hk, load_date, tenant_hk, status, attempt,
					started_at, completed_at, size_bytes, stored_size_bytes, duration_ms, error_message, record_source)
				VALUES (hash_key($1::uuid::text), $2, $3, $4, 1, $5, $6, $7, $8, $9, $10, 'test')`,
				id, at, hk, status, started, completed, size, stored, duration, errMsg)
			return err
		}
		if err := row(s.created, backup.StatusQueued, nil, nil, false, nil); err != nil || s.status == backup.StatusQueued {
			return err
		}
		started := s.created.Add(time.Second)
		if err := row(started, backup.StatusRunning, &started, nil, false, nil); err != nil || s.status == backup.StatusRunning {
			return err
		}
		end := started.Add(s.run)
		if s.status == backup.StatusFailed {
			msg := "disk full"
			return row(end, backup.StatusFailed, &started, nil, false, &msg)
		}
		w.completed = end
		if err := row(end, backup.StatusCompleted, &started, &end, true, nil); err != nil || s.status == backup.StatusCompleted {
			return err
		}
		return row(end.Add(time.Second), s.status, &started, &end, true, nil)
	})
	require.NoError(f.t, err)
	return w
}

// schedule stores a schedule, created at the given time.
func (f *fixture) schedule(tenant string, d schedule.Definition, created time.Time) uuid.UUID {
	f.t.Helper()
	if d.BackupType == "" {
		d.BackupType = backup.TypeFull
	}
	if d.BackupScope == "" {
		d.BackupScope = backup.ScopeTenant
	}
	d.Timezone, d.Retention = "UTC", "P30D"
	sc, err := schedule.NewStore(f.store).Create(f.ctx, f.hk(tenant), d, "test")
	require.NoError(f.t, err)
	_, err = f.store.Pool.Exec(f.ctx, `UPDATE hub_backup_schedule SET load_date = $2 WHERE schedule_bk = $1`, sc.ID, created)
	require.NoError(f.t, err)
	return sc.ID
}

// fire records a fire of a schedule as the scheduler does.
func (f *fixture) fire(tenant string, sched uuid.UUID, due, fired time.Time, outcome string, backupID *uuid.UUID) {
	f.t.Helper()
	_, err := f.store.Pool.Exec(f.ctx, `INSERT INTO backup_schedule_fire (schedule_hk, due_at, tenant_hk, fired_at, outcome, backup_bk)
		VALUES (hash_key($1::uuid::text), $2, $3, $4, $5, $6)`, sched, due, f.hk(tenant), fired, outcome, backupID)
	require.NoError(f.t, err)
}

// failedJob records a job that river discarded after its last attempt.
func (f *fixture) failedJob(tenant, kind string, finalized time.Time) {
	f.t.Helper()
	_, err := f.store.Pool.Exec(f.ctx, `INSERT INTO river_job (args, kind, max_attempts, attempt, state, finalized_at, attempted_at, errors)
		VALUES (jsonb_build_object('backupId', gen_random_uuid(), 'tenant', $1::text), $2, 3, 3, 'discarded', $3, $3,
		        ARRAY[jsonb_build_object('at', now(), 'attempt', 3, 'error', 'boom')])`, tenant, kind, finalized)
	require.NoError(f.t, err)
}

func ptr[T any](v T) *T { return &v }

// quiet is a logger for tests that make checks fail on purpose.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// metricsScenario is what writeMetricsScenario wrote.
type metricsScenario struct {
	now                  time.Time
	tenantNewest, newest written // newest good TENANT backup, newest good overall (a SCHEMA FULL)
	hourly, paused       uuid.UUID
	onTime, failedOf     written // the backups of the on-time and the late fire
}

// writeMetricsScenario writes acme's backups, schedules and fires of the metrics tests, and a
// backup, a schedule and a fire of globex that must not count for acme.

func writeMetricsScenario(f *fixture) metricsScenario {
	now := time.Now().UTC().Truncate(time.Millisecond)
	sc := metricsScenario{now: now}
	h := time.Hour
	globex := f.schedule("globex", schedule.Definition{Name: "g", Cron: "0 * * * *", Enabled: true}, now.Add(-48*h))
	sc.hourly = f.schedule("acme", schedule.Definition{Name: "hourly", Cron: "0 * * * *", Enabled: true}, now.Add(-10*24*h))
	sc.paused = f.schedule("acme", schedule.Definition{Name: "paused", Cron: "0 3 * * *"}, now.Add(-10*24*h))

	// Created in the last 24h: the done ones ran 10, 20, 30, 40 and 50 s.
	f.backup(spec{tenant: "acme", status: backup.StatusCompleted, created: now.Add(-10 * h), run: 10 * time.Second, size: 1000, stored: 400})
	sc.onTime = f.backup(spec{tenant: "acme", typ: backup.TypeIncremental, status: backup.StatusVerified, created: now.Add(-5 * h),
		run: 20 * time.Second, size: 2000, stored: 800, schedule: sc.hourly})
	sc.tenantNewest = sc.onTime
	f.backup(spec{tenant: "acme", typ: backup.TypeDifferential, status: backup.StatusVerifyFailed, created: now.Add(-4 * h),
		run: 30 * time.Second, size: 3000, stored: 1200})
	sc.newest = f.backup(spec{tenant: "acme", scope: backup.ScopeSchema, schema: "sales", status: backup.StatusCompleted,
		created: now.Add(-3 * h), run: 40 * time.Second, size: 4000, stored: 1600})
	sc.failedOf = f.backup(spec{tenant: "acme", status: backup.StatusFailed, created: now.Add(-2 * h), run: 5 * time.Second,
		schedule: sc.hourly})
	f.backup(spec{tenant: "acme", typ: backup.TypeIncremental, status: backup.StatusRunning, created: now.Add(-30 * time.Minute)})
	f.backup(spec{tenant: "acme", status: backup.StatusQueued, created: now.Add(-time.Minute)})
	f.backup(spec{tenant: "acme", status: backup.StatusExpired, created: now.Add(-20 * h), run: 50 * time.Second, size: 5000, stored: 2000})
	// Older than a day: counts in storage used only.
	f.backup(spec{tenant: "acme", status: backup.StatusCompleted, created: now.Add(-48 * h), run: 100 * time.Second, size: 10000, stored: 5000})
	// Another tenant's backup, newer and bigger than any of acme's.
	f.backup(spec{tenant: "globex", status: backup.StatusCompleted, created: now.Add(-10 * time.Minute), run: time.Hour,
		size: 1 << 40, stored: 1 << 39})

	// Fires in the last 24h: one on time, one late whose backup failed, one outside the window,
	// one missed, one that could not queue its backup; and a missed one older than a day.
	due := now.Truncate(h)
	f.fire("acme", sc.hourly, due.Add(-5*h), due.Add(-5*h+2*time.Second), schedule.FireEnqueued, &sc.onTime.id)
	f.fire("acme", sc.hourly, due.Add(-2*h), due.Add(-2*h+5*time.Minute), schedule.FireEnqueued, &sc.failedOf.id)
	f.fire("acme", sc.hourly, due.Add(-3*h), due.Add(-3*h), schedule.FireOutsideWindow, nil)
	f.fire("acme", sc.hourly, due.Add(-6*h), due.Add(-4*h), schedule.FireMissed, nil)
	f.fire("acme", sc.hourly, due.Add(-7*h), due.Add(-7*h), schedule.FireFailed, nil)
	f.fire("acme", sc.hourly, due.Add(-30*h), due.Add(-30*h), schedule.FireMissed, nil)
	f.fire("globex", globex, due.Add(-h), due.Add(-h), schedule.FireMissed, nil)
	return sc
}

func TestBackupMetrics(t *testing.T) {
	f := newFixture(t, "acme", "globex")
	sc := writeMetricsScenario(f)
	svc := monitor.NewService(f.store, monitor.Options{Now: func() time.Time { return sc.now }})
	day, err := svc.BackupMetrics(f.ctx, f.hk("acme"), monitor.Query{Range: 24 * time.Hour, Sections: monitor.SectionAll})
	require.NoError(t, err)

	t.Run("counts are by status and type, of the backups created in the range", func(t *testing.T) {
		c := day.Counts
		require.NotNil(t, c)
		require.EqualValues(t, 8, c.Total, "the 48h-old backup and globex's are not counted")
		require.Equal(t, map[string]int64{"QUEUED": 1, "RUNNING": 1, "COMPLETED": 2, "FAILED": 1, "VERIFIED": 1,
			"VERIFY_FAILED": 1, "EXPIRED": 1}, c.ByStatus)
		require.Equal(t, map[string]int64{"FULL": 5, "INCREMENTAL": 2, "DIFFERENTIAL": 1}, c.ByType)
	})

	t.Run("the success rate is good over finished backups", func(t *testing.T) {
		require.NotNil(t, day.Counts.SuccessRate)
		require.InDelta(t, 3.0/5.0, *day.Counts.SuccessRate, 1e-9, "COMPLETED 2 + VERIFIED 1 over those + FAILED + VERIFY_FAILED")
	})

	t.Run("durations are the average, continuous p95 and longest of done backups", func(t *testing.T) {
		d := day.Duration
		require.NotNil(t, d)
		require.InDelta(t, 30000, *d.AverageMs, 1e-6)
		require.InDelta(t, 48000, *d.P95Ms, 1e-6, "40s + 0.8 of the way to 50s")
		require.EqualValues(t, 50000, *d.MaxMs)
	})

	t.Run("sizes, compression and throughput are of done backups; storage used of every kept one", func(t *testing.T) {
		z := day.Size
		require.NotNil(t, z)
		require.EqualValues(t, 15000, z.TotalBytes)
		require.EqualValues(t, 6000, z.StoredBytes)
		require.InDelta(t, 3000, *z.AverageBytes, 1e-9)
		require.InDelta(t, 0.4, *z.CompressionRatio, 1e-9)
		require.InDelta(t, 100, *z.ThroughputBytesPerSec, 1e-9, "15000 bytes in 150 s")
		require.EqualValues(t, 400+800+1200+1600+5000, *day.StorageUsedBytes,
			"every backup not EXPIRED or FAILED, the 48h-old one too; not globex's")
	})

	t.Run("freshness names the newest good backup of each scope and the recovery point age", func(t *testing.T) {
		fr := day.Freshness
		require.NotNil(t, fr)
		require.WithinDuration(t, sc.newest.completed, *fr.LastGoodAt, time.Millisecond)
		require.WithinDuration(t, sc.newest.completed, *fr.LastFullAt, time.Millisecond, "the SCHEMA FULL is the newest FULL")
		require.EqualValues(t, int64(sc.now.Sub(sc.newest.completed)/time.Second), *fr.RecoveryPointAgeSeconds)
		require.Len(t, fr.ByScope, 2)
		require.Equal(t, backup.ScopeTenant, fr.ByScope[0].Scope)
		require.Equal(t, sc.tenantNewest.id, fr.ByScope[0].BackupID, "the VERIFIED incremental, newer than the COMPLETED FULL")
		require.Equal(t, backup.TypeIncremental, fr.ByScope[0].Type)
		require.EqualValues(t, int64(sc.now.Sub(sc.tenantNewest.completed)/time.Second), fr.ByScope[0].AgeSeconds)
		require.Equal(t, backup.ScopeSchema, fr.ByScope[1].Scope)
		require.Equal(t, sc.newest.id, fr.ByScope[1].BackupID)
		require.Equal(t, ptr("sales"), fr.ByScope[1].SchemaName)
	})

	t.Run("schedule fires in the range are counted by outcome, late and failed", func(t *testing.T) {
		a := day.Schedules
		require.NotNil(t, a)
		require.Equal(t, 2, a.Schedules)
		require.Equal(t, 1, a.Enabled)
		require.EqualValues(t, 2, a.Enqueued)
		require.EqualValues(t, 1, a.SkippedOutsideWindow)
		require.EqualValues(t, 1, a.Missed, "the missed fire of 30h ago is out of the range")
		require.EqualValues(t, 1, a.Late, "queued 5 minutes after its due time")
		require.EqualValues(t, 2, a.Failed, "one could not queue its backup, one's backup failed")
		require.NotNil(t, a.NextRunAt)
		require.Equal(t, sc.now.Truncate(time.Hour).Add(time.Hour), a.NextRunAt.UTC(), "the hourly schedule's next fire")
	})

	t.Run("an hour's range holds only the running and queued backups", func(t *testing.T) {
		hour, err := svc.BackupMetrics(f.ctx, f.hk("acme"), monitor.Query{Range: time.Hour, Sections: monitor.SectionAll})
		require.NoError(t, err)
		require.EqualValues(t, 2, hour.Counts.Total)
		require.Nil(t, hour.Counts.SuccessRate, "none finished")
		require.Nil(t, hour.Duration.AverageMs)
		require.Nil(t, hour.Duration.P95Ms)
		require.Nil(t, hour.Duration.MaxMs)
		require.Nil(t, hour.Size.AverageBytes)
		require.Nil(t, hour.Size.CompressionRatio)
		require.Nil(t, hour.Size.ThroughputBytesPerSec)
		require.EqualValues(t, 9000, *hour.StorageUsedBytes, "storage used is of all time")
		require.NotNil(t, hour.Freshness.LastGoodAt, "freshness is of all time")
		require.Zero(t, hour.Schedules.Enqueued)
	})

	t.Run("only the sections asked for are computed", func(t *testing.T) {
		m, err := svc.BackupMetrics(f.ctx, f.hk("acme"), monitor.Query{Range: time.Hour, Sections: monitor.SectionDuration})
		require.NoError(t, err)
		require.NotNil(t, m.Duration)
		require.Nil(t, m.Counts)
		require.Nil(t, m.Size)
		require.Nil(t, m.StorageUsedBytes)
		require.Nil(t, m.Freshness)
		require.Nil(t, m.Schedules)
	})

	t.Run("the other tenant sees only its own backup", func(t *testing.T) {
		m, err := svc.BackupMetrics(f.ctx, f.hk("globex"), monitor.Query{Range: 24 * time.Hour, Sections: monitor.SectionAll})
		require.NoError(t, err)
		require.EqualValues(t, 1, m.Counts.Total)
		require.EqualValues(t, 1<<40, m.Size.TotalBytes)
		require.EqualValues(t, 1<<39, *m.StorageUsedBytes)
		require.InDelta(t, 1, *m.Counts.SuccessRate, 1e-9)
		require.EqualValues(t, 1, m.Schedules.Missed)
		require.Equal(t, 1, m.Schedules.Schedules)
	})

	t.Run("a tenant without backups has counts of zero and no averages, rates or ages", func(t *testing.T) {
		f2 := newFixture(t, "initech")
		m, err := monitor.NewService(f2.store, monitor.Options{}).BackupMetrics(f2.ctx, f2.hk("initech"),
			monitor.Query{Range: 30 * 24 * time.Hour, Sections: monitor.SectionAll})
		require.NoError(t, err)
		require.Zero(t, m.Counts.Total)
		require.Nil(t, m.Counts.SuccessRate)
		require.Nil(t, m.Duration.P95Ms)
		require.Zero(t, *m.StorageUsedBytes)
		require.Nil(t, m.Freshness.LastGoodAt)
		require.Nil(t, m.Freshness.RecoveryPointAgeSeconds)
		require.Empty(t, m.Freshness.ByScope)
		require.Zero(t, m.Schedules.Schedules)
		require.Nil(t, m.Schedules.NextRunAt)
	})
}

func TestPointInTimeFigures(t *testing.T) {
	f := newFixture(t, "acme")
	b := f.backup(spec{tenant: "acme", status: backup.StatusVerified, created: time.Now().Add(-time.Hour),
		run: 3 * time.Second, size: 10, stored: 4})
	var row db.PitBackupExecution
	err := f.store.Pool.QueryRow(f.ctx, `SELECT status, completed_at, duration_ms, size_bytes, stored_size_bytes
		FROM pit_backup_execution WHERE backup_bk = $1`, b.id).Scan(&row.Status, &row.CompletedAt, &row.DurationMs,
		&row.SizeBytes, &row.StoredSizeBytes)
	require.NoError(t, err)

	t.Run("the point-in-time row carries the figures of the newest status row", func(t *testing.T) {
		require.Equal(t, backup.StatusVerified, row.Status)
		require.WithinDuration(t, b.completed, *row.CompletedAt, time.Microsecond)
		require.EqualValues(t, 3000, *row.DurationMs)
		require.EqualValues(t, 10, *row.SizeBytes)
		require.EqualValues(t, 4, *row.StoredSizeBytes)
	})

	t.Run("a status row older than the newest does not overwrite the figures", func(t *testing.T) {
		_, err := f.store.Pool.Exec(f.ctx, `INSERT INTO sat_backup_execution_status (backup_hk, load_date, tenant_hk, status,
				size_bytes, record_source)
			VALUES (hash_key($1::uuid::text), $2, $3, 'RUNNING', 999, 'test')`, b.id, b.completed.Add(-time.Millisecond), f.hk("acme"))
		require.NoError(t, err)
		var size int64
		var status string
		require.NoError(t, f.store.Pool.QueryRow(f.ctx, `SELECT status, size_bytes FROM pit_backup_execution WHERE backup_bk = $1`,
			b.id).Scan(&status, &size))
		require.Equal(t, backup.StatusVerified, status)
		require.EqualValues(t, 10, size)
	})
}

// metrics are the health metrics of a name.
func metrics(ms []monitor.Metric, name string) []monitor.Metric {
	var out []monitor.Metric
	for _, m := range ms {
		if m.Name == name {
			out = append(out, m)
		}
	}
	return out
}

// metric finds the health metric of a name whose details contain what.
func metric(t *testing.T, ms []monitor.Metric, name, what string) monitor.Metric {
	t.Helper()
	for _, m := range ms {
		if m.Name == name && strings.Contains(m.Details, what) {
			return m
		}
	}
	require.Failf(t, "metric not found", "%s with %q in %+v", name, what, ms)
	return monitor.Metric{}
}

func TestBackupHealth(t *testing.T) {
	f := newFixture(t, "acme", "globex", "initech", "hooli")
	now := time.Now().UTC().Truncate(time.Millisecond)
	h := time.Hour
	long := now.Add(-10 * 24 * h)
	hourly := f.schedule("acme", schedule.Definition{Name: "hourly", Cron: "0 * * * *", Enabled: true}, long)
	daily := f.schedule("acme", schedule.Definition{Name: "daily", Cron: "0 2 * * *", Enabled: true}, long)
	weekly := f.schedule("acme", schedule.Definition{Name: "weekly", Cron: "0 4 * * 0", Enabled: true}, long)
	f.schedule("acme", schedule.Definition{Name: "never ran", Cron: "30 * * * *", Enabled: true}, long)
	f.schedule("acme", schedule.Definition{Name: "new", Cron: "0 5 1 1 *", Enabled: true}, now)
	f.schedule("acme", schedule.Definition{Name: "paused", Cron: "* * * * *"}, long)

	fresh := f.backup(spec{tenant: "acme", status: backup.StatusCompleted, created: now.Add(-40 * time.Minute), run: 10 * time.Minute, schedule: hourly})
	f.backup(spec{tenant: "acme", status: backup.StatusVerified, created: now.Add(-48 * h), run: time.Minute, schedule: daily})
	f.backup(spec{tenant: "acme", status: backup.StatusCompleted, created: now.Add(-30 * 24 * h), run: time.Minute, schedule: weekly})
	// The daily schedule's newer backups (of schema sales) failed: the last backup of that scope failed.
	f.backup(spec{tenant: "acme", scope: backup.ScopeSchema, schema: "sales", status: backup.StatusFailed,
		created: now.Add(-24 * h).Add(time.Minute), run: time.Minute, schedule: daily})
	f.backup(spec{tenant: "acme", scope: backup.ScopeSchema, schema: "sales", status: backup.StatusFailed,
		created: now.Add(-2 * h), run: time.Minute, schedule: daily})
	// A failure older than a day does not count.
	f.backup(spec{tenant: "acme", status: backup.StatusFailed, created: now.Add(-50 * h), run: time.Minute})
	f.failedJob("acme", "backup.run", now.Add(-h))
	f.failedJob("acme", "backup.verify", now.Add(-2*h))
	f.failedJob("acme", "backup.run", now.Add(-25*h))
	f.failedJob("globex", "backup.run", now.Add(-h))

	// globex has no schedule: a SCHEMA backup failed, then another succeeded; its newest good
	// backup is 30 hours old.
	f.backup(spec{tenant: "globex", scope: backup.ScopeSchema, schema: "s", status: backup.StatusCompleted, created: now.Add(-30 * h), run: time.Minute})
	f.backup(spec{tenant: "globex", scope: backup.ScopeSchema, schema: "t", status: backup.StatusFailed, created: now.Add(-6 * h), run: time.Minute})
	f.backup(spec{tenant: "globex", scope: backup.ScopeSchema, schema: "t", status: backup.StatusVerified, created: now.Add(-5 * h), run: time.Minute})
	f.backup(spec{tenant: "globex", scope: backup.ScopeSchema, schema: "s", status: backup.StatusRunning, created: now.Add(-time.Minute)})

	managed := pgtest.Server(t).NewDatabase(t)
	svc := monitor.NewService(f.store, monitor.Options{ManagedURL: managed, Now: func() time.Time { return now }})
	acme, err := svc.BackupHealth(f.ctx, f.tenants["acme"])
	require.NoError(t, err)

	t.Run("both databases answer", func(t *testing.T) {
		for _, name := range []string{monitor.MetricServiceDatabase, monitor.MetricManagedDatabase} {
			m := metric(t, acme, name, "")
			require.Equal(t, monitor.StatusNormal, m.Status, m.Details)
			require.Equal(t, "milliseconds", m.Unit)
			require.Positive(t, m.Value)
			require.Equal(t, monitor.CategoryBackup, m.Category)
		}
	})

	t.Run("a schedule whose backup is younger than 1.5 intervals is fresh", func(t *testing.T) {
		m := metric(t, acme, monitor.MetricBackupAge, `"hourly"`)
		require.Equal(t, monitor.StatusNormal, m.Status, m.Details)
		require.InDelta(t, now.Sub(fresh.completed).Seconds(), m.Value, 1e-6, "completed half an hour ago")
		require.InDelta(t, 1.5*3600, *m.Threshold, 1e-9)
	})

	t.Run("a schedule whose backup is two intervals old is stale", func(t *testing.T) {
		m := metric(t, acme, monitor.MetricBackupAge, `"daily"`)
		require.Equal(t, monitor.StatusWarning, m.Status, m.Details)
		require.InDelta(t, 1.5*24*3600, *m.Threshold, 1e-9)
	})

	t.Run("a schedule whose backup is more than three intervals old is critical", func(t *testing.T) {
		m := metric(t, acme, monitor.MetricBackupAge, `"weekly"`)
		require.Equal(t, monitor.StatusCritical, m.Status, m.Details)
		require.InDelta(t, 1.5*7*24*3600, *m.Threshold, 1e-9)
	})

	t.Run("a schedule without any good backup after its first fire is critical", func(t *testing.T) {
		m := metric(t, acme, monitor.MetricBackupAge, `"never ran"`)
		require.Equal(t, monitor.StatusCritical, m.Status, m.Details)
		require.Contains(t, m.Details, "no good backup since its first fire")
	})

	t.Run("a schedule not due yet is normal", func(t *testing.T) {
		m := metric(t, acme, monitor.MetricBackupAge, `"new"`)
		require.Equal(t, monitor.StatusNormal, m.Status, m.Details)
		require.Contains(t, m.Details, "first fire due at")
	})

	t.Run("a paused schedule is not rated", func(t *testing.T) {
		for _, m := range acme {
			require.NotContains(t, m.Details, `"paused"`)
		}
	})

	t.Run("failed backups of the last day are critical when the last backup of a scope failed", func(t *testing.T) {
		m := metric(t, acme, monitor.MetricFailedBackups, "")
		require.Equal(t, monitor.StatusCritical, m.Status, m.Details)
		require.EqualValues(t, 2, m.Value, "the failure of 50 hours ago is out of the window")
		require.Contains(t, m.Details, "the last backup of SCHEMA sales failed")
	})

	t.Run("jobs that failed every attempt in the last day count, this tenant's only", func(t *testing.T) {
		m := metric(t, acme, monitor.MetricFailedJobs, "")
		require.Equal(t, monitor.StatusWarning, m.Status)
		require.EqualValues(t, 2, m.Value)
		require.Contains(t, m.Details, "backup.run: 1")
		require.Contains(t, m.Details, "backup.verify: 1")
	})

	t.Run("the summary counts the metrics by status", func(t *testing.T) {
		// service, managed, hourly, new: NORMAL; daily, failed jobs: WARNING;
		// weekly, never ran, failed backups: CRITICAL.
		require.Len(t, acme, 9)
		require.Equal(t, monitor.Summary{Total: 9, Normal: 4, Warning: 2, Critical: 3}, monitor.Summarize(acme))
	})

	t.Run("without schedules the newest good backup is rated against a day", func(t *testing.T) {
		globex, err := svc.BackupHealth(f.ctx, f.tenants["globex"])
		require.NoError(t, err)
		m := metric(t, globex, monitor.MetricBackupAge, "no enabled schedule")
		require.Equal(t, monitor.StatusNormal, m.Status, "the VERIFIED backup of 5 hours ago is the newest: %s", m.Details)
		require.InDelta(t, 24*3600, *m.Threshold, 1e-9)
		failed := metric(t, globex, monitor.MetricFailedBackups, "")
		require.Equal(t, monitor.StatusWarning, failed.Status, "a later backup of schema t succeeded: %s", failed.Details)
		require.EqualValues(t, 1, failed.Value)
		jobs := metric(t, globex, monitor.MetricFailedJobs, "")
		require.EqualValues(t, 1, jobs.Value)
	})

	t.Run("a tenant without schedules or backups is rated by how long it has been registered", func(t *testing.T) {
		initech, err := svc.BackupHealth(f.ctx, f.tenants["initech"])
		require.NoError(t, err)
		m := metric(t, initech, monitor.MetricBackupAge, "the tenant has no good backup")
		require.Equal(t, monitor.StatusNormal, m.Status, "registered moments ago")
		require.Less(t, m.Value, 600.0)
		require.InDelta(t, monitor.DefaultNoBackupGrace.Seconds(), *m.Threshold, 1e-9)
		require.Len(t, metrics(initech, monitor.MetricBackupAge), 1, "one rating, of the missing backup")
		require.Equal(t, monitor.StatusNormal, metric(t, initech, monitor.MetricFailedBackups, "").Status)
		require.Equal(t, monitor.StatusNormal, metric(t, initech, monitor.MetricFailedJobs, "").Status)
	})

	// registered is when a tenant was registered.
	registered := func(tenant string) time.Time {
		t.Helper()
		var at time.Time
		require.NoError(t, f.store.Pool.QueryRow(f.ctx, `SELECT load_date FROM hub_tenant WHERE tenant_bk = $1`, tenant).Scan(&at))
		return at
	}
	// ageAt is the tenant's health measured a while after its registration.
	ageAt := func(opts monitor.Options, after time.Duration, tenant string) []monitor.Metric {
		t.Helper()
		at := registered(tenant).Add(after)
		opts.Now = func() time.Time { return at }
		ms, err := monitor.NewService(f.store, opts).BackupHealth(f.ctx, f.tenants[tenant])
		require.NoError(t, err)
		return ms
	}

	t.Run("a tenant without any good backup is warning after an hour's grace and critical past a day", func(t *testing.T) {
		for _, c := range []struct {
			after time.Duration
			want  string
		}{
			{59 * time.Minute, monitor.StatusNormal},
			{time.Hour, monitor.StatusWarning},
			{23 * h, monitor.StatusWarning},
			{24 * h, monitor.StatusCritical},
			{4 * 24 * h, monitor.StatusCritical},
		} {
			m := metric(t, ageAt(monitor.Options{}, c.after, "initech"), monitor.MetricBackupAge, "the tenant has no good backup")
			require.Equal(t, c.want, m.Status, "%s after its registration: %s", c.after, m.Details)
			require.InDelta(t, c.after.Seconds(), m.Value, 1e-3)
		}
	})

	t.Run("the grace period and the freshness target are options", func(t *testing.T) {
		opts := monitor.Options{NoBackupGrace: 6 * h, FreshnessTarget: 48 * h}
		for after, want := range map[time.Duration]string{5 * h: monitor.StatusNormal, 30 * h: monitor.StatusWarning,
			49 * h: monitor.StatusCritical} {
			m := metric(t, ageAt(opts, after, "initech"), monitor.MetricBackupAge, "the tenant has no good backup")
			require.Equal(t, want, m.Status, "%s after its registration: %s", after, m.Details)
			require.InDelta(t, 6*3600, *m.Threshold, 1e-9)
		}
		// globex's newest good backup is 5 hours old at now: fresh against a day, stale
		// against a target of four hours.
		globex, err := monitor.NewService(f.store, monitor.Options{FreshnessTarget: 4 * h,
			Now: func() time.Time { return now }}).BackupHealth(f.ctx, f.tenants["globex"])
		require.NoError(t, err)
		require.Equal(t, monitor.StatusWarning, metric(t, globex, monitor.MetricBackupAge, "no enabled schedule").Status)
	})

	t.Run("a schedule not due yet does not make a tenant without any good backup normal", func(t *testing.T) {
		// A daily schedule whose first fire is five to six hours after the registration.
		reg := registered("hooli")
		f.schedule("hooli", schedule.Definition{Name: "daily", Cron: fmt.Sprintf("0 %d * * *", (reg.UTC().Hour()+6)%24),
			Enabled: true}, reg)
		ms := ageAt(monitor.Options{}, 2*h, "hooli")
		require.Len(t, metrics(ms, monitor.MetricBackupAge), 2, "the tenant's missing backup and the schedule")
		m := metric(t, ms, monitor.MetricBackupAge, "the tenant has no good backup")
		require.Equal(t, monitor.StatusWarning, m.Status, m.Details)
		sched := metric(t, ms, monitor.MetricBackupAge, `"daily"`)
		require.Equal(t, monitor.StatusNormal, sched.Status, "its first fire is still to come: %s", sched.Details)
	})

	t.Run("an unreachable managed database is critical, and says so without internals", func(t *testing.T) {
		down := monitor.NewService(f.store, monitor.Options{ManagedURL: "postgres://nobody@127.0.0.1:1/none?sslmode=disable",
			Now: func() time.Time { return now }, Logger: quiet})
		ms, err := down.BackupHealth(f.ctx, f.tenants["acme"])
		require.NoError(t, err)
		m := metric(t, ms, monitor.MetricManagedDatabase, "")
		require.Equal(t, monitor.StatusCritical, m.Status)
		require.Contains(t, m.Details, "unreachable")
		require.NotContains(t, m.Details, "127.0.0.1")
		require.NotContains(t, m.Details, "nobody")
		require.Equal(t, monitor.StatusNormal, metric(t, ms, monitor.MetricServiceDatabase, "").Status)
	})

	t.Run("a managed database that does not answer in time is critical", func(t *testing.T) {
		// 192.0.2.0/24 is reserved for documentation: nothing answers there.
		slow := monitor.NewService(f.store, monitor.Options{ManagedURL: "postgres://u@192.0.2.1:5432/x?sslmode=disable",
			ManagedTimeout: 200 * time.Millisecond, Now: func() time.Time { return now }, Logger: quiet})
		ms, err := slow.BackupHealth(f.ctx, f.tenants["acme"])
		require.NoError(t, err)
		m := metric(t, ms, monitor.MetricManagedDatabase, "")
		require.Equal(t, monitor.StatusCritical, m.Status)
		require.Less(t, m.Value, 2000.0, "the check gives up after its timeout")
	})
}

func TestCollector(t *testing.T) {
	f := newFixture(t, "acme", "globex", "initech")
	sc := writeMetricsScenario(f)
	reg := prometheus.NewRegistry()
	reg.MustRegister(monitor.NewCollector(f.store))

	t.Run("backups are counted by tenant, status and type", func(t *testing.T) {
		require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP readiness_backups Backups by current status and type (a backup moves between statuses, so this is a gauge).
# TYPE readiness_backups gauge
readiness_backups{status="COMPLETED",tenant="acme",type="FULL"} 3
readiness_backups{status="EXPIRED",tenant="acme",type="FULL"} 1
readiness_backups{status="FAILED",tenant="acme",type="FULL"} 1
readiness_backups{status="QUEUED",tenant="acme",type="FULL"} 1
readiness_backups{status="RUNNING",tenant="acme",type="INCREMENTAL"} 1
readiness_backups{status="VERIFIED",tenant="acme",type="INCREMENTAL"} 1
readiness_backups{status="VERIFY_FAILED",tenant="acme",type="DIFFERENTIAL"} 1
readiness_backups{status="COMPLETED",tenant="globex",type="FULL"} 1
`), "readiness_backups"))
	})

	t.Run("sizes, storage, success ratio and fires are per tenant; tenants without backups report zeros", func(t *testing.T) {
		require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP readiness_backup_size_bytes_total Data size (before compression) of every done backup.
# TYPE readiness_backup_size_bytes_total counter
readiness_backup_size_bytes_total{tenant="acme"} 25000
readiness_backup_size_bytes_total{tenant="globex"} 1.099511627776e+12
readiness_backup_size_bytes_total{tenant="initech"} 0
readiness_backup_size_bytes_total{tenant="platform"} 0
# HELP readiness_backup_storage_bytes Bytes in storage of the backups still kept (not EXPIRED or FAILED).
# TYPE readiness_backup_storage_bytes gauge
readiness_backup_storage_bytes{tenant="acme"} 9000
readiness_backup_storage_bytes{tenant="globex"} 5.49755813888e+11
readiness_backup_storage_bytes{tenant="initech"} 0
readiness_backup_storage_bytes{tenant="platform"} 0
# HELP readiness_backup_success_ratio Good over finished backups (COMPLETED and VERIFIED over those and FAILED and VERIFY_FAILED) created in the last 24h; absent when none finished.
# TYPE readiness_backup_success_ratio gauge
readiness_backup_success_ratio{tenant="acme"} 0.6
readiness_backup_success_ratio{tenant="globex"} 1
# HELP readiness_schedule_fires_missed_total Schedule fires that queued no backup: MISSED while no replica ran, or SKIPPED_OUTSIDE_WINDOW.
# TYPE readiness_schedule_fires_missed_total counter
readiness_schedule_fires_missed_total{tenant="acme"} 3
readiness_schedule_fires_missed_total{tenant="globex"} 1
readiness_schedule_fires_missed_total{tenant="initech"} 0
readiness_schedule_fires_missed_total{tenant="platform"} 0
# HELP readiness_schedule_fires_late_total Schedule fires that queued their backup more than 60s after their due time.
# TYPE readiness_schedule_fires_late_total counter
readiness_schedule_fires_late_total{tenant="acme"} 1
readiness_schedule_fires_late_total{tenant="globex"} 0
readiness_schedule_fires_late_total{tenant="initech"} 0
readiness_schedule_fires_late_total{tenant="platform"} 0
`), "readiness_backup_size_bytes_total", "readiness_backup_storage_bytes", "readiness_backup_success_ratio",
			"readiness_schedule_fires_missed_total", "readiness_schedule_fires_late_total"))
	})

	t.Run("durations are a summary: count and sum of every done backup, quantiles of the last day", func(t *testing.T) {
		require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP readiness_backup_duration_seconds Run time of done backups (COMPLETED, VERIFIED, VERIFY_FAILED, EXPIRED): count and sum of all of them, quantiles of those created in the last 24h.
# TYPE readiness_backup_duration_seconds summary
readiness_backup_duration_seconds{tenant="acme",quantile="0.5"} 30
readiness_backup_duration_seconds{tenant="acme",quantile="0.95"} 48
readiness_backup_duration_seconds_sum{tenant="acme"} 250
readiness_backup_duration_seconds_count{tenant="acme"} 6
readiness_backup_duration_seconds{tenant="globex",quantile="0.5"} 3600
readiness_backup_duration_seconds{tenant="globex",quantile="0.95"} 3600
readiness_backup_duration_seconds_sum{tenant="globex"} 3600
readiness_backup_duration_seconds_count{tenant="globex"} 1
readiness_backup_duration_seconds{tenant="initech",quantile="0.5"} NaN
readiness_backup_duration_seconds{tenant="initech",quantile="0.95"} NaN
readiness_backup_duration_seconds_sum{tenant="initech"} 0
readiness_backup_duration_seconds_count{tenant="initech"} 0
readiness_backup_duration_seconds{tenant="platform",quantile="0.5"} NaN
readiness_backup_duration_seconds{tenant="platform",quantile="0.95"} NaN
readiness_backup_duration_seconds_sum{tenant="platform"} 0
readiness_backup_duration_seconds_count{tenant="platform"} 0
`), "readiness_backup_duration_seconds"), "acme: five done in the last day (10..50 s) and one of 100 s older")
	})

	t.Run("the recovery point age is per tenant and scope", func(t *testing.T) {
		families, err := reg.Gather()
		require.NoError(t, err)
		ages := map[string]float64{}
		for _, fam := range families {
			if fam.GetName() != "readiness_backup_recovery_point_age_seconds" {
				continue
			}
			for _, m := range fam.GetMetric() {
				key := ""
				for _, l := range m.GetLabel() {
					key += l.GetName() + "=" + l.GetValue() + " "
				}
				ages[strings.TrimSpace(key)] = m.GetGauge().GetValue()
			}
		}
		require.Len(t, ages, 3, "acme TENANT and SCHEMA, globex TENANT; none for scopes without a good backup: %v", ages)
		require.InDelta(t, time.Since(sc.tenantNewest.completed).Seconds(), ages["scope=TENANT tenant=acme"], 5)
		require.InDelta(t, time.Since(sc.newest.completed).Seconds(), ages["scope=SCHEMA tenant=acme"], 5)
		require.Contains(t, ages, "scope=TENANT tenant=globex")
	})

	t.Run("a scrape fails when the store cannot be read", func(t *testing.T) {
		closed, err := vault.Open(f.ctx, f.url)
		require.NoError(t, err)
		closed.Close()
		broken := prometheus.NewRegistry()
		broken.MustRegister(monitor.NewCollector(closed))
		_, err = broken.Gather()
		require.Error(t, err)
	})
}
