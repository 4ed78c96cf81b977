package notify_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBackupReportMessage(t *testing.T) {
	t.Run("a completed backup's subject says what ran, the size and the duration", func(t *testing.T) {
		msg := report().Message([]string{"ops@acme.example"})
		require.Equal(t, []string{"ops@acme.example"}, msg.To)
		require.Equal(t, "[readiness] acme: nightly full FULL TENANT backup COMPLETED (1.2 GB in 3m4s)", msg.Subject)
	})

	t.Run("the body lists every field, sizes human-readable and in bytes", func(t *testing.T) {
		text := report().Message(nil).Text
		for _, line := range []string{
			"Tenant:       acme\n",
			"Schedule:     nightly full\n",
			"Schedule ID:  3f1c2e4a-0000-4000-8000-000000000001\n",
			"Backup ID:    9b7d5c3e-0000-4000-8000-000000000002\n",
			"Type:         FULL\n",
			"Scope:        TENANT\n",
			"Status:       COMPLETED\n",
			"Size:         1.2 GB (1234567890 bytes)\n",
			"Stored size:  456.8 MB (456789012 bytes)\n",
			"Duration:     3m4s\n",
			"Started:      2026-11-25T02:00:00Z\n",
			"Completed:    2026-11-25T02:03:04Z\n",
			"Attempts:     1\n",
		} {
			require.Contains(t, text, line)
		}
		require.True(t, strings.HasPrefix(text, `The FULL TENANT backup of schedule "nightly full" for tenant acme ended COMPLETED: 1.2 GB in 3m4s.`), text)
	})

	t.Run("a failure's subject carries the first line of the reason, cut when long", func(t *testing.T) {
		r := report()
		r.Status = "FAILED"
		r.ErrorMessage = strings.Repeat("x", 300) + "\nsecond line"
		msg := r.Message(nil)
		require.True(t, strings.HasPrefix(msg.Subject, "[readiness] acme: nightly full FULL TENANT backup FAILED: xxx"))
		require.True(t, strings.HasSuffix(msg.Subject, "x…"))
		require.Less(t, len([]rune(msg.Subject)), 200)
		require.Contains(t, msg.Text, strings.Repeat("x", 300)+"\n              second line\n")
	})

	t.Run("a failure without a recorded reason says so", func(t *testing.T) {
		r := report()
		r.Status = "FAILED"
		msg := r.Message(nil)
		require.Equal(t, "[readiness] acme: nightly full FULL TENANT backup FAILED", msg.Subject)
		require.Contains(t, msg.Text, "Reason:       (no reason was recorded)")
	})

	t.Run("missing fields show a dash and sub-second durations keep milliseconds", func(t *testing.T) {
		r := report()
		r.ScheduleName, r.StartedAt, r.CompletedAt, r.Duration, r.SizeBytes = "", time.Time{}, time.Time{}, 350*time.Millisecond, 999
		msg := r.Message(nil)
		require.Equal(t, "[readiness] acme: FULL TENANT backup COMPLETED (999 B in 350ms)", msg.Subject)
		require.Contains(t, msg.Text, "Schedule:     -\n")
		require.Contains(t, msg.Text, "Started:      -\n")
	})
}
