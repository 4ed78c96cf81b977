package wal

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/onevault/readiness/internal/pgcluster"
	"github.com/onevault/readiness/internal/storage"
)

// ErrNotArchived is returned by Fetch for a file the archive does not hold.
// During recovery that is the normal end of the archive: wal-fetch exits 1,
// which PostgreSQL takes as "no such file".
var ErrNotArchived = errors.New("wal: not archived")

// ErrConflict is returned by Push when a file of that name is archived already
// with different content. The archive is never overwritten: the command fails,
// PostgreSQL retries and keeps WAL until an operator looks. It usually means
// that two clusters archive into one repository.
var ErrConflict = errors.New("wal: already archived with different content")

// ErrCorrupt is returned when an archived file does not decrypt or decompress,
// when its plaintext does not match the recorded size and SHA-256, or when its
// record exists without its object. It wraps storage.ErrIntegrity, so that
// errors.Is finds either.
var ErrCorrupt = fmt.Errorf("wal: archived file is damaged: %w", storage.ErrIntegrity)

const (
	walDirName   = "wal"
	objectSuffix = ".zst.age"
	recordSuffix = ".json"
	tempSuffix   = ".tmp"

	dirPerm  = 0o700
	filePerm = 0o600

	lockPoll = 20 * time.Millisecond
)

// Record describes one archived file. It is stored in plaintext beside the
// object, like a backup's manifest: it holds names, sizes and hashes, never WAL.
type Record struct {
	// Name is the WAL file name, such as 000000010000000000000003.
	Name string `json:"name"`
	// File is the object's file name in the timeline directory.
	File string `json:"file"`
	// Size and SHA256 describe the plaintext; Fetch checks both.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// StoredSize is the size of the object on disk.
	StoredSize int64 `json:"storedSize"`
	// ArchivedAt is when Push committed the file.
	ArchivedAt time.Time `json:"archivedAt"`
	// Recipient is the age recipient the object is encrypted to, so that a
	// wrong key is named as such.
	Recipient string `json:"recipient"`
	// SegmentSize is set on a streamed partial (KindStreamed) only: the size
	// of the segment whose first Size bytes it holds, so that its end LSN is
	// known and Fetch can pad it to a whole segment.
	SegmentSize int64 `json:"segmentSize,omitempty"`
}

// archive is the wal/ directory of a repository, opened as an os.Root so that
// no name or symbolic link can lead outside it.
type archive struct {
	dir   string
	root  *os.Root
	owner *pgcluster.Owner // when running as root: the owner of wal/, who gets what we create
}

// errNoArchive reports that the repository has no wal/ directory yet.
var errNoArchive = errors.New("wal: the repository has no archive")

// openArchive opens <repo>/wal, creating it (mode 0700) when create is set.
func openArchive(cfg Config, create bool) (*archive, error) {
	dir, err := cfg.walRoot()
	if err != nil {
		return nil, err
	}
	if create {
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			if err := os.MkdirAll(dir, dirPerm); err != nil {
				return nil, fmt.Errorf("wal: creating the archive directory: %w (it must be writable by the user PostgreSQL runs as)", err)
			}
			syncDirPath(filepath.Dir(dir)) // best effort: the parent may not be ours to open
		}
	}
	root, err := os.OpenRoot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoArchive
	} else if err != nil {
		return nil, fmt.Errorf("wal: opening the archive directory: %w", err)
	}
	a := &archive{dir: dir, root: root}
	if fi, err := root.Stat("."); err == nil {
		a.owner = pgcluster.OwnerOf(fi)
	}
	return a, nil
}

func (a *archive) close() { a.root.Close() }

// chown gives name to the owner of wal/ when we run as root, so that a push by
// hand does not leave files PostgreSQL cannot replace or directories it cannot
// write.
func (a *archive) chown(name string) error {
	return a.owner.LchownIn(a.root, name)
}

// mkdir creates a timeline directory unless it exists, and makes its name durable.
func (a *archive) mkdir(dir string) error {
	if _, err := a.root.Lstat(dir); err == nil {
		return nil
	}
	if err := a.root.Mkdir(dir, dirPerm); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("wal: creating %s: %w", filepath.Join(a.dir, dir), err)
	}
	if err := a.chown(dir); err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	return a.syncDir(".")
}

// lock takes an exclusive flock on a timeline directory, waiting for another
// Push of the same timeline to finish; the kernel drops it when a process dies.
// It returns the open directory, which the caller closes to unlock and may
// fsync in the meantime.
func (a *archive) lock(ctx context.Context, dir string) (*os.File, error) {
	d, err := a.root.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	for {
		ok, err := storage.LockDir(d)
		if ok {
			return d, nil
		}
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("wal: locking %s: %w", dir, err)
		}
		select {
		case <-ctx.Done():
			d.Close()
			return nil, ctx.Err()
		case <-time.After(lockPoll):
		}
	}
}

func (a *archive) syncDir(dir string) error {
	d, err := a.root.Open(dir)
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("wal: syncing %s: %w", dir, err)
	}
	return nil
}

// syncDirPath fsyncs a directory outside the archive, ignoring failures.
func syncDirPath(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// readRecord returns the record of name in dir; a missing one is fs.ErrNotExist.
func (a *archive) readRecord(dir, name string) (Record, error) {
	var rec Record
	b, err := a.root.ReadFile(path.Join(dir, name+recordSuffix))
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil || rec.Name != name || !slices.Contains(objectFiles(name), rec.File) {
		return rec, fmt.Errorf("%w: the record of %s does not parse or names another file", ErrCorrupt, name)
	}
	if strings.HasSuffix(name, streamSuffix) && (!ValidSegmentSize(rec.SegmentSize) || rec.Size > rec.SegmentSize) {
		return rec, fmt.Errorf("%w: the record of %s gives %d bytes of a %d-byte segment", ErrCorrupt, name, rec.Size, rec.SegmentSize)
	}
	return rec, nil
}

// objectFiles returns the object files a record of name may name: name.zst.age,
// or for a streamed partial one of its two objects, name.0.zst.age and
// name.1.zst.age. The receiver replaces a streamed partial by writing the
// object its record does not name and then the record, so that a reader never
// meets a record whose object is half replaced.
func objectFiles(name string) []string {
	if strings.HasSuffix(name, streamSuffix) {
		return []string{name + ".0" + objectSuffix, name + ".1" + objectSuffix}
	}
	return []string{name + objectSuffix}
}

// objectIntact reports whether rec's object exists with its recorded size.
func (a *archive) objectIntact(dir string, rec Record) bool {
	fi, err := a.root.Lstat(path.Join(dir, rec.File))
	return err == nil && fi.Mode().IsRegular() && fi.Size() == rec.StoredSize
}

// Push archives the WAL file at path (a segment, a .partial segment, a .backup
// label or a .history file) under its base name. It returns nil when the file
// is archived: newly, or already with the same SHA-256, as after PostgreSQL
// retries a push whose success it did not see (the archived object is then read
// back, and written again if it is damaged). A file archived with different
// content gives ErrConflict and is left alone. A segment must have a WAL
// segment's size (a power of two from 1 MiB to 1 GiB), so that a truncated file
// is never archived.
//
// The object is written to a temporary file, fsynced, renamed into place and
// its directory fsynced; its record follows the same way, and makes it
// archived. Pushes of one timeline take turns through an flock on its directory.
// Once a segment is archived, the streaming receiver's streamed partial of it
// is removed: the segment holds all of it.
func Push(ctx context.Context, cfg Config, path string) error {
	name := filepath.Base(path)
	kind, tli, err := ParseName(name)
	if err != nil {
		return err
	}
	if kind == KindStreamed {
		return fmt.Errorf("%w: %s is a streamed partial, which only the streaming receiver writes", ErrInvalidName, name)
	}
	key, err := cfg.key()
	if err != nil {
		return err
	}
	src, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("wal: %s is not a regular file", path)
	}
	if (kind == KindSegment || kind == KindPartial) && !ValidSegmentSize(fi.Size()) {
		return fmt.Errorf("wal: %s has %d bytes, which is not a WAL segment size (a power of two from 1 MiB to 1 GiB)", path, fi.Size())
	}
	return archiveFrom(ctx, cfg, key, name, tli, src, path)
}

// archiveFrom archives what src holds under name, a file of timeline tli: it
// opens the archive, creates the timeline's directory, takes its lock and
// stores the file with put. Push (a file PostgreSQL hands to archive_command)
// and the streaming receiver (a segment it holds in memory, a history file the
// server sent) both archive through it, so that a file is stored the same way,
// and compared the same way with what is archived already, whichever method
// brought it. origin names src in errors.
func archiveFrom(ctx context.Context, cfg Config, key *storage.Key, name string, tli uint32, src io.ReadSeeker, origin string) error {
	a, err := openArchive(cfg, true)
	if err != nil {
		return err
	}
	defer a.close()
	dir := timelineDir(tli)
	if err := a.mkdir(dir); err != nil {
		return err
	}
	lock, err := a.lock(ctx, dir)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := a.put(ctx, lock, key, dir, name, src, origin); err != nil {
		return err
	}
	if !segmentRE.MatchString(name) {
		return nil
	}
	return a.removeStreamed(lock, dir, name)
}

// put stores src as the archived file name in dir; lock is the open directory,
// whose flock the caller holds. See Push for what it does when name is
// archived already.
func (a *archive) put(ctx context.Context, lock *os.File, key *storage.Key, dir, name string, src io.ReadSeeker, origin string) error {
	rec, err := a.readRecord(dir, name)
	switch {
	case err == nil:
		size, sum, err := hashReader(ctx, src)
		if err != nil {
			return fmt.Errorf("wal: reading %s: %w", origin, err)
		}
		if size != rec.Size || sum != rec.SHA256 {
			return fmt.Errorf("%w: %s is archived with %d bytes and sha256 %s; %s has %d bytes and sha256 %s; the archive is left as it is",
				ErrConflict, name, rec.Size, rec.SHA256, origin, size, sum)
		}
		// PostgreSQL retries only after a failure or a crash, so the object is
		// read back before the push is called done: a retry never confirms a
		// damaged copy.
		if a.objectIntact(dir, rec) {
			id, err := identity(key)
			if err != nil {
				return fmt.Errorf("wal: %w", err)
			}
			if _, err := a.verifyOne(ctx, dir, name, id); err == nil {
				return nil
			} else if !errors.Is(err, ErrCorrupt) {
				return err
			}
		}
		// The record is intact and vouches for this content, but its object is
		// gone or damaged: write the object again, keeping the record.
		if _, err := src.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("wal: %w", err)
		}
	case errors.Is(err, fs.ErrNotExist):
	default:
		return fmt.Errorf("wal: reading the record of %s: %w", name, err)
	}

	obj, err := a.writeObject(ctx, lock, dir, name, name+objectSuffix, src, key)
	if err != nil {
		return err
	}
	if rec.Name != "" { // the repaired object of an existing record
		if obj.Size != rec.Size || obj.SHA256 != rec.SHA256 {
			return fmt.Errorf("%w: %s changed while it was being archived", ErrConflict, origin)
		}
		rec.StoredSize = obj.StoredSize
	} else {
		rec = obj
		rec.ArchivedAt = time.Now().UTC()
		rec.Recipient = key.Recipient()
	}
	return a.writeRecord(lock, dir, rec)
}

// removeStreamed removes the streamed partial of segment, which is archived
// whole now: its record first, so that no reader finds a record without its
// object, then its objects.
func (a *archive) removeStreamed(lock *os.File, dir, segment string) error {
	name := segment + streamSuffix
	removed := false
	for _, file := range append([]string{name + recordSuffix}, objectFiles(name)...) {
		err := a.root.Remove(path.Join(dir, file))
		if err == nil {
			removed = true
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("wal: removing the streamed partial of %s, which is archived whole: %w", segment, err)
		}
	}
	if !removed {
		return nil
	}
	if err := lock.Sync(); err != nil {
		return fmt.Errorf("wal: syncing %s: %w", dir, err)
	}
	return nil
}

// hashReader returns the size and hex SHA-256 of what r holds.
func hashReader(ctx context.Context, r io.Reader) (int64, string, error) {
	h := sha256.New()
	buf := bufferPool.Get().(*[]byte)
	defer bufferPool.Put(buf)
	n, err := io.CopyBuffer(h, ctxReader{ctx, r}, *buf)
	return n, hex.EncodeToString(h.Sum(nil)), err
}

// writeObject writes src compressed and encrypted as dir/file, the object of
// name: through a temporary file that is fsynced and renamed, after which
// dirFile (the open directory) is fsynced. It returns the object's record
// without its time.
func (a *archive) writeObject(ctx context.Context, dirFile *os.File, dir, name, file string, src io.Reader, key *storage.Key) (Record, error) {
	rec := Record{Name: name, File: file}
	final := path.Join(dir, rec.File)
	tmp := path.Join(dir, "."+rec.File+tempSuffix)
	f, err := a.createTemp(tmp)
	if err != nil {
		return rec, err
	}
	committed := false
	defer func() {
		if !committed {
			f.Close()
			_ = a.root.Remove(tmp)
		}
	}()

	seal, err := storage.NewSealer(f, key, true, storage.LevelFastest, nil)
	if err != nil {
		return rec, fmt.Errorf("wal: sealing %s: %w", name, err)
	}
	buf := bufferPool.Get().(*[]byte)
	rec.Size, err = io.CopyBuffer(seal, ctxReader{ctx, src}, *buf)
	bufferPool.Put(buf)
	if err == nil {
		err = seal.Finish()
	}
	seal.Close()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return rec, fmt.Errorf("wal: archiving %s: %w", name, err)
	}
	rec.SHA256 = seal.SHA256()
	rec.StoredSize = seal.StoredSize()
	if err := a.chown(tmp); err != nil {
		return rec, fmt.Errorf("wal: %w", err)
	}
	if err := a.root.Rename(tmp, final); err != nil {
		return rec, fmt.Errorf("wal: archiving %s: %w", name, err)
	}
	committed = true
	if err := dirFile.Sync(); err != nil {
		return rec, fmt.Errorf("wal: syncing %s: %w", dir, err)
	}
	return rec, nil
}

// writeRecord writes rec as dir/<name>.json through a temporary file, then
// fsyncs the directory: from then on the file is archived.
func (a *archive) writeRecord(dirFile *os.File, dir string, rec Record) error {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	final := path.Join(dir, rec.Name+recordSuffix)
	tmp := path.Join(dir, "."+rec.Name+recordSuffix+tempSuffix)
	f, err := a.createTemp(tmp)
	if err != nil {
		return err
	}
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = a.chown(tmp)
	}
	if err == nil {
		err = a.root.Rename(tmp, final)
	}
	if err != nil {
		_ = a.root.Remove(tmp)
		return fmt.Errorf("wal: recording %s: %w", rec.Name, err)
	}
	if err := dirFile.Sync(); err != nil {
		return fmt.Errorf("wal: syncing %s: %w", dir, err)
	}
	return nil
}

// createTemp creates a temporary file, replacing one that a killed push left:
// the caller holds the timeline's lock, so no live push owns it.
func (a *archive) createTemp(tmp string) (*os.File, error) {
	if err := a.root.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("wal: removing a leftover %s: %w", tmp, err)
	}
	f, err := a.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	return f, nil
}

// Fetch restores the archived file name into path, as restore_command does
// with %f and %p. It decrypts and decompresses the object into a temporary
// file beside path, checks its size and SHA-256 against the record, and only
// then renames it to path: a damaged archive gives ErrCorrupt and never leaves
// wrong WAL at path. A file that is not archived gives ErrNotArchived.
//
// A segment that is not archived whole but whose streamed partial is (the
// streaming receiver's copy of the segment it is receiving, see Stream) is
// served from that partial, checked against its record and then padded with
// zeros to the segment size: restore_command must deliver a whole segment, and
// PostgreSQL reads the zeros after the last record as the end of the WAL, as
// it does in a segment that was being written when its server stopped.
func Fetch(ctx context.Context, cfg Config, name, path string) error {
	kind, tli, err := ParseName(name)
	if err != nil {
		return err
	}
	key, err := cfg.key()
	if err != nil {
		return err
	}
	a, err := openArchive(cfg, false)
	if errors.Is(err, errNoArchive) {
		return fmt.Errorf("%w: %s (the repository has no wal/ directory)", ErrNotArchived, name)
	} else if err != nil {
		return err
	}
	defer a.close()
	id, err := identity(key)
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	dir := timelineDir(tli)
	rec, err := a.resolve(dir, name, kind)
	for attempt := 1; ; attempt++ {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %s", ErrNotArchived, name)
		} else if err != nil {
			return err
		}
		err = a.fetchObject(ctx, key, id, dir, rec, name, path)
		if err == nil || !errors.Is(err, ErrCorrupt) || rec.SegmentSize == 0 || attempt == 3 {
			return err
		}
		// The receiver replaces a streamed partial while it runs, and removes
		// it once the segment is archived whole: a record read just before may
		// name an object that has changed since. Read the record again.
		again, rerr := a.resolve(dir, name, kind)
		if rerr != nil || again == rec {
			return err
		}
		rec, err = again, nil
	}
}

// resolve returns the record Fetch serves name from: its own, or for a segment
// that is not archived whole, its streamed partial's.
func (a *archive) resolve(dir, name string, kind Kind) (Record, error) {
	rec, err := a.readRecord(dir, name)
	if errors.Is(err, fs.ErrNotExist) && kind == KindSegment {
		return a.readRecord(dir, name+streamSuffix)
	}
	return rec, err
}

// fetchObject writes the plaintext of rec's object to path, checked against
// rec, and padded with zeros to a whole segment when rec is the streamed
// partial of the segment name.
func (a *archive) fetchObject(ctx context.Context, key *storage.Key, id *age.X25519Identity, dir string, rec Record, name, path string) error {
	f, err := a.root.Open(objectPath(dir, rec.File))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s is recorded but its object %s is missing", ErrCorrupt, rec.Name, rec.File)
	} else if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	defer f.Close()
	plain, err := age.Decrypt(f, id)
	if err != nil {
		if rec.Recipient != "" && rec.Recipient != key.Recipient() {
			return fmt.Errorf("%w: %s was encrypted to %s, and this key's recipient is %s", ErrCorrupt, rec.Name, rec.Recipient, key.Recipient())
		}
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, rec.Name, err)
	}
	z, err := storage.GetDecoder(plain)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, rec.Name, err)
	}
	defer storage.PutDecoder(z)

	tmp, out, err := createBeside(path)
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			out.Close()
			_ = os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(out, copyBufferSize)
	h := sha256.New()
	n, err := copyPlain(ctx, io.MultiWriter(bw, h), z)
	if err != nil {
		return fmt.Errorf("wal: fetching %s: %w", rec.Name, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); n != rec.Size || sum != rec.SHA256 {
		return fmt.Errorf("%w: %s decrypts to %d bytes with sha256 %s; its record says %d bytes with sha256 %s",
			ErrCorrupt, rec.Name, n, sum, rec.Size, rec.SHA256)
	}
	if rec.Name != name { // a streamed partial served as its segment
		if _, err := io.CopyN(bw, zeros{}, rec.SegmentSize-rec.Size); err != nil {
			return fmt.Errorf("wal: writing %s: %w", path, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("wal: writing %s: %w", path, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("wal: writing %s: %w", path, err)
	}
	done = true
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("wal: %w", err)
	}
	return nil
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// objectPath joins a timeline directory and a file name inside the archive;
// Fetch's path parameter hides the path package.
func objectPath(dir, file string) string { return path.Join(dir, file) }

// createBeside creates a temporary file in path's directory, for an atomic rename to path.
func createBeside(target string) (string, *os.File, error) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	tmp := filepath.Join(filepath.Dir(target), "."+filepath.Base(target)+".fetch-"+hex.EncodeToString(b[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return "", nil, fmt.Errorf("wal: %w", err)
	}
	return tmp, f, nil
}

// copyPlain copies the decrypted plaintext to w. A read error means the object
// is damaged (age authenticates every 64 KiB chunk, zstd checks its frames) and
// wraps ErrCorrupt; a write error is the destination's.
func copyPlain(ctx context.Context, w io.Writer, r io.Reader) (int64, error) {
	bufp := bufferPool.Get().(*[]byte)
	defer bufferPool.Put(bufp)
	buf := *bufp
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, rerr := r.Read(buf)
		if m > 0 {
			if _, err := w.Write(buf[:m]); err != nil {
				return n, err
			}
			n += int64(m)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, fmt.Errorf("%w: %v", ErrCorrupt, rerr)
		}
	}
}

// decryptAndHash reads an object to the end and returns the SHA-256 and size
// of its plaintext.
func decryptAndHash(ctx context.Context, r io.Reader, id *age.X25519Identity) (string, int64, error) {
	plain, err := age.Decrypt(r, id)
	if err != nil {
		return "", 0, err
	}
	z, err := storage.GetDecoder(plain)
	if err != nil {
		return "", 0, err
	}
	defer storage.PutDecoder(z)
	n, sum, err := hashReader(ctx, z)
	return sum, n, err
}
