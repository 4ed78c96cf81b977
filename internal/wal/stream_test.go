package wal_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/pgcluster"
	"github.com/onevault/readiness/internal/wal"
)

const streamSegSize = 16 << 20

// runningStream is a wal.Stream running in the background, with its log.
type runningStream struct {
	slot    string
	cancel  context.CancelFunc
	done    chan error
	stopped bool

	mu    sync.Mutex
	lines []string
}

// startStream runs wal.Stream until stop (or the end of the test).
func startStream(t *testing.T, cfg wal.Config, o wal.StreamOptions) *runningStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if o.Slot == "" {
		o.Slot = wal.DefaultSlot
	}
	s := &runningStream{slot: o.Slot, cancel: cancel, done: make(chan error, 1)}
	o.Logger = slog.New(lineHandler(func(line string) {
		s.mu.Lock()
		s.lines = append(s.lines, line)
		s.mu.Unlock()
		t.Logf("receiver on %s: %s", o.Slot, line)
	}))
	go func() { s.done <- wal.Stream(ctx, cfg, o) }()
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop cancels the receiver's context and returns how long Stream took to
// return, which it must do with nil.
func (s *runningStream) stop(t *testing.T) time.Duration {
	t.Helper()
	if s.stopped {
		return 0
	}
	s.stopped = true
	started := time.Now()
	s.cancel()
	select {
	case err := <-s.done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("Stream on %s did not return within 30 s of its context's end", s.slot)
	}
	return time.Since(started)
}

// lineHandler is a slog handler that gives each record's level and message to fn.
type lineHandler func(line string)

func (h lineHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h lineHandler) Handle(_ context.Context, r slog.Record) error {
	h(r.Level.String() + " " + r.Message)
	return nil
}
func (h lineHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h lineHandler) WithGroup(string) slog.Handler      { return h }

// logged counts the log lines that contain text.
func (s *runningStream) logged(text string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.lines {
		if strings.Contains(l, text) {
			n++
		}
	}
	return n
}

// requireNoConflict checks that the receiver never met content that differs
// from what it received.
func (s *runningStream) requireNoConflict(t *testing.T) {
	t.Helper()
	require.Zero(t, s.logged("STOPPED"), "the receiver on %s stopped on a conflict", s.slot)
	require.Zero(t, s.logged("different content"), "the receiver on %s met a conflict", s.slot)
}

// slotState returns whether the slot is active and its restart_lsn.
func slotState(t *testing.T, url, slot string) (bool, uint64) {
	t.Helper()
	conn, err := pgxConnect(t.Context(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var active bool
	var restart *string
	err = conn.QueryRow(t.Context(), `SELECT active, restart_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&active, &restart)
	require.NoError(t, err, "slot %s", slot)
	if restart == nil {
		return active, 0
	}
	lsn, err := wal.ParseLSN(*restart)
	require.NoError(t, err)
	return active, lsn
}

func waitSlotActive(t *testing.T, url, slot string) {
	t.Helper()
	require.Eventually(t, func() bool {
		n := query[int64](t, url, fmt.Sprintf(`SELECT count(*) FROM pg_replication_slots WHERE slot_name = '%s' AND active`, slot))
		return n == 1
	}, 30*time.Second, 50*time.Millisecond, "nothing streams through slot %s", slot)
}

// insertLSN returns the server's WAL insert position: after a commit, the end
// of its commit record at least. (pg_current_wal_lsn is the write position,
// which trails a commit made with synchronous_commit off, as on Fast clusters.)
func insertLSN(t *testing.T, url string) uint64 {
	t.Helper()
	lsn, err := wal.ParseLSN(query[string](t, url, `SELECT pg_current_wal_insert_lsn()::text`))
	require.NoError(t, err)
	return lsn
}

// waitArchivedThrough polls ArchivedThrough until it reaches lsn and returns
// how long that took.
func waitArchivedThrough(t *testing.T, cfg wal.Config, timeline uint32, lsn uint64, within time.Duration) time.Duration {
	t.Helper()
	started := time.Now()
	var got uint64
	for time.Since(started) < within {
		var err error
		got, err = wal.ArchivedThrough(t.Context(), cfg, timeline)
		require.NoError(t, err)
		if got >= lsn {
			return time.Since(started)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("the archive of timeline %d reached %s, not %s, within %s", timeline, wal.FormatLSN(got), wal.FormatLSN(lsn), within)
	return 0
}

// commitRow commits one row and returns its transaction id and the insert
// position after the commit. The commit waits for its WAL to be flushed, as
// with the default synchronous_commit (Fast clusters turn it off, which lets
// the server flush up to wal_writer_delay later, and only flushed WAL is
// streamed).
func commitRow(t *testing.T, url, payload string) (string, uint64) {
	t.Helper()
	conn, err := pgxConnect(t.Context(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(t.Context(), `SET synchronous_commit = on`)
	require.NoError(t, err)
	var xid, lsn string
	require.NoError(t, conn.QueryRow(t.Context(),
		`INSERT INTO marker (batch, payload) VALUES (0, $1) RETURNING pg_current_xact_id()::text`, payload).Scan(&xid))
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn))
	end, err := wal.ParseLSN(lsn)
	require.NoError(t, err)
	return xid, end
}

// waldumpCommits runs pg_waldump over a segment file and returns the commit
// records it finds, by transaction id, with their LSNs.
func waldumpCommits(t *testing.T, binDir, file string) map[string]uint64 {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), filepath.Join(binDir, "pg_waldump"), "--rmgr=Transaction", file).Output()
	if err != nil {
		// pg_waldump ends with an error at the end of the WAL: the zeros.
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee)
		require.Contains(t, string(ee.Stderr), "error in WAL record", "pg_waldump stops at the end of the WAL, not on damage")
	}
	commits := map[string]uint64{}
	re := regexp.MustCompile(`tx:\s+(\d+), lsn: ([0-9A-F]+/[0-9A-F]+), prev [^,]+, desc: COMMIT `)
	for _, m := range re.FindAllStringSubmatch(string(out), -1) {
		lsn, err := wal.ParseLSN(m[2])
		require.NoError(t, err)
		commits[m[1]] = lsn
	}
	return commits
}

func segmentOf(lsn uint64) string {
	return wal.SegmentName(1, wal.SegmentOf(lsn, streamSegSize), streamSegSize)
}

func TestStreamArchivesTheSegmentsArchiveCommandArchives(t *testing.T) {
	ctx := t.Context()
	ac := startArchivingCluster(t)
	url := ac.URL("postgres")
	exec1(t, url, `CREATE TABLE marker (id bigserial PRIMARY KEY, batch int NOT NULL, payload text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())`)

	// One receiver archives into a repository of its own, to compare with
	// archive_command byte for byte; another into archive_command's, where
	// both methods archive every segment.
	own := wal.Config{RepoPath: filepath.Join(t.TempDir(), "repo"), Key: ac.cfg.Key}
	alone := startStream(t, own, wal.StreamOptions{Conn: url, Slot: "alone", FlushInterval: 200 * time.Millisecond})
	shared := startStream(t, ac.cfg, wal.StreamOptions{Conn: url, Slot: "shared", FlushInterval: 200 * time.Millisecond})
	waitSlotActive(t, url, "alone")
	waitSlotActive(t, url, "shared")

	// Segments filled by WAL that runs across their ends, and ended by switches.
	exec1(t, url, `INSERT INTO marker (batch, payload) SELECT 1, md5(g::text) FROM generate_series(1, 200000) g`)
	switchWAL(t, url, 2, 1000)
	exec1(t, url, `INSERT INTO marker (batch, payload) SELECT 3, md5(g::text) FROM generate_series(1, 120000) g`)
	last := switchWAL(t, url, 4, 10)
	waitArchived(t, url, last)
	_, lastSegno, err := wal.ParseSegmentName(last, streamSegSize)
	require.NoError(t, err)
	end := (lastSegno + 1) * streamSegSize
	waitArchivedThrough(t, own, 1, end, 60*time.Second)
	require.Eventually(t, func() bool { _, restart := slotState(t, url, "shared"); return restart >= end },
		60*time.Second, 20*time.Millisecond, "the receiver on the shared repository confirmed %s", last)

	copies, err := os.ReadDir(ac.copies)
	require.NoError(t, err)
	streamed, err := wal.Segments(ctx, own, 1)
	require.NoError(t, err)

	t.Run("every segment the receiver archived is byte for byte the file PostgreSQL gave archive_command", func(t *testing.T) {
		require.GreaterOrEqual(t, len(streamed), 5)
		require.Equal(t, last, streamed[len(streamed)-1])
		for _, name := range streamed {
			dst := filepath.Join(t.TempDir(), name)
			require.NoError(t, wal.Fetch(ctx, own, name, dst))
			require.True(t, bytes.Equal(readFile(t, filepath.Join(ac.copies, name)), readFile(t, dst)), name)
		}
		st, err := wal.Check(ctx, own, "")
		require.NoError(t, err)
		require.Empty(t, st.Problems())
		require.Empty(t, st.Timelines[0].Gaps)
		require.Equal(t, len(streamed), st.Timelines[0].Segments)
		t.Logf("the receiver archived %d segments, %s to %s", len(streamed), streamed[0], last)
	})

	t.Run("with both methods in one repository nothing conflicts, and every file fetches as PostgreSQL wrote it", func(t *testing.T) {
		require.Zero(t, query[int64](t, url, `SELECT failed_count FROM pg_stat_archiver`), "no archive_command failed")
		alone.requireNoConflict(t)
		shared.requireNoConflict(t)
		for _, e := range copies {
			dst := filepath.Join(t.TempDir(), e.Name())
			require.NoError(t, wal.Fetch(ctx, ac.cfg, e.Name(), dst))
			require.True(t, bytes.Equal(readFile(t, filepath.Join(ac.copies, e.Name())), readFile(t, dst)), e.Name())
		}
		res, err := wal.Verify(ctx, ac.cfg)
		require.NoError(t, err)
		require.Empty(t, res.Failures)

		st, err := wal.Check(ctx, ac.cfg, url)
		require.NoError(t, err)
		require.Empty(t, st.Problems())
		require.Empty(t, st.Incomplete)
		tl := st.Timelines[0]
		require.Empty(t, tl.Gaps)
		require.Equal(t, last, tl.LastSegment)
		require.Len(t, st.Server.Slots, 2)
		for _, sl := range st.Server.Slots {
			require.True(t, sl.Active, sl.Name)
			require.NotNil(t, sl.BehindBytes)
		}
	})

	t.Run("a cancelled Stream returns nil at once", func(t *testing.T) {
		for _, s := range []*runningStream{alone, shared} {
			took := s.stop(t)
			t.Logf("Stream on %s returned %s after its context was cancelled", s.slot, took.Round(time.Microsecond))
			require.Less(t, took, 5*time.Second)
		}
		require.Eventually(t, func() bool { active, _ := slotState(t, url, "alone"); return !active },
			10*time.Second, 20*time.Millisecond, "the slot is released")
	})
}

func TestStreamKeepsTheArchiveWithinAboutFlushIntervalOfTheServer(t *testing.T) {
	ctx := t.Context()
	ac := startCluster(t, false)
	url := ac.URL("postgres")
	cfg := ac.cfg
	exec1(t, url, `CREATE TABLE marker (id bigserial PRIMARY KEY, batch int NOT NULL, payload text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())`)
	const flushInterval = 200 * time.Millisecond
	first := startStream(t, cfg, wal.StreamOptions{Conn: url, FlushInterval: flushInterval})
	waitSlotActive(t, url, wal.DefaultSlot)
	waitArchivedThrough(t, cfg, 1, insertLSN(t, url), 30*time.Second)

	// A base backup without WAL, taken while the receiver runs: recovery must
	// take all the WAL after it from what the receiver archived.
	restoreParent := filepath.Join(filepath.Dir(ac.DataDir()), "restore")
	require.NoError(t, ac.MkdirOwned(restoreParent))
	restoreDir := filepath.Join(restoreParent, "data")
	bb := exec.CommandContext(ctx, filepath.Join(ac.BinDir(), "pg_basebackup"), "-d", url, "-D", restoreDir, "-X", "none", "-c", "fast", "--no-sync")
	bb.Dir = "/"
	ac.RunAsOwner(bb)
	out, err := bb.CombinedOutput()
	require.NoError(t, err, string(out))
	exec1(t, url, `INSERT INTO marker (batch, payload) SELECT 1, md5(g::text) FROM generate_series(1, 50000) g`)

	var xid string
	var commitEnd uint64
	t.Run("a commit is in the archive within about FlushInterval", func(t *testing.T) {
		var delays []time.Duration
		for i := range 10 {
			xid, commitEnd = commitRow(t, url, fmt.Sprintf("commit %d", i))
			delays = append(delays, waitArchivedThrough(t, cfg, 1, commitEnd, 10*time.Second))
			time.Sleep(50 * time.Millisecond)
		}
		slices.Sort(delays)
		t.Logf("commit to archive, FlushInterval %s: min %s, median %s, max %s over %d commits", flushInterval,
			delays[0].Round(time.Millisecond), delays[len(delays)/2].Round(time.Millisecond), delays[len(delays)-1].Round(time.Millisecond), len(delays))
	})

	segment := segmentOf(commitEnd)
	t.Run("the segment of the last commit fetches as its streamed partial padded with zeros, holding the commit", func(t *testing.T) {
		segs, err := wal.Segments(ctx, cfg, 1)
		require.NoError(t, err)
		require.NotContains(t, segs, segment, "the segment is not complete")
		file := filepath.Join(t.TempDir(), segment)
		require.NoError(t, wal.Fetch(ctx, cfg, segment, file))
		data := readFile(t, file)
		require.Len(t, data, streamSegSize)
		through, err := wal.ArchivedThrough(ctx, cfg, 1)
		require.NoError(t, err)
		valid := int(through % streamSegSize)
		require.NotZero(t, valid)
		require.Equal(t, make([]byte, streamSegSize-valid), data[valid:], "zeros after the streamed bytes")
		partial := filepath.Join(t.TempDir(), "partial")
		require.NoError(t, wal.Fetch(ctx, cfg, segment+".stream", partial))
		require.Equal(t, data[:valid], readFile(t, partial), "fetched by its own name, the streamed partial is not padded")

		commits := waldumpCommits(t, ac.BinDir(), file)
		require.Contains(t, commits, xid, "pg_waldump finds the last commit in the fetched segment")
		require.Less(t, commits[xid], commitEnd)

		c, err := wal.LatestCommit(ctx, cfg, 1, 0)
		require.NoError(t, err)
		require.Equal(t, segment, c.Segment)
		lsn, err := wal.ParseLSN(c.LSN)
		require.NoError(t, err)
		require.GreaterOrEqual(t, lsn, commits[xid], "LatestCommit reads the streamed partial")
	})

	t.Run("Check reports the streamed partial; Verify reads it", func(t *testing.T) {
		st, err := wal.Check(ctx, cfg, url)
		require.NoError(t, err)
		require.Empty(t, st.Problems())
		require.Empty(t, st.Incomplete)
		require.Empty(t, st.Damaged)
		tl := st.Timelines[0]
		require.Empty(t, tl.Gaps)
		require.NotNil(t, tl.Streamed)
		require.Equal(t, segment, tl.Streamed.Segment)
		end, err := wal.ParseLSN(tl.Streamed.EndLSN)
		require.NoError(t, err)
		require.GreaterOrEqual(t, end, commitEnd)
		require.Equal(t, int64(end%streamSegSize), tl.Streamed.Bytes)
		require.WithinDuration(t, time.Now(), tl.Streamed.WrittenAt, time.Minute)
		require.Equal(t, []wal.SlotStatus{{Name: wal.DefaultSlot, Active: true, RestartLSN: st.Server.Slots[0].RestartLSN,
			WALStatus: "reserved", BehindBytes: st.Server.Slots[0].BehindBytes}}, st.Server.Slots)
		require.Less(t, *st.Server.Slots[0].BehindBytes, int64(streamSegSize))
		require.NotNil(t, st.Server.Lag)
		require.Less(t, st.Server.Lag.Bytes, uint64(streamSegSize), "the lag counts from the streamed partial")

		res, err := wal.Verify(ctx, cfg)
		require.NoError(t, err)
		require.Empty(t, res.Failures)
		require.Equal(t, tl.Files, res.Checked, "every file, the streamed partial included")

		t.Run("and a damaged one fails Fetch and Verify", func(t *testing.T) {
			damaged := wal.Config{RepoPath: t.TempDir(), Key: cfg.Key}
			copyTree(t, cfg.RepoPath, damaged.RepoPath)
			var rec wal.Record
			require.NoError(t, json.Unmarshal(readFile(t, recordPath(damaged, segment+".stream")), &rec))
			require.Equal(t, int64(streamSegSize), rec.SegmentSize)
			obj := filepath.Join(damaged.RepoPath, "wal", "00000001", rec.File)
			b := readFile(t, obj)
			b[len(b)/2] ^= 0x01
			require.NoError(t, os.WriteFile(obj, b, 0o600))
			require.ErrorIs(t, wal.Fetch(ctx, damaged, segment, filepath.Join(t.TempDir(), segment)), wal.ErrCorrupt)
			res, err := wal.Verify(ctx, damaged)
			require.NoError(t, err)
			require.Equal(t, []string{segment + ".stream"}, mapsKeys(res.Failures))
		})
	})

	t.Run("a cluster restored from a base backup replays the archive through the streamed partial", func(t *testing.T) {
		writeOwned(t, filepath.Join(restoreDir, "recovery.signal"), nil, 0o600)
		rc := newCluster(t, pgcluster.Options{DataDir: restoreDir, Fast: true, Settings: map[string]string{
			"restore_command":          ac.restore,
			"recovery_target_action":   "promote",
			"recovery_target_timeline": "latest",
		}})
		require.NoError(t, rc.Start(ctx))
		rurl := rc.URL("postgres")
		require.Eventually(t, func() bool { return !query[bool](t, rurl, `SELECT pg_is_in_recovery()`) },
			60*time.Second, 100*time.Millisecond, "the restored cluster was not promoted")
		require.Equal(t, int64(1), query[int64](t, rurl, `SELECT count(*) FROM marker WHERE payload = 'commit 9'`),
			"the last commit, archived only in the streamed partial, was replayed")
		require.Equal(t, int64(50000), query[int64](t, rurl, `SELECT count(*) FROM marker WHERE batch = 1`))
		log := string(readFile(t, filepath.Join(restoreDir, "log", "server.log")))
		require.Contains(t, log, `restored log file "`+segment+`" from archive`)
		require.NoError(t, rc.Stop(ctx))
	})

	t.Run("while the receiver is stopped the slot keeps the WAL that is not archived, and it catches up without a gap", func(t *testing.T) {
		took := first.stop(t)
		require.Less(t, took, 5*time.Second)
		archived, err := wal.ArchivedThrough(ctx, cfg, 1)
		require.NoError(t, err)
		_, restart := slotState(t, url, wal.DefaultSlot)
		require.LessOrEqual(t, restart, archived, "the server was told only what is archived")

		exec1(t, url, `INSERT INTO marker (batch, payload) SELECT 2, md5(g::text) FROM generate_series(1, 150000) g`)
		switchWAL(t, url, 3, 100)
		exec1(t, url, `INSERT INTO marker (batch, payload) SELECT 4, md5(g::text) FROM generate_series(1, 1000) g`)
		exec1(t, url, `CHECKPOINT`)
		exec1(t, url, `CHECKPOINT`)
		target := insertLSN(t, url)
		require.Greater(t, target-archived, uint64(2*streamSegSize), "more than two segments were written meanwhile")
		active, held := slotState(t, url, wal.DefaultSlot)
		require.False(t, active)
		require.Equal(t, restart, held, "restart_lsn stays where the archive ends")
		st, err := wal.Check(ctx, cfg, url)
		require.NoError(t, err)
		require.Contains(t, strings.Join(st.Problems(), "\n"), "replication slot readiness_wal is inactive and keeps")
		require.Greater(t, *st.Server.Slots[0].BehindBytes, int64(2*streamSegSize))

		again := startStream(t, cfg, wal.StreamOptions{Conn: url, FlushInterval: flushInterval})
		took = waitArchivedThrough(t, cfg, 1, target, 60*time.Second)
		t.Logf("the receiver caught up %d bytes in %s", target-archived, took.Round(time.Millisecond))
		st, err = wal.Check(ctx, cfg, url)
		require.NoError(t, err)
		require.Empty(t, st.Problems())
		require.Empty(t, st.Timelines[0].Gaps)
		_, restart = slotState(t, url, wal.DefaultSlot)
		require.Greater(t, restart, held, "the slot follows the archive again")

		t.Run("a second receiver on the slot waits, archives nothing, and takes over when the first stops", func(t *testing.T) {
			second := startStream(t, cfg, wal.StreamOptions{Conn: url, FlushInterval: flushInterval})
			require.Eventually(t, func() bool { return second.logged("in use by another process") == 1 },
				30*time.Second, 20*time.Millisecond)
			_, lsn := commitRow(t, url, "while two receivers run")
			waitArchivedThrough(t, cfg, 1, lsn, 10*time.Second)
			time.Sleep(3 * time.Second) // a retry or two of the second receiver
			require.Zero(t, second.logged("streaming timeline"), "the second receiver never streamed")
			require.Equal(t, 1, second.logged("in use by another process"), "it waits quietly")

			took := again.stop(t)
			require.Less(t, took, 5*time.Second)
			require.Eventually(t, func() bool { return second.logged("streaming timeline") == 1 },
				30*time.Second, 20*time.Millisecond, "the second receiver takes over")
			_, lsn = commitRow(t, url, "after the takeover")
			waitArchivedThrough(t, cfg, 1, lsn, 10*time.Second)
			exec1(t, url, `INSERT INTO marker (batch, payload) SELECT 5, md5(g::text) FROM generate_series(1, 100000) g`)
			waitArchivedThrough(t, cfg, 1, insertLSN(t, url), 60*time.Second)
			second.stop(t)
			first.requireNoConflict(t)
			again.requireNoConflict(t)
			second.requireNoConflict(t)

			st, err := wal.Check(ctx, cfg, "")
			require.NoError(t, err)
			require.Empty(t, st.Problems())
			require.Empty(t, st.Incomplete)
			res, err := wal.Verify(ctx, cfg)
			require.NoError(t, err)
			require.Empty(t, res.Failures)
		})
	})
}

func TestStreamFollowsAPromotionOntoTheNewTimeline(t *testing.T) {
	ctx := t.Context()
	base := t.TempDir()
	settings := map[string]string{"wal_level": "replica", "max_wal_senders": "4", "full_page_writes": "on"}
	primary := newCluster(t, pgcluster.Options{DataDir: filepath.Join(base, "primary"), Fast: true, Settings: settings})
	require.NoError(t, primary.Start(ctx))
	purl := primary.URL("postgres")
	exec1(t, purl, `CREATE TABLE marker (id bigserial PRIMARY KEY, batch int NOT NULL, payload text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())`)

	// The receiver streams from a standby, which is then promoted: its
	// timeline ends under the receiver, as it does when the managed cluster
	// is a standby that fails over.
	standbyParent := filepath.Join(base, "standby")
	require.NoError(t, primary.MkdirOwned(standbyParent))
	standbyDir := filepath.Join(standbyParent, "data")
	bb := exec.CommandContext(ctx, filepath.Join(primary.BinDir(), "pg_basebackup"), "-d", purl, "-D", standbyDir, "-X", "stream", "-R", "-c", "fast", "--no-sync")
	bb.Dir = "/"
	primary.RunAsOwner(bb)
	out, err := bb.CombinedOutput()
	require.NoError(t, err, string(out))
	standby := newCluster(t, pgcluster.Options{DataDir: standbyDir, Fast: true, Settings: settings})
	require.NoError(t, standby.Start(ctx))
	surl := standby.URL("postgres")
	require.True(t, query[bool](t, surl, `SELECT pg_is_in_recovery()`))

	cfg := newConfig(t)
	s := startStream(t, cfg, wal.StreamOptions{Conn: surl, FlushInterval: 200 * time.Millisecond})
	waitSlotActive(t, surl, wal.DefaultSlot)
	exec1(t, purl, `INSERT INTO marker (batch, payload) SELECT 1, md5(g::text) FROM generate_series(1, 100000) g`)
	_, lsn := commitRow(t, purl, "on timeline 1")
	waitArchivedThrough(t, cfg, 1, lsn, 30*time.Second)

	require.True(t, query[bool](t, surl, `SELECT pg_promote()`))
	history := readFile(t, filepath.Join(standbyDir, "pg_wal", "00000002.history"))
	fields := strings.Fields(string(history))
	require.Equal(t, "1", fields[0])
	switchPoint, err := wal.ParseLSN(fields[1])
	require.NoError(t, err)
	xid, lsn := commitRow(t, surl, "on timeline 2")
	took := waitArchivedThrough(t, cfg, 2, lsn, 30*time.Second)
	t.Logf("timeline 1 ended at %s; a commit on timeline 2 was in the archive %s after it was made", wal.FormatLSN(switchPoint), took.Round(time.Millisecond))
	require.Equal(t, 1, s.logged("timeline 1 ended"))
	s.requireNoConflict(t)

	t.Run("the archive holds timeline 1 up to the switch point and the new timeline's history", func(t *testing.T) {
		through, err := wal.ArchivedThrough(ctx, cfg, 1)
		require.NoError(t, err)
		require.Equal(t, switchPoint, through)
		dst := filepath.Join(t.TempDir(), "history")
		require.NoError(t, wal.Fetch(ctx, cfg, "00000002.history", dst))
		require.Equal(t, history, readFile(t, dst))

		st, err := wal.Check(ctx, cfg, "")
		require.NoError(t, err)
		require.Empty(t, st.Problems())
		require.Len(t, st.Timelines, 2)
		require.Equal(t, "00000002.history", st.Timelines[1].History)
		require.Empty(t, st.Timelines[0].Gaps)
		require.Empty(t, st.Timelines[1].Gaps)
	})

	t.Run("the new timeline's segment holds the commit made after the promotion", func(t *testing.T) {
		segment := wal.SegmentName(2, wal.SegmentOf(lsn, streamSegSize), streamSegSize)
		file := filepath.Join(t.TempDir(), segment)
		require.NoError(t, wal.Fetch(ctx, cfg, segment, file))
		require.Contains(t, waldumpCommits(t, standby.BinDir(), file), xid)
		c, err := wal.LatestCommit(ctx, cfg, 2, 0)
		require.NoError(t, err)
		require.Equal(t, segment, c.Segment)
	})
}

func TestStreamStopsOnASegmentArchivedWithOtherContentUntilItIsRemoved(t *testing.T) {
	ctx := t.Context()
	ac := startCluster(t, false)
	url := ac.URL("postgres")
	cfg := ac.cfg
	exec1(t, url, `CREATE TABLE marker (id bigserial PRIMARY KEY, batch int NOT NULL, payload text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())`)
	t.Cleanup(wal.SetConflictRetry(2 * time.Second))
	s := startStream(t, cfg, wal.StreamOptions{Conn: url, FlushInterval: 200 * time.Millisecond})
	waitSlotActive(t, url, wal.DefaultSlot)
	waitArchivedThrough(t, cfg, 1, insertLSN(t, url), 30*time.Second)

	// Another cluster's segment under the name of the next one, as when two
	// clusters archive into one repository.
	next := wal.SegmentOf(insertLSN(t, url), streamSegSize) + 1
	name := wal.SegmentName(1, next, streamSegSize)
	fake := fakeSegment(t, name, streamSegSize, 7)
	require.NoError(t, wal.Push(ctx, cfg, fake))
	exec1(t, url, `INSERT INTO marker (batch, payload) SELECT 1, md5(g::text) FROM generate_series(1, 300000) g`)
	require.Eventually(t, func() bool { return s.logged("STOPPED") >= 1 }, 60*time.Second, 20*time.Millisecond)
	require.GreaterOrEqual(t, s.logged(name+" is archived with"), 1, "the log names the segment")

	t.Run("it confirms nothing after the segment and tries it again now and then, not in a loop", func(t *testing.T) {
		time.Sleep(5 * time.Second)
		require.LessOrEqual(t, s.logged("STOPPED"), 5, "a retry every 2 s")
		_, restart := slotState(t, url, wal.DefaultSlot)
		require.LessOrEqual(t, restart, next*streamSegSize, "the server keeps the WAL from the conflicting segment on")
		segs, err := wal.Segments(ctx, cfg, 1)
		require.NoError(t, err)
		require.Equal(t, name, segs[len(segs)-1], "nothing after it was archived")
		dst := filepath.Join(t.TempDir(), name)
		require.NoError(t, wal.Fetch(ctx, cfg, name, dst))
		require.Equal(t, readFile(t, fake), readFile(t, dst), "the archived segment is left as it was")
	})

	t.Run("once an operator removes the other segment it archives its own and goes on", func(t *testing.T) {
		require.NoError(t, os.Remove(recordPath(cfg, name)))
		require.NoError(t, os.Remove(objectPath(cfg, name)))
		took := waitArchivedThrough(t, cfg, 1, insertLSN(t, url), 60*time.Second)
		t.Logf("caught up %s after the removal", took.Round(time.Millisecond))
		require.Equal(t, 1, s.logged(name+" is archived now"))
		st, err := wal.Check(ctx, cfg, "")
		require.NoError(t, err)
		require.Empty(t, st.Problems())
		res, err := wal.Verify(ctx, cfg)
		require.NoError(t, err)
		require.Empty(t, res.Failures)
		_, restart := slotState(t, url, wal.DefaultSlot)
		require.Greater(t, restart, (next+1)*streamSegSize, "the slot follows the archive again")
	})
	require.Less(t, s.stop(t), 5*time.Second)
}

func TestStreamedPartialNames(t *testing.T) {
	t.Run("a streamed partial's name parses with its timeline", func(t *testing.T) {
		kind, tli, err := wal.ParseName("000000030000000000000005.stream")
		require.NoError(t, err)
		require.Equal(t, wal.KindStreamed, kind)
		require.Equal(t, uint32(3), tli)
		for _, bad := range []string{"000000030000000000000005.stream.0", "00000003000000000000005.stream", "000000030000000000000005.STREAM"} {
			_, _, err := wal.ParseName(bad)
			require.ErrorIs(t, err, wal.ErrInvalidName, bad)
		}
	})

	t.Run("Push refuses one: only the receiver writes them", func(t *testing.T) {
		cfg := newConfig(t)
		err := wal.Push(t.Context(), cfg, fakeSegment(t, "000000010000000000000001.stream", mib, 1))
		require.ErrorIs(t, err, wal.ErrInvalidName)
		through, err := wal.ArchivedThrough(t.Context(), cfg, 1)
		require.NoError(t, err)
		require.Zero(t, through)
	})

	t.Run("ArchivedThrough of pushed segments is the end of the newest", func(t *testing.T) {
		cfg := newConfig(t)
		for i, name := range []string{seg1, "000000010000000000000004"} {
			require.NoError(t, wal.Push(t.Context(), cfg, fakeSegment(t, name, mib, uint64(i))))
		}
		through, err := wal.ArchivedThrough(t.Context(), cfg, 1)
		require.NoError(t, err)
		require.Equal(t, uint64(5*mib), through)
	})
}

func TestStreamArchivesADamagedNewestSegmentAgainOnRestart(t *testing.T) {
	ctx := t.Context()
	ac := startCluster(t, false)
	url := ac.URL("postgres")
	cfg := ac.cfg
	exec1(t, url, `CREATE TABLE marker (id bigserial PRIMARY KEY, batch int NOT NULL DEFAULT 0, payload text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())`)
	s := startStream(t, cfg, wal.StreamOptions{Conn: url, FlushInterval: 200 * time.Millisecond})
	waitSlotActive(t, url, wal.DefaultSlot)
	exec1(t, url, `INSERT INTO marker (payload) SELECT md5(g::text) FROM generate_series(1, 20000) g`)
	segment := segmentOf(insertLSN(t, url))
	exec1(t, url, `SELECT pg_switch_wal()`)
	commitRow(t, url, "after the switch") // the receiver goes on into the next segment
	require.Eventually(t, func() bool { return s.logged("archived segment "+segment) == 1 }, 30*time.Second, 20*time.Millisecond)
	waitArchivedThrough(t, cfg, 1, insertLSN(t, url), 30*time.Second)
	require.Less(t, s.stop(t), 5*time.Second)

	// A disk that failed under the newest object: its record still vouches for the segment.
	obj := objectPath(cfg, segment)
	b := readFile(t, obj)
	b[len(b)/2] ^= 0xFF
	require.NoError(t, os.WriteFile(obj, b, 0o600))
	res, err := wal.Verify(ctx, cfg)
	require.NoError(t, err)
	require.Len(t, res.Failures, 1, "the damage is there before the restart")

	again := startStream(t, cfg, wal.StreamOptions{Conn: url, FlushInterval: 200 * time.Millisecond})
	require.Eventually(t, func() bool { return again.logged("archived segment "+segment) == 1 }, 30*time.Second, 20*time.Millisecond,
		"the receiver streams the damaged segment again and archives it anew")
	require.Equal(t, 1, again.logged("newest segment "+segment+" does not read back"))
	res, err = wal.Verify(ctx, cfg)
	require.NoError(t, err)
	require.Empty(t, res.Failures, "the object is whole again")
	dst := filepath.Join(t.TempDir(), segment)
	require.NoError(t, wal.Fetch(ctx, cfg, segment, dst))
	again.requireNoConflict(t)
	require.Less(t, again.stop(t), 5*time.Second)
}
