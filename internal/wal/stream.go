package wal

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/onevault/readiness/internal/storage"
)

// StreamOptions configure Stream.
type StreamOptions struct {
	// Conn is a libpq connection string (URL or key=value) of the managed
	// cluster; Stream adds replication=true. Its user needs the REPLICATION
	// attribute, and pg_hba.conf a "replication" line for it.
	Conn string
	// Slot is the physical replication slot, created when missing. Default
	// DefaultSlot.
	Slot string
	// FlushInterval is how often the segment being received is written to
	// the archive while WAL arrives. Default DefaultFlushInterval.
	FlushInterval time.Duration
	// Logger, when set, gets one line per connection, segment and error (errors at WARN, a
	// stop on a conflict at ERROR); nil logs nothing.
	Logger *slog.Logger
}

// Defaults of StreamOptions.
const (
	DefaultSlot          = "readiness_wal"
	DefaultFlushInterval = 500 * time.Millisecond
)

// Pacing of Stream.
const (
	// statusInterval is how often the server hears from the receiver when it
	// does not ask, well within wal_sender_timeout (60 s by default).
	statusInterval = 10 * time.Second
	// retryMin and retryMax bound the backoff after a failure.
	retryMin = 500 * time.Millisecond
	retryMax = 30 * time.Second
	// slotBusyRetry is how often a receiver whose slot another process holds
	// tries again: how fast a standby replica of the service takes over.
	slotBusyRetry = 2 * time.Second
	closeTimeout  = 2 * time.Second
)

// conflictRetry is how often a receiver stopped by a conflict (see
// receiver.held) tries the conflicting segment again; a variable for tests.
var conflictRetry = time.Minute

// slotNameRE is what PostgreSQL accepts as a replication slot name.
var slotNameRE = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// Stream receives the managed cluster's WAL over physical replication through
// a replication slot and archives it, until ctx is done; it then returns nil.
// It is the second way into the archive, beside archive_command (see the
// package documentation): a segment it completes is archived exactly as Push
// archives PostgreSQL's file of that name, and the segment it is receiving is
// archived as a streamed partial every FlushInterval while WAL arrives, so a
// commit reaches the archive within about FlushInterval instead of when its
// segment is full.
//
// Each connection identifies the system, reads wal_segment_size, creates the
// slot when missing (reserving WAL at once) and archives the timeline history
// files of the server's timeline and its ancestors. It then streams from the
// start of the segment that holds the later of the slot's restart_lsn and the
// end of what the archive holds: the receiver always holds a segment from its
// first byte. The server is told as written, flushed and applied only what is
// durable in the archive, so the slot keeps on the server every byte that is
// not archived yet, across any stop of the receiver.
//
// Stream returns an error only for options that can never work (an invalid
// connection string or slot name, an unreadable key). Anything else is logged
// and retried with backoff: a lost connection, a server that is down. When
// another process streams through the slot (another replica of the service),
// it waits quietly and takes over when the slot is free. When a segment it
// received is archived with different content, it logs that loudly, stops
// confirming WAL to the server and tries that segment again every minute
// (conflictRetry), so that the server keeps the WAL until an operator looks.
//
// When the server's timeline ends (a standby it streams from is promoted),
// Stream archives the rest of the old timeline as its streamed partial,
// reconnects, archives the new timeline's history file and streams the new
// timeline from the start of the segment where it begins.
//
// It needs PostgreSQL 15 or later (READ_REPLICATION_SLOT), and holds a whole
// segment in memory (16 MiB by default).
func Stream(ctx context.Context, cfg Config, o StreamOptions) error {
	if o.Slot == "" {
		o.Slot = DefaultSlot
	}
	if !slotNameRE.MatchString(o.Slot) {
		return fmt.Errorf("wal: stream: %q is not a replication slot name (lower-case letters, digits and _, at most 63)", o.Slot)
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Conn == "" {
		return errors.New("wal: stream: StreamOptions.Conn is empty")
	}
	pc, err := pgconn.ParseConfig(o.Conn)
	if err != nil {
		// The parse error may quote the connection string, password and all.
		return errors.New("wal: stream: StreamOptions.Conn is not a valid connection string")
	}
	pc.RuntimeParams["replication"] = "true" // physical: the walsender takes no SQL
	key, err := cfg.key()
	if err != nil {
		return err
	}
	cfg.Key = key
	if _, err := cfg.walRoot(); err != nil {
		return err
	}
	r := &receiver{cfg: cfg, key: key, o: o, pc: pc}
	return r.run(ctx)
}

// ArchivedThrough returns the LSN up to which the timeline's WAL is in the
// archive: the end of the newest complete segment, or of the streamed partial
// of a segment after it when that ends later. It is 0 when the archive holds
// neither for the timeline. It does not look for gaps (Check does).
func ArchivedThrough(ctx context.Context, cfg Config, timeline uint32) (uint64, error) {
	a, err := openArchive(cfg, false)
	if errors.Is(err, errNoArchive) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	defer a.close()
	end, _, err := a.archivedThrough(timelineDir(timeline))
	if err != nil {
		return 0, err
	}
	return end, ctx.Err()
}

// errSlotBusy reports that another process streams through the slot.
var errSlotBusy = errors.New("wal: stream: the replication slot is in use")

// errHeld reports that the receiver stopped on a conflict (see receiver.held).
var errHeld = errors.New("wal: stream: stopped on a conflict")

// errTimelineEnded reports that the server ended the timeline being streamed.
var errTimelineEnded = errors.New("wal: stream: the timeline ended")

// receiver is Stream's state across connections.
type receiver struct {
	cfg Config
	key *storage.Key
	o   StreamOptions
	pc  *pgconn.Config

	// The segment being received: buf[:filled] are its first bytes.
	tli     uint32
	segSize int64
	segno   uint64
	buf     []byte
	filled  int
	// partial is how many bytes of buf are archived as the streamed partial,
	// last the record written for it, flushAt when the bytes after partial
	// are due in the archive (zero: none are waiting).
	partial int
	last    Record
	flushAt time.Time

	// confirmed is the LSN through which the archive holds the WAL, the
	// position the server is told; it only grows.
	confirmed uint64
	// held is set when a segment received is archived with other content:
	// the receiver then confirms nothing after it and streams that segment
	// again every conflictRetry until it archives, so that the server keeps
	// the WAL while an operator looks.
	held *heldSegment
	// progress is set when a connection received WAL; busy while the slot is
	// held by another process, so that this is logged once.
	progress bool
	busy     bool
}

type heldSegment struct {
	tli   uint32
	segno uint64
}

// run connects again and again until ctx is done.
// log writes one line of the receiver at level.
func (r *receiver) log(level slog.Level, format string, args ...any) {
	r.o.Logger.Log(context.Background(), level, fmt.Sprintf(format, args...))
}

func (r *receiver) run(ctx context.Context) error {
	wait := retryMin
	for {
		r.progress = false
		err := r.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if r.progress {
			wait = retryMin
		}
		var pause time.Duration
		switch {
		case errors.Is(err, errSlotBusy):
			if !r.busy {
				r.log(slog.LevelInfo, "wal: stream: replication slot %s is in use by another process, as when another replica streams; waiting for it", r.o.Slot)
				r.busy = true
			}
			pause = slotBusyRetry
		case errors.Is(err, errHeld):
			pause = conflictRetry
		case errors.Is(err, errTimelineEnded):
			if r.progress {
				continue // on to the next timeline at once
			}
			// Ended before any WAL arrived: connect again, but not in a loop.
			r.log(slog.LevelInfo, "wal: stream: the server ended timeline %d before sending WAL; connecting again in %s", r.tli, wait)
			pause, wait = wait, min(2*wait, retryMax)
		default:
			r.log(slog.LevelWarn, "wal: stream: %v; connecting again in %s", err, wait)
			pause, wait = wait, min(2*wait, retryMax)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(pause):
		}
	}
}

// session is one connection: it prepares, streams, and returns why it ended.
func (r *receiver) session(ctx context.Context) error {
	conn, err := pgconn.ConnectConfig(ctx, r.pc)
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
		conn.Close(cctx)
	}()
	sys, err := pglogrepl.IdentifySystem(ctx, conn)
	if err != nil {
		return fmt.Errorf("IDENTIFY_SYSTEM: %w", err)
	}
	serverTLI := uint32(sys.Timeline)
	segSize, err := showSegmentSize(ctx, conn)
	if err != nil {
		return err
	}
	restart, err := r.slot(ctx, conn)
	if err != nil {
		return err
	}
	history, err := r.archiveHistories(ctx, conn, serverTLI)
	if err != nil {
		return err
	}
	tli, start, err := r.startPoint(ctx, serverTLI, history, restart, uint64(sys.XLogPos), segSize)
	if err != nil {
		return err
	}
	r.begin(tli, SegmentOf(start, segSize), segSize)

	err = pglogrepl.StartReplication(ctx, conn, r.o.Slot, pglogrepl.LSN(start),
		pglogrepl.StartReplicationOptions{Timeline: int32(tli), Mode: pglogrepl.PhysicalReplication})
	if _, _, ok := pglogrepl.IsErrEndTimeline(err); ok {
		return errTimelineEnded
	}
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55006" { // object_in_use: "replication slot ... is active for PID ..."
			return errSlotBusy
		}
		return fmt.Errorf("START_REPLICATION SLOT %s PHYSICAL %s TIMELINE %d: %w", r.o.Slot, FormatLSN(start), tli, err)
	}
	if r.busy {
		r.log(slog.LevelInfo, "wal: stream: replication slot %s is free again; this receiver streams now", r.o.Slot)
		r.busy = false
	}
	r.log(slog.LevelInfo, "wal: stream: streaming timeline %d from %s (system %s, slot %s, archived through %s)",
		tli, FormatLSN(start), sys.SystemID, r.o.Slot, FormatLSN(r.confirmed))
	return r.receive(ctx, conn)
}

// showSegmentSize reads wal_segment_size, which a walsender shows in units
// such as "16MB".
func showSegmentSize(ctx context.Context, conn *pgconn.PgConn) (int64, error) {
	res, err := conn.Exec(ctx, "SHOW wal_segment_size").ReadAll()
	if err != nil {
		return 0, fmt.Errorf("SHOW wal_segment_size: %w", err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) != 1 {
		return 0, errors.New("SHOW wal_segment_size: no value")
	}
	text := string(res[0].Rows[0][0])
	num := strings.TrimRight(text, "kMGB")
	n, err := strconv.ParseInt(num, 10, 64)
	if err == nil {
		switch strings.TrimPrefix(text, num) {
		case "B":
		case "kB":
			n <<= 10
		case "MB":
			n <<= 20
		case "GB":
			n <<= 30
		default:
			n = 0
		}
	}
	if !ValidSegmentSize(n) {
		return 0, fmt.Errorf("SHOW wal_segment_size: %q is not a WAL segment size", text)
	}
	return n, nil
}

// slot returns the slot's restart_lsn, creating the slot when missing. 0 means
// a slot that reserves no WAL (one created by hand without RESERVE_WAL).
func (r *receiver) slot(ctx context.Context, conn *pgconn.PgConn) (uint64, error) {
	for created := false; ; created = true {
		res, err := conn.Exec(ctx, "READ_REPLICATION_SLOT "+r.o.Slot).ReadAll()
		if err != nil {
			return 0, fmt.Errorf("READ_REPLICATION_SLOT %s (PostgreSQL 15 or later has it): %w", r.o.Slot, err)
		}
		if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) < 2 {
			return 0, fmt.Errorf("READ_REPLICATION_SLOT %s: unexpected result", r.o.Slot)
		}
		row := res[0].Rows[0]
		if row[0] != nil {
			if kind := string(row[0]); kind != "physical" {
				return 0, fmt.Errorf("replication slot %s is a %s slot; the receiver needs a physical one (choose another StreamOptions.Slot)", r.o.Slot, kind)
			}
			if row[1] == nil {
				return 0, nil
			}
			lsn, err := ParseLSN(string(row[1]))
			if err != nil {
				return 0, fmt.Errorf("READ_REPLICATION_SLOT %s: %w", r.o.Slot, err)
			}
			return lsn, nil
		}
		if created {
			return 0, fmt.Errorf("replication slot %s vanished after it was created", r.o.Slot)
		}
		_, err = conn.Exec(ctx, "CREATE_REPLICATION_SLOT "+r.o.Slot+" PHYSICAL RESERVE_WAL").ReadAll()
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42710" { // duplicate_object: another replica created it
			continue
		} else if err != nil {
			return 0, fmt.Errorf("CREATE_REPLICATION_SLOT %s PHYSICAL RESERVE_WAL: %w", r.o.Slot, err)
		}
		r.log(slog.LevelInfo, "wal: stream: created the physical replication slot %s", r.o.Slot)
	}
}

// historyEntry is one line of a timeline history file: timeline tli ended at
// end, where its successor forked off.
type historyEntry struct {
	tli uint32
	end uint64
}

// archiveHistories archives the history files of the server's timeline and of
// its ancestors that the archive lacks (recovery to the latest timeline looks
// for each of them), and returns the server timeline's history.
func (r *receiver) archiveHistories(ctx context.Context, conn *pgconn.PgConn, serverTLI uint32) ([]historyEntry, error) {
	var history []historyEntry
	for tli := uint32(2); tli <= serverTLI; tli++ {
		name := fmt.Sprintf("%08X.history", tli)
		if tli < serverTLI && r.isArchived(tli, name) {
			continue
		}
		res, err := pglogrepl.TimelineHistory(ctx, conn, int32(tli))
		if err != nil {
			if tli < serverTLI { // an ancestor's file the server no longer has
				r.log(slog.LevelWarn, "wal: stream: TIMELINE_HISTORY %d: %v", tli, err)
				continue
			}
			return nil, fmt.Errorf("TIMELINE_HISTORY %d: %w", tli, err)
		}
		if res.FileName != name {
			return nil, fmt.Errorf("TIMELINE_HISTORY %d named the file %q", tli, res.FileName)
		}
		if err := archiveFrom(ctx, r.cfg, r.key, name, tli, bytes.NewReader(res.Content), "the history file the server sent"); err != nil {
			return nil, err
		}
		if tli == serverTLI {
			if history, err = parseHistory(res.Content); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	return history, nil
}

// isArchived reports whether the archive has a record of name.
func (r *receiver) isArchived(tli uint32, name string) bool {
	a, err := openArchive(r.cfg, false)
	if err != nil {
		return false
	}
	defer a.close()
	_, err = a.readRecord(timelineDir(tli), name)
	return err == nil
}

// parseHistory reads a timeline history file: lines of "parent-timeline
// switch-LSN reason", oldest first; # starts a comment.
func parseHistory(b []byte) ([]historyEntry, error) {
	var out []historyEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) < 2 {
			return nil, fmt.Errorf("history line %q has no switch point", sc.Text())
		}
		tli, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("history line %q: %w", sc.Text(), err)
		}
		end, err := ParseLSN(f[1])
		if err != nil {
			return nil, fmt.Errorf("history line %q: %w", sc.Text(), err)
		}
		out = append(out, historyEntry{tli: uint32(tli), end: end})
	}
	return out, sc.Err()
}

// timelineOf returns the timeline that holds the WAL at lsn in the server's
// history, as PostgreSQL's tliOfPointInHistory does: a switch point belongs to
// the new timeline.
func timelineOf(lsn uint64, history []historyEntry, serverTLI uint32) uint32 {
	for _, h := range history {
		if lsn < h.end {
			return h.tli
		}
	}
	return serverTLI
}

// startPoint chooses where to stream from: the start of the segment holding
// the later of the slot's restart_lsn and the end of what the archive holds on
// the server's timeline or an ancestor (up to where the server forked off it),
// on the timeline that holds that position; or the segment a conflict stopped
// on. It sets confirmed to that later position, all of which is archived or
// kept by the slot already. A slot that reserves no WAL, with an empty
// archive, starts at the server's position now, serverPos.
//
// The archive's newest complete segment on the timeline it resumes on is read
// back first (decrypted and compared with its record's SHA-256, about 50 ms
// for 16 MB): a receiver or a disk that failed while writing it leaves an
// object that would otherwise be trusted until a recovery needs it. A damaged
// one is streamed again from its start, which rewrites its object (as Push
// does for a retried push), as long as the server still has it.
func (r *receiver) startPoint(ctx context.Context, serverTLI uint32, history []historyEntry, restart, serverPos uint64, segSize int64) (uint32, uint64, error) {
	if h := r.held; h != nil && r.segSize == segSize {
		start := h.segno * uint64(segSize)
		return h.tli, start, nil
	}
	r.held = nil
	a, err := openArchive(r.cfg, true)
	if err != nil {
		return 0, 0, err
	}
	defer a.close()
	want := restart
	// newest is the timeline whose archive ends last, whatever the slot says.
	var newest struct {
		tli uint32
		dir string
		end uint64
	}
	ends := append(slices.Clip(history), historyEntry{tli: serverTLI, end: ^uint64(0)})
	for _, h := range ends {
		end, size, err := a.archivedThrough(timelineDir(h.tli))
		if err != nil {
			return 0, 0, err
		}
		if size != 0 && size != segSize {
			return 0, 0, fmt.Errorf("the archive holds %d-byte segments of timeline %d, and the server's are %d bytes: is this the cluster that archives here?", size, h.tli, segSize)
		}
		if end <= h.end && end > want {
			want = end
		}
		if end <= h.end && end > newest.end {
			newest.tli, newest.dir, newest.end = h.tli, timelineDir(h.tli), end
		}
	}
	if want == 0 {
		want = serverPos
	}
	tli := timelineOf(want, history, serverTLI)
	r.confirmed = max(r.confirmed, want)
	start := want - want%uint64(segSize)
	if newest.dir != "" {
		damaged, err := a.damagedNewestSegment(ctx, r.key, newest.dir)
		if err != nil {
			return 0, 0, err
		}
		if damaged != "" {
			_, segno, err := ParseSegmentName(damaged, segSize)
			if err != nil {
				return 0, 0, err
			}
			if from := segno * uint64(segSize); from < start {
				r.log(slog.LevelWarn, "wal: stream: the archive's newest segment %s does not read back as its record says; streaming it again from %s to archive it anew",
					damaged, FormatLSN(from))
				return newest.tli, from, nil
			}
		}
	}
	return tli, start, nil
}

// damagedNewestSegment returns the name of the newest complete segment in the
// timeline directory dir when its object does not decrypt to the size and
// SHA-256 of its record, and "" when it does or there is none.
func (a *archive) damagedNewestSegment(ctx context.Context, key *storage.Key, dir string) (string, error) {
	tf, err := a.listTimeline(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	if len(tf.segments) == 0 {
		return "", nil
	}
	name := tf.segments[len(tf.segments)-1]
	id, err := identity(key)
	if err != nil {
		return "", fmt.Errorf("wal: %w", err)
	}
	if _, err := a.verifyOne(ctx, dir, name, id); errors.Is(err, ErrCorrupt) {
		return name, nil
	} else if err != nil {
		return "", err
	}
	return "", nil
}

// begin makes the receiver hold segment segno of timeline tli, from its first byte.
func (r *receiver) begin(tli uint32, segno uint64, segSize int64) {
	if int64(len(r.buf)) != segSize {
		r.buf = make([]byte, segSize)
	}
	r.tli, r.segSize, r.segno = tli, segSize, segno
	r.filled, r.partial, r.last, r.flushAt = 0, 0, Record{}, time.Time{}
}

// position is the LSN of the next byte to receive.
func (r *receiver) position() uint64 {
	return r.segno*uint64(r.segSize) + uint64(r.filled)
}

// receive handles the replication stream until it ends or fails.
func (r *receiver) receive(ctx context.Context, conn *pgconn.PgConn) error {
	if err := r.sendStatus(conn); err != nil {
		return err
	}
	nextStatus := time.Now().Add(statusInterval)
	for {
		deadline := nextStatus
		if !r.flushAt.IsZero() && r.flushAt.Before(deadline) {
			deadline = r.flushAt
		}
		rctx, cancel := context.WithDeadline(ctx, deadline)
		msg, err := conn.ReceiveMessage(rctx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil && !pgconn.Timeout(err) {
			return fmt.Errorf("receiving WAL: %w", err)
		}
		reply := false
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if len(m.Data) == 0 {
				break
			}
			switch m.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(m.Data[1:])
				if err != nil {
					return fmt.Errorf("a keepalive message: %w", err)
				}
				reply = ka.ReplyRequested
			case pglogrepl.XLogDataByteID:
				x, err := pglogrepl.ParseXLogData(m.Data[1:])
				if err != nil {
					return fmt.Errorf("a WAL message: %w", err)
				}
				before := r.confirmed
				if err := r.add(ctx, uint64(x.WALStart), x.WALData); err != nil {
					return err
				}
				reply = r.confirmed > before
			}
		case *pgproto3.CopyDone:
			// The timeline ended on the server (it was promoted): all of it up
			// to the switch point has arrived. Archive it, end the copy, and
			// let the next connection go on with the new timeline.
			if err := r.flush(ctx); err != nil {
				return err
			}
			if err := r.sendStatus(conn); err != nil {
				return err
			}
			// SendStandbyCopyDone reads the server's answer without looking at
			// ctx: bound it by a deadline, and end it when ctx is done. The
			// connection is closed afterwards anyway.
			_ = conn.Conn().SetDeadline(time.Now().Add(5 * closeTimeout))
			stop := context.AfterFunc(ctx, func() { _ = conn.Conn().SetDeadline(time.Now()) })
			cdr, err := pglogrepl.SendStandbyCopyDone(ctx, conn)
			stop()
			if err != nil {
				return fmt.Errorf("ending the timeline: %w", err)
			} else if cdr != nil {
				r.log(slog.LevelInfo, "wal: stream: timeline %d ended at %s; the server goes on with timeline %d", r.tli, FormatLSN(r.position()), cdr.Timeline)
			}
			return errTimelineEnded
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("the server ended streaming: %w", pgconn.ErrorResponseToPgError(m))
		}
		now := time.Now()
		if !r.flushAt.IsZero() && !now.Before(r.flushAt) {
			before := r.confirmed
			if err := r.flush(ctx); err != nil {
				return err
			}
			reply = reply || r.confirmed > before
		}
		if reply || !now.Before(nextStatus) {
			if err := r.sendStatus(conn); err != nil {
				return err
			}
			nextStatus = now.Add(statusInterval)
		}
	}
}

// sendStatus tells the server the position through which the archive holds
// the WAL, as written, flushed and applied: the slot's restart_lsn follows the
// flush position, so the server keeps everything after it.
func (r *receiver) sendStatus(conn *pgconn.PgConn) error {
	lsn := pglogrepl.LSN(r.confirmed)
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), conn,
		pglogrepl.StandbyStatusUpdate{WALWritePosition: lsn, WALFlushPosition: lsn, WALApplyPosition: lsn})
	if err != nil {
		return fmt.Errorf("sending the archived position: %w", err)
	}
	return nil
}

// add appends WAL that starts at lsn to the segment being received, archiving
// each segment it completes.
func (r *receiver) add(ctx context.Context, lsn uint64, data []byte) error {
	if lsn != r.position() {
		return fmt.Errorf("the server sent WAL from %s; the receiver is at %s", FormatLSN(lsn), FormatLSN(r.position()))
	}
	r.progress = true
	for len(data) > 0 {
		n := copy(r.buf[r.filled:], data)
		r.filled += n
		data = data[n:]
		if r.filled < len(r.buf) {
			break
		}
		if err := r.complete(ctx); err != nil {
			return err
		}
	}
	if r.filled > r.partial && r.flushAt.IsZero() {
		r.flushAt = time.Now().Add(r.o.FlushInterval)
	}
	return nil
}

// complete archives the segment held, which is whole, as Push archives
// PostgreSQL's file of that name, and goes on with the next one.
func (r *receiver) complete(ctx context.Context) error {
	name := SegmentName(r.tli, r.segno, r.segSize)
	err := archiveFrom(ctx, r.cfg, r.key, name, r.tli, bytes.NewReader(r.buf), "the segment received from the server")
	if errors.Is(err, ErrConflict) {
		return r.hold(err)
	} else if err != nil {
		return err
	}
	if r.held != nil {
		r.log(slog.LevelInfo, "wal: stream: segment %s is archived now; the receiver goes on", name)
		r.held = nil
	}
	r.log(slog.LevelInfo, "wal: stream: archived segment %s", name)
	r.confirmed = max(r.confirmed, (r.segno+1)*uint64(r.segSize))
	r.begin(r.tli, r.segno+1, r.segSize)
	return nil
}

// hold stops the receiver on a segment the archive holds with other content.
func (r *receiver) hold(err error) error {
	r.held = &heldSegment{tli: r.tli, segno: r.segno}
	r.log(slog.LevelError, "wal: stream: STOPPED: %v. Is another cluster archiving into this repository? The receiver confirms nothing after %s, so the server keeps its WAL; it tries segment %s again every %s until an operator has looked",
		err, FormatLSN(r.confirmed), SegmentName(r.tli, r.segno, r.segSize), conflictRetry)
	return errHeld
}

// errSegmentArchived reports that the segment of a streamed partial is
// archived whole, so the partial is not needed; errPartialAhead that the
// archive's partial holds more than the receiver has received.
var (
	errSegmentArchived = errors.New("wal: the segment is archived whole")
	errPartialAhead    = errors.New("wal: the archive's streamed partial holds more")
)

// flush archives the bytes of the segment received so far as its streamed
// partial, unless nothing new arrived.
func (r *receiver) flush(ctx context.Context) error {
	r.flushAt = time.Time{}
	if r.filled <= r.partial {
		return nil
	}
	rec, err := r.writeStreamed(ctx)
	switch {
	case errors.Is(err, ErrConflict):
		return r.hold(err)
	case errors.Is(err, errSegmentArchived), errors.Is(err, errPartialAhead):
		// archive_command was quicker and the segment is in the archive whole,
		// or this receiver restarted in the segment and has not yet received
		// what an earlier run archived of it. Neither is compared with these
		// bytes yet (complete and a later flush do that), so nothing more is
		// confirmed.
		r.partial = r.filled
		return nil
	case err != nil:
		return err
	}
	r.last = rec
	r.partial = r.filled
	r.confirmed = max(r.confirmed, r.position())
	return nil
}

// writeStreamed writes buf[:filled] as the streamed partial of the segment
// held, replacing the one before it: the new object goes to the one of the
// partial's two object files that its record does not name, and then the
// record is replaced, so that the record always names a whole object. It
// writes nothing when the segment is archived whole (errSegmentArchived) or
// when the archive's partial holds more already (errPartialAhead: a receiver
// that restarted in the segment). A partial in the archive whose bytes are
// not the beginning of these gives ErrConflict.
func (r *receiver) writeStreamed(ctx context.Context) (Record, error) {
	a, err := openArchive(r.cfg, true)
	if err != nil {
		return Record{}, err
	}
	defer a.close()
	dir := timelineDir(r.tli)
	if err := a.mkdir(dir); err != nil {
		return Record{}, err
	}
	lock, err := a.lock(ctx, dir)
	if err != nil {
		return Record{}, err
	}
	defer lock.Close()

	segment := SegmentName(r.tli, r.segno, r.segSize)
	if _, err := a.readRecord(dir, segment); err == nil {
		return Record{}, errSegmentArchived
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Record{}, fmt.Errorf("wal: reading the record of %s: %w", segment, err)
	}
	name := segment + streamSuffix
	data := r.buf[:r.filled]
	old, err := a.readRecord(dir, name)
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, ErrCorrupt):
		// None yet, or a record that does not parse: it names nothing to keep.
		old = Record{}
	case err != nil:
		return Record{}, fmt.Errorf("wal: reading the record of %s: %w", name, err)
	case old.Size > int64(len(data)):
		return Record{}, errPartialAhead
	case old != r.last:
		// Written by an earlier run or another receiver: keep it only if
		// these bytes go on from it.
		sum := sha256.Sum256(data[:old.Size])
		if old.SegmentSize != r.segSize || hex.EncodeToString(sum[:]) != old.SHA256 {
			return Record{}, fmt.Errorf("%w: %s is archived with %d bytes and sha256 %s, which are not the first bytes of the segment received from the server; the archive is left as it is",
				ErrConflict, name, old.Size, old.SHA256)
		}
		if old.Size == int64(len(data)) {
			return old, nil
		}
	}
	files := objectFiles(name)
	file := files[0]
	if old.File == files[0] {
		file = files[1]
	}
	rec, err := a.writeObject(ctx, lock, dir, name, file, bytes.NewReader(data), r.key)
	if err != nil {
		return Record{}, err
	}
	rec.ArchivedAt = time.Now().UTC()
	rec.Recipient = r.key.Recipient()
	rec.SegmentSize = r.segSize
	if err := a.writeRecord(lock, dir, rec); err != nil {
		return Record{}, err
	}
	// The object the old record named stays until the next write replaces
	// it, for a reader that read the old record a moment ago.
	return rec, nil
}
