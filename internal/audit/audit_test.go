package audit_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/audit"
	"github.com/onevault/readiness/internal/pgtest"
	"github.com/onevault/readiness/internal/vault"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func newStore(t *testing.T) *vault.Store {
	t.Helper()
	url := pgtest.Server(t).NewDatabaseFrom(t, "migrated", vault.Migrate)
	s, err := vault.Open(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

func appendN(t *testing.T, s *vault.Store, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		require.NoError(t, audit.Append(context.Background(), s.Pool, audit.Record{
			OccurredAt: time.Now(), Tenant: "acme", Subject: "alice", Operation: "createSchedule",
			Method: "POST", Path: "/api/v1/schedule/create", ResourceID: fmt.Sprint(i), Outcome: 201,
			RequestID: fmt.Sprintf("req-%d", i), Body: `{"scheduleName":"n"}`,
		}))
	}
}

func TestChain(t *testing.T) {
	ctx := context.Background()

	t.Run("an untouched chain verifies", func(t *testing.T) {
		s := newStore(t)
		appendN(t, s, 5)
		rep, err := audit.Verify(ctx, s.Queries())
		require.NoError(t, err)
		require.True(t, rep.OK(), rep.Problem)
		require.EqualValues(t, 5, rep.Records)
	})

	t.Run("concurrent writers never fork the chain", func(t *testing.T) {
		s := newStore(t)
		errs := make(chan error, 20)
		for i := 0; i < 20; i++ {
			go func(i int) {
				errs <- audit.Append(ctx, s.Pool, audit.Record{OccurredAt: time.Now(), Operation: "op",
					Method: "POST", Path: "/p", Outcome: 200, RequestID: fmt.Sprint(i)})
			}(i)
		}
		for i := 0; i < 20; i++ {
			require.NoError(t, <-errs)
		}
		rep, err := audit.Verify(ctx, s.Queries())
		require.NoError(t, err)
		require.True(t, rep.OK(), rep.Problem)
		require.EqualValues(t, 20, rep.Records)
	})

	t.Run("an edited record is detected", func(t *testing.T) {
		s := newStore(t)
		appendN(t, s, 5)
		_, err := s.Pool.Exec(ctx, "UPDATE audit_log SET subject = 'mallory' WHERE seq = 3")
		require.NoError(t, err)
		rep, err := audit.Verify(ctx, s.Queries())
		require.NoError(t, err)
		require.False(t, rep.OK())
		require.EqualValues(t, 3, rep.BadSeq)
		require.Contains(t, rep.Problem, "edited")
	})

	t.Run("a deleted record is detected", func(t *testing.T) {
		s := newStore(t)
		appendN(t, s, 5)
		_, err := s.Pool.Exec(ctx, "DELETE FROM audit_log WHERE seq = 2")
		require.NoError(t, err)
		rep, err := audit.Verify(ctx, s.Queries())
		require.NoError(t, err)
		require.EqualValues(t, 2, rep.BadSeq)
		require.Contains(t, rep.Problem, "missing")
	})

	t.Run("a record deleted and the chain renumbered is detected", func(t *testing.T) {
		s := newStore(t)
		appendN(t, s, 5)
		_, err := s.Pool.Exec(ctx, "DELETE FROM audit_log WHERE seq = 2")
		require.NoError(t, err)
		_, err = s.Pool.Exec(ctx, "UPDATE audit_log SET seq = seq - 1 WHERE seq > 2")
		require.NoError(t, err)
		rep, err := audit.Verify(ctx, s.Queries())
		require.NoError(t, err)
		require.False(t, rep.OK())
		require.EqualValues(t, 2, rep.BadSeq)
	})
}

func TestMask(t *testing.T) {
	t.Run("secret values are masked at any depth and the rest is kept", func(t *testing.T) {
		got := audit.Mask([]byte(`{"channelName":"ops","configuration":{"webhookUrl":"https://hooks.example/T0/abc","routing_key":"r0ut1ng","smtpPassword":"hunter2","channel":"#ops"},"items":[{"apiKey":"k"}]}`))
		require.NotContains(t, got, "hooks.example")
		require.NotContains(t, got, "r0ut1ng")
		require.NotContains(t, got, "hunter2")
		require.NotContains(t, got, `"k"`)
		require.Contains(t, got, `"channel":"#ops"`)
		require.Contains(t, got, `"channelName":"ops"`)
	})
	t.Run("a body that is not JSON is not recorded", func(t *testing.T) {
		require.NotContains(t, audit.Mask([]byte("password=hunter2")), "hunter2")
	})
}
