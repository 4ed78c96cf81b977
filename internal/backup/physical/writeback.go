package physical

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// A restore writes gigabytes that PostgreSQL fsyncs, file by file on one core, before recovery
// begins, and that pile up as dirty memory until then. Restore therefore starts the writeback of
// what it has written as it goes (sync_file_range(SYNC_FILE_RANGE_WRITE), which does not wait),
// so that the disk works while the next objects are decrypted and decompressed, and waits for it
// once at the end (syncfs). pgBackRest syncs each restored file for the same reason.
//
// It also keeps its footprint in the page cache to a few chunks per file: once a chunk's
// writeback has finished, its pages are dropped (and the repository's objects once read, see
// storage.ObjectReader.Close). A recovery usually runs on the host of the live database, whose
// cache it should not evict; and with the cache full, the kernel was seen to spend four times
// the CPU in write() (a 2 GB restore: 8-10 s with 9-10 s of system time, against 4.5 s with 2 s
// when the pages are dropped as they go).

// writebackChunk is how much of a file is written before its writeback is started.
const writebackChunk = 8 << 20

// writeback starts the writeback of a file being written sequentially, a chunk at a time, and
// drops from the page cache each chunk whose writeback has finished.
type writeback struct {
	f       *os.File
	started int64 // bytes whose writeback has been started
	dropped int64 // bytes dropped from the page cache
}

// wrote reports that the file now holds n bytes.
func (w *writeback) wrote(n int64) {
	if n-w.started < writebackChunk {
		return
	}
	startWriteback(w.f, w.started)
	if w.started > w.dropped {
		// The chunk before this one: wait for its writeback, then let its pages go.
		fd := int(w.f.Fd())
		_ = unix.SyncFileRange(fd, w.dropped, w.started-w.dropped,
			unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
		_ = unix.Fadvise(fd, w.dropped, w.started-w.dropped, unix.FADV_DONTNEED)
		w.dropped = w.started
	}
	w.started = n
}

// startWriteback starts writing the file's dirty pages from offset on to the disk, without
// waiting. It is advice: where the call is not supported, the final sync does the work.
func startWriteback(f *os.File, offset int64) {
	_ = unix.SyncFileRange(int(f.Fd()), offset, 0, unix.SYNC_FILE_RANGE_WRITE)
}

// syncFS waits until everything written to the file system holding dir is on the disk.
func syncFS(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("physical: %w", err)
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return fmt.Errorf("physical: syncing the restored files: %w", err)
	}
	return nil
}
