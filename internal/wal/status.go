package wal

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/onevault/readiness/internal/pgstat"
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

// serverStatus reads pg_stat_archiver, the physical slots and the current WAL position
// (package pgstat).
func serverStatus(ctx context.Context, connString string) (*ServerStatus, error) {
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return nil, fmt.Errorf("wal: connecting to the managed cluster: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	a, err := pgstat.ReadArchiver(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	sv := &ServerStatus{ArchiveMode: a.ArchiveMode, ArchiveCommand: a.ArchiveCommand,
		ArchivedCount: a.ArchivedCount, LastArchivedWAL: a.LastArchivedWAL, LastArchivedTime: a.LastArchivedTime,
		FailedCount: a.FailedCount, LastFailedWAL: a.LastFailedWAL, LastFailedTime: a.LastFailedTime,
		StatsReset: a.StatsReset, SecondsSinceArchive: a.SecondsSinceArchive, SegmentSize: a.SegmentSize,
		InRecovery: a.InRecovery}
	slots, err := pgstat.ReadPhysicalSlots(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	for _, sl := range slots {
		sv.Slots = append(sv.Slots, SlotStatus{Name: sl.Name, Active: sl.Active, RestartLSN: sl.RestartLSN,
			WALStatus: sl.WALStatus, BehindBytes: sl.BehindBytes})
	}
	if sv.InRecovery {
		return sv, nil
	}
	pos, err := pgstat.ReadWALPosition(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	lsn, err := ParseLSN(pos.InsertLSN)
	if err != nil {
		return nil, err
	}
	_, tli, err := ParseName(pos.WALFile)
	if err != nil {
		return nil, err
	}
	sv.Timeline, sv.InsertLSN = tli, pos.InsertLSN
	sv.CurrentSegment = SegmentName(tli, SegmentOf(lsn, sv.SegmentSize), sv.SegmentSize)
	return sv, nil
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
