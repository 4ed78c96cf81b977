package wal_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/pgcluster"
	"github.com/onevault/readiness/internal/wal"
)

const segSize = 16 << 20

// realSegment returns a copy of a full 16 MiB WAL segment written by
// PostgreSQL while inserting rows: dense WAL, the hard case for compression.
func realSegment(b *testing.B) string {
	b.Helper()
	ctx := context.Background()
	c, err := pgcluster.New(pgcluster.Options{DataDir: filepath.Join(b.TempDir(), "data"), Fast: true,
		Settings: map[string]string{"wal_level": "replica", "max_wal_size": "1GB"}})
	require.NoError(b, err)
	b.Cleanup(func() { _ = c.Stop(context.Background()) })
	require.NoError(b, c.Start(ctx))
	conn, err := pgxConnect(ctx, c.URL("postgres"))
	require.NoError(b, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `CREATE TABLE rows (id bigserial PRIMARY KEY, tenant text, amount numeric, note text, at timestamptz DEFAULT now())`)
	require.NoError(b, err)
	var first string
	require.NoError(b, conn.QueryRow(ctx, `SELECT pg_walfile_name(pg_current_wal_insert_lsn())`).Scan(&first))
	_, err = conn.Exec(ctx, `INSERT INTO rows (tenant, amount, note)
		SELECT 'tenant' || (g % 50), (g::bigint * 7919 % 100000) / 100.0, md5(g::text) || ' ' || repeat(chr(65 + g % 26), g % 40)
		FROM generate_series(1, 300000) g`)
	require.NoError(b, err)
	var last string
	require.NoError(b, conn.QueryRow(ctx, `SELECT pg_walfile_name(pg_current_wal_insert_lsn())`).Scan(&last))
	tli, segno, err := wal.ParseSegmentName(first, segSize)
	require.NoError(b, err)
	name := wal.SegmentName(tli, segno+1, segSize) // written completely by the insert
	require.Less(b, name, last, "the insert should fill more than one segment")
	dst := filepath.Join(b.TempDir(), name)
	require.NoError(b, os.WriteFile(dst, readFile(b, filepath.Join(c.DataDir(), "pg_wal", name)), 0o600))
	return dst
}

// linkAs gives src another segment name in a fresh directory, so that every
// iteration pushes a new file.
func linkAs(b *testing.B, dir, src string, i int) string {
	p := filepath.Join(dir, wal.SegmentName(1, uint64(i+1), segSize))
	require.NoError(b, os.Link(src, p))
	return p
}

// BenchmarkPush measures Push of one 16 MiB segment: read, SHA-256, zstd,
// age, fsync of the object, its record and the directory.
func BenchmarkPush(b *testing.B) {
	segments := map[string]string{
		"dense WAL of row inserts":              realSegment(b),
		"a switched segment, mostly zero pages": fakeSegment(b, "000000010000000000000001", segSize/8, 1),
	}
	// The switched segment: 2 MiB of data then zeros up to 16 MiB.
	sw := segments["a switched segment, mostly zero pages"]
	f, err := os.OpenFile(sw, os.O_WRONLY, 0)
	require.NoError(b, err)
	require.NoError(b, f.Truncate(segSize))
	require.NoError(b, f.Close())

	for _, what := range []string{"dense WAL of row inserts", "a switched segment, mostly zero pages"} {
		src := segments[what]
		b.Run(what, func(b *testing.B) {
			cfg := newConfig(b)
			dir := b.TempDir()
			b.SetBytes(segSize)
			i := 0
			for b.Loop() {
				require.NoError(b, wal.Push(b.Context(), cfg, linkAs(b, dir, src, i)))
				i++
			}
			st, err := wal.Check(b.Context(), cfg, "")
			require.NoError(b, err)
			b.ReportMetric(float64(st.StoredBytes)/float64(st.Bytes)*100, "%stored")
		})
	}

	b.Run("as archive_command runs it: a new process per segment", func(b *testing.B) {
		src := segments["dense WAL of row inserts"]
		cfg := newConfig(b)
		dir := b.TempDir()
		b.SetBytes(segSize)
		i := 0
		for b.Loop() {
			cmd := exec.Command(os.Args[0], "wal-push", "--repo", cfg.RepoPath, "--key-file", cfg.KeyFile, linkAs(b, dir, src, i))
			cmd.Env = append(os.Environ(), commandEnv+"=1")
			out, err := cmd.CombinedOutput()
			require.NoError(b, err, string(out))
			i++
		}
	})

	b.Run("Fetch of the dense segment", func(b *testing.B) {
		src := segments["dense WAL of row inserts"]
		cfg := newConfig(b)
		require.NoError(b, wal.Push(b.Context(), cfg, linkAs(b, b.TempDir(), src, 0)))
		name := wal.SegmentName(1, 1, segSize)
		dir := b.TempDir()
		b.SetBytes(segSize)
		i := 0
		for b.Loop() {
			require.NoError(b, wal.Fetch(b.Context(), cfg, name, filepath.Join(dir, fmt.Sprint(i))))
			i++
		}
	})
}
