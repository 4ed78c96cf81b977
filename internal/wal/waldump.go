package wal

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/onevault/readiness/internal/pgcluster"
)

// ErrNoCommit is returned by LastCommit and LatestCommit when the WAL they read
// holds no commit record.
var ErrNoCommit = errors.New("wal: no commit record")

// Commit is a transaction commit found in archived WAL. Its Time is what
// recovery_target_time compares with.
type Commit struct {
	Time    time.Time `json:"time"`
	LSN     string    `json:"lsn"`
	Segment string    `json:"segment"`
}

// commitRE matches pg_waldump's description of a commit record, such as
//
//	rmgr: Transaction len (rec/tot): 34/34, tx: 735, lsn: 0/03000060, prev 0/03000028, desc: COMMIT 2026-11-25 10:42:01.123456 UTC
//
// and of a prepared transaction's commit ("desc: COMMIT_PREPARED 12: 2026-...").
// pg_waldump prints times in its TZ, which LastCommit sets to UTC.
var commitRE = regexp.MustCompile(`lsn: ([0-9A-F]+/[0-9A-F]+), prev [0-9A-F]+/[0-9A-F]+, desc: COMMIT(?:_PREPARED \d+:)? (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}) UTC`)

// LastCommit fetches an archived segment into a temporary directory and runs
// pg_waldump over it to find its last commit record. It gives ErrNoCommit for a
// segment without one (after a pg_switch_wal, a segment may hold only the
// switch record). A segment archived only as a streamed partial is read as
// Fetch serves it, padded with zeros, where pg_waldump stops.
func LastCommit(ctx context.Context, cfg Config, segment string) (Commit, error) {
	kind, _, err := ParseName(segment)
	if err != nil {
		return Commit{}, err
	}
	if kind != KindSegment {
		return Commit{}, fmt.Errorf("%w: %s is a %s, not a segment", ErrInvalidName, segment, kind)
	}
	binDir := cfg.BinDir
	if binDir == "" {
		if binDir, err = pgcluster.BinDir(); err != nil {
			return Commit{}, err
		}
	}
	tmp, err := os.MkdirTemp("", "readiness-waldump-")
	if err != nil {
		return Commit{}, fmt.Errorf("wal: %w", err)
	}
	defer os.RemoveAll(tmp)
	file := filepath.Join(tmp, segment)
	if err := Fetch(ctx, cfg, segment, file); err != nil {
		return Commit{}, err
	}
	c, err := lastCommitInFile(ctx, binDir, file)
	c.Segment = segment
	return c, err
}

// LatestCommit returns the newest commit archived on a timeline: the end of the
// time span that recovery from this archive can reach. It reads segments from
// the last one backwards until one holds a commit, at most maxSegments of them
// (0: all), starting with the streamed partial of the segment after the last
// one when the streaming receiver has archived one (see Stream): that holds
// the newest commits.
func LatestCommit(ctx context.Context, cfg Config, timeline uint32, maxSegments int) (Commit, error) {
	segs, streamed, err := archivedSegments(cfg, timeline)
	if err != nil {
		return Commit{}, err
	}
	if streamed != "" {
		segs = append(segs, strings.TrimSuffix(streamed, streamSuffix))
	}
	slices.Reverse(segs)
	if maxSegments > 0 && len(segs) > maxSegments {
		segs = segs[:maxSegments]
	}
	for _, s := range segs {
		c, err := LastCommit(ctx, cfg, s)
		if errors.Is(err, ErrNoCommit) {
			continue
		}
		return c, err
	}
	return Commit{}, fmt.Errorf("%w on timeline %d in the %d newest segments", ErrNoCommit, timeline, len(segs))
}

// lastCommitInFile runs pg_waldump over one segment file, whose name must be
// its segment name, and returns its last commit.
func lastCommitInFile(ctx context.Context, binDir, file string) (Commit, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "pg_waldump"), "--rmgr=Transaction", file)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	if ctx.Err() != nil {
		return Commit{}, ctx.Err()
	}
	var last Commit
	found := false
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		m := commitRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		t, err := time.Parse("2006-01-02 15:04:05.000000", m[2])
		if err != nil {
			return Commit{}, fmt.Errorf("wal: pg_waldump printed a commit time %q that does not parse: %w", m[2], err)
		}
		last, found = Commit{Time: t.UTC(), LSN: m[1]}, true
	}
	if err := sc.Err(); err != nil {
		return Commit{}, fmt.Errorf("wal: reading pg_waldump's output: %w", err)
	}
	// pg_waldump ends with an error at the end of the WAL it was given: the
	// zeros after a switch, or a record that goes on in the next segment.
	// Anything else is a real failure.
	if runErr != nil && !endOfWAL(stderr.String()) {
		return Commit{}, fmt.Errorf("wal: pg_waldump %s: %w: %s", filepath.Base(file), runErr, strings.TrimSpace(stderr.String()))
	}
	if !found {
		return Commit{}, fmt.Errorf("%w in %s", ErrNoCommit, filepath.Base(file))
	}
	return last, nil
}

// endOfWAL reports whether pg_waldump's complaint is only that the WAL ended.
func endOfWAL(stderr string) bool {
	return strings.Contains(stderr, "error in WAL record") ||
		strings.Contains(stderr, "could not find a valid record")
}
