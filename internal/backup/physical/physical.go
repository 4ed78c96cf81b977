// Package physical takes physical backups of a whole PostgreSQL 15 cluster (FULL, and
// block-level DELTA backups for DIFFERENTIAL and INCREMENTAL) and restores a chain of them
// into a new data directory that PostgreSQL starts by itself.
//
// # Backup
//
// The service runs on the host of the managed cluster and reads its data directory
// directly, the way pgBackRest and pg_probackup do, rather than through the replication
// protocol: files are streamed by several goroutines (Options.Concurrency, largest files
// first) in 1 MiB buffers, so memory stays a few MiB whatever the cluster's size.
//
// A backup is a non-exclusive base backup:
//
//  1. On one dedicated connection, kept open to the end, it creates a TEMPORARY physical
//     replication slot with immediately_reserve. On a primary the slot's restart_lsn is
//     the redo pointer of the last checkpoint, which is not after the start LSN that
//     pg_backup_start returns next, so the server keeps every WAL segment from the start
//     of the backup in pg_wal until the backup has copied it, whatever
//     max_wal_size and wal_keep_size say. The slot vanishes with the session, so a
//     killed backup leaves nothing behind.
//  2. pg_backup_start(label, fast => true) forces full_page_writes on, switches to a new
//     WAL segment and takes an immediate checkpoint whose redo pointer is the start LSN.
//  3. The files are copied while the server runs. A file may change under the copy; any
//     page torn by a concurrent write is rewritten by WAL replay, because every page's
//     first change after the start LSN is logged as a full-page image. A file that
//     vanishes is left out of the manifest (replay removes or recreates what matters); a
//     file that grows is copied to the size read. global/pg_control is copied last.
//  4. pg_backup_stop(wait_for_archive => false) writes the backup-end record, switches
//     WAL segments and returns the backup_label (and tablespace_map) contents, which go
//     into the Manifest rather than the data directory.
//  5. The WAL segments from the start LSN's segment through the stop LSN's segment are
//     copied out of pg_wal into objects "wal/<segment>". The segment of the stop LSN ends
//     with the switch, after which PostgreSQL zero-fills it; trailing zero pages are not
//     stored and Restore writes them back, so the restored segment is byte for byte the
//     original while a quiet backup stores kilobytes of WAL rather than 16 MiB.
//
// What pg_basebackup leaves out is left out here too: postmaster.pid and .opts,
// backup_label, tablespace_map, the contents of pg_wal, pg_replslot, pg_dynshmem,
// pg_notify, pg_serial, pg_snapshots, pg_stat_tmp and pg_subtrans, pgsql_tmp files and
// directories, pg_internal.init, temporary relations (t<backend>_<relfilenode>), the
// forks of unlogged relations other than their _init fork, and the server log directory
// when it is inside the data directory.
//
// # Block-level DELTA backups
//
// PostgreSQL 15 has no native incremental backup. A DELTA backup (the service's
// DIFFERENTIAL when Parent is the last FULL, INCREMENTAL when Parent is the previous
// backup) uses page LSNs, as WAL-G's delta backups and pg_probackup's DELTA mode do.
// Every page of a relation data file starts with pd_lsn, the end LSN of the last WAL
// record that changed the page. For the relation data files (the main fork of a
// relation, base/<db>/<relfilenode>[.N] and global/<relfilenode>[.N]), each 8 KiB page is
// read and kept only when
//
//   - its pd_lsn is after Parent.StartLSN: it was changed by a WAL-logged operation
//     after the parent's redo point;
//   - its pd_lsn is zero: a new or zeroed page, which costs nothing to take;
//   - or it lies beyond the file's size in the parent, or the file's size is not a whole
//     number of pages.
//
// The object of such a file holds only those pages, as a sequence of records
// [uint32 little-endian block number][8192 bytes]; File.Size is the file's full new size,
// to which Restore truncates or extends it.
//
// Why this is correct. Every change of a page of a permanent relation at wal_level
// replica or above is WAL-logged, and the record's end LSN is stamped into the page
// (PageSetLSN) while the page is locked, before the page can reach the disk. The
// parent's pg_backup_start took a checkpoint whose redo point is Parent.StartLSN: every
// change before it was flushed to disk before the parent copied anything. So a page
// whose pd_lsn is at or before Parent.StartLSN has not been changed by any WAL-logged
// operation since then, and the bytes of the parent's copy are right for it, except:
//
//   - hint bits, and other hint-only changes that are not WAL-logged without
//     wal_log_hints or data checksums, may differ; they are hints that PostgreSQL
//     recomputes from the commit log, so missing them is harmless (and with checksums
//     or wal_log_hints on, the first hint change after a checkpoint is WAL-logged as a
//     full-page image, which stamps a new LSN);
//   - a page torn in the parent's copy by a concurrent write: such a write carries a
//     change made after the parent's checkpoint, so the page's LSN is after
//     Parent.StartLSN and this backup takes it again.
//
// A page that this backup reads torn, or that changes after this backup's own start, is
// repaired by replay from this backup's checkpoint, exactly as in a FULL backup, since
// full_page_writes is forced on during a backup. Pages of relations created, rewritten
// (VACUUM FULL, TRUNCATE, CLUSTER) or extended after the parent are new files, or carry
// new LSNs, or zero LSNs, or lie beyond the parent's size: all are taken.
//
// Everything that is not a main-fork relation data file is taken whole whenever its
// bytes changed: pg_xact, pg_multixact, pg_control, pg_filenode.map, PG_VERSION,
// configuration files, and also the _fsm, _vm and _init forks. The visibility map in
// particular cannot be judged by its page LSN: setting a bit is WAL-logged and stamps
// the map page, but clearing one (any insert, update or delete on an all-visible heap
// page) changes the map page without stamping it, so a map restored from an older
// backup would call pages all-visible that are not, and index-only scans would return
// deleted rows. WAL-G and pg_probackup treat these forks as plain files too. To keep a
// DELTA small, each whole file's SHA-256 is recorded, and a DELTA stores such a file only
// when its size or SHA-256 differs from the parent's (pg_probackup compares CRCs the same
// way); otherwise the File has no Object and Restore takes it from an earlier backup.
//
// Files absent from the parent are taken whole; files absent now are not in the new
// manifest, so Restore does not lay them down.
//
// # Restore
//
// Restore lays down each file of the chain's last manifest: from the newest backup of
// the chain that holds the file whole, then the pages of every later DELTA in order,
// truncated or extended to each DELTA's size. Then it writes backup_label (and
// tablespace_map) from the last manifest, the last backup's WAL segments into pg_wal,
// and the directories PostgreSQL needs. Started on that directory, PostgreSQL reads
// backup_label, replays from the last backup's checkpoint to the backup-end record and
// beyond to the end of the copied WAL, and comes up consistent. Restore writes no
// recovery.signal: point-in-time recovery adds its own settings on top.
package physical

import (
	"errors"
	"io"
	"log/slog"
	"time"
)

// Kinds of backup in Manifest.Kind.
const (
	// KindFull is a backup whose objects hold every file whole.
	KindFull = "FULL"
	// KindDelta is a backup that holds only what changed since its parent: the changed
	// pages of relation data files, and the other files whose bytes changed.
	KindDelta = "DELTA"
)

// Errors that Backup and Restore return, wrapped with details; test them with errors.Is.
var (
	// ErrUnsupported is returned for a cluster this package cannot back up: a server
	// older than PostgreSQL 15, a standby, tablespaces other than pg_default and
	// pg_global, or symbolic links inside the data directory other than pg_wal.
	ErrUnsupported = errors.New("physical: unsupported cluster")
	// ErrParentMismatch is returned when Options.Parent is not a backup of the same
	// cluster (system identifier), of the same major version, or is not older than
	// the server's current WAL position.
	ErrParentMismatch = errors.New("physical: the parent backup does not belong to this cluster")
	// ErrInvalidChain is returned by Restore for a chain that does not start with a
	// FULL backup or whose backups do not each have the previous one as parent.
	ErrInvalidChain = errors.New("physical: invalid backup chain")
	// ErrTargetNotEmpty is returned by Restore when the target directory exists and is
	// not empty.
	ErrTargetNotEmpty = errors.New("physical: restore target directory is not empty")
	// ErrCorrupt is returned by Restore when an object does not hold what its manifest
	// says (wrong length, a truncated delta record, a block beyond the file).
	ErrCorrupt = errors.New("physical: backup object does not match its manifest")
)

// Sink creates the objects of one backup; closing an object finishes it. Backup calls
// Create from several goroutines at once (one object each), so a Sink must allow it.
type Sink interface {
	Create(name string) (io.WriteCloser, error)
}

// Source opens the objects of one backup by the names they were created with. Restore
// calls Open from several goroutines at once.
type Source interface {
	Open(name string) (io.ReadCloser, error)
}

// Progress reports how far a Backup or Restore is. BytesDone and BytesTotal count the
// bytes of the current phase.
type Progress struct {
	Phase      string
	BytesDone  int64
	BytesTotal int64
}

// Phases reported through Progress.
const (
	PhaseStart       = "start"        // connecting, checks, pg_backup_start
	PhaseCopy        = "copy"         // copying the data directory
	PhaseStop        = "stop"         // pg_backup_stop
	PhaseWAL         = "wal"          // copying the WAL from the start to the stop LSN
	PhaseRestoreData = "restore-data" // laying down files
	PhaseRestoreWAL  = "restore-wal"  // writing pg_wal
	PhaseRestoreSync = "restore-sync" // waiting for the restored files to reach the disk
	PhaseDone        = "done"
)

// Options configures Backup.
type Options struct {
	// ConnString is a superuser connection to the managed cluster (any database).
	ConnString string
	// DataDir is the cluster's data directory; "" asks the server (SHOW data_directory).
	DataDir string
	// Parent is nil for a FULL backup. For a DELTA it is the manifest that the new
	// backup's changed blocks are relative to: the last FULL for a DIFFERENTIAL, the
	// previous backup of any type for an INCREMENTAL. Only pages changed after
	// Parent.StartLSN, and files whose bytes differ from Parent's, are stored.
	Parent *Manifest
	// Label is the backup label given to pg_backup_start; "" makes one.
	Label string
	// Concurrency is the number of file copiers; 0 means 2.
	Concurrency int
	// Progress is called at phase changes and at most every 250 ms; may be nil. Calls
	// never overlap.
	Progress func(Progress)
	// Logger receives one line per phase; nil logs nothing.
	Logger *slog.Logger
}

// Manifest describes one physical backup: what Restore needs besides the objects.
type Manifest struct {
	Kind           string    `json:"kind"`      // KindFull or KindDelta
	PGVersion      int       `json:"pgVersion"` // server_version_num
	SystemID       string    `json:"systemIdentifier"`
	Timeline       int       `json:"timeline"`
	StartLSN       string    `json:"startLsn"`
	StopLSN        string    `json:"stopLsn"`
	ParentStartLSN string    `json:"parentStartLsn,omitempty"`
	StartTime      time.Time `json:"startTime"`
	StopTime       time.Time `json:"stopTime"`
	BackupLabel    string    `json:"backupLabel"` // the content pg_backup_stop returned
	TablespaceMap  string    `json:"tablespaceMap,omitempty"`
	Files          []File    `json:"files"`
	// Dirs lists the directories of the data directory, relative and / separated,
	// including those whose contents are not backed up (pg_wal, pg_replslot, ...), so
	// that Restore recreates empty ones such as pg_twophase or pg_commit_ts.
	Dirs []string `json:"dirs,omitempty"`
	// WAL holds the object names of the WAL segments from StartLSN to StopLSN, in
	// order, and the timeline history file of Timeline when there is one.
	WAL []string `json:"wal"`
	// WALSegmentSize is the cluster's WAL segment size in bytes; segment objects may be
	// shorter (trailing zero pages are not stored) and Restore pads them to this size.
	WALSegmentSize int64 `json:"walSegmentSize"`
	BytesScanned   int64 `json:"bytesScanned"` // bytes of the cluster read
	BytesWritten   int64 `json:"bytesWritten"` // plaintext bytes written to objects
}

// File is one regular file of the data directory.
type File struct {
	Path   string `json:"path"` // relative to the data dir, / separated
	Size   int64  `json:"size"`
	Mode   uint32 `json:"mode"`             // permission bits
	Object string `json:"object,omitempty"` // "" for an unchanged file in a DELTA backup
	Delta  bool   `json:"delta,omitempty"`  // the object holds changed blocks only
	Blocks int    `json:"blocks,omitempty"` // changed blocks stored
	// SHA256 is the hex SHA-256 of the whole file as stored, for files that are not
	// relation data files (their blocks are judged by LSN instead). A DELTA compares it
	// to skip unchanged files; it is carried over for an unchanged file.
	SHA256 string `json:"sha256,omitempty"`
}

// object names: data files under "data/", WAL under "wal/".
const (
	dataPrefix = "data/"
	walPrefix  = "wal/"
)

const (
	blockSize  = 8192    // PostgreSQL's BLCKSZ
	bufferSize = 1 << 20 // the read buffer of each copier
	// deltaRecord is the size of one record of a delta object.
	deltaRecord = 4 + blockSize
)
