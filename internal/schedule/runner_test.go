package schedule_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/http"
	mailpkg "net/mail"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jonboulle/clockwork"
	openapi_types "github.com/oapi-codegen/runtime/types"
	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/gen/client"
	"github.com/onevault/readiness/internal/apitest"
	"github.com/onevault/readiness/internal/auth"
	"github.com/onevault/readiness/internal/demodata"
	"github.com/onevault/readiness/internal/notify"
	"github.com/onevault/readiness/internal/notify/smtptest"
	"github.com/onevault/readiness/internal/pgtest"
	"github.com/onevault/readiness/internal/schedule"
)

func TestMain(m *testing.M) {
	apitest.RunReplicaIfAsked() // the replicas of TestReplicasFireOnce
	pgtest.Main(m)
}

// managedDB is a small One Vault-like database for the schedules' TENANT backups.
func managedDB(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	url := pgtest.Server(t).NewDatabase(t)
	require.NoError(t, demodata.Ensure(ctx, url))
	_, err := demodata.Generate(ctx, url, demodata.Options{Tenants: []string{"acme", "globex"}, Size: 1 << 20})
	require.NoError(t, err)
	return url
}

func createSchedule(t *testing.T, svc *apitest.Service, tok string, body client.ScheduleCreateRequest) client.Schedule {
	t.Helper()
	r, err := svc.Client.CreateScheduleWithResponse(context.Background(), &client.CreateScheduleParams{XTenantID: "acme"}, body, apitest.As(tok))
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, r.StatusCode(), string(r.Body))
	return r.JSON201.Data
}

type fire struct {
	due     time.Time
	outcome string
	backup  *uuid.UUID
	detail  string
}

func fires(t *testing.T, svc *apitest.Service, id client.ScheduleId) []fire {
	t.Helper()
	rows, err := svc.App.Store.Pool.Query(context.Background(), `SELECT f.due_at, f.outcome, f.backup_bk, coalesce(f.detail, '')
		FROM backup_schedule_fire f JOIN hub_backup_schedule h USING (schedule_hk) WHERE h.schedule_bk = $1 ORDER BY f.due_at`,
		uuid.UUID(id))
	require.NoError(t, err)
	defer rows.Close()
	var out []fire
	for rows.Next() {
		var f fire
		require.NoError(t, rows.Scan(&f.due, &f.outcome, &f.backup, &f.detail))
		out = append(out, f)
	}
	require.NoError(t, rows.Err())
	return out
}

// TestReplicasFireOnce runs three replicas (processes) of the service on one database with a
// schedule firing every minute, and counts the backups: one per due minute, all completed.
func TestReplicasFireOnce(t *testing.T) {
	ctx := context.Background()
	svc := apitest.Start(t, apitest.Options{ManagedURL: managedDB(t)}) // the API only: no worker, no scheduler
	tok := apitest.Token(t, "alice", []string{"acme"}, auth.RoleAdmin)
	every := createSchedule(t, svc, tok, client.ScheduleCreateRequest{ScheduleName: "every minute",
		BackupType: client.BackupTypeFULL, CronExpression: "* * * * *", Timezone: "Europe/Berlin"})
	// A window that never holds the current minute's hour: every fire is outside it.
	hour := time.Now().In(time.UTC).Add(3 * time.Hour).Hour()
	closed := createSchedule(t, svc, tok, client.ScheduleCreateRequest{ScheduleName: "outside its window",
		BackupType: client.BackupTypeFULL, CronExpression: "* * * * *", Timezone: "UTC",
		ExecutionWindow: &client.ExecutionWindow{StartTime: fmt.Sprintf("%02d:00", hour), EndTime: fmt.Sprintf("%02d:30", hour)}})

	cfg := svc.Config
	cfg.BackupWorkers, cfg.SchedulerEnabled, cfg.ScheduleSyncEvery = 1, true, time.Second
	for range 3 {
		apitest.StartReplica(t, cfg)
	}

	// Wait for two fires of the every-minute schedule whose backups completed.
	deadline := time.Now().Add(4 * time.Minute)
	var done []fire
	for {
		done = done[:0]
		for _, f := range fires(t, svc, every.ScheduleId) {
			if f.outcome == schedule.FireEnqueued {
				done = append(done, f)
			}
		}
		if len(done) >= 2 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the schedule fired %d times in 4 minutes", len(done))
		time.Sleep(time.Second)
	}

	t.Run("three replicas make one backup per due minute", func(t *testing.T) {
		var n int
		require.NoError(t, svc.App.Store.Pool.QueryRow(ctx, `SELECT count(*) FROM link_backup_schedule l
			JOIN hub_backup_schedule h USING (schedule_hk) WHERE h.schedule_bk = $1`, uuid.UUID(every.ScheduleId)).Scan(&n))
		all := fires(t, svc, every.ScheduleId)
		require.Equal(t, len(all), n, "one backup per fire")
		seen := map[time.Time]bool{}
		for _, f := range all {
			require.False(t, seen[f.due], "due time %s fired twice", f.due)
			seen[f.due] = true
			require.Zero(t, f.due.Second(), "a due time is a whole minute")
		}
	})

	t.Run("the scheduled backups complete and the schedule shows its last run", func(t *testing.T) {
		for _, f := range done {
			require.NotNil(t, f.backup)
			require.Eventually(t, func() bool {
				r, err := svc.Client.GetBackupStatusWithResponse(ctx, *f.backup, &client.GetBackupStatusParams{XTenantID: "acme"}, apitest.As(tok))
				return err == nil && r.JSON200 != nil && r.JSON200.Data.Status == client.BackupExecutionStatusCOMPLETED
			}, 2*time.Minute, 500*time.Millisecond, "backup %s did not complete", f.backup)
		}
		r, err := svc.Client.GetScheduleWithResponse(ctx, every.ScheduleId, &client.GetScheduleParams{XTenantID: "acme"}, apitest.As(tok))
		require.NoError(t, err)
		require.NotNil(t, r.JSON200.Data.LastRunAt)
		require.NotNil(t, r.JSON200.Data.LastStatus)
		require.NotNil(t, r.JSON200.Data.NextRunAt)
	})

	t.Run("a fire outside the window is recorded skipped and makes no backup", func(t *testing.T) {
		require.Eventually(t, func() bool { return len(fires(t, svc, closed.ScheduleId)) > 0 }, time.Minute, time.Second)
		for _, f := range fires(t, svc, closed.ScheduleId) {
			require.Equal(t, schedule.FireOutsideWindow, f.outcome)
			require.Nil(t, f.backup)
		}
	})
}

// TestPauseStopsFires runs the scheduler on a fake clock: a schedule fires each minute the
// clock advances, and none once it is paused.
func TestPauseStopsFires(t *testing.T) {
	ctx := context.Background()
	svc := apitest.Start(t, apitest.Options{ManagedURL: managedDB(t)})
	tok := apitest.Token(t, "alice", []string{"acme"}, auth.RoleAdmin)
	every := createSchedule(t, svc, tok, client.ScheduleCreateRequest{ScheduleName: "every minute",
		BackupType: client.BackupTypeFULL, CronExpression: "* * * * *", Timezone: "UTC"})

	clock := clockwork.NewFakeClockAt(every.UpdatedAt.Truncate(time.Minute).Add(30 * time.Second))
	r, err := schedule.NewRunner(svc.App.Store, svc.App.Backups, schedule.RunnerOptions{Clock: clock, SyncEvery: time.Hour})
	require.NoError(t, err)
	require.NoError(t, r.Start(ctx))
	defer r.Stop()

	// advance moves the clock one minute once gocron and the sync loop wait on it, and waits
	// for the fires that minute makes.
	advance := func(wantFires int) {
		t.Helper()
		require.NoError(t, clock.BlockUntilContext(ctx, 2))
		clock.Advance(time.Minute)
		require.Eventually(t, func() bool { return len(fires(t, svc, every.ScheduleId)) == wantFires },
			10*time.Second, 20*time.Millisecond)
	}
	advance(1)
	advance(2)
	got := fires(t, svc, every.ScheduleId)
	require.Equal(t, schedule.FireEnqueued, got[1].outcome)
	require.Equal(t, clock.Now().Truncate(time.Minute), got[1].due.UTC(), "the due time is the clock's minute")

	off := false
	u, err := svc.Client.UpdateScheduleWithResponse(ctx, every.ScheduleId, &client.UpdateScheduleParams{XTenantID: "acme"},
		client.ScheduleUpdateRequest{Enabled: &off}, apitest.As(tok))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, u.StatusCode())
	require.NoError(t, r.Sync(ctx))
	for range 3 {
		require.NoError(t, clock.BlockUntilContext(ctx, 1)) // the sync loop alone: no job waits
		clock.Advance(time.Minute)
	}
	require.Never(t, func() bool { return len(fires(t, svc, every.ScheduleId)) != 2 }, time.Second, 50*time.Millisecond,
		"a paused schedule fired")
}

// TestCatchUp checks the policy for fires that no replica took: the newest is fired late when
// recent enough, older ones are recorded missed.
func TestCatchUp(t *testing.T) {
	ctx := context.Background()
	svc := apitest.Start(t, apitest.Options{ManagedURL: managedDB(t)})
	tok := apitest.Token(t, "alice", []string{"acme"}, auth.RoleAdmin)
	s := createSchedule(t, svc, tok, client.ScheduleCreateRequest{ScheduleName: "hourly",
		BackupType: client.BackupTypeFULL, CronExpression: "0 * * * *", Timezone: "UTC"})

	// The service comes back at 20 past the third hour after the one the schedule was made in:
	// three hourly due times passed.
	later := s.UpdatedAt.Truncate(time.Hour).Add(3*time.Hour + 20*time.Minute)
	r, err := schedule.NewRunner(svc.App.Store, svc.App.Backups, schedule.RunnerOptions{Clock: clockwork.NewFakeClockAt(later)})
	require.NoError(t, err)
	defer r.Stop()
	require.NoError(t, r.Sync(ctx))

	got := fires(t, svc, s.ScheduleId)
	require.Len(t, got, 3)
	t.Run("the newest missed due time is fired once, late", func(t *testing.T) {
		last := got[2]
		require.Equal(t, schedule.FireEnqueued, last.outcome)
		require.NotNil(t, last.backup)
		require.Contains(t, last.detail, "late")
		require.Equal(t, later.Truncate(time.Hour), last.due.UTC())
	})
	t.Run("older due times are recorded missed", func(t *testing.T) {
		require.Equal(t, schedule.FireMissed, got[0].outcome)
		require.Equal(t, schedule.FireMissed, got[1].outcome)
	})
	t.Run("a second sync fires nothing more", func(t *testing.T) {
		require.NoError(t, r.Sync(ctx))
		require.Len(t, fires(t, svc, s.ScheduleId), 3)
	})
}

// TestNotifications checks that a schedule's backups send the e-mails its settings ask for,
// received by a real SMTP server.
func TestNotifications(t *testing.T) {
	ctx := context.Background()
	mail := smtptest.Start(t, smtptest.Options{})
	svc := apitest.Start(t, apitest.Options{Workers: 1, ManagedURL: managedDB(t), MaxAttempts: 2,
		SMTP: notify.SMTPConfig{Host: mail.Host, Port: mail.Port, From: "readiness@onevault.example", Timeout: 5 * time.Second}})
	tok := apitest.Token(t, "alice", []string{"acme"}, auth.RoleAdmin)
	notifyBoth := &client.NotificationSettings{OnSuccess: true, OnFailure: true,
		Recipients: &[]openapi_types.Email{"dba@acme.example", "oncall@acme.example"}}
	ok := createSchedule(t, svc, tok, client.ScheduleCreateRequest{ScheduleName: "Nächtliche Sicherung",
		BackupType: client.BackupTypeFULL, CronExpression: "0 * * * *", Timezone: "UTC", NotificationSettings: notifyBoth})
	schema := "no_such_schema"
	bad := createSchedule(t, svc, tok, client.ScheduleCreateRequest{ScheduleName: "schema that is gone",
		BackupType: client.BackupTypeFULL, BackupScope: ptr(client.BackupScopeSCHEMA), SchemaName: &schema,
		CronExpression: "0 * * * *", Timezone: "UTC", NotificationSettings: notifyBoth})

	// Fire both now, as a late catch-up of the last hour.
	later := ok.UpdatedAt.Truncate(time.Hour).Add(time.Hour + 5*time.Minute)
	r, err := schedule.NewRunner(svc.App.Store, svc.App.Backups, schedule.RunnerOptions{Clock: clockwork.NewFakeClockAt(later)})
	require.NoError(t, err)
	defer r.Stop()
	require.NoError(t, r.Sync(ctx))
	require.Eventually(t, func() bool { return len(mail.Messages()) >= 2 }, 2*time.Minute, 200*time.Millisecond,
		"two e-mails should arrive")

	byStatus := map[string]smtptest.Received{}
	for _, m := range mail.Messages() {
		msg, err := mailpkg.ReadMessage(bytes.NewReader(m.Data))
		require.NoError(t, err)
		subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
		require.NoError(t, err)
		require.ElementsMatch(t, []string{"dba@acme.example", "oncall@acme.example"}, m.To)
		body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
		require.NoError(t, err)
		switch {
		case strings.Contains(subject, "COMPLETED"):
			require.Contains(t, subject, "Nächtliche Sicherung")
			byStatus["COMPLETED"] = smtptest.Received{Data: body}
		case strings.Contains(subject, "FAILED"):
			require.Contains(t, subject, "schema that is gone")
			byStatus["FAILED"] = smtptest.Received{Data: body}
		}
	}
	t.Run("a completed scheduled backup sends what ran, the result, the size and the duration", func(t *testing.T) {
		body := string(byStatus["COMPLETED"].Data)
		require.NotEmpty(t, body)
		for _, want := range []string{"Nächtliche Sicherung", "FULL", "TENANT", "COMPLETED", "bytes", ok.ScheduleId.String()} {
			require.Contains(t, body, want)
		}
	})
	t.Run("a failed scheduled backup sends the reason", func(t *testing.T) {
		body := string(byStatus["FAILED"].Data)
		require.Contains(t, body, "FAILED")
		require.Contains(t, body, schema)
		require.Contains(t, body, bad.ScheduleId.String())
	})
	t.Run("the failed backup was retried and each attempt is recorded, the e-mail sent once at the end", func(t *testing.T) {
		rows, err := svc.App.Store.Pool.Query(ctx, `SELECT s.status || '/' || s.attempt FROM sat_backup_execution_status s
			JOIN hub_backup_execution h USING (backup_hk) JOIN link_backup_schedule l USING (backup_hk)
			JOIN hub_backup_schedule hs ON hs.schedule_hk = l.schedule_hk
			WHERE hs.schedule_bk = $1 ORDER BY s.load_date`, uuid.UUID(bad.ScheduleId))
		require.NoError(t, err)
		var history []string
		for rows.Next() {
			var h string
			require.NoError(t, rows.Scan(&h))
			history = append(history, h)
		}
		require.Equal(t, []string{"QUEUED/0", "RUNNING/1", "FAILED/1", "RUNNING/2", "FAILED/2"}, history)
		failures := 0
		for _, m := range mail.Messages() {
			if strings.Contains(string(m.Data), "FAILED") {
				failures++
			}
		}
		require.Equal(t, 1, failures)
	})
}

func ptr[T any](v T) *T { return &v }
