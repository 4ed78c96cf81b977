package wal

import (
	"context"
	"errors"
	"time"
)

// StreamOptions configure Stream.
type StreamOptions struct {
	// Conn is a libpq connection string (URL or key=value) of the managed
	// cluster; Stream adds replication=true.
	Conn string
	// Slot is the physical replication slot, created when missing. Default
	// DefaultSlot.
	Slot string
	// FlushInterval is how often the segment being received is written to
	// the archive while WAL arrives. Default DefaultFlushInterval.
	FlushInterval time.Duration
	// Logf, when set, gets one line per connection, segment and error.
	Logf func(format string, args ...any)
}

// Defaults of StreamOptions.
const (
	DefaultSlot          = "readiness_wal"
	DefaultFlushInterval = 500 * time.Millisecond
)

// Stream receives the managed cluster's WAL over physical replication through
// a slot and archives it, until ctx is done. (Being built.)
func Stream(ctx context.Context, cfg Config, o StreamOptions) error {
	return errors.New("wal: streaming is not built yet")
}

// ArchivedThrough returns the LSN up to which the timeline's WAL is in the
// archive: the end of the newest complete segment, or of the streamed part of
// the segment after it. (Being built.)
func ArchivedThrough(ctx context.Context, cfg Config, timeline uint32) (uint64, error) {
	return 0, errors.New("wal: not built yet")
}
