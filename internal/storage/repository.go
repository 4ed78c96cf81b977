package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// ReservedWAL is the repository folder of the WAL archive (internal/wal); no backup location may
// be in it.
const ReservedWAL = "wal"

// ErrOutsideRepository is returned for a location that would leave the
// repository: an absolute path, a ".." or "." segment, an empty segment, a
// character outside [A-Za-z0-9._-], a symbolic link that resolves outside the
// root, or a path through a file or through a backup's own directory.
var ErrOutsideRepository = errors.New("storage: location is outside the repository")

// ErrReservedForWAL is returned, together with ErrOutsideRepository, for a location in the WAL
// archive's folder (ReservedWAL).
var ErrReservedForWAL = errors.New("storage: the folder " + ReservedWAL + " is reserved for the WAL archive")

// ErrNotFound is returned when a backup or an object does not exist. A
// .partial directory left by a killed writer is never a backup, so it is
// ErrNotFound too.
var ErrNotFound = errors.New("storage: not found")

// ErrIntegrity is returned when an object does not decrypt, does not
// decompress, or does not match its recorded size and SHA-256. It is wrapped
// with the object's name, so a verification finding can say which object failed.
var ErrIntegrity = errors.New("storage: integrity check failed")

// ErrInvalidName is returned for a backup id or an object name that cannot be
// stored: an empty or absolute name, a "." or ".." segment, a reserved suffix,
// or bytes that are not valid UTF-8.
var ErrInvalidName = errors.New("storage: invalid name")

// ErrExists is returned by NewBackup when a committed backup with that id is
// already in the location, and by Create for an object name used twice.
var ErrExists = errors.New("storage: already exists")

// ErrBusy is returned by NewBackup when another live writer holds the
// .partial directory of the same id.
var ErrBusy = errors.New("storage: backup is being written by another writer")

const (
	// manifestFile is the plaintext manifest inside a backup directory.
	manifestFile = "manifest.json"
	// partialSuffix marks a backup directory that is still being written.
	partialSuffix = ".partial"
	// deletingSuffix marks a backup directory that Delete is removing.
	deletingSuffix = ".deleting"
	// maxSegment is the longest directory or file name most file systems take.
	maxSegment = 255

	dirPerm  = 0o700
	filePerm = 0o600
)

// Repository is the backup repository rooted at one directory.
// It is safe for use by several goroutines.
type Repository struct {
	root     string // absolute path of the root as configured
	realRoot string // root with symbolic links resolved, for containment checks
	fs       *os.Root
	key      *Key
}

// Open opens the repository at root, creating the directory with mode 0700
// when it does not exist. Objects are encrypted to key's recipient and
// decrypted with its identity.
func Open(root string, key *Key) (*Repository, error) {
	if key == nil {
		return nil, errors.New("storage: Open needs a key")
	}
	if root == "" {
		return nil, errors.New("storage: Open needs a root directory")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("storage: repository root: %w", err)
	}
	if err := os.MkdirAll(abs, dirPerm); err != nil {
		return nil, fmt.Errorf("storage: creating the repository root: %w", err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("storage: repository root: %w", err)
	}
	rootFS, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("storage: opening the repository root: %w", err)
	}
	return &Repository{root: abs, realRoot: real, fs: rootFS, key: key}, nil
}

// Close releases the repository's directory handle. Writers and readers of the
// repository must not be used afterwards.
func (r *Repository) Close() error {
	return r.fs.Close()
}

// Root returns the absolute path of the repository root.
func (r *Repository) Root() string {
	return r.root
}

// Location resolves a storageLocation from the API. "" is the repository root;
// anything else must be a relative folder of one or more segments of
// [A-Za-z0-9._-] separated by "/", with no "." or ".." segment, no empty
// segment, no symbolic link that resolves outside the root (checked with
// filepath.EvalSymlinks on the part that exists), and not inside a backup. It
// returns the cleaned relative path, or an error wrapping ErrOutsideRepository.
func (r *Repository) Location(location string) (string, error) {
	rel, err := cleanLocation(location)
	if err != nil || rel == "" {
		return rel, err
	}
	segs := strings.Split(rel, "/")
	if segs[0] == ReservedWAL {
		return "", fmt.Errorf("%w: %w", ErrOutsideRepository, ErrReservedForWAL)
	}
	// Walk down the part that exists: it must be directories, none of them a
	// backup, and its resolved path must stay under the resolved root.
	existing := ""
	for i := range segs {
		p := filepath.Join(r.root, filepath.Join(segs[:i+1]...))
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			break
		} else if err != nil {
			return "", fmt.Errorf("storage: location %q: %w", location, err)
		}
		existing = p
	}
	if existing == "" {
		return rel, nil
	}
	resolved, err := filepath.EvalSymlinks(existing)
	if err != nil {
		// A dangling link: where it points is unknown, so it is refused.
		return "", fmt.Errorf("%w: %q: %v", ErrOutsideRepository, location, err)
	}
	if !within(r.realRoot, resolved) {
		return "", fmt.Errorf("%w: %q resolves to %s", ErrOutsideRepository, location, resolved)
	}
	for i := range segs {
		p := filepath.Join(r.root, filepath.Join(segs[:i+1]...))
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			break
		} else if err != nil {
			return "", fmt.Errorf("storage: location %q: %w", location, err)
		}
		if !fi.IsDir() {
			return "", fmt.Errorf("%w: %q: %s is not a directory", ErrOutsideRepository, location, strings.Join(segs[:i+1], "/"))
		}
		if _, err := os.Lstat(filepath.Join(p, manifestFile)); err == nil {
			return "", fmt.Errorf("%w: %q: %s is a backup, not a folder", ErrOutsideRepository, location, strings.Join(segs[:i+1], "/"))
		}
	}
	return rel, nil
}

// cleanLocation checks a location's syntax without touching the disk.
func cleanLocation(location string) (string, error) {
	if location == "" {
		return "", nil
	}
	for seg := range strings.SplitSeq(location, "/") {
		if !validLocationSegment(seg) {
			return "", fmt.Errorf("%w: %q (a location is \"\" or relative folders of [A-Za-z0-9._-] separated by /, without . or ..)", ErrOutsideRepository, location)
		}
	}
	return location, nil
}

func validLocationSegment(seg string) bool {
	if seg == "" || seg == "." || seg == ".." || len(seg) > maxSegment {
		return false
	}
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// within reports whether path is root or below it; both must be clean.
func within(root, path string) bool {
	if path == root {
		return true
	}
	if root == string(filepath.Separator) {
		return strings.HasPrefix(path, root)
	}
	return strings.HasPrefix(path, root+string(filepath.Separator))
}

// validateID checks a backup id: one segment of [A-Za-z0-9._-], not starting
// with a dot, and not ending in a suffix the repository uses for its own
// directories.
func validateID(id string) error {
	if !validLocationSegment(id) || strings.HasPrefix(id, ".") ||
		strings.HasSuffix(id, partialSuffix) || strings.HasSuffix(id, deletingSuffix) ||
		len(id)+len(partialSuffix) > maxSegment {
		return fmt.Errorf("%w: backup id %q (one segment of [A-Za-z0-9._-], not starting with a dot, not ending in %s or %s)", ErrInvalidName, id, partialSuffix, deletingSuffix)
	}
	return nil
}

// validateObjectName checks an object name: a relative path with / separators
// whose segments are not empty, ".", ".." and hold no NUL, and which is valid
// UTF-8 so that it survives the JSON manifest unchanged.
func validateObjectName(name string) error {
	bad := name == "" || !utf8.ValidString(name) || strings.ContainsRune(name, 0)
	if !bad {
		for seg := range strings.SplitSeq(name, "/") {
			if seg == "" || seg == "." || seg == ".." || len(seg) > maxSegment {
				bad = true
				break
			}
		}
	}
	if bad {
		return fmt.Errorf("%w: object name %q (a relative path with / separators, no empty, . or .. segments)", ErrInvalidName, name)
	}
	return nil
}

// backupDir returns the relative directory of a backup after validating its parts.
func (r *Repository) backupDir(location, id string) (loc, dir string, err error) {
	loc, err = r.Location(location)
	if err != nil {
		return "", "", err
	}
	if err := validateID(id); err != nil {
		return "", "", err
	}
	return loc, filepath.Join(loc, id), nil
}

// Path returns the absolute directory of the committed backup id in location.
// It checks the location and id like NewBackup and returns "" when they are
// not valid.
func (r *Repository) Path(location, id string) string {
	_, dir, err := r.backupDir(location, id)
	if err != nil {
		return ""
	}
	return filepath.Join(r.root, dir)
}

// Delete removes the committed backup id in location. It first renames the
// directory to <id>.deleting, so that a crash halfway through never leaves a
// backup that looks complete, then removes it; a later Delete of the same id
// finishes an interrupted one. It returns ErrNotFound when there is nothing to
// delete.
func (r *Repository) Delete(location, id string) error {
	loc, dir, err := r.backupDir(location, id)
	if err != nil {
		return err
	}
	deleting := dir + deletingSuffix
	fi, err := r.fs.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if _, err := r.fs.Lstat(deleting); err == nil {
			if err := r.fs.RemoveAll(deleting); err != nil {
				return fmt.Errorf("storage: deleting backup %s: %w", id, err)
			}
			return nil
		}
		return fmt.Errorf("%w: backup %s in location %q", ErrNotFound, id, location)
	case err != nil:
		return fmt.Errorf("storage: deleting backup %s: %w", id, err)
	case !fi.IsDir():
		return fmt.Errorf("%w: backup %s in location %q is not a directory", ErrNotFound, id, location)
	}
	if err := r.fs.RemoveAll(deleting); err != nil {
		return fmt.Errorf("storage: deleting backup %s: %w", id, err)
	}
	if err := r.fs.Rename(dir, deleting); err != nil {
		return fmt.Errorf("storage: deleting backup %s: %w", id, err)
	}
	if err := r.syncDir(dirOrDot(loc)); err != nil {
		return fmt.Errorf("storage: deleting backup %s: %w", id, err)
	}
	if err := r.fs.RemoveAll(deleting); err != nil {
		return fmt.Errorf("storage: deleting backup %s: %w", id, err)
	}
	return nil
}

// syncDir fsyncs a directory of the repository, so that the names created,
// renamed or removed in it survive a crash.
func (r *Repository) syncDir(dir string) error {
	d, err := r.fs.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}

// dirOrDot maps the repository root's relative path "" to ".", which os.Root takes.
func dirOrDot(dir string) string {
	if dir == "" {
		return "."
	}
	return dir
}
