package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/onevault/readiness/bench/internal/benchkit"
	"github.com/onevault/readiness/internal/wal"
)

// Probe and poll intervals of the RPO measurement.
const (
	probeEvery = 100 * time.Millisecond
	pollEvery  = 50 * time.Millisecond
	// targetBeforeEnd is how long before the end of the pgbench run the recovery target lies.
	targetBeforeEnd = 2 * time.Second
	// streamSlot is the replication slot of the streaming measurement.
	streamSlot = "bench_stream"
)

// errNotArchived is what an archive's reader returns while the archive is empty.
var errNotArchived = errors.New("nothing archived yet")

// marker is one row the probe committed.
type marker struct {
	id        int64
	sent      time.Time // when the INSERT was sent
	committed time.Time // when its commit was acknowledged
	lsn       uint64    // pg_current_wal_lsn() right after the commit: its WAL ends at or before it
}

// position is when an archive was first seen to hold the WAL up to lsn.
type position struct {
	at  time.Time
	lsn uint64
}

// archiveWatch follows how far one archive holds the WAL.
type archiveWatch struct {
	name      string
	read      func(ctx context.Context) (uint64, error)
	positions []position // increasing lsn
	err       error      // the first error, after which it is not read again
	readTime  time.Duration
	reads     int
}

// rpoResult is the RPO of one archive over the sampled markers.
type rpoResult struct {
	name        string
	samples     []time.Duration
	notArchived int             // sampled markers the archive never held
	lags        []time.Duration // segment-based archives: from a segment filling up until it is held
	err         error
	meanRead    time.Duration // how long reading the position took, on average
}

// stretch runs pgbench for --wal-seconds, measuring the RPO meanwhile, then picks the recovery
// target, makes sure that later commits exist and that both archives hold all the WAL, and
// counts the marker rows committed up to the target.
func (b *bench) stretch(ctx context.Context) error {
	r := &b.r
	sctx, stop := context.WithCancel(ctx)
	defer stop()

	// Streaming into its own archive over a replication slot, as the service streams when
	// WAL_STREAM is on.
	streamLog, err := os.Create(b.w.Path("stream.log"))
	if err != nil {
		return err
	}
	defer streamLog.Close()
	streamDone := make(chan error, 1)
	go func() {
		streamDone <- wal.Stream(sctx, b.streamCfg, wal.StreamOptions{Conn: b.src.URL("postgres"), Slot: streamSlot,
			Logger: slog.New(slog.NewTextHandler(streamLog, nil))})
	}()

	watches := []*archiveWatch{
		{name: "ours, archive_command (wal-push)", read: b.oursArchived},
		{name: "pgBackRest, archive_command (archive-push)", read: b.pgbrArchived},
		{name: "ours, streaming (wal.Stream)", read: func(ctx context.Context) (uint64, error) {
			return wal.ArchivedThrough(ctx, b.streamCfg, timeline)
		}},
	}
	var mu sync.Mutex // guards watches' positions and errors
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		t := time.NewTicker(pollEvery)
		defer t.Stop()
		for {
			for _, aw := range watches {
				mu.Lock()
				failed := aw.err != nil
				mu.Unlock()
				if failed {
					continue
				}
				start := time.Now()
				lsn, err := aw.read(sctx)
				at := time.Now()
				mu.Lock()
				aw.readTime += at.Sub(start)
				aw.reads++
				switch {
				case errors.Is(err, errNotArchived):
				case err != nil && sctx.Err() == nil:
					aw.err = err
				case err == nil && (len(aw.positions) == 0 || lsn > aw.positions[len(aw.positions)-1].lsn):
					aw.positions = append(aw.positions, position{at: at, lsn: lsn})
				}
				mu.Unlock()
			}
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	// The streamer connects (or fails) before the load starts.
	select {
	case err := <-streamDone:
		streamDone <- err
	case <-time.After(2 * time.Second):
	}

	// The probe.
	probeCtx, stopProbe := context.WithCancel(sctx)
	defer stopProbe()
	var markers []marker
	probeDone := make(chan error, 1)
	go func() { probeDone <- b.probe(probeCtx, &mu, &markers) }()

	// The load.
	admin := b.src.URL("postgres")
	var lsnText string
	if err := benchkit.QueryOne(ctx, admin, "SELECT pg_current_wal_lsn()::text", &lsnText); err != nil {
		return err
	}
	startLSN, _ := wal.ParseLSN(lsnText)
	threads := max(1, b.cfg.clients/2)
	b.logf("pgbench -T %d -c %d -j %d, a marker committed every %s, the archives polled every %s ...",
		b.cfg.walSeconds, b.cfg.clients, threads, probeEvery, pollEvery)
	r.loadStart = time.Now()
	out, err := b.pgbench(ctx, "-T", fmt.Sprint(b.cfg.walSeconds), "-c", fmt.Sprint(b.cfg.clients), "-j", fmt.Sprint(threads))
	r.loadEnd = time.Now()
	if err != nil {
		return err
	}
	if err := benchkit.QueryOne(ctx, admin, "SELECT pg_current_wal_lsn()::text", &lsnText); err != nil {
		return err
	}
	endLSN, _ := wal.ParseLSN(lsnText)
	r.tps = pgbenchTPS(out)
	r.walBytes = int64(endLSN - startLSN)
	r.walSegments = int(wal.SegmentOf(endLSN, b.segSize) - wal.SegmentOf(startLSN, b.segSize) + 1)
	r.startLSN, r.endLSN = startLSN, endLSN
	b.logf("pgbench: %.0f tps, %s of WAL (%s to %s, %d segments)", r.tps, benchkit.FormatBytes(r.walBytes),
		wal.FormatLSN(startLSN), wal.FormatLSN(endLSN), r.walSegments)

	// Later commits: markers go on for a moment after the load.
	if err := sleep(ctx, targetBeforeEnd); err != nil {
		return err
	}
	stopProbe()
	if err := <-probeDone; err != nil {
		return err
	}
	mu.Lock()
	ms := slices.Clone(markers)
	mu.Unlock()

	// The target lies between the commit of the last marker committed targetBeforeEnd before
	// the load ended and the next marker's INSERT: every commit up to that marker is in,
	// every later marker out, whatever the clocks' rounding.
	k := -1
	for i, m := range ms {
		if !m.committed.After(r.loadEnd.Add(-targetBeforeEnd)) {
			k = i
		}
	}
	if k < 0 || k+1 >= len(ms) {
		return fmt.Errorf("the probe committed too few markers (%d) to pick a target", len(ms))
	}
	r.target = ms[k].committed.Add(ms[k+1].sent.Sub(ms[k].committed) / 2).Truncate(time.Microsecond)
	if !r.target.After(ms[k].committed) {
		r.target = ms[k].committed.Add(time.Microsecond)
	}
	r.targetMarker = ms[k].id
	if err := benchkit.QueryOne(ctx, b.src.URL(pgbenchDB), fmt.Sprintf("SELECT count(*) FROM %s WHERE id <= %d", markerTable, ms[k].id),
		&r.expected); err != nil {
		return err
	}
	b.logf("recovery target %s: marker %d, %d marker rows committed up to it, %d after it",
		r.target.UTC().Format(time.RFC3339Nano), ms[k].id, r.expected, len(ms)-k-1)

	// All WAL into both archives.
	if err := benchkit.QueryOne(ctx, admin, "SELECT pg_switch_wal()::text", &lsnText); err != nil {
		return err
	}
	switched, _ := wal.ParseLSN(lsnText)
	lastLSN := ms[len(ms)-1].lsn
	b.logf("pg_switch_wal() at %s; waiting until both archives hold segment %s ...", wal.FormatLSN(switched),
		wal.SegmentName(timeline, wal.SegmentOf(switched-1, b.segSize), b.segSize))
	deadline := time.Now().Add(10 * time.Minute)
	streamGrace := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		ready := true
		for i, aw := range watches {
			need := switched // the segment-based archives: the whole switched segment
			if i == 2 {
				need = lastLSN // the streamed archive: the last marker
			}
			held := len(aw.positions) > 0 && aw.positions[len(aw.positions)-1].lsn >= need
			if i < 2 && !held {
				if aw.err != nil {
					mu.Unlock()
					return fmt.Errorf("reading %s: %w", aw.name, aw.err)
				}
				ready = false
			}
			// The streamed archive gets a few seconds to catch up, so that its last samples
			// are complete; it is not needed for recovery.
			if i == 2 && !held && aw.err == nil && time.Now().Before(streamGrace) {
				ready = false
			}
		}
		mu.Unlock()
		if ready {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the archives do not hold the WAL up to %s 10 minutes after pg_switch_wal; see %s and the server log",
				wal.FormatLSN(switched), filepath.Join(b.pgbr.Dir, "log"))
		}
		if err := sleep(ctx, pollEvery); err != nil {
			return err
		}
	}
	stop()
	<-pollDone
	streamErr := <-streamDone
	if streamErr != nil && errors.Is(streamErr, context.Canceled) {
		streamErr = nil
	}
	// The slot would keep WAL on the source for ever.
	_ = benchkit.ExecSQL(ctx, admin, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '"+streamSlot+"'")

	// The RPO samples: markers committed under load whose segment the load filled. The ones
	// in the segment being written when pgbench stopped waited for pg_switch_wal (or
	// archive_timeout) in the segment-based archives: that is the end of the stretch, not load.
	lastFull := wal.SegmentOf(endLSN, b.segSize) // the segment being written at the end
	var sampled []marker
	for _, m := range ms {
		if m.committed.Before(r.loadStart) || m.committed.After(r.loadEnd) {
			continue
		}
		if wal.SegmentOf(m.lsn, b.segSize) >= lastFull {
			r.rpoExcluded++
			continue
		}
		sampled = append(sampled, m)
	}
	r.markers, r.rpoSampled = len(ms), len(sampled)
	for i, aw := range watches {
		res := rpoResult{name: aw.name, err: aw.err}
		if i == 2 {
			switch {
			case streamErr != nil:
				res.err = fmt.Errorf("wal.Stream: %w", streamErr)
			case aw.err != nil:
				res.err = fmt.Errorf("wal.ArchivedThrough: %w", aw.err)
			}
		}
		if aw.reads > 0 {
			res.meanRead = aw.readTime / time.Duration(aw.reads)
		}
		if res.err == nil {
			res.samples, res.notArchived = rpoSamples(sampled, aw.positions)
			if i < 2 {
				res.lags = segmentLags(ms, aw.positions, b.segSize, wal.SegmentOf(startLSN, b.segSize), lastFull)
			}
		}
		r.rpo = append(r.rpo, res)
		if res.err != nil {
			b.logf("RPO %s: n/a (%v)", aw.name, res.err)
		} else {
			b.logf("RPO %s: p50 %s, p99 %s, max %s over %d markers (%d never archived)", aw.name,
				benchkit.FmtDur(benchkit.Quantile(res.samples, 0.5)), benchkit.FmtDur(benchkit.Quantile(res.samples, 0.99)),
				benchkit.FmtDur(slices.Max(append(res.samples, 0))), len(res.samples), res.notArchived)
		}
	}
	return nil
}

// rpoSamples returns, for each marker, the time from its commit until the first position
// that holds its WAL, and how many markers no position held.
func rpoSamples(ms []marker, ps []position) ([]time.Duration, int) {
	var out []time.Duration
	missing := 0
	for _, m := range ms {
		i := sort.Search(len(ps), func(i int) bool { return ps[i].lsn >= m.lsn })
		if i == len(ps) {
			missing++
			continue
		}
		out = append(out, max(ps[i].at.Sub(m.committed), 0))
	}
	return out, missing
}

// segmentLags returns, for each segment from first to before end that the markers saw
// filled, the time from its filling (the commit of the first marker past its end, so up to
// probeEvery late) until the first position that holds it: the archiving's own delay, without
// the wait for the segment to fill.
func segmentLags(ms []marker, ps []position, segSize int64, first, end uint64) []time.Duration {
	var out []time.Duration
	for segno := first; segno < end; segno++ {
		boundary := (segno + 1) * uint64(segSize)
		m := sort.Search(len(ms), func(i int) bool { return ms[i].lsn >= boundary })
		p := sort.Search(len(ps), func(i int) bool { return ps[i].lsn >= boundary })
		if m == len(ms) || p == len(ps) || m == 0 {
			continue
		}
		out = append(out, max(ps[p].at.Sub(ms[m].committed), 0))
	}
	return out
}

// probe commits a marker row every probeEvery until ctx ends, reading the WAL position right
// after each commit.
func (b *bench) probe(ctx context.Context, mu *sync.Mutex, markers *[]marker) error {
	conn, err := pgx.Connect(ctx, b.src.URL(pgbenchDB))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	t := time.NewTicker(probeEvery)
	defer t.Stop()
	for {
		var m marker
		var lsn string
		m.sent = time.Now()
		err := conn.QueryRow(ctx, "INSERT INTO "+markerTable+" DEFAULT VALUES RETURNING id").Scan(&m.id)
		m.committed = time.Now()
		if err == nil {
			err = conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn)
		}
		if ctx.Err() != nil {
			return nil // a marker cut off by the end is not counted
		}
		if err != nil {
			return fmt.Errorf("probe: %w", err)
		}
		if m.lsn, err = wal.ParseLSN(lsn); err != nil {
			return err
		}
		mu.Lock()
		*markers = append(*markers, m)
		mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// oursArchived is how far our archive holds the WAL from archive_command: the end of the
// newest complete segment (archive_command archives them in order).
func (b *bench) oursArchived(ctx context.Context) (uint64, error) {
	segs, err := wal.Segments(ctx, b.walCfg, timeline)
	if err != nil {
		return 0, err
	}
	if len(segs) == 0 {
		return 0, errNotArchived
	}
	_, segno, err := wal.ParseSegmentName(slices.Max(segs), b.segSize)
	if err != nil {
		return 0, err
	}
	return (segno + 1) * uint64(b.segSize), nil
}

// pgbrArchived is how far pgBackRest's archive holds the WAL: the end of the newest segment
// in <archive>/<version-id>/<timeline+log>/<segment>-<sha1>.<ext>.
func (b *bench) pgbrArchived(context.Context) (uint64, error) {
	newest := ""
	ids, err := os.ReadDir(b.pgbr.ArchiveDir())
	if err != nil {
		return 0, err
	}
	for _, id := range ids {
		if !id.IsDir() {
			continue
		}
		dir := filepath.Join(b.pgbr.ArchiveDir(), id.Name())
		logs, err := os.ReadDir(dir)
		if err != nil {
			return 0, err
		}
		for i := len(logs) - 1; i >= 0; i-- { // the newest directory with a segment
			if !logs[i].IsDir() || len(logs[i].Name()) != 16 {
				continue
			}
			files, err := os.ReadDir(filepath.Join(dir, logs[i].Name()))
			if err != nil {
				return 0, err
			}
			found := false
			for _, f := range files {
				n := f.Name()
				if len(n) > 25 && n[24] == '-' && !strings.Contains(n, ".partial") && n[:24] > newest {
					newest, found = n[:24], true
				}
			}
			if found {
				break
			}
		}
	}
	if newest == "" {
		return 0, errNotArchived
	}
	_, segno, err := wal.ParseSegmentName(newest, b.segSize)
	if err != nil {
		return 0, err
	}
	return (segno + 1) * uint64(b.segSize), nil
}
