package wal

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/jackc/pgx/v5"
)

// Status is the state of the archive and, when Check was given a connection,
// of the managed cluster's archiver.
type Status struct {
	// CheckedAt is when Check looked.
	CheckedAt time.Time `json:"checkedAt"`
	// SegmentSize is the WAL segment size the archived segments have; 0 when
	// no segment is archived.
	SegmentSize int64 `json:"segmentSize"`
	// Timelines lists each archived timeline, oldest first.
	Timelines []TimelineStatus `json:"timelines"`
	// Files, Bytes and StoredBytes total every archived file: Bytes of WAL,
	// StoredBytes on disk after compression and encryption.
	Files       int   `json:"files"`
	Bytes       int64 `json:"bytes"`
	StoredBytes int64 `json:"storedBytes"`
	// Damaged lists files whose record exists without its object, or with an
	// object of another size than recorded. Check reads no object; Verify does.
	Damaged []string `json:"damaged,omitempty"`
	// Incomplete lists objects without a record: pushes that were interrupted
	// and will be redone, or whose retry never came.
	Incomplete []string `json:"incomplete,omitempty"`
	// Server is the managed cluster's view, when Check had a connection.
	Server *ServerStatus `json:"server,omitempty"`
}

// TimelineStatus is the archive of one timeline.
type TimelineStatus struct {
	Timeline uint32 `json:"timeline"`
	// FirstSegment and LastSegment are the lowest and highest archived
	// segments, with the times they were archived.
	FirstSegment    string    `json:"firstSegment,omitempty"`
	FirstArchivedAt time.Time `json:"firstArchivedAt,omitzero"`
	LastSegment     string    `json:"lastSegment,omitempty"`
	LastArchivedAt  time.Time `json:"lastArchivedAt,omitzero"`
	// Segments counts the archived segments; Files counts every archived
	// file of the timeline, history and labels included.
	Segments    int   `json:"segments"`
	Files       int   `json:"files"`
	Bytes       int64 `json:"bytes"`
	StoredBytes int64 `json:"storedBytes"`
	// Gaps are the runs of segments missing between FirstSegment and
	// LastSegment; MissingSegments counts them all. Recovery cannot replay
	// across a gap.
	Gaps            []Gap  `json:"gaps,omitempty"`
	MissingSegments uint64 `json:"missingSegments"`
	// History is the timeline's .history file when archived (every timeline
	// after the first has one); BackupLabels and Partial list the .backup and
	// .partial files.
	History      string   `json:"history,omitempty"`
	BackupLabels []string `json:"backupLabels,omitempty"`
	Partial      []string `json:"partial,omitempty"`
	// Streamed is the streaming receiver's streamed partial of a segment after
	// LastSegment (see Stream): WAL the archive holds beyond its complete
	// segments. It is neither a gap nor counted in Segments.
	Streamed *StreamedPartial `json:"streamed,omitempty"`
}

// StreamedPartial is the part of a segment that the streaming receiver has
// archived before the segment is complete.
type StreamedPartial struct {
	// Segment is the segment it is the beginning of.
	Segment string `json:"segment"`
	// Bytes are the valid bytes from the segment's start; EndLSN is where they
	// end, the newest WAL position the archive holds on the timeline.
	Bytes  int64  `json:"bytes"`
	EndLSN string `json:"endLsn"`
	// WrittenAt is when the receiver wrote it.
	WrittenAt time.Time `json:"writtenAt"`
}

// Gap is a run of missing segments, First to Last inclusive.
type Gap struct {
	First string `json:"first"`
	Last  string `json:"last"`
	Count uint64 `json:"count"`
}

// ServerStatus is what the managed cluster says about its archiving:
// pg_stat_archiver, and the archive lag measured from its current WAL insert
// position.
type ServerStatus struct {
	ArchiveMode    string `json:"archiveMode"`
	ArchiveCommand string `json:"archiveCommand"`
	// ArchivedCount, LastArchivedWAL and LastArchivedTime are pg_stat_archiver's
	// successes since StatsReset; the Failed fields its failures. A failure
	// newer than the last success means archiving is failing now.
	ArchivedCount    int64      `json:"archivedCount"`
	LastArchivedWAL  string     `json:"lastArchivedWal,omitempty"`
	LastArchivedTime *time.Time `json:"lastArchivedTime,omitempty"`
	FailedCount      int64      `json:"failedCount"`
	LastFailedWAL    string     `json:"lastFailedWal,omitempty"`
	LastFailedTime   *time.Time `json:"lastFailedTime,omitempty"`
	StatsReset       *time.Time `json:"statsReset,omitempty"`
	// SecondsSinceArchive is the time since LastArchivedTime by the server's clock.
	SecondsSinceArchive *float64 `json:"secondsSinceArchive,omitempty"`
	// InRecovery reports a standby, whose insert position is not its own;
	// the lag is then not measured.
	InRecovery  bool  `json:"inRecovery"`
	SegmentSize int64 `json:"segmentSize"`
	// Timeline, InsertLSN and CurrentSegment are where the server writes WAL now.
	Timeline       uint32 `json:"timeline,omitempty"`
	InsertLSN      string `json:"insertLsn,omitempty"`
	CurrentSegment string `json:"currentSegment,omitempty"`
	// Lag is how far the archive trails the server; nil when it cannot be
	// measured (a standby, or no complete segment archived on the current
	// timeline).
	Lag *Lag `json:"lag,omitempty"`
	// Slots are the server's physical replication slots, the streaming
	// receiver's among them (DefaultSlot unless configured otherwise).
	Slots []SlotStatus `json:"slots,omitempty"`
}

// SlotStatus is one physical replication slot, from pg_replication_slots.
type SlotStatus struct {
	Name string `json:"name"`
	// Active reports whether a receiver streams through the slot now.
	Active bool `json:"active"`
	// RestartLSN is the oldest WAL the slot keeps on the server: for the
	// streaming receiver, the end of what is archived.
	RestartLSN string `json:"restartLsn,omitempty"`
	// WALStatus is pg_replication_slots.wal_status; "lost" means the server
	// removed WAL the slot needed.
	WALStatus string `json:"walStatus,omitempty"`
	// BehindBytes is how far RestartLSN trails the server's current WAL
	// position: the WAL the slot keeps that its receiver has not confirmed.
	BehindBytes *int64 `json:"behindBytes,omitempty"`
}

// Lag is how far the archive trails the server's WAL.
type Lag struct {
	// LastSegment is the newest segment archived on the server's timeline.
	LastSegment string `json:"lastSegment"`
	// Segments counts the segments that are complete but not archived: the
	// ones after LastSegment and before the segment being written. 0 means
	// the archive holds everything but the segment in progress.
	Segments uint64 `json:"segments"`
	// Bytes is the WAL written after the archive's end (LastSegment, or the
	// streamed partial after it): what a crash of the server and its disks
	// would lose, the recovery point.
	Bytes uint64 `json:"bytes"`
	// Seconds since the last successful archive, by the server's clock
	// (pg_stat_archiver), else by the archive's record; nil when neither knows.
	Seconds *float64 `json:"seconds,omitempty"`
}

// Problems lists, in sentences, what needs an operator: gaps, damaged files,
// an archiver whose last attempt failed, complete segments waiting. An empty
// list means the archive looks healthy.
func (s Status) Problems() []string {
	var out []string
	for _, tl := range s.Timelines {
		for _, g := range tl.Gaps {
			out = append(out, fmt.Sprintf("timeline %d misses %d segments from %s to %s", tl.Timeline, g.Count, g.First, g.Last))
		}
	}
	for _, name := range s.Damaged {
		out = append(out, fmt.Sprintf("%s is recorded but its object is missing or has the wrong size", name))
	}
	if sv := s.Server; sv != nil {
		streaming := slices.ContainsFunc(sv.Slots, func(sl SlotStatus) bool { return sl.Active })
		if sv.ArchiveMode == "off" && !streaming {
			out = append(out, "archive_mode is off on the managed cluster, and no physical replication slot is active (a streaming receiver archives through one)")
		}
		for _, sl := range sv.Slots {
			switch {
			case sl.WALStatus == "lost":
				out = append(out, fmt.Sprintf("replication slot %s has lost WAL: the server removed WAL it needed", sl.Name))
			case !sl.Active && sl.BehindBytes != nil && sv.SegmentSize > 0 && *sl.BehindBytes > sv.SegmentSize:
				out = append(out, fmt.Sprintf("replication slot %s is inactive and keeps %d bytes of WAL on the server: nothing streams through it", sl.Name, *sl.BehindBytes))
			}
		}
		if sv.LastFailedTime != nil && (sv.LastArchivedTime == nil || sv.LastFailedTime.After(*sv.LastArchivedTime)) {
			out = append(out, fmt.Sprintf("archiving %s failed at %s and nothing has been archived since (%d failures since %s)",
				sv.LastFailedWAL, sv.LastFailedTime.UTC().Format(time.RFC3339), sv.FailedCount, statsResetText(sv.StatsReset)))
		}
		if sv.Lag != nil && sv.Lag.Segments > 0 {
			out = append(out, fmt.Sprintf("%d complete segments after %s are not archived yet", sv.Lag.Segments, sv.Lag.LastSegment))
		}
	}
	return out
}

func statsResetText(t *time.Time) string {
	if t == nil {
		return "the server started"
	}
	return t.UTC().Format(time.RFC3339)
}

// timelineFiles is what one timeline directory holds.
type timelineFiles struct {
	records    map[string]bool  // names with a record
	objects    map[string]int64 // object files, and their sizes
	segments   []string         // archived segment names (record and object), sorted
	others     []string         // archived non-segment names, streamed partials included
	damaged    []string
	incomplete []string
}

// streamed returns the newest streamed partial of a segment after the newest
// complete segment, or "": the one that extends the archive. Older ones are
// left over from a receiver that stopped before Push removed them.
func (tf *timelineFiles) streamed() string {
	var last string
	if n := len(tf.segments); n > 0 {
		last = tf.segments[n-1]
	}
	for i := len(tf.others) - 1; i >= 0; i-- {
		if seg, ok := strings.CutSuffix(tf.others[i], streamSuffix); ok && seg > last {
			return tf.others[i]
		}
	}
	return ""
}

// listTimeline reads a timeline directory. A file is archived when both its
// record and its object exist.
func (a *archive) listTimeline(dir string) (*timelineFiles, error) {
	entries, err := fs.ReadDir(a.root.FS(), dir)
	if err != nil {
		return nil, fmt.Errorf("wal: listing %s: %w", dir, err)
	}
	tf := &timelineFiles{records: map[string]bool{}, objects: map[string]int64{}}
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, ".") || !e.Type().IsRegular() {
			continue
		}
		switch {
		case strings.HasSuffix(n, recordSuffix):
			tf.records[strings.TrimSuffix(n, recordSuffix)] = true
		case strings.HasSuffix(n, objectSuffix):
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue
			} else if err != nil {
				return nil, fmt.Errorf("wal: %w", err)
			}
			tf.objects[n] = fi.Size()
		}
	}
	for name := range tf.records {
		kind, _, err := ParseName(name)
		if err != nil {
			continue
		}
		if !slices.ContainsFunc(objectFiles(name), func(f string) bool { _, ok := tf.objects[f]; return ok }) {
			// A streamed partial's record goes before its objects when its
			// segment is archived whole; the listing may have caught that.
			if _, err := a.root.Lstat(path.Join(dir, name+recordSuffix)); kind != KindStreamed || err == nil {
				tf.damaged = append(tf.damaged, name)
			}
			continue
		}
		if kind == KindSegment {
			tf.segments = append(tf.segments, name)
		} else {
			tf.others = append(tf.others, name)
		}
	}
	for file := range tf.objects {
		if name := objectOwner(file); !tf.records[name] {
			tf.incomplete = append(tf.incomplete, name)
		}
	}
	slices.Sort(tf.segments) // segment names sort as their numbers do
	slices.Sort(tf.others)
	slices.Sort(tf.damaged)
	slices.Sort(tf.incomplete)
	tf.incomplete = slices.Compact(tf.incomplete) // a streamed partial has two objects
	return tf, nil
}

// objectOwner returns the name whose object file is: the inverse of objectFiles.
func objectOwner(file string) string {
	name := strings.TrimSuffix(file, objectSuffix)
	if base, ok := strings.CutSuffix(name, ".0"); ok && strings.HasSuffix(base, streamSuffix) {
		return base
	}
	if base, ok := strings.CutSuffix(name, ".1"); ok && strings.HasSuffix(base, streamSuffix) {
		return base
	}
	return name
}

// timelines lists the timeline directories of the archive, oldest first.
func (a *archive) timelines() ([]uint32, error) {
	entries, err := fs.ReadDir(a.root.FS(), ".")
	if err != nil {
		return nil, fmt.Errorf("wal: listing the archive: %w", err)
	}
	var out []uint32
	for _, e := range entries {
		n := e.Name()
		if !e.IsDir() || len(n) != 8 || strings.ToUpper(n) != n {
			continue
		}
		tli, err := strconv.ParseUint(n, 16, 32)
		if err == nil && tli > 0 {
			out = append(out, uint32(tli))
		}
	}
	slices.Sort(out)
	return out, nil
}

// Segments lists the archived segments of a timeline in order, for recovery
// planning. A segment counts when both its record and its object exist.
// A streamed partial is not a segment of the list.
func Segments(ctx context.Context, cfg Config, timeline uint32) ([]string, error) {
	segs, _, err := archivedSegments(cfg, timeline)
	if err != nil {
		return nil, err
	}
	return segs, ctx.Err()
}

// archivedSegments returns the archived segments of a timeline, in order, and
// the name of the streamed partial after the last of them, or "".
func archivedSegments(cfg Config, timeline uint32) ([]string, string, error) {
	a, err := openArchive(cfg, false)
	if errors.Is(err, errNoArchive) {
		return nil, "", nil
	} else if err != nil {
		return nil, "", err
	}
	defer a.close()
	tf, err := a.listTimeline(timelineDir(timeline))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", nil
	} else if err != nil {
		return nil, "", err
	}
	return tf.segments, tf.streamed(), nil
}

// Check reports the archive's state: per timeline the first and last archived
// segment and when they were archived, counts, sizes and gaps, plus damaged and
// incomplete files. It reads the directory listings and a few records, never the
// objects (Verify does). Given managedConn, a connection string of the managed
// cluster, it adds pg_stat_archiver and the archive lag; "" skips that.
func Check(ctx context.Context, cfg Config, managedConn string) (Status, error) {
	st := Status{CheckedAt: time.Now().UTC(), Timelines: []TimelineStatus{}}
	a, err := openArchive(cfg, false)
	if err != nil && !errors.Is(err, errNoArchive) {
		return st, err
	}
	if a != nil {
		defer a.close()
		if err := a.check(ctx, &st); err != nil {
			return st, err
		}
	}
	if managedConn != "" {
		sv, err := serverStatus(ctx, managedConn)
		if err != nil {
			return st, err
		}
		sv.Lag = lag(st, sv)
		st.Server = sv
	}
	return st, nil
}

func (a *archive) check(ctx context.Context, st *Status) error {
	tlis, err := a.timelines()
	if err != nil {
		return err
	}
	for _, tli := range tlis {
		if err := ctx.Err(); err != nil {
			return err
		}
		dir := timelineDir(tli)
		tf, err := a.listTimeline(dir)
		if err != nil {
			return err
		}
		ts := TimelineStatus{Timeline: tli, Segments: len(tf.segments), Files: len(tf.segments) + len(tf.others)}
		var first, last Record
		if len(tf.segments) > 0 {
			if first, err = a.readRecord(dir, tf.segments[0]); err != nil {
				return fmt.Errorf("wal: %w", err)
			}
			if last, err = a.readRecord(dir, tf.segments[len(tf.segments)-1]); err != nil {
				return fmt.Errorf("wal: %w", err)
			}
			if st.SegmentSize == 0 {
				st.SegmentSize = first.Size
			}
			if !ValidSegmentSize(first.Size) || first.Size != st.SegmentSize {
				return fmt.Errorf("%w: segment %s is recorded with %d bytes, not a segment size of this archive (%d)", ErrCorrupt, first.Name, first.Size, st.SegmentSize)
			}
			ts.FirstSegment, ts.FirstArchivedAt = first.Name, first.ArchivedAt
			ts.LastSegment, ts.LastArchivedAt = last.Name, last.ArchivedAt
			ts.Bytes = int64(len(tf.segments)) * st.SegmentSize
			ts.Gaps, ts.MissingSegments, err = gaps(tf.segments, st.SegmentSize)
			if err != nil {
				return err
			}
		}
		for _, name := range tf.segments {
			ts.StoredBytes += tf.objects[name+objectSuffix]
		}
		streamed := tf.streamed()
		for _, name := range tf.others {
			rec, err := a.readRecord(dir, name)
			if errors.Is(err, fs.ErrNotExist) && strings.HasSuffix(name, streamSuffix) {
				continue // removed since the listing: its segment is archived whole now
			} else if err != nil {
				return fmt.Errorf("wal: %w", err)
			}
			ts.Bytes += rec.Size
			ts.StoredBytes += tf.objects[rec.File]
			switch kind, _, _ := ParseName(name); kind {
			case KindHistory:
				ts.History = name
			case KindBackupLabel:
				ts.BackupLabels = append(ts.BackupLabels, name)
			case KindPartial:
				ts.Partial = append(ts.Partial, name)
			case KindStreamed:
				if name != streamed {
					break
				}
				if ts.Streamed, err = streamedPartial(rec); err != nil {
					return err
				}
				// The receiver may have replaced it since the listing, but
				// never rewrites the object its current record names: look
				// at that object now rather than in the listing.
				if !a.objectIntact(dir, rec) && !slices.Contains(tf.damaged, name) {
					tf.damaged = append(tf.damaged, name)
				}
			}
		}
		// A truncated object is damaged too; the records of the first and last
		// segments tell, the others are Verify's to read.
		for _, rec := range []Record{first, last} {
			if rec.Name != "" && tf.objects[rec.File] != rec.StoredSize && !slices.Contains(tf.damaged, rec.Name) {
				tf.damaged = append(tf.damaged, rec.Name)
			}
		}
		st.Damaged = append(st.Damaged, tf.damaged...)
		st.Incomplete = append(st.Incomplete, tf.incomplete...)
		st.Files += ts.Files
		st.Bytes += ts.Bytes
		st.StoredBytes += ts.StoredBytes
		st.Timelines = append(st.Timelines, ts)
	}
	return nil
}

// streamedPartial describes the streamed partial whose record is rec.
func streamedPartial(rec Record) (*StreamedPartial, error) {
	seg := strings.TrimSuffix(rec.Name, streamSuffix)
	_, segno, err := ParseSegmentName(seg, rec.SegmentSize)
	if err != nil {
		return nil, fmt.Errorf("%w: the record of %s: %v", ErrCorrupt, rec.Name, err)
	}
	return &StreamedPartial{Segment: seg, Bytes: rec.Size, EndLSN: FormatLSN(segno*uint64(rec.SegmentSize) + uint64(rec.Size)),
		WrittenAt: rec.ArchivedAt}, nil
}

// archivedThrough returns the LSN through which the timeline in dir is
// archived (see ArchivedThrough), and the segment size its records give; 0, 0
// for a timeline without segments or a streamed partial.
func (a *archive) archivedThrough(dir string) (uint64, int64, error) {
	tf, err := a.listTimeline(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil
	} else if err != nil {
		return 0, 0, err
	}
	var end uint64
	var segSize int64
	if n := len(tf.segments); n > 0 {
		rec, err := a.readRecord(dir, tf.segments[n-1])
		if err != nil {
			return 0, 0, fmt.Errorf("wal: %w", err)
		}
		_, segno, err := ParseSegmentName(rec.Name, rec.Size)
		if err != nil {
			return 0, 0, fmt.Errorf("%w: segment %s is recorded with %d bytes: %v", ErrCorrupt, rec.Name, rec.Size, err)
		}
		end, segSize = (segno+1)*uint64(rec.Size), rec.Size
	}
	if name := tf.streamed(); name != "" {
		rec, err := a.readRecord(dir, name)
		if errors.Is(err, fs.ErrNotExist) {
			// Removed since the listing: its segment is archived whole now.
			return a.archivedThrough(dir)
		} else if err != nil {
			return 0, 0, fmt.Errorf("wal: %w", err)
		}
		sp, err := streamedPartial(rec)
		if err != nil {
			return 0, 0, err
		}
		if e, _ := ParseLSN(sp.EndLSN); e > end {
			end, segSize = e, rec.SegmentSize
		}
	}
	return end, segSize, nil
}

// gaps returns the runs of segment numbers missing between the first and the
// last of sorted segment names.
func gaps(names []string, segSize int64) ([]Gap, uint64, error) {
	var out []Gap
	var missing uint64
	var prev uint64
	for i, name := range names {
		tli, segno, err := ParseSegmentName(name, segSize)
		if err != nil {
			return nil, 0, err
		}
		if i > 0 && segno > prev+1 {
			g := Gap{First: SegmentName(tli, prev+1, segSize), Last: SegmentName(tli, segno-1, segSize), Count: segno - prev - 1}
			out = append(out, g)
			missing += g.Count
		}
		prev = segno
	}
	return out, missing, nil
}

// serverStatus reads pg_stat_archiver and the current WAL position.
func serverStatus(ctx context.Context, connString string) (*ServerStatus, error) {
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return nil, fmt.Errorf("wal: connecting to the managed cluster: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	sv := &ServerStatus{}
	var lastArchived, lastFailed *string
	err = conn.QueryRow(ctx, `
		SELECT current_setting('archive_mode'), current_setting('archive_command'),
		       archived_count, last_archived_wal, last_archived_time,
		       failed_count, last_failed_wal, last_failed_time, stats_reset,
		       extract(epoch FROM clock_timestamp() - last_archived_time)::float8,
		       (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'),
		       pg_is_in_recovery()
		FROM pg_stat_archiver`).Scan(&sv.ArchiveMode, &sv.ArchiveCommand,
		&sv.ArchivedCount, &lastArchived, &sv.LastArchivedTime,
		&sv.FailedCount, &lastFailed, &sv.LastFailedTime, &sv.StatsReset,
		&sv.SecondsSinceArchive, &sv.SegmentSize, &sv.InRecovery)
	if err != nil {
		return nil, fmt.Errorf("wal: reading pg_stat_archiver: %w", err)
	}
	if lastArchived != nil {
		sv.LastArchivedWAL = *lastArchived
	}
	if lastFailed != nil {
		sv.LastFailedWAL = *lastFailed
	}
	if sv.Slots, err = physicalSlots(ctx, conn); err != nil {
		return nil, err
	}
	if sv.InRecovery {
		return sv, nil
	}
	var lsnText, walFile string
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text, pg_walfile_name(pg_current_wal_insert_lsn())`).
		Scan(&lsnText, &walFile); err != nil {
		return nil, fmt.Errorf("wal: reading the current WAL position: %w", err)
	}
	lsn, err := ParseLSN(lsnText)
	if err != nil {
		return nil, err
	}
	_, tli, err := ParseName(walFile)
	if err != nil {
		return nil, err
	}
	sv.Timeline, sv.InsertLSN = tli, lsnText
	sv.CurrentSegment = SegmentName(tli, SegmentOf(lsn, sv.SegmentSize), sv.SegmentSize)
	return sv, nil
}

// physicalSlots reads the server's physical replication slots and how far each
// trails the server's WAL (on a standby, the WAL it has received).
func physicalSlots(ctx context.Context, conn *pgx.Conn) ([]SlotStatus, error) {
	rows, err := conn.Query(ctx, `
		SELECT slot_name::text, active, restart_lsn::text, wal_status,
		       (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END - restart_lsn)::bigint
		FROM pg_replication_slots WHERE slot_type = 'physical' ORDER BY slot_name`)
	if err != nil {
		return nil, fmt.Errorf("wal: reading pg_replication_slots: %w", err)
	}
	slots, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (SlotStatus, error) {
		var sl SlotStatus
		var restart, walStatus *string
		err := row.Scan(&sl.Name, &sl.Active, &restart, &walStatus, &sl.BehindBytes)
		if restart != nil {
			sl.RestartLSN = *restart
		}
		if walStatus != nil {
			sl.WALStatus = *walStatus
		}
		return sl, err
	})
	if err != nil {
		return nil, fmt.Errorf("wal: reading pg_replication_slots: %w", err)
	}
	return slots, nil
}

// lag measures the archive against the server: the newest segment archived
// on the server's timeline, from the repository, which is the truth that
// recovery will meet.
func lag(st Status, sv *ServerStatus) *Lag {
	if sv.InRecovery || sv.InsertLSN == "" || !ValidSegmentSize(sv.SegmentSize) {
		return nil
	}
	var last TimelineStatus
	for _, tl := range st.Timelines {
		if tl.Timeline == sv.Timeline {
			last = tl
		}
	}
	if last.LastSegment == "" {
		return nil
	}
	_, lastSeg, err := ParseSegmentName(last.LastSegment, sv.SegmentSize)
	if err != nil {
		return nil
	}
	insert, err := ParseLSN(sv.InsertLSN)
	if err != nil {
		return nil
	}
	l := &Lag{LastSegment: last.LastSegment}
	cur := SegmentOf(insert, sv.SegmentSize)
	if cur > lastSeg+1 {
		l.Segments = cur - lastSeg - 1
	}
	end := (lastSeg + 1) * uint64(sv.SegmentSize)
	if last.Streamed != nil {
		if e, err := ParseLSN(last.Streamed.EndLSN); err == nil && e > end {
			end = e
		}
	}
	if insert > end {
		l.Bytes = insert - end
	}
	switch {
	case sv.SecondsSinceArchive != nil:
		s := *sv.SecondsSinceArchive
		l.Seconds = &s
	case !last.LastArchivedAt.IsZero():
		s := st.CheckedAt.Sub(last.LastArchivedAt).Seconds()
		l.Seconds = &s
	}
	// The streaming receiver archives more often than archive_command.
	if last.Streamed != nil {
		if s := st.CheckedAt.Sub(last.Streamed.WrittenAt).Seconds(); l.Seconds == nil || s < *l.Seconds {
			l.Seconds = &s
		}
	}
	if l.Seconds != nil && *l.Seconds < 0 {
		zero := 0.0
		l.Seconds = &zero
	}
	return l
}

// VerifyResult is what Verify found.
type VerifyResult struct {
	// Checked counts the files read to the end.
	Checked int `json:"checked"`
	// Bytes counts their plaintext.
	Bytes int64 `json:"bytes"`
	// Failures maps each damaged file to why.
	Failures map[string]string `json:"failures,omitempty"`
}

// Verify reads every archived file of every timeline to the end: it must
// decrypt (age authenticates every 64 KiB chunk), decompress and match its
// record's size and SHA-256. Damage is reported in the result, not as an error;
// the error is for a failure to look at all.
func Verify(ctx context.Context, cfg Config) (VerifyResult, error) {
	res := VerifyResult{Failures: map[string]string{}}
	key, err := cfg.key()
	if err != nil {
		return res, err
	}
	id, err := identity(key)
	if err != nil {
		return res, fmt.Errorf("wal: %w", err)
	}
	a, err := openArchive(cfg, false)
	if errors.Is(err, errNoArchive) {
		return res, nil
	} else if err != nil {
		return res, err
	}
	defer a.close()
	tlis, err := a.timelines()
	if err != nil {
		return res, err
	}
	for _, tli := range tlis {
		dir := timelineDir(tli)
		tf, err := a.listTimeline(dir)
		if err != nil {
			return res, err
		}
		for _, name := range tf.damaged {
			res.Failures[name] = "recorded, but its object is missing"
		}
		for _, name := range slices.Concat(tf.segments, tf.others) {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			n, err := a.verifyOne(ctx, dir, name, id)
			if errors.Is(err, fs.ErrNotExist) && strings.HasSuffix(name, streamSuffix) {
				continue // removed since the listing: its segment is archived whole now
			}
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					return res, err
				}
				res.Failures[name] = err.Error()
				continue
			}
			res.Checked++
			res.Bytes += n
		}
	}
	return res, nil
}

// verifyOne reads one archived file to the end and compares it with its record.
func (a *archive) verifyOne(ctx context.Context, dir, name string, id *age.X25519Identity) (int64, error) {
	rec, err := a.readRecord(dir, name)
	for attempt := 1; ; attempt++ {
		if err != nil {
			if errors.Is(err, ErrCorrupt) {
				return 0, err
			}
			return 0, fmt.Errorf("wal: %w", err)
		}
		n, verr := a.verifyRecord(ctx, dir, rec, id)
		if verr == nil || rec.SegmentSize == 0 || attempt == 3 {
			return n, verr
		}
		// A streamed partial may have been replaced since its record was read
		// (see Fetch); only a record that stays the same is damaged.
		again, err2 := a.readRecord(dir, name)
		if err2 == nil && again == rec {
			return n, verr
		}
		rec, err = again, err2
	}
}

// verifyRecord reads rec's object to the end and compares it with rec.
func (a *archive) verifyRecord(ctx context.Context, dir string, rec Record, id *age.X25519Identity) (int64, error) {
	name := rec.Name
	f, err := a.root.Open(path.Join(dir, rec.File))
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
	}
	defer f.Close()
	sum, n, err := decryptAndHash(ctx, f, id)
	if err != nil {
		return n, fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
	}
	if n != rec.Size || sum != rec.SHA256 {
		return n, fmt.Errorf("%w: %s decrypts to %d bytes with sha256 %s; its record says %d bytes with sha256 %s",
			ErrCorrupt, name, n, sum, rec.Size, rec.SHA256)
	}
	return n, nil
}
