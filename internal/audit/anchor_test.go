package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/audit"
	"github.com/onevault/readiness/internal/vault"
)

// anchored returns a store with n records whose head the anchorer has written to a repository,
// the repository's root, and the "audit anchor" log line it wrote.
func anchored(t *testing.T, n int) (*vault.Store, string, map[string]any) {
	t.Helper()
	s := newStore(t)
	appendN(t, s, n)
	repo := t.TempDir()
	var logs bytes.Buffer
	an := &audit.Anchorer{Queries: s.Queries(), RepoRoot: repo, Logger: slog.New(slog.NewJSONHandler(&logs, nil))}
	head, err := an.AnchorOnce(context.Background())
	require.NoError(t, err)
	require.EqualValues(t, n, head.Seq)
	var line map[string]any
	require.NoError(t, json.Unmarshal(logs.Bytes(), &line), logs.String())
	require.Equal(t, "audit anchor", line["msg"])
	return s, repo, line
}

func repoAnchor(t *testing.T, repo string) audit.Anchor {
	t.Helper()
	a, ok, err := audit.ReadAnchorFile(repo)
	require.NoError(t, err)
	require.True(t, ok, "the anchorer wrote %s", audit.AnchorFile)
	return a
}

func TestAnchor(t *testing.T) {
	ctx := context.Background()

	t.Run("an intact chain verifies against its repository anchor and its log line", func(t *testing.T) {
		s, repo, line := anchored(t, 5)
		fromLog, err := audit.ParseAnchor(fmt.Sprintf("%v:%v", line["seq"], line["hash"]))
		require.NoError(t, err)
		a := repoAnchor(t, repo)
		require.Equal(t, a.String(), fromLog.String(), "the log line and the file anchor the same head")
		appendN(t, s, 2) // records after the anchor are fine: the chain extends it
		rep, err := audit.Verify(ctx, s.Queries(), a, fromLog)
		require.NoError(t, err)
		require.True(t, rep.OK(), rep.Problem)
		require.EqualValues(t, 7, rep.Records)
		require.Equal(t, 2, rep.Anchors)
		require.EqualValues(t, 7, rep.Head.Seq)
	})

	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprintf("deleting the newest %d records is detected against the anchor", n), func(t *testing.T) {
			s, repo, line := anchored(t, 6)
			_, err := s.Pool.Exec(ctx, "DELETE FROM audit_log WHERE seq > $1", 6-n)
			require.NoError(t, err)

			rep, err := audit.Verify(ctx, s.Queries())
			require.NoError(t, err)
			require.True(t, rep.OK(), "without an anchor the shorter chain looks intact: this is what anchors are for")

			for _, a := range []audit.Anchor{repoAnchor(t, repo), mustParse(t, fmt.Sprintf("%v:%v", line["seq"], line["hash"]))} {
				rep, err = audit.Verify(ctx, s.Queries(), a)
				require.NoError(t, err)
				require.False(t, rep.OK(), a.Source)
				require.EqualValues(t, 6-n+1, rep.BadSeq, "the first missing record")
				require.EqualValues(t, 6-n, rep.Records)
				require.Contains(t, rep.Problem, fmt.Sprintf("the table ends at record %d but the anchor in %s holds record 6: the newest %d records were deleted", 6-n, a.Source, n))
			}
		})
	}

	t.Run("deleting every record is detected", func(t *testing.T) {
		s, repo, _ := anchored(t, 3)
		_, err := s.Pool.Exec(ctx, "DELETE FROM audit_log")
		require.NoError(t, err)
		rep, err := audit.Verify(ctx, s.Queries(), repoAnchor(t, repo))
		require.NoError(t, err)
		require.EqualValues(t, 1, rep.BadSeq)
		require.Contains(t, rep.Problem, "the table is empty but the anchor")
	})

	t.Run("records deleted and forged anew up to the anchor are detected by the anchored hash", func(t *testing.T) {
		s, repo, _ := anchored(t, 5)
		_, err := s.Pool.Exec(ctx, "DELETE FROM audit_log WHERE seq > 3")
		require.NoError(t, err)
		appendN(t, s, 2) // a valid chain again, of the same length, with other records 4 and 5
		rep, err := audit.Verify(ctx, s.Queries())
		require.NoError(t, err)
		require.True(t, rep.OK(), rep.Problem)
		rep, err = audit.Verify(ctx, s.Queries(), repoAnchor(t, repo))
		require.NoError(t, err)
		require.EqualValues(t, 5, rep.BadSeq)
		require.Contains(t, rep.Problem, "record 5's hash")
		require.Contains(t, rep.Problem, "the chain was rewritten")
	})

	t.Run("the anchorer moves the anchor forward and refuses to follow a truncated table", func(t *testing.T) {
		s, repo, _ := anchored(t, 4)
		var logs bytes.Buffer
		an := &audit.Anchorer{Queries: s.Queries(), RepoRoot: repo, Logger: slog.New(slog.NewJSONHandler(&logs, nil))}
		appendN(t, s, 1)
		head, err := an.AnchorOnce(ctx)
		require.NoError(t, err)
		require.EqualValues(t, 5, head.Seq)
		require.EqualValues(t, 5, repoAnchor(t, repo).Seq)
		_, err = an.AnchorOnce(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, bytes.Count(logs.Bytes(), []byte(`"msg":"audit anchor"`)), "an idle chain is logged once")

		before, err := os.ReadFile(filepath.Join(repo, audit.AnchorFile))
		require.NoError(t, err)
		_, err = s.Pool.Exec(ctx, "DELETE FROM audit_log WHERE seq > 2")
		require.NoError(t, err)
		_, err = an.AnchorOnce(ctx)
		require.ErrorIs(t, err, audit.ErrBehindAnchor)
		require.ErrorContains(t, err, "the newest 3 records were deleted")
		after, err := os.ReadFile(filepath.Join(repo, audit.AnchorFile))
		require.NoError(t, err)
		require.Equal(t, string(before), string(after), "the evidence stays for audit verify")
	})

	t.Run("Run anchors at start and once more when it stops", func(t *testing.T) {
		s := newStore(t)
		appendN(t, s, 2)
		repo := t.TempDir()
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		an := &audit.Anchorer{Queries: s.Queries(), RepoRoot: repo, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))}
		go func() { defer close(done); an.Run(rctx) }()
		require.Eventually(t, func() bool { _, ok, _ := audit.ReadAnchorFile(repo); return ok }, 10*time.Second, 10*time.Millisecond)
		appendN(t, s, 1)
		cancel()
		<-done
		require.EqualValues(t, 3, repoAnchor(t, repo).Seq, "the records served before the stop are anchored")
	})

	t.Run("ParseAnchor refuses what is not SEQ:HASH", func(t *testing.T) {
		for _, bad := range []string{"", "5", "x:ab", "0:" + string(bytes.Repeat([]byte("a"), 64)), "5:abc", "5:" + string(bytes.Repeat([]byte("z"), 64))} {
			_, err := audit.ParseAnchor(bad)
			require.Error(t, err, bad)
		}
	})
}

func mustParse(t *testing.T, s string) audit.Anchor {
	t.Helper()
	a, err := audit.ParseAnchor(s)
	require.NoError(t, err)
	return a
}
