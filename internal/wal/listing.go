package wal

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// timelineFiles is what one timeline directory holds.
type timelineFiles struct {
	records    map[string]bool  // names with a record
	objects    map[string]int64 // object files, and their sizes
	segments   []string         // archived segment names (record and object), sorted
	others     []string         // archived non-segment names, streamed partials included
	damaged    []string
	incomplete []string
}

// streamed returns the newest streamed partial of a segment after the newest
// complete segment, or "": the one that extends the archive. Older ones are
// left over from a receiver that stopped before Push removed them.
func (tf *timelineFiles) streamed() string {
	var last string
	if n := len(tf.segments); n > 0 {
		last = tf.segments[n-1]
	}
	for i := len(tf.others) - 1; i >= 0; i-- {
		if seg, ok := strings.CutSuffix(tf.others[i], streamSuffix); ok && seg > last {
			return tf.others[i]
		}
	}
	return ""
}

// listTimeline reads a timeline directory. A file is archived when both its
// record and its object exist.
func (a *archive) listTimeline(dir string) (*timelineFiles, error) {
	entries, err := fs.ReadDir(a.root.FS(), dir)
	if err != nil {
		return nil, fmt.Errorf("wal: listing %s: %w", dir, err)
	}
	tf := &timelineFiles{records: map[string]bool{}, objects: map[string]int64{}}
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, ".") || !e.Type().IsRegular() {
			continue
		}
		switch {
		case strings.HasSuffix(n, recordSuffix):
			tf.records[strings.TrimSuffix(n, recordSuffix)] = true
		case strings.HasSuffix(n, objectSuffix):
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue
			} else if err != nil {
				return nil, fmt.Errorf("wal: %w", err)
			}
			tf.objects[n] = fi.Size()
		}
	}
	for name := range tf.records {
		kind, _, err := ParseName(name)
		if err != nil {
			continue
		}
		if !slices.ContainsFunc(objectFiles(name), func(f string) bool { _, ok := tf.objects[f]; return ok }) {
			// A streamed partial's record goes before its objects when its
			// segment is archived whole; the listing may have caught that.
			if _, err := a.root.Lstat(path.Join(dir, name+recordSuffix)); kind != KindStreamed || err == nil {
				tf.damaged = append(tf.damaged, name)
			}
			continue
		}
		if kind == KindSegment {
			tf.segments = append(tf.segments, name)
		} else {
			tf.others = append(tf.others, name)
		}
	}
	for file := range tf.objects {
		if name := objectOwner(file); !tf.records[name] {
			tf.incomplete = append(tf.incomplete, name)
		}
	}
	slices.Sort(tf.segments) // segment names sort as their numbers do
	slices.Sort(tf.others)
	slices.Sort(tf.damaged)
	slices.Sort(tf.incomplete)
	tf.incomplete = slices.Compact(tf.incomplete) // a streamed partial has two objects
	return tf, nil
}

// objectOwner returns the name whose object file is: the inverse of objectFiles.
func objectOwner(file string) string {
	name := strings.TrimSuffix(file, objectSuffix)
	if base, ok := strings.CutSuffix(name, ".0"); ok && strings.HasSuffix(base, streamSuffix) {
		return base
	}
	if base, ok := strings.CutSuffix(name, ".1"); ok && strings.HasSuffix(base, streamSuffix) {
		return base
	}
	return name
}

// timelines lists the timeline directories of the archive, oldest first.
func (a *archive) timelines() ([]uint32, error) {
	entries, err := fs.ReadDir(a.root.FS(), ".")
	if err != nil {
		return nil, fmt.Errorf("wal: listing the archive: %w", err)
	}
	var out []uint32
	for _, e := range entries {
		n := e.Name()
		if !e.IsDir() || len(n) != 8 || strings.ToUpper(n) != n {
			continue
		}
		tli, err := strconv.ParseUint(n, 16, 32)
		if err == nil && tli > 0 {
			out = append(out, uint32(tli))
		}
	}
	slices.Sort(out)
	return out, nil
}

// Segments lists the archived segments of a timeline in order, for recovery
// planning. A segment counts when both its record and its object exist.
// A streamed partial is not a segment of the list.
func Segments(ctx context.Context, cfg Config, timeline uint32) ([]string, error) {
	segs, _, err := archivedSegments(cfg, timeline)
	if err != nil {
		return nil, err
	}
	return segs, ctx.Err()
}

// archivedSegments returns the archived segments of a timeline, in order, and
// the name of the streamed partial after the last of them, or "".
func archivedSegments(cfg Config, timeline uint32) ([]string, string, error) {
	a, err := openArchive(cfg, false)
	if errors.Is(err, errNoArchive) {
		return nil, "", nil
	} else if err != nil {
		return nil, "", err
	}
	defer a.close()
	tf, err := a.listTimeline(timelineDir(timeline))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", nil
	} else if err != nil {
		return nil, "", err
	}
	return tf.segments, tf.streamed(), nil
}

// streamedPartial describes the streamed partial whose record is rec.
func streamedPartial(rec Record) (*StreamedPartial, error) {
	seg := strings.TrimSuffix(rec.Name, streamSuffix)
	_, segno, err := ParseSegmentName(seg, rec.SegmentSize)
	if err != nil {
		return nil, fmt.Errorf("%w: the record of %s: %v", ErrCorrupt, rec.Name, err)
	}
	return &StreamedPartial{Segment: seg, Bytes: rec.Size, EndLSN: FormatLSN(segno*uint64(rec.SegmentSize) + uint64(rec.Size)),
		WrittenAt: rec.ArchivedAt}, nil
}

// archivedThrough returns the LSN through which the timeline in dir is
// archived (see ArchivedThrough), and the segment size its records give; 0, 0
// for a timeline without segments or a streamed partial.
func (a *archive) archivedThrough(dir string) (uint64, int64, error) {
	tf, err := a.listTimeline(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil
	} else if err != nil {
		return 0, 0, err
	}
	var end uint64
	var segSize int64
	if n := len(tf.segments); n > 0 {
		rec, err := a.readRecord(dir, tf.segments[n-1])
		if err != nil {
			return 0, 0, fmt.Errorf("wal: %w", err)
		}
		_, segno, err := ParseSegmentName(rec.Name, rec.Size)
		if err != nil {
			return 0, 0, fmt.Errorf("%w: segment %s is recorded with %d bytes: %v", ErrCorrupt, rec.Name, rec.Size, err)
		}
		end, segSize = (segno+1)*uint64(rec.Size), rec.Size
	}
	if name := tf.streamed(); name != "" {
		rec, err := a.readRecord(dir, name)
		if errors.Is(err, fs.ErrNotExist) {
			// Removed since the listing: its segment is archived whole now.
			return a.archivedThrough(dir)
		} else if err != nil {
			return 0, 0, fmt.Errorf("wal: %w", err)
		}
		sp, err := streamedPartial(rec)
		if err != nil {
			return 0, 0, err
		}
		if e, _ := ParseLSN(sp.EndLSN); e > end {
			end, segSize = e, rec.SegmentSize
		}
	}
	return end, segSize, nil
}

// gaps returns the runs of segment numbers missing between the first and the
// last of sorted segment names.
func gaps(names []string, segSize int64) ([]Gap, uint64, error) {
	var out []Gap
	var missing uint64
	var prev uint64
	for i, name := range names {
		tli, segno, err := ParseSegmentName(name, segSize)
		if err != nil {
			return nil, 0, err
		}
		if i > 0 && segno > prev+1 {
			g := Gap{First: SegmentName(tli, prev+1, segSize), Last: SegmentName(tli, segno-1, segSize), Count: segno - prev - 1}
			out = append(out, g)
			missing += g.Count
		}
		prev = segno
	}
	return out, missing, nil
}
