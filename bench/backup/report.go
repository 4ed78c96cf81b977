package main

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"
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
	w := b.out
	fmt.Fprintf(w, "\n## Backup benchmark: %s of %s (data directory %s without pg_wal), %d tenants\n\n",
		database, formatBytes(r.dbSize), formatBytes(r.dataDirSize), b.cfg.tenants)
	fmt.Fprintf(w, "PostgreSQL %s, %s, %d CPUs; demo data: %s in %d rows generated in %s.\n\n",
		r.pgVersion, r.pgbrVersion, runtime.NumCPU(), formatBytes(r.genBytes), r.genRows, fmtDur(r.genTime))

	dash := "–"
	fullTimeLabel := "FULL backup time"
	if b.cfg.runs > 1 {
		fullTimeLabel = fmt.Sprintf("FULL backup time (median of %d alternating runs)", b.cfg.runs)
	}
	rows := [][]string{
		{fullTimeLabel, fmtDur(r.oursFullTime), fmtDur(r.pgbrFullTime), fmtDur(r.baseWall),
			ratio(r.oursFullTime.Seconds(), r.pgbrFullTime.Seconds())},
		{"FULL throughput (data directory ÷ time)", mbps(r.dataDirSize, r.oursFullTime), mbps(r.dataDirSize, r.pgbrFullTime),
			mbps(r.dataDirSize, r.baseWall), ratio(r.pgbrFullTime.Seconds(), r.oursFullTime.Seconds())},
		{"FULL stored (backup directory, du -sb)", formatBytes(r.oursFullDir), formatBytes(r.pgbrFull.dirBytes), formatBytes(r.baseBytes),
			ratio(float64(r.oursFullDir), float64(r.pgbrFull.dirBytes))},
		{"FULL: WAL that makes it consistent", formatBytes(r.oursFull.WALStored) + " (in the backup)",
			fmt.Sprintf("%s (%d segment(s) in the archive)", formatBytes(r.pgbrFull.walBytes), r.pgbrFull.walSegs), "in the backup", dash},
		{"FULL stored with its WAL", formatBytes(r.oursFullDir), formatBytes(r.pgbrFull.dirBytes + r.pgbrFull.walBytes), formatBytes(r.baseBytes),
			ratio(float64(r.oursFullDir), float64(r.pgbrFull.dirBytes+r.pgbrFull.walBytes))},
		{"FULL compression (data directory ÷ stored)", ratio(float64(r.dataDirSize), float64(r.oursFullDir)),
			ratio(float64(r.dataDirSize), float64(r.pgbrFull.dirBytes)), ratio(float64(r.dataDirSize), float64(r.baseBytes)), dash},
		{"FULL restore: laying the files", fmtDur(r.oursRestore.Wall), fmtDur(r.pgbrRestoreWall), dash,
			ratio(r.oursRestore.Wall.Seconds(), r.pgbrRestoreWall.Seconds())},
		{"FULL restore: start until it accepts a query", fmtDur(r.oursReady), fmtDur(r.pgbrReady), dash,
			ratio(r.oursReady.Seconds(), r.pgbrReady.Seconds())},
		{"FULL restore: total, until it accepts a query", fmtDur(r.oursRestore.Wall + r.oursReady), fmtDur(r.pgbrRestoreWall + r.pgbrReady), dash,
			ratio((r.oursRestore.Wall + r.oursReady).Seconds(), (r.pgbrRestoreWall + r.pgbrReady).Seconds())},
		{"FULL restore: " + countTable + " rows = source", check(r.oursCount, r.sourceCount), check(r.pgbrCount, r.sourceCount), dash, dash},
		{fmt.Sprintf("INCREMENTAL time (after changing %d rows, 1%%)", r.changedRows), fmtDur(r.oursIncr.Wall), fmtDur(r.pgbrIncr.wall), dash,
			ratio(r.oursIncr.Wall.Seconds(), r.pgbrIncr.wall.Seconds())},
		{"INCREMENTAL stored (backup directory)", formatBytes(r.oursIncrDir), formatBytes(r.pgbrIncr.dirBytes), dash,
			ratio(float64(r.oursIncrDir), float64(r.pgbrIncr.dirBytes))},
		{"INCREMENTAL stored with its WAL", formatBytes(r.oursIncrDir), formatBytes(r.pgbrIncr.dirBytes + r.pgbrIncr.walBytes), dash,
			ratio(float64(r.oursIncrDir), float64(r.pgbrIncr.dirBytes+r.pgbrIncr.walBytes))},
		{"INCREMENTAL ÷ FULL stored", fmt.Sprintf("%.2f%%", pct(r.oursIncrDir, r.oursFullDir)),
			fmt.Sprintf("%.2f%%", pct(r.pgbrIncr.dirBytes, r.pgbrFull.dirBytes)), dash, dash},
		{"FULL + INCREMENTAL restore: laying the files", fmtDur(r.chainRestore.Wall), "not measured", dash, dash},
		{"FULL + INCREMENTAL restore: start until it accepts a query", fmtDur(r.chainReady), "not measured", dash, dash},
		{"FULL + INCREMENTAL restore: " + countTable + " rows = source", check(r.chainCount, r.changedSourceCount), "not measured", dash, dash},
		{"peak RSS: FULL backup", formatBytes(r.oursFullPeak), formatBytes(r.pgbrFullPeak) + " (largest process)",
			formatBytes(r.baseRSS), ratio(float64(r.oursFullPeak), float64(r.pgbrFullPeak))},
		{"peak RSS: INCREMENTAL backup", formatBytes(r.oursIncr.PeakRSS), formatBytes(r.pgbrIncr.rss) + " (largest process)", dash,
			ratio(float64(r.oursIncr.PeakRSS), float64(r.pgbrIncr.rss))},
		{"peak RSS: FULL restore", formatBytes(r.oursRestore.PeakRSS), formatBytes(r.pgbrRestoreRSS) + " (largest process)", dash,
			ratio(float64(r.oursRestore.PeakRSS), float64(r.pgbrRestoreRSS))},
		{"peak RSS: FULL + INCREMENTAL restore", formatBytes(r.chainRestore.PeakRSS), "not measured", dash, dash},
	}
	if b.cfg.runs > 1 {
		each := [][]string{{"FULL backup time, each run", durList(r.oursFullWalls), durList(r.pgbrFullWalls), dash, dash}}
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
		passFail(timeRatio <= targetFullTimeRatio), targetFullTimeRatio, fmtDur(r.oursFullTime), fmtDur(r.pgbrFullTime), timeRatio)
	incr := pct(r.oursIncrDir, r.oursFullDir)
	fmt.Fprintf(w, "%s incremental stored bytes <= %.0f%% of the full's: %s of %s (%.2f%%)\n",
		passFail(incr <= targetIncrPercent), targetIncrPercent, formatBytes(r.oursIncrDir), formatBytes(r.oursFullDir), incr)
	peak := max(r.oursFullPeak, r.oursIncr.PeakRSS, r.oursRestore.PeakRSS, r.chainRestore.PeakRSS)
	fmt.Fprintf(w, "%s peak RSS < %s in every child: at most %s (FULL backup %s, INCREMENTAL %s, FULL restore %s, chain restore %s)\n",
		passFail(peak < targetPeakRSS), formatBytes(targetPeakRSS), formatBytes(peak), formatBytes(r.oursFullPeak),
		formatBytes(r.oursIncr.PeakRSS), formatBytes(r.oursRestore.PeakRSS), formatBytes(r.chainRestore.PeakRSS))

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
`, r.archiving, stanza, runsNote(b.cfg.runs))
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

func passFail(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func check(got, want int64) string {
	if got == want {
		return fmt.Sprintf("yes (%d)", got)
	}
	return fmt.Sprintf("NO: %d ≠ %d", got, want)
}

func ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func pct(part, whole int64) float64 {
	if whole == 0 {
		return 0
	}
	return 100 * float64(part) / float64(whole)
}

func mbps(bytes int64, d time.Duration) string {
	if d <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f MB/s", float64(bytes)/1e6/d.Seconds())
}

// formatBytes prints a size in decimal units with three significant digits.
func formatBytes(n int64) string {
	f := float64(n)
	for _, u := range []struct {
		div  float64
		unit string
	}{{1e12, "TB"}, {1e9, "GB"}, {1e6, "MB"}, {1e3, "kB"}} {
		if f >= u.div {
			v := f / u.div
			switch {
			case v >= 100:
				return fmt.Sprintf("%.0f %s", v, u.unit)
			case v >= 10:
				return fmt.Sprintf("%.1f %s", v, u.unit)
			default:
				return fmt.Sprintf("%.2f %s", v, u.unit)
			}
		}
	}
	return fmt.Sprintf("%d B", n)
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= 100*time.Second:
		return fmt.Sprintf("%.0f s", d.Seconds())
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	default:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
}

func runsNote(runs int) string {
	if runs == 1 {
		return "Each figure is one run (--runs N alternates N FULL backups of each and takes the medians)."
	}
	return fmt.Sprintf("The FULL backups ran %d times each, alternating which went first; times are medians,\n  sizes those of the first run, peak RSS the largest. Every other figure is one run.", runs)
}

func durList(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmtDur(d)
	}
	return strings.Join(parts, ", ")
}
