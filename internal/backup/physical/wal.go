package physical

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// copyWAL copies the WAL segments of timeline tli from the segment of start through the
// segment holding the last byte before stop, plus the timeline's history file, and
// returns their object names in order. The temporary slot keeps them in pg_wal.
func (b *backupRun) copyWAL(ctx context.Context, tli int, start, stop lsn, segSize int64) ([]string, error) {
	first := uint64(start) / uint64(segSize)
	last := (uint64(stop) - 1) / uint64(segSize)
	var names []string
	for seg := first; seg <= last; seg++ {
		names = append(names, walSegmentName(tli, seg, segSize))
	}
	b.rep.setPhase(PhaseWAL, int64(len(names))*segSize)
	b.log.Info("physical: copying WAL", "segments", len(names), "first", names[0], "last", names[len(names)-1])
	err := runPool(ctx, b.workers, len(names), func(ctx context.Context, w, i int) error {
		return b.copySegment(ctx, w, names[i], segSize)
	})
	if err != nil {
		return nil, err
	}
	objects := make([]string, 0, len(names)+1)
	for _, n := range names {
		objects = append(objects, walPrefix+n)
	}
	// The history file lets a later point-in-time recovery follow this timeline.
	if tli > 1 {
		name := fmt.Sprintf("%08X.history", tli)
		f, err := os.Open(filepath.Join(b.dataDir, "pg_wal", name))
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("physical: %w", err)
		default:
			defer f.Close()
			out, err := b.sink.Create(walPrefix + name)
			if err != nil {
				return nil, fmt.Errorf("physical: creating object %s: %w", walPrefix+name, err)
			}
			_, err = b.stream(ctx, f, out, b.bufs[0], nil)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return nil, fmt.Errorf("physical: %s: %w", name, err)
			}
			objects = append(objects, walPrefix+name)
		}
	}
	return objects, nil
}

// copySegment copies one WAL segment without its trailing zero pages: PostgreSQL
// zero-fills the rest of a segment after a WAL switch, and Restore pads the segment back
// to its size, so the restored file is the original byte for byte.
func (b *backupRun) copySegment(ctx context.Context, w int, name string, segSize int64) error {
	path := filepath.Join(b.dataDir, "pg_wal", name)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("physical: WAL segment %s is not in pg_wal (is max_slot_wal_keep_size set?): %w", name, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return fmt.Errorf("physical: %w", err)
	} else if fi.Size() != segSize {
		return fmt.Errorf("physical: WAL segment %s has %d bytes, not %d", name, fi.Size(), segSize)
	}
	out, err := b.sink.Create(walPrefix + name)
	if err != nil {
		return fmt.Errorf("physical: creating object %s: %w", walPrefix+name, err)
	}
	err = b.copyTrimmed(ctx, f, out, b.bufs[w], segSize)
	if cerr := out.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("physical: finishing object %s: %w", walPrefix+name, cerr)
	}
	if err != nil {
		return fmt.Errorf("physical: WAL segment %s: %w", name, err)
	}
	return nil
}

// copyTrimmed copies size bytes of r to out, leaving out the zero pages at the end.
func (b *backupRun) copyTrimmed(ctx context.Context, r io.Reader, out io.Writer, buf []byte, size int64) error {
	write := func(p []byte) error {
		if _, err := out.Write(p); err != nil {
			return fmt.Errorf("writing object: %w", err)
		}
		b.written.Add(int64(len(p)))
		return nil
	}
	var zeros int64 // zero bytes read and not yet written
	var done int64
	for done < size {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := io.ReadFull(r, buf[:min(int64(len(buf)), size-done)])
		if err != nil {
			return fmt.Errorf("reading: %w", err)
		}
		done += int64(n)
		b.scanned.Add(int64(n))
		b.rep.add(int64(n))
		run := -1 // start of the current run of non-zero pages in buf
		for off := 0; off < n; off += blockSize {
			page := buf[off:min(off+blockSize, n)]
			if bytes.Equal(page, zeroPage[:len(page)]) {
				if run >= 0 {
					if err := write(buf[run:off]); err != nil {
						return err
					}
					run = -1
				}
				zeros += int64(len(page))
				continue
			}
			for ; zeros > 0; zeros -= min(zeros, blockSize) {
				if err := write(zeroPage[:min(zeros, blockSize)]); err != nil {
					return err
				}
			}
			if run < 0 {
				run = off
			}
		}
		if run >= 0 {
			if err := write(buf[run:n]); err != nil {
				return err
			}
		}
	}
	return nil
}

// hasher computes the SHA-256 recorded for whole files.
type hasher struct{ h hash.Hash }

func newHasher() *hasher         { return &hasher{h: sha256.New()} }
func (h *hasher) write(p []byte) { h.h.Write(p) }
func (h *hasher) sum() string    { return hex.EncodeToString(h.h.Sum(nil)) }
