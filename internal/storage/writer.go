package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

const (
	// compressedSuffix ends the file name of a compressed object.
	compressedSuffix = ".zst.age"
	// encryptedSuffix ends the file name of every object.
	encryptedSuffix = ".age"
)

// ObjectInfo describes one stored object; backups record it in their manifest.
type ObjectInfo struct {
	// Name is the name given to Create, a relative path with / separators.
	Name string `json:"name"`
	// File is the object's file inside the backup directory: Name + ".zst.age"
	// when compressed, Name + ".age" otherwise.
	File string `json:"file"`
	// Size is the number of plaintext bytes.
	Size int64 `json:"size"`
	// StoredSize is the number of bytes on disk.
	StoredSize int64 `json:"storedSize"`
	// SHA256 is the hex SHA-256 of the plaintext.
	SHA256 string `json:"sha256"`
	// Compressed reports whether the object was compressed with zstd before encryption.
	Compressed bool `json:"compressed"`
}

// writerState is where a Writer is in its life.
type writerState int

const (
	writerOpen writerState = iota
	writerCommitted
	writerAborted
)

// Writer writes one backup into its .partial directory. Create and the
// methods of the ObjectWriters it returns may be called from several
// goroutines at once; Commit and Abort end it.
type Writer struct {
	repo    *Repository
	loc     string // relative location directory
	id      string
	partial string // relative .partial directory
	final   string // relative committed directory
	lock    *os.File

	stored atomic.Int64

	mu      sync.Mutex
	state   writerState
	open    int                 // ObjectWriters not yet closed
	files   map[string]struct{} // file names taken by Create
	dirs    map[string]struct{} // sub-directories created inside the .partial directory
	objects []ObjectInfo
}

// NewBackup starts writing backup id under location. Objects go to
// <root>/<location>/<id>.partial/ and become visible only when Commit renames
// that directory to <root>/<location>/<id>/ after fsyncing every file and
// directory. A leftover .partial directory of a killed writer is removed; one
// that a live writer still holds (an flock on the directory, which the kernel
// releases when a process dies) gives ErrBusy. A committed backup with the same
// id gives ErrExists.
func (r *Repository) NewBackup(location, id string) (*Writer, error) {
	loc, final, err := r.backupDir(location, id)
	if err != nil {
		return nil, err
	}
	if loc != "" {
		if err := r.fs.MkdirAll(loc, dirPerm); err != nil {
			return nil, fmt.Errorf("storage: creating location %q: %w", location, err)
		}
	}
	if _, err := r.fs.Lstat(final); err == nil {
		return nil, fmt.Errorf("%w: backup %s in location %q", ErrExists, id, location)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("storage: new backup %s: %w", id, err)
	}
	partial := final + partialSuffix
	if err := r.removeLeftover(partial); err != nil {
		return nil, fmt.Errorf("storage: new backup %s: %w", id, err)
	}
	if err := r.fs.Mkdir(partial, dirPerm); errors.Is(err, fs.ErrExist) {
		// Another writer created it between the removal and now.
		return nil, fmt.Errorf("%w: backup %s in location %q", ErrBusy, id, location)
	} else if err != nil {
		return nil, fmt.Errorf("storage: new backup %s: %w", id, err)
	}
	lock, err := r.fs.Open(partial)
	if err != nil {
		return nil, fmt.Errorf("storage: new backup %s: %w", id, err)
	}
	if ok, err := LockDir(lock); !ok {
		lock.Close()
		if err == nil {
			err = ErrBusy
		}
		return nil, fmt.Errorf("storage: new backup %s: %w", id, err)
	}
	return &Writer{
		repo:    r,
		loc:     loc,
		id:      id,
		partial: partial,
		final:   final,
		lock:    lock,
		files:   make(map[string]struct{}),
		dirs:    make(map[string]struct{}),
	}, nil
}

// removeLeftover removes the .partial directory of a dead writer, and refuses
// to touch one whose writer is alive.
func (r *Repository) removeLeftover(partial string) error {
	d, err := r.fs.Open(partial)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	defer d.Close()
	ok, err := LockDir(d)
	if err != nil {
		return err
	}
	if !ok {
		return ErrBusy
	}
	return r.fs.RemoveAll(partial)
}

// RemoveLeftovers removes what interrupted work left in location: every
// <id>.partial directory that no live writer holds, and every <id>.deleting
// directory of an interrupted Delete. It returns the names it removed. NewBackup
// already does this for its own id; a periodic job (retention) calls this for
// backups that are never retried.
func (r *Repository) RemoveLeftovers(location string) ([]string, error) {
	loc, err := r.Location(location)
	if err != nil {
		return nil, err
	}
	entries, err := fs.ReadDir(r.fs.FS(), dirOrDot(loc))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("storage: listing location %q: %w", location, err)
	}
	var removed []string
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() {
			continue
		}
		switch {
		case strings.HasSuffix(name, partialSuffix):
			err = r.removeLeftover(filepath.Join(loc, name))
			if errors.Is(err, ErrBusy) {
				continue
			}
		case strings.HasSuffix(name, deletingSuffix):
			err = r.fs.RemoveAll(filepath.Join(loc, name))
		default:
			continue
		}
		if err != nil {
			return removed, fmt.Errorf("storage: removing %s: %w", name, err)
		}
		removed = append(removed, name)
	}
	return removed, nil
}

// Create opens a new object of the backup. name is a relative path with /
// separators, such as "base/16384/2619" or "wal/000000010000000000000003";
// its directories are created. compress selects zstd before encryption. The
// object streams to disk as it is written: nothing buffers a whole object.
// A name used twice gives ErrExists. An uncompressed name ending in ".zst" is
// refused with ErrInvalidName, because its file name would read as compressed.
func (w *Writer) Create(name string, compress bool) (*ObjectWriter, error) {
	if err := validateObjectName(name); err != nil {
		return nil, err
	}
	file := name + encryptedSuffix
	if compress {
		file = name + compressedSuffix
	} else if strings.HasSuffix(name, ".zst") {
		return nil, fmt.Errorf("%w: object name %q ends in .zst but is not compressed", ErrInvalidName, name)
	}
	if file == manifestFile {
		return nil, fmt.Errorf("%w: object name %q", ErrInvalidName, name)
	}

	w.mu.Lock()
	if w.state != writerOpen {
		w.mu.Unlock()
		return nil, errors.New("storage: Create on a committed or aborted backup")
	}
	if _, taken := w.files[file]; taken {
		w.mu.Unlock()
		return nil, fmt.Errorf("%w: object %q in backup %s", ErrExists, name, w.id)
	}
	w.files[file] = struct{}{}
	w.open++
	w.mu.Unlock()

	ow, err := w.create(name, file, compress)
	if err != nil {
		w.mu.Lock()
		delete(w.files, file)
		w.open--
		w.mu.Unlock()
		return nil, fmt.Errorf("storage: creating object %q: %w", name, err)
	}
	return ow, nil
}

func (w *Writer) create(name, file string, compress bool) (*ObjectWriter, error) {
	if dir := path.Dir(file); dir != "." {
		if err := w.repo.fs.MkdirAll(filepath.Join(w.partial, filepath.FromSlash(dir)), dirPerm); err != nil {
			return nil, err
		}
		w.mu.Lock()
		for d := dir; d != "."; d = path.Dir(d) {
			w.dirs[d] = struct{}{}
		}
		w.mu.Unlock()
	}
	f, err := w.repo.fs.OpenFile(filepath.Join(w.partial, filepath.FromSlash(file)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return nil, err
	}
	ow := &ObjectWriter{w: w, f: f, info: ObjectInfo{Name: name, File: file, Compressed: compress}}
	ow.seal, err = NewSealer(f, w.repo.key, compress, LevelDefault, func(n int64) { w.stored.Add(n) })
	if err != nil {
		f.Close()
		return nil, err
	}
	return ow, nil
}

// ObjectWriter streams one object: Write hashes the plaintext, compresses it
// when asked, and encrypts it to the repository's recipient. One ObjectWriter
// must not be used by several goroutines at once.
type ObjectWriter struct {
	w    *Writer
	f    *os.File
	seal *Sealer
	info ObjectInfo
	err  error // the first error; every later call returns it
	done bool
}

// Write writes plaintext to the object.
func (ow *ObjectWriter) Write(p []byte) (int, error) {
	if ow.err != nil {
		return 0, ow.err
	}
	if ow.done {
		return 0, fmt.Errorf("storage: write to closed object %q", ow.info.Name)
	}
	n, err := ow.seal.Write(p)
	if err != nil {
		ow.err = fmt.Errorf("storage: writing object %q: %w", ow.info.Name, err)
		return n, ow.err
	}
	return n, nil
}

// Close finishes the object: it flushes zstd, writes age's last chunk, and
// fsyncs and closes the file. Only an object closed without error is listed
// by Objects and recorded by the backup; after an error the backup should be
// aborted.
func (ow *ObjectWriter) Close() error {
	if ow.done {
		return ow.err
	}
	ow.done = true
	err := ow.err
	if err == nil {
		err = ow.finish()
	}
	if cerr := ow.f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	ow.info.Size, ow.info.StoredSize = ow.seal.Size(), ow.seal.StoredSize()
	ow.seal.Close()

	w := ow.w
	w.mu.Lock()
	defer w.mu.Unlock()
	w.open--
	if err != nil {
		if ow.err == nil {
			ow.err = fmt.Errorf("storage: closing object %q: %w", ow.info.Name, err)
		}
		return ow.err
	}
	ow.info.SHA256 = ow.seal.SHA256()
	w.objects = append(w.objects, ow.info)
	return nil
}

func (ow *ObjectWriter) finish() error {
	if err := ow.seal.Finish(); err != nil {
		return err
	}
	return ow.f.Sync()
}

// Info describes the object. It is complete only after Close returned nil.
func (ow *ObjectWriter) Info() ObjectInfo {
	return ow.info
}

// Objects returns every object closed without error so far, sorted by name.
func (w *Writer) Objects() []ObjectInfo {
	w.mu.Lock()
	out := slices.Clone(w.objects)
	w.mu.Unlock()
	slices.SortFunc(out, func(a, b ObjectInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// StoredBytes returns the bytes written to disk so far by all objects,
// including those still being written, for progress reporting. The manifest
// is not counted.
func (w *Writer) StoredBytes() int64 {
	return w.stored.Load()
}

// Commit writes manifest (json of the caller's value, in plaintext: it holds
// names, sizes, hashes and LSNs, never patient data) as manifest.json, fsyncs
// it, every directory of the backup and the backup directory, and renames
// <id>.partial to <id>. After Commit returns nil the backup is complete and
// durable. Every ObjectWriter must be closed first.
func (w *Writer) Commit(manifest any) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.state != writerOpen:
		return errors.New("storage: Commit on a committed or aborted backup")
	case w.open > 0:
		return fmt.Errorf("storage: Commit of backup %s with %d objects still open", w.id, w.open)
	case !w.ownsPartial():
		return fmt.Errorf("%w: the .partial directory of backup %s was replaced by another writer", ErrBusy, w.id)
	}
	data, err := json.MarshalIndent(manifest, "", "  ")
	if err != nil {
		return fmt.Errorf("storage: encoding the manifest of backup %s: %w", w.id, err)
	}
	if err := w.writeManifest(append(data, '\n')); err != nil {
		return fmt.Errorf("storage: writing the manifest of backup %s: %w", w.id, err)
	}
	// Deepest directories first is not required: each fsync makes that
	// directory's entries durable, and all of them happen before the rename.
	for d := range w.dirs {
		if err := w.repo.syncDir(filepath.Join(w.partial, filepath.FromSlash(d))); err != nil {
			return fmt.Errorf("storage: syncing backup %s: %w", w.id, err)
		}
	}
	if err := w.lock.Sync(); err != nil {
		return fmt.Errorf("storage: syncing backup %s: %w", w.id, err)
	}
	if _, err := w.repo.fs.Lstat(w.final); err == nil {
		return fmt.Errorf("%w: backup %s", ErrExists, w.id)
	}
	if err := w.repo.fs.Rename(w.partial, w.final); err != nil {
		return fmt.Errorf("storage: committing backup %s: %w", w.id, err)
	}
	w.state = writerCommitted
	w.lock.Close()
	if err := w.repo.syncDir(dirOrDot(w.loc)); err != nil {
		return fmt.Errorf("storage: syncing the location of backup %s: %w", w.id, err)
	}
	return nil
}

// ownsPartial reports whether the .partial path is still the directory this
// writer locked, so that Commit and Abort never act on another writer's
// directory; only a race in the instant between NewBackup's Mkdir and its lock
// could make it differ.
func (w *Writer) ownsPartial() bool {
	mine, err := w.lock.Stat()
	if err != nil {
		return false
	}
	now, err := w.repo.fs.Lstat(w.partial)
	return err == nil && os.SameFile(mine, now)
}

func (w *Writer) writeManifest(data []byte) error {
	f, err := w.repo.fs.OpenFile(filepath.Join(w.partial, manifestFile), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, filePerm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Abort removes the .partial directory. It does nothing after Commit or a
// previous Abort, so `defer w.Abort()` is safe.
func (w *Writer) Abort() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state != writerOpen {
		return nil
	}
	w.state = writerAborted
	var err error
	if w.ownsPartial() {
		err = w.repo.fs.RemoveAll(w.partial)
	}
	w.lock.Close()
	if err != nil {
		return fmt.Errorf("storage: aborting backup %s: %w", w.id, err)
	}
	return nil
}
