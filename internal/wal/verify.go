package wal

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"filippo.io/age"
)

// VerifyResult is what Verify found.
type VerifyResult struct {
	// Checked counts the files read to the end.
	Checked int `json:"checked"`
	// Bytes counts their plaintext.
	Bytes int64 `json:"bytes"`
	// Failures maps each damaged file to why.
	Failures map[string]string `json:"failures,omitempty"`
}

// Verify reads every archived file of every timeline to the end: it must
// decrypt (age authenticates every 64 KiB chunk), decompress and match its
// record's size and SHA-256. Damage is reported in the result, not as an error;
// the error is for a failure to look at all.
func Verify(ctx context.Context, cfg Config) (VerifyResult, error) {
	res := VerifyResult{Failures: map[string]string{}}
	key, err := cfg.key()
	if err != nil {
		return res, err
	}
	id, err := identity(key)
	if err != nil {
		return res, fmt.Errorf("wal: %w", err)
	}
	a, err := openArchive(cfg, false)
	if errors.Is(err, errNoArchive) {
		return res, nil
	} else if err != nil {
		return res, err
	}
	defer a.close()
	tlis, err := a.timelines()
	if err != nil {
		return res, err
	}
	for _, tli := range tlis {
		dir := timelineDir(tli)
		tf, err := a.listTimeline(dir)
		if err != nil {
			return res, err
		}
		for _, name := range tf.damaged {
			res.Failures[name] = "recorded, but its object is missing"
		}
		for _, name := range slices.Concat(tf.segments, tf.others) {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			n, err := a.verifyOne(ctx, dir, name, id)
			if errors.Is(err, fs.ErrNotExist) && strings.HasSuffix(name, streamSuffix) {
				continue // removed since the listing: its segment is archived whole now
			}
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					return res, err
				}
				res.Failures[name] = err.Error()
				continue
			}
			res.Checked++
			res.Bytes += n
		}
	}
	return res, nil
}

// verifyOne reads one archived file to the end and compares it with its record.
func (a *archive) verifyOne(ctx context.Context, dir, name string, id *age.X25519Identity) (int64, error) {
	rec, err := a.readRecord(dir, name)
	for attempt := 1; ; attempt++ {
		if err != nil {
			if errors.Is(err, ErrCorrupt) {
				return 0, err
			}
			return 0, fmt.Errorf("wal: %w", err)
		}
		n, verr := a.verifyRecord(ctx, dir, rec, id)
		if verr == nil || rec.SegmentSize == 0 || attempt == 3 {
			return n, verr
		}
		// A streamed partial may have been replaced since its record was read
		// (see Fetch); only a record that stays the same is damaged.
		again, err2 := a.readRecord(dir, name)
		if err2 == nil && again == rec {
			return n, verr
		}
		rec, err = again, err2
	}
}

// verifyRecord reads rec's object to the end and compares it with rec.
func (a *archive) verifyRecord(ctx context.Context, dir string, rec Record, id *age.X25519Identity) (int64, error) {
	name := rec.Name
	f, err := a.root.Open(path.Join(dir, rec.File))
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
	}
	defer f.Close()
	sum, n, err := decryptAndHash(ctx, f, id)
	if err != nil {
		return n, fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
	}
	if n != rec.Size || sum != rec.SHA256 {
		return n, fmt.Errorf("%w: %s decrypts to %d bytes with sha256 %s; its record says %d bytes with sha256 %s",
			ErrCorrupt, name, n, sum, rec.Size, rec.SHA256)
	}
	return n, nil
}
