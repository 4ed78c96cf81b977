package main

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/onevault/readiness/bench/internal/benchkit"
	"github.com/onevault/readiness/gen/client"
	"github.com/onevault/readiness/internal/backup"
	"github.com/onevault/readiness/internal/pgcluster"
	"github.com/onevault/readiness/internal/wal"
)

// The phases of a recovery, in order; a recovery has those that apply to it.
const (
	phaseQueue   = "request → job starts restoring (preflight, queue)"
	phaseFiles   = "restore of the backup's files"
	phaseLaunch  = "files laid → PostgreSQL starts"
	phaseSync    = "PostgreSQL starts → recovery begins (the data directory fsynced)"
	phaseFirst   = "recovery begins → redo starts (the checkpoint's segment fetched)"
	phaseRedo    = "redo: WAL fetched and replayed until the target is reached"
	phasePause   = "target reached → redo ends (paused until promoted, if it pauses)"
	phasePromote = "redo ends → accepts writes (new timeline, end-of-recovery checkpoint or record)"
	phaseSeen    = "promoted → the service records COMPLETED (its replay poll)"
	phaseAnswer  = "→ the client sees it, connects, its query is answered"
)

var phaseOrder = []string{phaseQueue, phaseFiles, phaseLaunch, phaseSync, phaseFirst, phaseRedo, phasePause, phasePromote, phaseSeen, phaseAnswer}

// rtoRun is one recovery, ours or pgBackRest's.
type rtoRun struct {
	total      time.Duration // from the request (or the restore command's start) to the query's answer
	phases     map[string]time.Duration
	serviceRTO float64 // ours: rto_seconds as the service recorded it
	apiRTO     *int64  // ours: rtoSeconds as the API answers it
	inRecovery bool
	count      int64 // marker rows in the recovered instance
	maxID      int64
	log        pgLog
}

// oursRecovery recovers through the API and measures it: the request, the status polled every
// 100 ms until COMPLETED, a query on the returned connection string.
func (b *bench) oursRecovery(ctx context.Context, round int) (*rtoRun, error) {
	s := b.svc
	b.logf("our recovery, run %d of %d: POST /api/v1/recovery/point-in-time {instance:bench, approvalRequired: false} ...", round+1, b.cfg.runs)
	run := &rtoRun{phases: map[string]time.Duration{}}
	no := false
	start := time.Now()
	resp, err := s.client.CreatePointInTimeRecoveryWithResponse(ctx, &client.CreatePointInTimeRecoveryParams{XTenantID: backup.PlatformTenant},
		client.PointInTimeRecoveryRequest{TargetTimestamp: b.r.target, RecoveryTarget: "instance:bench", ApprovalRequired: &no}, s.as)
	if err != nil {
		return nil, err
	}
	if resp.JSON202 == nil {
		return nil, fmt.Errorf("POST /api/v1/recovery/point-in-time answered %d: %s", resp.StatusCode(), resp.Body)
	}
	id := resp.JSON202.Data.RecoveryId
	var op client.RecoveryOperation
	last := client.RecoveryStatus("")
	for {
		g, err := s.client.GetRecoveryStatusWithResponse(ctx, id, &client.GetRecoveryStatusParams{XTenantID: backup.PlatformTenant}, s.as)
		if err != nil {
			return nil, err
		}
		if g.JSON200 == nil {
			return nil, fmt.Errorf("GET /api/v1/recovery/%s/status answered %d: %s", id, g.StatusCode(), g.Body)
		}
		op = g.JSON200.Data
		if op.Status != last {
			b.logf("  %s after %s", op.Status, benchkit.FmtDur(time.Since(start)))
			last = op.Status
		}
		if op.Status == client.RecoveryStatusCOMPLETED {
			break
		}
		if op.Status == client.RecoveryStatusFAILED || op.Status == client.RecoveryStatusREJECTED || op.Status == client.RecoveryStatusEXPIRED {
			msg := "(no message)"
			if op.ErrorMessage != nil {
				msg = *op.ErrorMessage
			}
			return nil, fmt.Errorf("our recovery %s ended %s: %s", id, op.Status, msg)
		}
		if time.Since(start) > 2*time.Hour {
			return nil, fmt.Errorf("our recovery %s is still %s after 2 hours", id, op.Status)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return nil, err
		}
	}
	if op.ConnectionString == nil {
		return nil, fmt.Errorf("our recovery %s is COMPLETED without a connection string", id)
	}
	run.apiRTO = op.RtoSeconds
	dataDir, err := b.answer(ctx, *op.ConnectionString, run)
	if dataDir != "" {
		defer b.removeInstance(ctx, dataDir)
	}
	if err != nil {
		return nil, err
	}
	run.total = time.Since(start)
	end := start.Add(run.total)

	// The phases: the service's status history (its own audit trail, stamped with
	// clock_timestamp()) and the recovered instance's server log.
	at, rto, err := b.statusHistory(ctx, id.String())
	if err != nil {
		return nil, err
	}
	run.serviceRTO = rto
	if run.log, err = parseLog(filepath.Join(dataDir, "log", "server.log"), start); err != nil {
		return nil, err
	}
	l := run.log
	run.phases[phaseQueue] = span(start, at["RESTORING"])
	run.phases[phaseFiles] = span(at["RESTORING"], at["REPLAYING_WAL"])
	run.phases[phaseLaunch] = span(at["REPLAYING_WAL"], l.start)
	run.setLogPhases()
	run.phases[phaseSeen] = span(l.ready, at["COMPLETED"])
	run.phases[phaseAnswer] = span(at["COMPLETED"], end)
	b.logf("our recovery: RTO %s (the service recorded %.1f s); %d marker rows (expected %d), in recovery %t; redo %s of %s",
		benchkit.FmtDur(run.total), run.serviceRTO, run.count, b.r.expected, run.inRecovery,
		benchkit.FmtDur(run.phases[phaseRedo]), benchkit.FormatBytes(int64(l.redoTo-l.redoFrom)))
	return run, nil
}

// pgbrRecovery restores pgBackRest's full backup with --type=time to the same target, starts
// PostgreSQL on it and waits, polling every 100 ms, until it is promoted and answers.
func (b *bench) pgbrRecovery(ctx context.Context, round int) (*rtoRun, error) {
	dir := b.w.Path(fmt.Sprintf("restore-pgbackrest-%d", round+1))
	if err := b.src.MkdirOwned(dir); err != nil {
		return nil, err
	}
	target := b.r.target.UTC().Format("2006-01-02 15:04:05.000000") + "+00"
	b.logf("pgBackRest recovery, run %d of %d: pgbackrest restore --type=time --target=%q --target-action=promote ...", round+1, b.cfg.runs, target)
	run := &rtoRun{phases: map[string]time.Duration{}}
	start := time.Now()
	files, _, err := b.pgbr.Run(ctx, "--pg1-path="+dir, "--type=time", "--target="+target, "--target-action=promote", "restore")
	if err != nil {
		return nil, err
	}
	filesDone := start.Add(files)
	defer b.removeInstance(ctx, dir)
	c, err := pgcluster.New(pgcluster.Options{DataDir: dir, Settings: map[string]string{"archive_mode": "off"}, Logger: b.w.Logger()})
	if err != nil {
		return nil, err
	}
	if err := c.Start(ctx); err != nil { // pg_ctl -w: until it accepts (read-only) connections
		return nil, err
	}
	conn, err := pgx.Connect(ctx, c.URL(pgbenchDB))
	if err != nil {
		return nil, err
	}
	for {
		var inRecovery bool
		if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
			conn.Close(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("pgBackRest's recovered instance: %w; PostgreSQL: %s", err, c.Failure())
		}
		if !inRecovery {
			break
		}
		if time.Since(start) > 2*time.Hour {
			conn.Close(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("pgBackRest's recovered instance is still in recovery after 2 hours")
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			conn.Close(context.WithoutCancel(ctx))
			return nil, err
		}
	}
	conn.Close(context.WithoutCancel(ctx))
	if _, err := b.answer(ctx, c.URL("postgres"), run); err != nil {
		return nil, err
	}
	run.total = time.Since(start)
	end := start.Add(run.total)
	if run.log, err = parseLog(filepath.Join(dir, "log", "server.log"), start); err != nil {
		return nil, err
	}
	l := run.log
	run.phases[phaseFiles] = files
	run.phases[phaseLaunch] = span(filesDone, l.start)
	run.setLogPhases()
	run.phases[phaseAnswer] = span(l.ready, end)
	b.logf("pgBackRest recovery: RTO %s (restore %s); %d marker rows (expected %d), in recovery %t; redo %s of %s",
		benchkit.FmtDur(run.total), benchkit.FmtDur(files), run.count, b.r.expected, run.inRecovery,
		benchkit.FmtDur(run.phases[phaseRedo]), benchkit.FormatBytes(int64(l.redoTo-l.redoFrom)))
	return run, nil
}

// setLogPhases sets the phases the server log tells.
func (run *rtoRun) setLogPhases() {
	l := run.log
	run.phases[phaseSync] = span(l.start, l.recoveryStart)
	run.phases[phaseFirst] = span(l.recoveryStart, l.redoStart)
	run.phases[phaseRedo] = span(l.redoStart, l.stopAt)
	run.phases[phasePause] = span(l.stopAt, l.redoDone)
	run.phases[phasePromote] = span(l.redoDone, l.ready)
}

// unknown marks a phase whose start or end the logs did not tell.
const unknown = time.Duration(math.MinInt64)

// span is b - a, or unknown when either is missing. It may be a little negative: the
// service sees pg_is_in_recovery() turn false before the postmaster logs that it is ready,
// and the log's timestamps are rounded to milliseconds.
func span(a, b time.Time) time.Duration {
	if a.IsZero() || b.IsZero() {
		return unknown
	}
	return b.Sub(a)
}

// answer connects to the recovered instance's pgbench database (connString names any of its
// databases) as a client would, and asks whether it is promoted and how many marker rows it
// holds; it returns the instance's data directory.
func (b *bench) answer(ctx context.Context, connString string, run *rtoRun) (string, error) {
	u, err := url.Parse(connString)
	if err != nil {
		return "", fmt.Errorf("connection string: %w", err)
	}
	u.Path = "/" + pgbenchDB
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery(), count(*), coalesce(max(id), 0) FROM "+markerTable).
		Scan(&run.inRecovery, &run.count, &run.maxID); err != nil {
		return "", err
	}
	var dir string
	err = conn.QueryRow(ctx, "SHOW data_directory").Scan(&dir)
	return dir, err
}

// removeInstance stops the recovered instance in dir and, unless --keep, removes it.
func (b *bench) removeInstance(ctx context.Context, dir string) {
	c, err := pgcluster.New(pgcluster.Options{DataDir: dir, Logger: b.w.Logger()})
	if err == nil {
		err = c.Stop(context.WithoutCancel(ctx))
	}
	if err != nil {
		b.logf("stopping the recovered instance in %s: %v", dir, err)
		return
	}
	if !b.w.Keep {
		if err := os.RemoveAll(dir); err != nil {
			b.logf("removing %s: %v", dir, err)
		}
	}
}

// statusHistory reads when the recovery first had each status and the RTO it recorded, from
// the service's database (the status satellite is insert-only: its rows are the history).
func (b *bench) statusHistory(ctx context.Context, id string) (map[string]time.Time, float64, error) {
	conn, err := pgx.Connect(ctx, b.svc.dbURL)
	if err != nil {
		return nil, 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, `SELECT status, load_date, rto_seconds FROM sat_recovery_operation_status
		WHERE recovery_hk = hash_key($1::text) ORDER BY load_date`, id)
	if err != nil {
		return nil, 0, err
	}
	at := map[string]time.Time{}
	var rto float64
	for rows.Next() {
		var status string
		var when time.Time
		var r pgtype.Float8
		if err := rows.Scan(&status, &when, &r); err != nil {
			return nil, 0, err
		}
		if _, ok := at[status]; !ok {
			at[status] = when
		}
		if r.Valid {
			rto = r.Float64
		}
	}
	return at, rto, rows.Err()
}

// pgLog is what a recovered instance's server log says about its start and recovery.
type pgLog struct {
	start, recoveryStart, redoStart, stopAt, redoDone, ready time.Time
	redoFrom, redoTo                                         uint64
	restored                                                 int    // WAL files restored from the archive
	redoElapsed                                              string // PostgreSQL's own measure, from "redo done"
}

var (
	logLine     = regexp.MustCompile(`^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \S+) \[\d+\] \w+:\s+(.*)$`)
	lsnIn       = regexp.MustCompile(`at ([0-9A-F]+/[0-9A-F]+)`)
	elapsedIn   = regexp.MustCompile(`elapsed: ([0-9.]+ s)`)
	restoredLog = regexp.MustCompile(`^restored log file "[0-9A-F]{24}" from archive`)
)

// parseLog reads the server log lines written from since on (a restored data directory may
// carry the source's log, which is older), with PostgreSQL's default log_line_prefix.
func parseLog(path string, since time.Time) (pgLog, error) {
	var l pgLog
	f, err := os.Open(path)
	if err != nil {
		return l, err
	}
	defer f.Close()
	since = since.Truncate(time.Millisecond)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := logLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		at, err := time.ParseInLocation("2006-01-02 15:04:05.000 MST", m[1], time.Local)
		if err != nil || at.Before(since) {
			continue
		}
		msg := m[2]
		lsn := func() uint64 {
			if mm := lsnIn.FindStringSubmatch(msg); mm != nil {
				v, _ := wal.ParseLSN(mm[1])
				return v
			}
			return 0
		}
		switch {
		case strings.HasPrefix(msg, "starting PostgreSQL"):
			l = pgLog{start: at} // a restart starts over
		case strings.HasPrefix(msg, "starting point-in-time recovery"), strings.HasPrefix(msg, "starting archive recovery"):
			l.recoveryStart = at
		case strings.HasPrefix(msg, "redo starts at"):
			l.redoStart, l.redoFrom = at, lsn()
		case strings.HasPrefix(msg, "recovery stopping"):
			l.stopAt = at
		case strings.HasPrefix(msg, "redo done at"):
			l.redoDone, l.redoTo = at, lsn()
			if mm := elapsedIn.FindStringSubmatch(msg); mm != nil {
				l.redoElapsed = mm[1]
			}
		case strings.HasPrefix(msg, "database system is ready to accept connections"):
			l.ready = at
		case restoredLog.MatchString(msg):
			l.restored++
		}
	}
	if err := sc.Err(); err != nil {
		return l, err
	}
	if l.start.IsZero() || l.ready.IsZero() {
		return l, fmt.Errorf("the server log %s does not show the instance starting and becoming ready after %s", path,
			since.Format(time.RFC3339))
	}
	return l, nil
}

// fmtPhase prints a phase's duration, "?" when the logs did not tell it and "–" when the
// recovery has no such phase.
func fmtPhase(run *rtoRun, name string) string {
	d, ok := run.phases[name]
	switch {
	case !ok:
		return "–"
	case d == unknown:
		return "?"
	}
	return benchkit.FmtDur(d)
}

// seconds prints a float of seconds.
func seconds(s float64) string { return strconv.FormatFloat(s, 'f', 1, 64) + " s" }

// fetchCosts runs each restore_command by itself (ours with --prefetch 0), as postgres, on every segment of the
// stretch, one after the other as PostgreSQL calls it during recovery, into a scratch
// directory, and returns the time each took: what a recovery pays per segment besides
// replaying it.
func (b *bench) fetchCosts(ctx context.Context) (ours, pgbr []time.Duration, err error) {
	dir := b.w.Path("fetch-scratch")
	if err := b.src.MkdirOwned(dir); err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	pgbrCommand := fmt.Sprintf("%s --config=%s --stanza=%s archive-get %%f \"%%p\"", b.pgbr.Bin, b.pgbr.Conf, benchkit.Stanza)
	// Ours without its background prefetch, which would serve the next calls from its spool:
	// each fetch by itself, as pgBackRest's archive-get (archive-async off) does it.
	oursCommand := strings.Replace(b.restoreCommand, " wal-fetch ", " wal-fetch --prefetch 0 ", 1)
	first, last := wal.SegmentOf(b.r.startLSN, b.segSize), wal.SegmentOf(b.r.endLSN, b.segSize)
	for segno := first; segno <= last; segno++ {
		name := wal.SegmentName(timeline, segno, b.segSize)
		for i, command := range []string{oursCommand, pgbrCommand} {
			target := filepath.Join(dir, "RECOVERYXLOG")
			cmd := exec.CommandContext(ctx, "/bin/sh", "-c", substitute(command, name, target))
			cmd.Dir = "/"
			b.src.RunAsOwner(cmd)
			start := time.Now()
			out, err := cmd.CombinedOutput()
			took := time.Since(start)
			if err != nil {
				return nil, nil, fmt.Errorf("restore_command for %s: %w\n%s", name, err, out)
			}
			if i == 0 {
				ours = append(ours, took)
			} else {
				pgbr = append(pgbr, took)
			}
			if err := os.Remove(target); err != nil {
				return nil, nil, err
			}
		}
	}
	return ours, pgbr, nil
}

// substitute replaces %f, %p and %% in a restore_command as PostgreSQL does.
func substitute(command, file, path string) string {
	var sb strings.Builder
	for i := 0; i < len(command); i++ {
		if command[i] == '%' && i+1 < len(command) {
			switch command[i+1] {
			case 'f':
				sb.WriteString(file)
				i++
				continue
			case 'p':
				sb.WriteString(path)
				i++
				continue
			case '%':
				sb.WriteByte('%')
				i++
				continue
			}
		}
		sb.WriteByte(command[i])
	}
	return sb.String()
}
