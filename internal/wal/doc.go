// Package wal archives the managed cluster's write-ahead log into the backup
// repository and brings it back for recovery. PostgreSQL calls it through
//
//	archive_command = 'readiness wal-push --repo DIR --key-file FILE %p'
//	restore_command = 'readiness wal-fetch --repo DIR --key-file FILE %f %p'
//
// Every archived file (a WAL segment, a timeline .history file, a .backup label
// or a .partial segment of a promoted standby) is stored like a backup object:
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
