package pgstat

import (
	"context"
	"fmt"
	"time"
)

// archiverQuery reads pg_stat_archiver with the settings and server facts that make its
// figures readable: whether archiving is on, the segment size, and whether the server is a
// standby (whose archiver figures are its own, not the primary's).
const archiverQuery = `
SELECT current_setting('archive_mode'), current_setting('archive_command'),
       archived_count, last_archived_wal, last_archived_time,
       failed_count, last_failed_wal, last_failed_time, stats_reset,
       extract(epoch FROM clock_timestamp() - last_archived_time)::float8,
       (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'),
       pg_is_in_recovery()
FROM pg_stat_archiver`

// Archiver is the server's WAL archiver, from pg_stat_archiver. Successes and failures count
// since StatsReset; a failure newer than the last success means archiving is failing now.
type Archiver struct {
	ArchiveMode      string
	ArchiveCommand   string
	ArchivedCount    int64
	LastArchivedWAL  string // "" before the first success
	LastArchivedTime *time.Time
	FailedCount      int64
	LastFailedWAL    string // "" before the first failure
	LastFailedTime   *time.Time
	StatsReset       *time.Time
	// SecondsSinceArchive is the time since LastArchivedTime by the server's clock; nil
	// before the first success.
	SecondsSinceArchive *float64
	SegmentSize         int64
	InRecovery          bool
}

// ReadArchiver reads pg_stat_archiver.
func ReadArchiver(ctx context.Context, q Querier) (Archiver, error) {
	var a Archiver
	var lastArchived, lastFailed *string
	err := q.QueryRow(ctx, archiverQuery).Scan(&a.ArchiveMode, &a.ArchiveCommand,
		&a.ArchivedCount, &lastArchived, &a.LastArchivedTime,
		&a.FailedCount, &lastFailed, &a.LastFailedTime, &a.StatsReset,
		&a.SecondsSinceArchive, &a.SegmentSize, &a.InRecovery)
	if err != nil {
		return Archiver{}, fmt.Errorf("pgstat: reading pg_stat_archiver: %w", err)
	}
	a.LastArchivedWAL, a.LastFailedWAL = deref(lastArchived), deref(lastFailed)
	return a, nil
}

// walPositionQuery reads where a primary inserts WAL now, and the file that position is in.
const walPositionQuery = `SELECT pg_current_wal_insert_lsn()::text, pg_walfile_name(pg_current_wal_insert_lsn())`

// WALPosition is where a primary inserts WAL now.
type WALPosition struct {
	InsertLSN string // e.g. "0/3000148"
	WALFile   string // the segment file name of InsertLSN, timeline included
}

// ReadWALPosition reads the current WAL insert position. It fails on a standby, which does not
// insert WAL.
func ReadWALPosition(ctx context.Context, q Querier) (WALPosition, error) {
	var p WALPosition
	if err := q.QueryRow(ctx, walPositionQuery).Scan(&p.InsertLSN, &p.WALFile); err != nil {
		return WALPosition{}, fmt.Errorf("pgstat: reading the current WAL position: %w", err)
	}
	return p, nil
}
