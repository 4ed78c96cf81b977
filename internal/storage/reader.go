package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
)

// Reader reads a committed backup. It holds no open files; each object is
// opened by Open or OpenObject and closed by its caller.
type Reader struct {
	repo *Repository
	id   string
	dir  string // relative backup directory
}

// OpenBackup opens the committed backup id in location. A backup that does
// not exist, or exists only as a .partial directory of an unfinished writer,
// is ErrNotFound; a backup directory without its manifest is ErrIntegrity.
func (r *Repository) OpenBackup(location, id string) (*Reader, error) {
	_, dir, err := r.backupDir(location, id)
	if err != nil {
		return nil, err
	}
	fi, err := r.fs.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) || err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("%w: backup %s in location %q", ErrNotFound, id, location)
	} else if err != nil {
		return nil, fmt.Errorf("storage: opening backup %s: %w", id, err)
	}
	if _, err := r.fs.Lstat(filepath.Join(dir, manifestFile)); err != nil {
		return nil, fmt.Errorf("%w: backup %s has no readable %s: %w", ErrIntegrity, id, manifestFile, err)
	}
	return &Reader{repo: r, id: id, dir: dir}, nil
}

// Path returns the absolute directory of the backup.
func (rd *Reader) Path() string {
	return filepath.Join(rd.repo.root, rd.dir)
}

// Manifest decodes the backup's manifest.json into v.
func (rd *Reader) Manifest(v any) error {
	data, err := rd.repo.fs.ReadFile(filepath.Join(rd.dir, manifestFile))
	if err != nil {
		return fmt.Errorf("%w: reading the manifest of backup %s: %w", ErrIntegrity, rd.id, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		// A manifest that is not JSON was damaged on disk; one that does not
		// fit v is the caller's mistake.
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: the manifest of backup %s: %w", ErrIntegrity, rd.id, err)
		}
		return fmt.Errorf("storage: decoding the manifest of backup %s: %w", rd.id, err)
	}
	return nil
}

// Open returns the plaintext of the object stored in file (an ObjectInfo.File):
// it decrypts the file and, when the name ends in ".zst.age", decompresses it.
// The returned reader is an *ObjectReader, which computes the SHA-256 and the
// size of what has been read, so a caller that reads to the end can compare
// them with the manifest; OpenObject does that comparison itself. A file that
// does not exist is ErrNotFound; one that does not decrypt or decompress gives
// errors wrapping ErrIntegrity that name it.
func (rd *Reader) Open(file string) (io.ReadCloser, error) {
	return rd.open(strings.TrimSuffix(strings.TrimSuffix(file, encryptedSuffix), ".zst"), file, nil)
}

// OpenObject is Open for an object recorded in a manifest: at the end of the
// stream the reader compares the size and SHA-256 of the plaintext with info
// and returns an error wrapping ErrIntegrity, instead of io.EOF, when they
// differ. A restore that copies from it to the end has therefore verified it.
func (rd *Reader) OpenObject(info ObjectInfo) (io.ReadCloser, error) {
	if info.Compressed != strings.HasSuffix(info.File, compressedSuffix) {
		return nil, integrityError(info.Name, fmt.Errorf("file %q does not match compressed=%t", info.File, info.Compressed))
	}
	return rd.open(info.Name, info.File, &info)
}

// Verify re-reads one object completely: it must decrypt (age authenticates
// every 64 KiB chunk, so any changed byte fails), decompress, and match the
// recorded size and SHA-256. It returns nil or an error wrapping ErrIntegrity
// that names the object; a missing file is an integrity failure too.
func (rd *Reader) Verify(info ObjectInfo) error {
	rc, err := rd.OpenObject(info)
	if errors.Is(err, ErrNotFound) {
		return integrityError(info.Name, err)
	} else if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	return err
}

func (rd *Reader) open(name, file string, expect *ObjectInfo) (*ObjectReader, error) {
	if err := validateObjectName(file); err != nil || !strings.HasSuffix(file, encryptedSuffix) {
		return nil, fmt.Errorf("%w: object file %q", ErrInvalidName, file)
	}
	f, err := rd.repo.fs.Open(filepath.Join(rd.dir, filepath.FromSlash(file)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: object %q in backup %s", ErrNotFound, name, rd.id)
	} else if err != nil {
		return nil, fmt.Errorf("storage: opening object %q: %w", name, err)
	}
	plain, err := age.Decrypt(f, rd.repo.key.identity)
	if err != nil {
		f.Close()
		var noMatch *age.NoIdentityMatchError
		if errors.As(err, &noMatch) {
			err = fmt.Errorf("%w (the header is damaged, or the object was encrypted with another ENCRYPTION_KEY)", err)
		}
		return nil, integrityError(name, err)
	}
	or := &ObjectReader{name: name, f: f, r: plain, hash: sha256.New(), expect: expect}
	if strings.HasSuffix(file, compressedSuffix) {
		if or.dec, err = getDecoder(plain); err != nil {
			f.Close()
			return nil, integrityError(name, err)
		}
		or.r = or.dec
	}
	return or, nil
}

func integrityError(name string, err error) error {
	return fmt.Errorf("%w: object %q: %w", ErrIntegrity, name, err)
}

// ObjectReader is the plaintext of one object, as returned by Reader.Open and
// Reader.OpenObject. It hashes what it reads, so that after reading to the end
// SHA256 and Size describe the whole object.
type ObjectReader struct {
	name   string
	f      *os.File
	dec    *zstd.Decoder
	r      io.Reader
	hash   hash.Hash
	n      int64
	expect *ObjectInfo
	err    error
}

// Read reads plaintext. A failure to decrypt or decompress, and at the end a
// mismatch with the expected size or SHA-256, are errors wrapping ErrIntegrity.
func (or *ObjectReader) Read(p []byte) (int, error) {
	if or.err != nil {
		return 0, or.err
	}
	if or.r == nil {
		return 0, fmt.Errorf("storage: read of closed object %q", or.name)
	}
	n, err := or.r.Read(p)
	or.hash.Write(p[:n])
	or.n += int64(n)
	switch {
	case err == io.EOF:
		if or.expect != nil {
			if got := or.SHA256(); or.n != or.expect.Size || got != or.expect.SHA256 {
				err = integrityError(or.name, fmt.Errorf("read %d bytes with sha256 %s, the manifest records %d bytes with sha256 %s", or.n, got, or.expect.Size, or.expect.SHA256))
			}
		}
		or.err = err
	case err != nil:
		err = integrityError(or.name, err)
		or.err = err
	}
	return n, err
}

// SHA256 returns the hex SHA-256 of the plaintext read so far.
func (or *ObjectReader) SHA256() string {
	return hex.EncodeToString(or.hash.Sum(nil))
}

// Size returns the number of plaintext bytes read so far.
func (or *ObjectReader) Size() int64 {
	return or.n
}

// Close releases the decoder and closes the file.
func (or *ObjectReader) Close() error {
	if or.r == nil {
		return nil
	}
	or.r = nil
	if or.dec != nil {
		putDecoder(or.dec)
		or.dec = nil
	}
	// An object is read once, by a restore or a verification: its pages need not stay in the
	// page cache, where they would push out the live database's (advice; errors do not matter).
	_ = unix.Fadvise(int(or.f.Fd()), 0, 0, unix.FADV_DONTNEED)
	return or.f.Close()
}
