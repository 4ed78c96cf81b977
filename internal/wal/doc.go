// Package wal archives the managed cluster's write-ahead log into the backup
// repository and brings it back for recovery. PostgreSQL calls it through
//
//	archive_command = 'readiness wal-push --repo DIR --key-file FILE %p'
//	restore_command = 'readiness wal-fetch --repo DIR --key-file FILE %f %p'
//
// Every archived file (a WAL segment, a timeline .history file, a .backup label,
// a .partial segment of a promoted standby, or the streaming receiver's
// .stream partial, see below) is stored like a backup object:
// compressed with zstd, encrypted with age to the repository's recipient, so
// that an operator can read it without the service,
//
//	age -d -i key.txt 000000010000000000000003.zst.age | zstd -d > 000000010000000000000003
//
// and recorded with the size and SHA-256 of its plaintext. The layout is
//
//	<repo>/wal/<timeline, 8 hex digits>/<name>.zst.age  the object
//	<repo>/wal/<timeline, 8 hex digits>/<name>.json     its record: size, SHA-256, time
//
// The record is the commit point: Push writes the object to a temporary file,
// fsyncs it, renames it into place and fsyncs the directory, and only then
// writes the record the same way. A file is archived once its record exists; a
// push killed halfway leaves at most an object without a record, which Check
// reports as incomplete and the next Push of that name replaces.
//
// Archived files are never overwritten. PostgreSQL may push a file again after a
// crash; a second Push with the same content succeeds and changes nothing, one
// with different content fails with ErrConflict, and keeps failing: the archiver
// then stops on that file until an operator looks, which is what must happen
// when two clusters archive into one repository.
//
// # Streaming: the second method
//
// archive_command archives a segment once PostgreSQL has filled it (or
// switched away from it): at a quiet time that can be minutes, archive_timeout
// at best, and that is what a lost server takes with it. Stream narrows this to
// about a second. It connects to the managed cluster as a physical standby
// would (replication=true, a replication slot), holds the segment it is
// receiving in memory and archives
//
//   - each segment it completes exactly as Push archives PostgreSQL's file of
//     that name: the same object and record, through the same code (archiveFrom),
//     so a segment is byte for byte the file archive_command is handed;
//   - the segment it is receiving, every FlushInterval while WAL arrives, as a
//     streamed partial: <segment>.stream, its record giving the number of valid
//     bytes and the segment size (so its end LSN), its object one of
//     <segment>.stream.0.zst.age and .1.zst.age: each write goes to the object
//     the record does not name, then the record is replaced, so the record
//     always names a whole object. The .stream suffix cannot collide with the
//     .partial file PostgreSQL archives after a promotion.
//
// The server is told as written, flushed and applied only what is durable in
// the archive, so the slot keeps on the server every byte not archived yet:
// when the receiver stops, WAL piles up on the server (watch the slot in
// Check) and nothing is lost; when it starts again it streams from the start
// of the segment holding the later of the slot's restart_lsn and the end of
// the archive. Several replicas of the service may run it: the slot admits
// one, and the others wait and take over when it goes away.
//
// Fetch serves a segment that is not archived whole from its streamed partial,
// padded with zeros to the segment size: restore_command must deliver a whole
// segment, and replay stops at the zeros as at the end of any WAL. So recovery
// reaches the newest commit the receiver has archived, and LatestCommit reads
// the streamed partial for it. Check reports it (TimelineStatus.Streamed) and
// the server's physical slots (ServerStatus.Slots); it is neither a gap nor a
// segment, and Verify reads it like any object. ArchivedThrough gives the LSN
// through which a timeline is archived. Rewriting a partial compresses and
// encrypts all of it again, so a receiver costs up to a segment's compression
// per FlushInterval while WAL trickles in.
//
// The two methods coexist in one repository, and are meant to: archive_command
// is the one PostgreSQL itself waits for (a segment is not recycled before it
// is archived), the receiver the one that keeps the archive within seconds.
// Whichever archives a segment first writes it; the other finds the same
// SHA-256 and succeeds without writing. Push of a segment removes its streamed
// partial. Content that differs is never overwritten: Push fails with
// ErrConflict, and the receiver logs it, stops confirming WAL to the server
// and tries that segment again every minute until an operator has looked.
// When the server's timeline ends (a standby it streams from is promoted), the
// rest of the old timeline stays as its streamed partial, and the receiver
// archives the new timeline's history file and goes on with the new timeline.
//
// # Who runs it
//
// PostgreSQL runs archive_command and restore_command as the OS user the server
// runs as (postgres), with the server's environment and the data directory as
// the working directory. Therefore:
//
//   - the repository root must be traversable by that user, and <repo>/wal must
//     be owned by it (Push creates wal/ and the timeline directories with mode
//     0700 when the root is writable; otherwise create wal/ for it, for example
//     with pgcluster.MkdirOwned). When a Push runs as root, for instance by hand,
//     what it creates is given to the owner of wal/, so that PostgreSQL can go on
//     writing;
//   - the key file must be readable by that user. The key itself never appears
//     on a command line, where every user of the machine could read it;
//   - give --repo as an absolute path: a relative one is taken from the data
//     directory.
package wal
