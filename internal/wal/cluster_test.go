package wal_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/pgcluster"
	"github.com/onevault/readiness/internal/wal"
)

// archivingCluster is a private cluster whose archive_command is `readiness
// wal-push` (the test binary acting as it), plus a copy of every file it
// archived, taken by the same archive_command before the push.
type archivingCluster struct {
	*pgcluster.Cluster
	cfg     wal.Config
	restore string // the restore_command of a cluster recovering from the archive
	copies  string // what PostgreSQL handed to archive_command, byte for byte
}

// startArchivingCluster starts a cluster with archive_mode on, set up the way
// `readiness dev` does it: wal.Install gives the repository's wal/ and a key
// file to the postgres user and copies the executable (here the test binary)
// where that user can run it, and wal.Commands names them. The repository,
// key and binary live under a directory whose name needs quoting for both the
// shell and PostgreSQL's placeholders.
func startArchivingCluster(t *testing.T) *archivingCluster {
	t.Helper()
	return startCluster(t, true)
}

// startCluster starts a cluster set up like startArchivingCluster's, with
// archive_mode off unless archiving: one that only a streaming receiver
// archives, but that a cluster restored from its repository can still recover
// from (the repository's wal/ and the key file belong to the postgres user).
func startCluster(t *testing.T, archiving bool) *archivingCluster {
	t.Helper()
	ctx := t.Context()
	base := t.TempDir()
	tricky := filepath.Join(base, "it's 100% wal")
	ac := &archivingCluster{copies: filepath.Join(base, "copies")}
	key, _ := newKey(t)
	ac.cfg = wal.Config{RepoPath: filepath.Join(tricky, "repo"), KeyFile: filepath.Join(tricky, "secrets", "key.txt"), Key: key}
	bin := filepath.Join(tricky, "bin", "readiness")
	archive, restore := wal.Commands(bin, ac.cfg.RepoPath, ac.cfg.KeyFile)
	// TestMain acts as readiness when commandEnv is set.
	ac.restore = commandEnv + "=1 " + restore
	settings := map[string]string{
		"wal_level":       "replica",
		"archive_mode":    "on",
		"archive_command": fmt.Sprintf("cp %%p '%s/%%f' && %s=1 %s", ac.copies, commandEnv, archive),
		"max_wal_senders": "4",
		// A base backup needs full page writes; Fast turns them off.
		"full_page_writes": "on",
	}
	if !archiving {
		settings["archive_mode"] = "off"
		delete(settings, "archive_command")
	}
	ac.Cluster = newCluster(t, pgcluster.Options{DataDir: filepath.Join(base, "data"), Fast: true, Settings: settings})
	require.NoError(t, ac.MkdirOwned(ac.copies))
	got, err := wal.Install(ac.Cluster, wal.InstallOptions{Executable: os.Args[0], Bin: bin,
		RepoPath: ac.cfg.RepoPath, KeyFile: ac.cfg.KeyFile, Key: key.Identity()})
	require.NoError(t, err)
	require.Equal(t, bin, got)
	require.NoError(t, ac.Start(ctx))
	return ac
}

// newCluster returns a cluster that is stopped when the test ends.
func newCluster(t *testing.T, opts pgcluster.Options) *pgcluster.Cluster {
	t.Helper()
	opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	c, err := pgcluster.New(opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Stop(context.Background())) })
	return c
}

// writeOwned writes a file and gives it to the owner of its directory, which
// MkdirOwned made the postgres user when running as root.
func writeOwned(t *testing.T, path string, data []byte, perm os.FileMode) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, data, perm))
	require.NoError(t, os.Chmod(path, perm))
	uid, gid := ownerOf(t, filepath.Dir(path))
	require.NoError(t, os.Chown(path, uid, gid))
}

func exec1(t *testing.T, url, sql string, args ...any) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(t.Context(), sql, args...)
	require.NoError(t, err)
}

func query[T any](t *testing.T, url, sql string) T {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var v T
	require.NoError(t, conn.QueryRow(t.Context(), sql).Scan(&v))
	return v
}

// switchWAL inserts rows and ends the segment, and returns the segment's name.
func switchWAL(t *testing.T, url string, batch, rows int) string {
	t.Helper()
	exec1(t, url, `INSERT INTO marker (batch, payload) SELECT $1, md5(g::text) FROM generate_series(1, $2) g`, batch, rows)
	return query[string](t, url, `SELECT pg_walfile_name(pg_switch_wal())`)
}

// waitArchived waits until pg_stat_archiver has archived segment.
func waitArchived(t *testing.T, url, segment string) {
	t.Helper()
	require.Eventually(t, func() bool {
		last := query[*string](t, url, `SELECT last_archived_wal FROM pg_stat_archiver`)
		return last != nil && *last >= segment
	}, 60*time.Second, 50*time.Millisecond, "segment %s was not archived", segment)
}

func TestArchiveOfARealCluster(t *testing.T) {
	ctx := t.Context()
	ac := startArchivingCluster(t)
	url := ac.URL("postgres")
	exec1(t, url, `CREATE TABLE marker (id bigserial PRIMARY KEY, batch int NOT NULL, payload text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())`)
	for batch := 1; batch <= 2; batch++ {
		switchWAL(t, url, batch, 1000)
	}

	// A base backup without WAL: recovery has to take all of it from the archive.
	restoreParent := filepath.Join(filepath.Dir(ac.DataDir()), "restore")
	require.NoError(t, ac.MkdirOwned(restoreParent))
	restoreDir := filepath.Join(restoreParent, "data")
	bb := exec.CommandContext(ctx, filepath.Join(ac.BinDir(), "pg_basebackup"), "-d", url, "-D", restoreDir, "-X", "none", "-c", "fast", "--no-sync")
	bb.Dir = "/"
	ac.RunAsOwner(bb)
	out, err := bb.CombinedOutput()
	require.NoError(t, err, string(out))

	for batch := 3; batch <= 5; batch++ {
		switchWAL(t, url, batch, 20000)
	}
	// The last commit is alone in the last segment, timed from both sides.
	before := query[time.Time](t, url, `SELECT clock_timestamp()`)
	exec1(t, url, `INSERT INTO marker (batch, payload) VALUES (6, 'the last commit')`)
	last := query[string](t, url, `SELECT pg_walfile_name(pg_switch_wal())`)
	after := query[time.Time](t, url, `SELECT clock_timestamp()`)
	waitArchived(t, url, last)
	wantRows := query[int64](t, url, `SELECT count(*) FROM marker`)

	copies, err := os.ReadDir(ac.copies)
	require.NoError(t, err)
	var segments []string
	for _, e := range copies {
		if kind, _, err := wal.ParseName(e.Name()); err == nil && kind == wal.KindSegment {
			segments = append(segments, e.Name())
		}
	}
	require.GreaterOrEqual(t, len(segments), 6)
	require.Equal(t, last, slices.Max(segments))

	t.Run("every archived file decrypts into the bytes PostgreSQL handed to archive_command", func(t *testing.T) {
		for _, e := range copies {
			dst := filepath.Join(t.TempDir(), "RECOVERYXLOG")
			require.NoError(t, wal.Fetch(ctx, ac.cfg, e.Name(), dst))
			require.True(t, bytes.Equal(readFile(t, filepath.Join(ac.copies, e.Name())), readFile(t, dst)), e.Name())
		}
		labels := slices.DeleteFunc(slices.Clone(copies), func(e os.DirEntry) bool { return !strings.HasSuffix(e.Name(), ".backup") })
		require.Len(t, labels, 1, "the base backup's label is archived too")
	})

	t.Run("the archive is written as the postgres user, in directories of mode 0700", func(t *testing.T) {
		walUID, _ := ownerOf(t, filepath.Join(ac.cfg.RepoPath, "wal"))
		if os.Geteuid() == 0 {
			require.NotZero(t, walUID, "MkdirOwned gave wal/ to the postgres user")
		}
		dir := filepath.Join(ac.cfg.RepoPath, "wal", "00000001")
		uid, _ := ownerOf(t, dir)
		require.Equal(t, walUID, uid)
		fi, err := os.Stat(dir)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
		uid, _ = ownerOf(t, objectPath(ac.cfg, last))
		require.Equal(t, walUID, uid)
	})

	t.Run("pushing an archived segment again succeeds", func(t *testing.T) {
		require.NoError(t, wal.Push(ctx, ac.cfg, filepath.Join(ac.copies, segments[2])))
	})

	t.Run("pushing other content under an archived segment's name fails", func(t *testing.T) {
		data := readFile(t, filepath.Join(ac.copies, segments[2]))
		data[100] ^= 0x80
		other := filepath.Join(t.TempDir(), segments[2])
		require.NoError(t, os.WriteFile(other, data, 0o600))
		require.ErrorIs(t, wal.Push(ctx, ac.cfg, other), wal.ErrConflict)
	})

	t.Run("fetching a segment that is not archived gives ErrNotArchived", func(t *testing.T) {
		tli, segno, err := wal.ParseSegmentName(last, 16<<20)
		require.NoError(t, err)
		next := wal.SegmentName(tli, segno+1, 16<<20)
		require.ErrorIs(t, wal.Fetch(ctx, ac.cfg, next, filepath.Join(t.TempDir(), "x")), wal.ErrNotArchived)
	})

	t.Run("Check reports the last segment, the count, no gaps and no lag", func(t *testing.T) {
		st, err := wal.Check(ctx, ac.cfg, url)
		require.NoError(t, err)
		require.Empty(t, st.Problems())
		require.Equal(t, int64(16<<20), st.SegmentSize)
		require.Len(t, st.Timelines, 1)
		tl := st.Timelines[0]
		require.Equal(t, slices.Min(segments), tl.FirstSegment)
		require.Equal(t, last, tl.LastSegment)
		require.Equal(t, len(segments), tl.Segments)
		require.Empty(t, tl.Gaps)
		require.Equal(t, int64(len(segments))*16<<20+int64(len(readFile(t, filepath.Join(ac.copies, tl.BackupLabels[0])))), tl.Bytes)
		require.Less(t, tl.StoredBytes, tl.Bytes/4, "switched segments are mostly zeros")
		require.WithinDuration(t, time.Now(), tl.LastArchivedAt, time.Minute)

		sv := st.Server
		require.NotNil(t, sv)
		require.Equal(t, "on", sv.ArchiveMode)
		require.Contains(t, sv.ArchiveCommand, "wal-push")
		require.Equal(t, last, sv.LastArchivedWAL)
		require.Equal(t, int64(len(copies)), sv.ArchivedCount)
		require.Zero(t, sv.FailedCount)
		require.Equal(t, uint32(1), sv.Timeline)
		require.NotNil(t, sv.Lag)
		require.Equal(t, last, sv.Lag.LastSegment)
		require.Zero(t, sv.Lag.Segments)
		require.NotNil(t, sv.Lag.Seconds)
		require.GreaterOrEqual(t, *sv.Lag.Seconds, 0.0)
	})

	t.Run("the archive lag counts complete segments that are not archived, in segments and bytes", func(t *testing.T) {
		// Fake the archive being three segments behind: check a copy of the
		// repository without its newest three segments.
		behind := wal.Config{RepoPath: t.TempDir(), Key: ac.cfg.Key}
		copyTree(t, ac.cfg.RepoPath, behind.RepoPath)
		for _, s := range segments[len(segments)-3:] {
			require.NoError(t, os.Remove(recordPath(behind, s)))
			require.NoError(t, os.Remove(objectPath(behind, s)))
		}
		st, err := wal.Check(ctx, behind, url)
		require.NoError(t, err)
		lag := st.Server.Lag
		require.NotNil(t, lag)
		insert, err := wal.ParseLSN(st.Server.InsertLSN)
		require.NoError(t, err)
		require.Equal(t, segments[len(segments)-4], lag.LastSegment)
		require.Equal(t, uint64(3), lag.Segments)
		require.Equal(t, 3*uint64(16<<20)+insert%(16<<20), lag.Bytes)
		require.Contains(t, strings.Join(st.Problems(), "\n"), "3 complete segments")
	})

	t.Run("a deleted segment shows as a gap", func(t *testing.T) {
		gapped := wal.Config{RepoPath: t.TempDir(), Key: ac.cfg.Key}
		copyTree(t, ac.cfg.RepoPath, gapped.RepoPath)
		missing := segments[3]
		require.NoError(t, os.Remove(objectPath(gapped, missing)))
		require.NoError(t, os.Remove(recordPath(gapped, missing)))
		st, err := wal.Check(ctx, gapped, "")
		require.NoError(t, err)
		tl := st.Timelines[0]
		require.Equal(t, len(segments)-1, tl.Segments)
		require.Equal(t, []wal.Gap{{First: missing, Last: missing, Count: 1}}, tl.Gaps)
		require.Equal(t, uint64(1), tl.MissingSegments)
		require.Contains(t, st.Problems(), fmt.Sprintf("timeline 1 misses 1 segments from %s to %s", missing, missing))

		t.Run("and so does a segment whose object alone was deleted", func(t *testing.T) {
			require.NoError(t, os.Remove(objectPath(gapped, segments[4])))
			st, err := wal.Check(ctx, gapped, "")
			require.NoError(t, err)
			require.Equal(t, []wal.Gap{{First: missing, Last: segments[4], Count: 2}}, st.Timelines[0].Gaps)
			require.Equal(t, []string{segments[4]}, st.Damaged)
		})
	})

	t.Run("a flipped byte in an archived segment makes Fetch fail rather than return wrong WAL", func(t *testing.T) {
		flipped := wal.Config{RepoPath: t.TempDir(), Key: ac.cfg.Key}
		copyTree(t, ac.cfg.RepoPath, flipped.RepoPath)
		obj := objectPath(flipped, segments[2])
		b := readFile(t, obj)
		b[len(b)/3] ^= 0x04
		require.NoError(t, os.WriteFile(obj, b, 0o600))
		dst := filepath.Join(t.TempDir(), "RECOVERYXLOG")
		require.ErrorIs(t, wal.Fetch(ctx, flipped, segments[2], dst), wal.ErrCorrupt)
		require.NoFileExists(t, dst)
		res, err := wal.Verify(ctx, flipped)
		require.NoError(t, err)
		require.Equal(t, []string{segments[2]}, mapsKeys(res.Failures))
		require.Equal(t, len(copies)-1, res.Checked)
	})

	t.Run("the newest archived commit is the last one the cluster made", func(t *testing.T) {
		c, err := wal.LatestCommit(ctx, ac.cfg, 1, 0)
		require.NoError(t, err)
		require.False(t, c.Time.Before(before.Truncate(time.Microsecond)), "commit %s, before %s", c.Time, before)
		require.False(t, c.Time.After(after), "commit %s, after %s", c.Time, after)
		require.Equal(t, last, c.Segment)

		_, err = wal.LastCommit(ctx, ac.cfg, segments[0])
		if err != nil {
			require.ErrorIs(t, err, wal.ErrNoCommit)
		}
	})

	t.Run("a cluster restored from a base backup without WAL replays the archive to the last commit", func(t *testing.T) {
		writeOwned(t, filepath.Join(restoreDir, "recovery.signal"), nil, 0o600)
		rc := newCluster(t, pgcluster.Options{DataDir: restoreDir, Fast: true, Settings: map[string]string{
			"restore_command":          ac.restore,
			"recovery_target_action":   "promote",
			"archive_mode":             "off",
			"recovery_target_timeline": "latest",
		}})
		started := time.Now()
		require.NoError(t, rc.Start(ctx))
		rurl := rc.URL("postgres")
		require.Eventually(t, func() bool { return !query[bool](t, rurl, `SELECT pg_is_in_recovery()`) },
			60*time.Second, 100*time.Millisecond, "the restored cluster was not promoted")
		t.Logf("restored and promoted in %s", time.Since(started).Round(time.Millisecond))
		require.Equal(t, wantRows, query[int64](t, rurl, `SELECT count(*) FROM marker`))
		require.Equal(t, int64(1), query[int64](t, rurl, `SELECT count(*) FROM marker WHERE batch = 6 AND payload = 'the last commit'`))
		require.Equal(t, int64(60000), query[int64](t, rurl, `SELECT count(*) FROM marker WHERE batch BETWEEN 3 AND 5`),
			"every row inserted after the base backup came from the archive")
		log, err := os.ReadFile(filepath.Join(restoreDir, "log", "server.log"))
		require.NoError(t, err)
		require.Contains(t, string(log), "restored log file \""+last+"\" from archive")

		// The commit LatestCommit finds is the one PostgreSQL names at the end of its replay.
		m := regexp.MustCompile(`last completed transaction was at log time (\S+ \S+)`).FindSubmatch(log)
		require.NotNil(t, m, "the server log names the last replayed transaction")
		replayed, err := time.Parse("2006-01-02 15:04:05.999999-07", string(m[1]))
		require.NoError(t, err)
		c, err := wal.LatestCommit(ctx, ac.cfg, 1, 0)
		require.NoError(t, err)
		require.True(t, c.Time.Equal(replayed), "LatestCommit %s, PostgreSQL replayed to %s", c.Time, replayed)
		if testing.Verbose() {
			t.Logf("server log of the restored cluster:\n%s", log)
		}
	})
}

func mapsKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
