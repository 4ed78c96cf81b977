package main

import (
	"fmt"
	"runtime"
	"slices"
	"strings"

	"github.com/onevault/readiness/bench/internal/benchkit"
)

// Targets of issue 3, section 10.
const (
	targetFullTimeRatio = 1.0           // our FULL time ÷ pgBackRest's full time, at most
	targetIncrPercent   = 5.0           // our INCREMENTAL's stored bytes, % of the FULL's, at most
	targetPeakRSS       = 200 * 1000000 // bytes, below
)

// report prints the markdown table, the PASS/FAIL lines and the choices made.
func (b *bench) report() {
	r := &b.r
	w := b.w.Out
	fmt.Fprintf(w, "\n## Backup benchmark: %s of %s (data directory %s without pg_wal), %d tenants\n\n",
		database, benchkit.FormatBytes(r.gen.DBSize), benchkit.FormatBytes(r.gen.DataDirSize), b.cfg.tenants)
	fmt.Fprintf(w, "PostgreSQL %s, %s, %d CPUs; demo data: %s in %d rows generated in %s.\n\n",
		r.pgVersion, r.pgbrVersion, runtime.NumCPU(), benchkit.FormatBytes(r.gen.Bytes), r.gen.Rows, benchkit.FmtDur(r.gen.Time))

	dash := "–"
	fullTimeLabel := "FULL backup time"
	if b.cfg.runs > 1 {
		fullTimeLabel = fmt.Sprintf("FULL backup time (median of %d alternating runs)", b.cfg.runs)
	}
	rows := [][]string{
		{fullTimeLabel, benchkit.FmtDur(r.oursFullTime), benchkit.FmtDur(r.pgbrFullTime), benchkit.FmtDur(r.baseWall),
			benchkit.Ratio(r.oursFullTime.Seconds(), r.pgbrFullTime.Seconds())},
		{"FULL throughput (data directory ÷ time)", benchkit.MBps(r.gen.DataDirSize, r.oursFullTime), benchkit.MBps(r.gen.DataDirSize, r.pgbrFullTime),
			benchkit.MBps(r.gen.DataDirSize, r.baseWall), benchkit.Ratio(r.pgbrFullTime.Seconds(), r.oursFullTime.Seconds())},
		{"FULL stored (backup directory, du -sb)", benchkit.FormatBytes(r.oursFullDir), benchkit.FormatBytes(r.pgbrFull.dirBytes), benchkit.FormatBytes(r.baseBytes),
			benchkit.Ratio(float64(r.oursFullDir), float64(r.pgbrFull.dirBytes))},
		{"FULL: WAL that makes it consistent", benchkit.FormatBytes(r.oursFull.WALStored) + " (in the backup)",
			fmt.Sprintf("%s (%d segment(s) in the archive)", benchkit.FormatBytes(r.pgbrFull.walBytes), r.pgbrFull.walSegs), "in the backup", dash},
		{"FULL stored with its WAL", benchkit.FormatBytes(r.oursFullDir), benchkit.FormatBytes(r.pgbrFull.dirBytes + r.pgbrFull.walBytes), benchkit.FormatBytes(r.baseBytes),
			benchkit.Ratio(float64(r.oursFullDir), float64(r.pgbrFull.dirBytes+r.pgbrFull.walBytes))},
		{"FULL compression (data directory ÷ stored)", benchkit.Ratio(float64(r.gen.DataDirSize), float64(r.oursFullDir)),
			benchkit.Ratio(float64(r.gen.DataDirSize), float64(r.pgbrFull.dirBytes)), benchkit.Ratio(float64(r.gen.DataDirSize), float64(r.baseBytes)), dash},
		{"FULL restore: laying the files", benchkit.FmtDur(r.oursRestore.Wall), benchkit.FmtDur(r.pgbrRestoreWall), dash,
			benchkit.Ratio(r.oursRestore.Wall.Seconds(), r.pgbrRestoreWall.Seconds())},
		{"FULL restore: start until it accepts a query", benchkit.FmtDur(r.oursReady), benchkit.FmtDur(r.pgbrReady), dash,
			benchkit.Ratio(r.oursReady.Seconds(), r.pgbrReady.Seconds())},
		{"FULL restore: total, until it accepts a query", benchkit.FmtDur(r.oursRestore.Wall + r.oursReady), benchkit.FmtDur(r.pgbrRestoreWall + r.pgbrReady), dash,
			benchkit.Ratio((r.oursRestore.Wall + r.oursReady).Seconds(), (r.pgbrRestoreWall + r.pgbrReady).Seconds())},
		{"FULL restore: " + countTable + " rows = source", benchkit.Check(r.oursCount, r.sourceCount), benchkit.Check(r.pgbrCount, r.sourceCount), dash, dash},
		{fmt.Sprintf("INCREMENTAL time (after changing %d rows, 1%%)", r.changedRows), benchkit.FmtDur(r.oursIncr.Wall), benchkit.FmtDur(r.pgbrIncr.wall), dash,
			benchkit.Ratio(r.oursIncr.Wall.Seconds(), r.pgbrIncr.wall.Seconds())},
		{"INCREMENTAL stored (backup directory)", benchkit.FormatBytes(r.oursIncrDir), benchkit.FormatBytes(r.pgbrIncr.dirBytes), dash,
			benchkit.Ratio(float64(r.oursIncrDir), float64(r.pgbrIncr.dirBytes))},
		{"INCREMENTAL stored with its WAL", benchkit.FormatBytes(r.oursIncrDir), benchkit.FormatBytes(r.pgbrIncr.dirBytes + r.pgbrIncr.walBytes), dash,
			benchkit.Ratio(float64(r.oursIncrDir), float64(r.pgbrIncr.dirBytes+r.pgbrIncr.walBytes))},
		{"INCREMENTAL ÷ FULL stored", fmt.Sprintf("%.2f%%", benchkit.Pct(r.oursIncrDir, r.oursFullDir)),
			fmt.Sprintf("%.2f%%", benchkit.Pct(r.pgbrIncr.dirBytes, r.pgbrFull.dirBytes)), dash, dash},
		{"FULL + INCREMENTAL restore: laying the files", benchkit.FmtDur(r.chainRestore.Wall), "not measured", dash, dash},
		{"FULL + INCREMENTAL restore: start until it accepts a query", benchkit.FmtDur(r.chainReady), "not measured", dash, dash},
		{"FULL + INCREMENTAL restore: " + countTable + " rows = source", benchkit.Check(r.chainCount, r.changedSourceCount), "not measured", dash, dash},
		{"peak RSS: FULL backup", benchkit.FormatBytes(r.oursFullPeak), benchkit.FormatBytes(r.pgbrFullPeak) + " (largest process)",
			benchkit.FormatBytes(r.baseRSS), benchkit.Ratio(float64(r.oursFullPeak), float64(r.pgbrFullPeak))},
		{"peak RSS: INCREMENTAL backup", benchkit.FormatBytes(r.oursIncr.PeakRSS), benchkit.FormatBytes(r.pgbrIncr.rss) + " (largest process)", dash,
			benchkit.Ratio(float64(r.oursIncr.PeakRSS), float64(r.pgbrIncr.rss))},
		{"peak RSS: FULL restore", benchkit.FormatBytes(r.oursRestore.PeakRSS), benchkit.FormatBytes(r.pgbrRestoreRSS) + " (largest process)", dash,
			benchkit.Ratio(float64(r.oursRestore.PeakRSS), float64(r.pgbrRestoreRSS))},
		{"peak RSS: FULL + INCREMENTAL restore", benchkit.FormatBytes(r.chainRestore.PeakRSS), "not measured", dash, dash},
	}
	if b.cfg.runs > 1 {
		each := [][]string{{"FULL backup time, each run", benchkit.DurList(r.oursFullWalls), benchkit.DurList(r.pgbrFullWalls), dash, dash}}
		rows = slices.Insert(rows, 1, each...)
	}
	fmt.Fprintln(w, "| measure | ours (service SYSTEM engine) | pgBackRest | pg_basebackup | ours ÷ pgBackRest |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
	for _, row := range rows {
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}

	fmt.Fprintln(w)
	timeRatio := r.oursFullTime.Seconds() / r.pgbrFullTime.Seconds()
	fmt.Fprintf(w, "%s full backup time <= %.1fx pgBackRest's: ours %s, pgBackRest %s (%.2fx)\n",
		benchkit.PassFail(timeRatio <= targetFullTimeRatio), targetFullTimeRatio, benchkit.FmtDur(r.oursFullTime), benchkit.FmtDur(r.pgbrFullTime), timeRatio)
	incr := benchkit.Pct(r.oursIncrDir, r.oursFullDir)
	fmt.Fprintf(w, "%s incremental stored bytes <= %.0f%% of the full's: %s of %s (%.2f%%)\n",
		benchkit.PassFail(incr <= targetIncrPercent), targetIncrPercent, benchkit.FormatBytes(r.oursIncrDir), benchkit.FormatBytes(r.oursFullDir), incr)
	peak := max(r.oursFullPeak, r.oursIncr.PeakRSS, r.oursRestore.PeakRSS, r.chainRestore.PeakRSS)
	fmt.Fprintf(w, "%s peak RSS < %s in every child: at most %s (FULL backup %s, INCREMENTAL %s, FULL restore %s, chain restore %s)\n",
		benchkit.PassFail(peak < targetPeakRSS), benchkit.FormatBytes(targetPeakRSS), benchkit.FormatBytes(peak), benchkit.FormatBytes(r.oursFullPeak),
		benchkit.FormatBytes(r.oursIncr.PeakRSS), benchkit.FormatBytes(r.oursRestore.PeakRSS), benchkit.FormatBytes(r.chainRestore.PeakRSS))

	fmt.Fprintf(w, `
How it was measured:
- WAL archiving: %s.
- Ours runs in a child process exactly as the backup worker runs it: internal/backup/physical into the service's
  repository (zstd level 3 + age, compression on, concurrency 2, fsync and atomic commit), with the service's
  Manifest. Its time is the child's wall time from exec to exit; its peak RSS is wait4's ru_maxrss (and the
  child's own VmHWM, whichever is larger). Our backup objects carry the WAL that makes the backup consistent.
- pgBackRest: compress-type=zst, compress-level=3, process-max=2, start-fast=y, as the postgres user; time is
  the wall time of `+"`pgbackrest backup`"+`, stored bytes du -sb of repo/backup/%s/<label>; its WAL is in
  the archive (archive-push during the run, outside the measured time), shown separately.
- pg_basebackup -D DIR -X fetch -c fast: plain format, no compression, as the postgres user.
- Before each backup: CHECKPOINT, every finished WAL segment archived, sync; the data files are in the page
  cache for every tool alike. %s
- Restores lay the files into a new directory (timed), then pgcluster starts it on a free port with
  archive_mode=off (timed until SELECT 1 answers). pgBackRest restores with --type=immediate
  --target-action=promote: it stops at consistency, as ours does, instead of replaying all archived WAL.
  pgBackRest fsyncs the files it restores; ours does not (physical.Restore leaves that to PostgreSQL, which
  syncs the data directory when it starts recovery), so that cost is in our start time: compare the totals.
- The INCREMENTAL comes after demodata.Change(0.01) and a CHECKPOINT; its parent is our FULL. pgBackRest's incr
  (file level) follows its full. Sizes are decimal (1 MB = 10^6 bytes).
`, r.archiving, benchkit.Stanza, runsNote(b.cfg.runs))
}

// rowsOK reports whether every restored instance had the source's row count.
func (r *results) rowsOK() error {
	var bad []string
	if r.oursCount != r.sourceCount {
		bad = append(bad, fmt.Sprintf("our FULL restore has %d rows of %s, the source %d", r.oursCount, countTable, r.sourceCount))
	}
	if r.pgbrCount != r.sourceCount {
		bad = append(bad, fmt.Sprintf("the pgBackRest restore has %d rows of %s, the source %d", r.pgbrCount, countTable, r.sourceCount))
	}
	if r.chainCount != r.changedSourceCount {
		bad = append(bad, fmt.Sprintf("our FULL + INCREMENTAL restore has %d rows of %s, the source %d", r.chainCount, countTable, r.changedSourceCount))
	}
	if bad != nil {
		return fmt.Errorf("restore check failed: %s", strings.Join(bad, "; "))
	}
	return nil
}

func runsNote(runs int) string {
	if runs == 1 {
		return "Each figure is one run (--runs N alternates N FULL backups of each and takes the medians)."
	}
	return fmt.Sprintf("The FULL backups ran %d times each, alternating which went first; times are medians,\n  sizes those of the first run, peak RSS the largest. Every other figure is one run.", runs)
}
