package notify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/notify"
	"github.com/onevault/readiness/internal/notify/smtptest"
)

func emailJob(attempt int, msg notify.Message) *river.Job[notify.EmailArgs] {
	return &river.Job[notify.EmailArgs]{
		JobRow: &rivertype.JobRow{ID: 42, Kind: "notify.email", Attempt: attempt, MaxAttempts: notify.EmailMaxAttempts},
		Args:   notify.EmailArgs{Message: msg, Category: "schedule.backup"},
	}
}

// logLines decodes the JSON log lines in buf.
func logLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m))
		lines = append(lines, m)
	}
	return lines
}

func TestEmailWorker(t *testing.T) {
	ctx := context.Background()

	t.Run("a sent e-mail completes the job and logs the delivery", func(t *testing.T) {
		ts := smtptest.Start(t, smtptest.Options{STARTTLS: true, User: testUser, Password: testPassword})
		var logs bytes.Buffer
		w := &notify.EmailWorker{Mailer: notify.NewMailer(configFor(ts)), Logger: slog.New(slog.NewJSONHandler(&logs, nil))}
		require.NoError(t, w.Work(ctx, emailJob(1, report().Message([]string{"ops@acme.example"}))))
		require.Len(t, ts.Messages(), 1)
		lines := logLines(t, &logs)
		require.Len(t, lines, 1)
		require.Equal(t, "e-mail notification sent", lines[0]["msg"])
		require.NotEmpty(t, lines[0]["id"])
	})

	t.Run("a failed send is logged with its attempt and returned so river retries it", func(t *testing.T) {
		cfg := notify.SMTPConfig{Host: "127.0.0.1", Port: smtptest.ClosedPort(t), From: testFrom,
			Username: testUser, Password: testPassword, Timeout: 2 * time.Second}
		var logs bytes.Buffer
		w := &notify.EmailWorker{Mailer: notify.NewMailer(cfg), Logger: slog.New(slog.NewJSONHandler(&logs, nil))}
		err := w.Work(ctx, emailJob(2, report().Message([]string{"ops@acme.example"})))
		require.Error(t, err)
		var cancel *river.JobCancelError
		require.False(t, errors.As(err, &cancel), "a send that may work later is retried, not cancelled")
		var se *notify.SendError
		require.ErrorAs(t, err, &se)
		require.Equal(t, notify.StageConnect, se.Stage)

		require.NotContains(t, logs.String(), testPassword)
		lines := logLines(t, &logs)
		require.Len(t, lines, 1)
		require.Equal(t, "ERROR", lines[0]["level"])
		require.Equal(t, "e-mail notification failed", lines[0]["msg"])
		require.EqualValues(t, 2, lines[0]["attempt"])
		require.EqualValues(t, 5, lines[0]["max_attempts"])
		require.EqualValues(t, 42, lines[0]["job_id"])
		require.Equal(t, "schedule.backup", lines[0]["category"])
		require.Equal(t, true, lines[0]["retrying"])
		require.Contains(t, lines[0]["error"], "connect")
	})

	t.Run("a message that can never be sent is cancelled instead of retried", func(t *testing.T) {
		cfg := notify.SMTPConfig{Host: "127.0.0.1", Port: smtptest.ClosedPort(t), From: testFrom}
		var logs bytes.Buffer
		w := &notify.EmailWorker{Mailer: notify.NewMailer(cfg), Logger: slog.New(slog.NewJSONHandler(&logs, nil))}
		err := w.Work(ctx, emailJob(1, notify.Message{Subject: "no recipients"}))
		var cancel *river.JobCancelError
		require.ErrorAs(t, err, &cancel)
		require.ErrorIs(t, err, notify.ErrInvalidMessage)
		require.Contains(t, logs.String(), "not retrying")
	})

	t.Run("with e-mail disabled the job completes with a warning", func(t *testing.T) {
		var logs bytes.Buffer
		w := &notify.EmailWorker{Mailer: notify.NewMailer(notify.SMTPConfig{}), Logger: slog.New(slog.NewJSONHandler(&logs, nil))}
		require.NoError(t, w.Work(ctx, emailJob(1, report().Message([]string{"ops@acme.example"}))))
		lines := logLines(t, &logs)
		require.Len(t, lines, 1)
		require.Equal(t, "WARN", lines[0]["level"])
		require.Contains(t, lines[0]["msg"], "disabled")
	})

	t.Run("the job arguments survive river's JSON and default to five attempts", func(t *testing.T) {
		args := notify.EmailArgs{Message: report().Message([]string{"ops@acme.example"}), Category: "schedule.backup"}
		raw, err := json.Marshal(args)
		require.NoError(t, err)
		require.Contains(t, string(raw), `"category":"schedule.backup"`)
		var back notify.EmailArgs
		require.NoError(t, json.Unmarshal(raw, &back))
		require.Equal(t, args, back)
		require.Equal(t, "notify.email", back.Kind())
		require.Equal(t, 5, back.InsertOpts().MaxAttempts)
	})
}
