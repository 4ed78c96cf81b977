package main

import (
	"cmp"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/onevault/readiness/bench/internal/benchkit"
	"github.com/onevault/readiness/internal/wal"
)

// Targets of the issue.
const (
	targetRTORatio = 1.0             // our RTO ÷ pgBackRest's, at most
	targetRPOp99   = 5 * time.Second // RPO p99 with streaming, at most
)

// results are the figures the report prints.
type results struct {
	pgVersion, pgbrVersion string
	archiveTimeout         time.Duration

	gen                      benchkit.Generated
	pgbenchSize, dataDirSize int64

	oursBackup      time.Duration // request → COMPLETED
	oursBackupID    uuid.UUID
	oursBackupBytes int64
	pgbrBackup      time.Duration
	pgbrLabel       string

	loadStart, loadEnd time.Time
	tps                float64
	walBytes           int64
	walSegments        int
	startLSN, endLSN   uint64

	target       time.Time
	targetMarker int64
	expected     int64 // marker rows committed up to the target

	markers, rpoSampled, rpoExcluded int
	rpo                              []rpoResult

	ours, pgbr []*rtoRun

	fetchOurs, fetchPgbr []time.Duration // each restore_command by itself, per segment of the stretch
}

// medianRun returns the run with the median total (the lower one of an even count).
func medianRun(runs []*rtoRun) *rtoRun {
	s := slices.Clone(runs)
	slices.SortFunc(s, func(a, b *rtoRun) int { return cmp.Compare(a.total, b.total) })
	return s[(len(s)-1)/2]
}

func totals(runs []*rtoRun) []time.Duration {
	out := make([]time.Duration, len(runs))
	for i, r := range runs {
		out[i] = r.total
	}
	return out
}

// report prints the markdown tables, the PASS/FAIL lines and how it was measured.
func (b *bench) report() {
	r := &b.r
	w := b.w.Out
	dash := "–"
	fmt.Fprintf(w, "\n## Recovery benchmark: %s of %s, %d s of pgbench WAL\n\n", managedDB, benchkit.FormatBytes(r.gen.DBSize), b.cfg.walSeconds)
	fmt.Fprintf(w, "PostgreSQL %s, %s, %d CPUs.\n\n", r.pgVersion, r.pgbrVersion, runtime.NumCPU())

	fmt.Fprint(w, benchkit.Table([]string{"the data and the WAL", "value"}, "ll", [][]string{
		{managedDB + " (demodata, " + fmt.Sprint(b.cfg.tenants) + " tenants)", fmt.Sprintf("%s generated in %d rows in %s; database %s",
			benchkit.FormatBytes(r.gen.Bytes), r.gen.Rows, benchkit.FmtDur(r.gen.Time), benchkit.FormatBytes(r.gen.DBSize))},
		{fmt.Sprintf("%s database (pgbench -i -s %d, before the backups)", pgbenchDB, b.cfg.scale), benchkit.FormatBytes(r.pgbenchSize)},
		{"data directory backed up (without pg_wal)", benchkit.FormatBytes(r.dataDirSize)},
		{"FULL backups recovered from", fmt.Sprintf("ours (SYSTEM, through the API, request → COMPLETED) %s, %s stored; pgBackRest full %s",
			benchkit.FmtDur(r.oursBackup), benchkit.FormatBytes(r.oursBackupBytes), benchkit.FmtDur(r.pgbrBackup))},
		{fmt.Sprintf("WAL stretch: pgbench -T %d -c %d -j %d", b.cfg.walSeconds, b.cfg.clients, max(1, b.cfg.clients/2)),
			fmt.Sprintf("%.0f tps; %s of WAL (%s → %s), %d segments", r.tps, benchkit.FormatBytes(r.walBytes),
				wal.FormatLSN(r.startLSN), wal.FormatLSN(r.endLSN), r.walSegments)},
		{"recovery target", fmt.Sprintf("%s (%s before pgbench ended): %d marker rows committed up to it",
			r.target.UTC().Format("2006-01-02 15:04:05.000000Z"), targetBeforeEnd, r.expected)},
	}))

	// RTO.
	ours, theirs := medianRun(r.ours), medianRun(r.pgbr)
	oursRTO, pgbrRTO := benchkit.Median(totals(r.ours)), benchkit.Median(totals(r.pgbr))
	label := "RTO: request → the promoted instance answers a query"
	if b.cfg.runs > 1 {
		label += fmt.Sprintf(" (median of %d alternating runs)", b.cfg.runs)
	}
	rows := [][]string{{"**" + label + "**", "**" + benchkit.FmtDur(oursRTO) + "**", "**" + benchkit.FmtDur(pgbrRTO) + "**",
		"**" + benchkit.Ratio(oursRTO.Seconds(), pgbrRTO.Seconds()) + "**"}}
	if b.cfg.runs > 1 {
		rows = append(rows, []string{"RTO, each run", benchkit.DurList(totals(r.ours)), benchkit.DurList(totals(r.pgbr)), dash})
	}
	for _, p := range phaseOrder {
		o, t := fmtPhase(ours, p), fmtPhase(theirs, p)
		if o == dash && t == dash {
			continue
		}
		ratio := dash
		if do, ok := ours.phases[p]; ok && do != unknown && do >= 0 {
			if dt, ok := theirs.phases[p]; ok && dt != unknown && dt > 0 {
				ratio = benchkit.Ratio(do.Seconds(), dt.Seconds())
			}
		}
		rows = append(rows, []string{"&nbsp;&nbsp;" + p, o, t, ratio})
	}
	rows = append(rows,
		[]string{"restore of the files + the data directory's fsync at start (the engines split this work differently)",
			sumPhases(ours, phaseFiles, phaseSync), sumPhases(theirs, phaseFiles, phaseSync), ratioPhases(ours, theirs, phaseFiles, phaseSync)},
		[]string{"WAL files fetched by restore_command", fmt.Sprintf("%d (readiness wal-fetch)", ours.log.restored),
			fmt.Sprintf("%d (pgbackrest archive-get)", theirs.log.restored), dash},
		[]string{"WAL replayed (redo start → done)", redoSpan(ours.log), redoSpan(theirs.log), dash},
		[]string{fmt.Sprintf("restore_command by itself, no prefetch, per segment (median of the stretch's %d)", len(r.fetchOurs)),
			benchkit.FmtDur(benchkit.Median(r.fetchOurs)), benchkit.FmtDur(benchkit.Median(r.fetchPgbr)),
			benchkit.Ratio(benchkit.Median(r.fetchOurs).Seconds(), benchkit.Median(r.fetchPgbr).Seconds())},
		[]string{"redo time PostgreSQL reports (redo done … elapsed)", orDash(ours.log.redoElapsed), orDash(theirs.log.redoElapsed), dash},
		[]string{"RTO the service recorded (from the request's record to COMPLETED)", apiRTO(ours), dash, dash},
		[]string{"marker rows = expected, promoted", rowsCheck(ours, r.expected), rowsCheck(theirs, r.expected), dash},
	)
	fmt.Fprintln(w)
	fmt.Fprint(w, benchkit.Table([]string{"RTO", "ours (service API)", "pgBackRest", "ours ÷ pgBackRest"}, "l", rows))
	fmt.Fprintln(w)
	ratio := oursRTO.Seconds() / pgbrRTO.Seconds()
	fmt.Fprintf(w, "%s RTO <= %.1fx pgBackRest's: ours %s, pgBackRest %s (%.2fx)\n",
		benchkit.PassFail(ratio <= targetRTORatio), targetRTORatio, benchkit.FmtDur(oursRTO), benchkit.FmtDur(pgbrRTO), ratio)

	// RPO.
	rows = nil
	how := []string{
		fmt.Sprintf("complete segments; archive_timeout %s", r.archiveTimeout),
		"complete segments, pushed after ours (same archive_command)",
		"streamed over the slot " + streamSlot + ", partial segment included",
	}
	var streaming *rpoResult
	for i := range r.rpo {
		res := &r.rpo[i]
		if i == 2 {
			streaming = res
		}
		if res.err != nil {
			rows = append(rows, []string{res.name, how[i], "n/a (error: " + oneLine(res.err.Error()) + ")", dash, dash, dash, dash, dash})
			continue
		}
		n := fmt.Sprint(len(res.samples))
		if res.notArchived > 0 {
			n += fmt.Sprintf(" (+%d never archived)", res.notArchived)
		}
		p99 := benchkit.Quantile(res.samples, 0.99)
		target := dash
		if i == 2 {
			target = benchkit.PassFail(p99 <= targetRPOp99 && res.notArchived == 0)
		}
		h := how[i]
		if res.meanRead > 0 {
			h += fmt.Sprintf("; a read takes %s", benchkit.FmtDur(res.meanRead))
		}
		lag := dash
		if len(res.lags) > 0 {
			lag = fmt.Sprintf("%s / %s (%d segments)", benchkit.FmtDur(benchkit.Median(res.lags)), benchkit.FmtDur(slices.Max(res.lags)), len(res.lags))
		}
		rows = append(rows, []string{res.name, h, n, benchkit.FmtDur(benchkit.Quantile(res.samples, 0.5)), benchkit.FmtDur(p99),
			benchkit.FmtDur(slices.Max(append(res.samples, 0))), lag, target})
	}
	fmt.Fprintln(w)
	fmt.Fprint(w, benchkit.Table([]string{"RPO under load: commit → WAL in the archive", "how", "markers", "p50", "p99", "max",
		"segment full → archived: median / max", fmt.Sprintf("p99 <= %s", benchkit.FmtDur(targetRPOp99))}, "ll", rows))
	fmt.Fprintln(w)
	switch {
	case streaming == nil:
	case streaming.err != nil:
		fmt.Fprintf(w, "n/a  RPO p99 <= %s with streaming: not measured (%s)\n", benchkit.FmtDur(targetRPOp99), oneLine(streaming.err.Error()))
	default:
		p99 := benchkit.Quantile(streaming.samples, 0.99)
		fmt.Fprintf(w, "%s RPO p99 <= %s with streaming: p99 %s over %d markers (%d never archived)\n",
			benchkit.PassFail(p99 <= targetRPOp99 && streaming.notArchived == 0), benchkit.FmtDur(targetRPOp99),
			benchkit.FmtDur(p99), len(streaming.samples), streaming.notArchived)
	}

	fmt.Fprintf(w, `
How it was measured:
- Source: one cluster (wal_level replica, max_wal_size 2GB, archive_timeout %s) with the databases %s (demodata),
  %s (the service's own, as `+"`readiness dev`"+` keeps it) and %s (pgbench's tables and the probe's markers). Its
  archive_command archives each segment into both repositories: `+"`readiness wal-push`"+` (this program, copied
  for postgres by wal.Install) && `+"`pgbackrest archive-push`"+`. The service runs in this process (internal/app,
  its HTTP API on a free port, the generated client, a platform_admin token from internal/auth).
- Backups: our SYSTEM FULL through POST /api/v1/backup/create (X-Tenant-ID platform), then a pgBackRest full
  (zstd 3, process-max 2), both before the load, so both recoveries replay the whole stretch (ours a little
  more: the WAL of pgBackRest's backup, written after ours).
- Load: pgbench -T %d -c %d -j %d on %s; the stretch's WAL is pg_current_wal_lsn() after it minus before it.
- RTO, ours: t0 = the POST /api/v1/recovery/point-in-time (instance:bench, approvalRequired false); the status
  polled every 100 ms until COMPLETED; then a new connection to the returned connection string (database
  %s) runs SELECT pg_is_in_recovery(), count(*) FROM %s; t1 = its answer. pgBackRest: t0 = the start of
  `+"`pgbackrest restore --type=time --target=<target> --target-action=promote`"+` (process-max 2; it writes
  restore_command = pgbackrest archive-get), then PostgreSQL started by pgcluster (archive_mode off) and
  pg_is_in_recovery() polled every 100 ms; t1 = the answer to the same query on a new connection. Each
  recovered instance is stopped and removed afterwards. Before each recovery: CHECKPOINT, all WAL archived, sync%s.
  %s
- Phases: ours from the service's status history (sat_recovery_operation_status, clock_timestamp()) and
  the recovered instance's server log; pgBackRest's from the restore command's time and the server log
  (millisecond timestamps: starting PostgreSQL, redo starts, redo done, ready to accept connections).
  With several runs the phases are those of the run with the median RTO. Our restore_command is
  wal-fetch with its default background prefetch (the next segments into pg_wal/readiness-prefetch);
  pgBackRest's archive-get runs with archive-async off (its default), one segment per call. Afterwards each
  restore_command runs by itself (sh -c, as postgres; ours with --prefetch 0) on each segment of the
  stretch, one at a time, to show what one fetch costs.
- Target: between the commit of the last marker committed %s before pgbench ended and the next marker's
  INSERT, so every commit up to that marker is in and every later one out; expected = its id's count.
- RPO: a probe commits a marker row every %s (autocommit, synchronous_commit on) and reads
  pg_current_wal_lsn() right after; a poller reads, every %s, how far each archive holds the WAL: ours
  from wal.Segments (the end of the newest complete segment), pgBackRest's from its archive directory, the
  streamed one from wal.ArchivedThrough. A marker's RPO = the first poll that holds its LSN − its commit.
  All three are measured in the same pgbench run: wal.Stream runs in this process into an archive of its
  own (the service's repository keeps what archive_command put there, so the segment-based figures are not
  mixed with streamed ones; the service's own WAL_STREAM is off). Sampled: the %d markers committed during
  pgbench whose segment pgbench filled; %d more, in the segment being written when pgbench stopped, are left
  out (they waited for pg_switch_wal, not for load). Of %d markers in all. "Segment full → archived" splits the
  segment-based RPO: a segment counts as full when the first marker past its end commits (so up to %s late);
  the rest of their RPO is the wait for the segment to fill.
`, r.archiveTimeout, managedDB, serviceDB, pgbenchDB, b.cfg.walSeconds, b.cfg.clients, max(1, b.cfg.clients/2), pgbenchDB,
		pgbenchDB, markerTable, coldNote(b.cfg.cold), runsNote(b.cfg.runs), targetBeforeEnd, probeEvery, pollEvery, r.rpoSampled, r.rpoExcluded, r.markers, probeEvery)
}

func coldNote(cold bool) string {
	if cold {
		return ", and the page cache dropped (--cold, the default: a host recovering after a loss reads its backups from the disk)"
	}
	return " (--cold=false: the page cache holds what earlier steps left)"
}

func runsNote(runs int) string {
	if runs == 1 {
		return "One recovery of each (--runs N alternates N of each, ours first in odd rounds, and takes the medians)."
	}
	return fmt.Sprintf("%d recoveries of each, alternating which went first; the RTOs are medians.", runs)
}

func redoSpan(l pgLog) string {
	if l.redoFrom == 0 || l.redoTo == 0 {
		return "?"
	}
	return fmt.Sprintf("%s (%s → %s)", benchkit.FormatBytes(int64(l.redoTo-l.redoFrom)), wal.FormatLSN(l.redoFrom), wal.FormatLSN(l.redoTo))
}

func rowsCheck(run *rtoRun, expected int64) string {
	s := benchkit.Check(run.count, expected)
	if run.inRecovery {
		return s + ", NOT promoted"
	}
	return s + ", promoted"
}

// phaseSum adds phases up; false when one is unknown.
func phaseSum(run *rtoRun, names ...string) (time.Duration, bool) {
	var sum time.Duration
	for _, n := range names {
		d, ok := run.phases[n]
		if !ok || d == unknown {
			return 0, false
		}
		sum += d
	}
	return sum, true
}

func sumPhases(run *rtoRun, names ...string) string {
	if d, ok := phaseSum(run, names...); ok {
		return benchkit.FmtDur(d)
	}
	return "?"
}

func ratioPhases(a, b *rtoRun, names ...string) string {
	da, ok1 := phaseSum(a, names...)
	db, ok2 := phaseSum(b, names...)
	if !ok1 || !ok2 {
		return "–"
	}
	return benchkit.Ratio(da.Seconds(), db.Seconds())
}

func apiRTO(run *rtoRun) string {
	s := seconds(run.serviceRTO)
	if run.apiRTO != nil {
		s += fmt.Sprintf(" (API rtoSeconds %d)", *run.apiRTO)
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.ReplaceAll(s, "|", "/")
}

// checkRows fails the benchmark when a recovered instance did not hold exactly the marker rows
// committed up to the target, or was not promoted: a fast wrong recovery is an error.
func (r *results) checkRows() error {
	var bad []string
	for name, runs := range map[string][]*rtoRun{"our": r.ours, "pgBackRest's": r.pgbr} {
		for i, run := range runs {
			if run.count != r.expected || run.inRecovery {
				bad = append(bad, fmt.Sprintf("%s recovery %d has %d marker rows (expected %d), in recovery %t",
					name, i+1, run.count, r.expected, run.inRecovery))
			}
		}
	}
	if bad != nil {
		slices.Sort(bad)
		return fmt.Errorf("recovery check failed: %s", strings.Join(bad, "; "))
	}
	return nil
}
