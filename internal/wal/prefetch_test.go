package wal_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/wal"
)

func TestPrefetch(t *testing.T) {
	ctx := context.Background()
	cfg := newConfig(t)
	cfg.Prefetch = 3
	const size = 1 << 20
	seg := func(n uint64) string { return wal.SegmentName(1, n, size) }
	plain := map[string][]byte{}
	for n := uint64(1); n <= 6; n++ {
		p := fakeSegment(t, seg(n), size, n)
		plain[seg(n)] = readFile(t, p)
		require.NoError(t, wal.Push(ctx, cfg, p))
	}
	pgWAL := filepath.Join(t.TempDir(), "pg_wal")
	require.NoError(t, os.Mkdir(pgWAL, 0o700))
	spool := filepath.Join(pgWAL, wal.SpoolDir)
	spooled := func() []string {
		var names []string
		entries, _ := os.ReadDir(spool)
		for _, e := range entries {
			if e.Name() != ".lock" {
				names = append(names, e.Name())
			}
		}
		return names
	}

	t.Run("the segments after the one served are fetched into the spool, checked", func(t *testing.T) {
		require.NoError(t, wal.Prefetch(ctx, cfg, seg(1), spool))
		require.Equal(t, []string{seg(2), seg(3), seg(4)}, spooled())
		for _, n := range spooled() {
			require.True(t, bytes.Equal(plain[n], readFile(t, filepath.Join(spool, n))), n)
		}
	})

	t.Run("what replay has passed is dropped from the spool", func(t *testing.T) {
		require.NoError(t, wal.Prefetch(ctx, cfg, seg(2), spool))
		require.Equal(t, []string{seg(3), seg(4), seg(5)}, spooled())
	})

	t.Run("a prefetcher leaves the spool alone while another one holds it", func(t *testing.T) {
		lock, err := os.OpenFile(filepath.Join(spool, ".lock"), os.O_RDWR, 0)
		require.NoError(t, err)
		defer lock.Close()
		require.NoError(t, flock(lock))
		require.NoError(t, wal.Prefetch(ctx, cfg, seg(4), spool))
		require.Equal(t, []string{seg(3), seg(4), seg(5)}, spooled())
	})

	flags := []string{"--repo", cfg.RepoPath, "--key-file", cfg.KeyFile}
	run := func(args ...string) int {
		var stdout, stderr bytes.Buffer
		return wal.Run(ctx, append(append([]string{args[0]}, flags...), args[1:]...), func(string) string { return "" }, &stdout, &stderr)
	}
	t.Run("wal-fetch serves a prefetched segment from the spool", func(t *testing.T) {
		dst := filepath.Join(pgWAL, "RECOVERYXLOG")
		require.Equal(t, wal.ExitOK, run("wal-fetch", seg(3), dst))
		require.True(t, bytes.Equal(plain[seg(3)], readFile(t, dst)))
		require.NotContains(t, spooled(), seg(3), "served by a rename")
	})

	t.Run("wal-fetch of a segment after the archive's end removes the spool", func(t *testing.T) {
		require.Equal(t, wal.ExitFailure, run("wal-fetch", seg(7), filepath.Join(pgWAL, "RECOVERYXLOG")))
		_, err := os.Stat(spool)
		require.ErrorIs(t, err, os.ErrNotExist)
	})

	t.Run("a wrong --prefetch is refused", func(t *testing.T) {
		require.Equal(t, wal.ExitUsage, run("wal-fetch", "--prefetch", "-1", seg(3), filepath.Join(pgWAL, "X")))
	})
}

func flock(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) }
