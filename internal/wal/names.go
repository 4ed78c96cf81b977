package wal

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// ErrInvalidName is returned for a file name that is not one PostgreSQL
// archives: a WAL segment (24 hex digits), a .partial segment, a .backup label
// (segment.offset.backup) or a timeline .history file; or, for Fetch only, the
// streaming receiver's .stream file. Nothing else may be pushed or fetched,
// which also keeps names from reaching outside the archive.
var ErrInvalidName = errors.New("wal: not a WAL file name")

// Kind is the sort of file a WAL file name denotes.
type Kind int

// The files PostgreSQL archives.
const (
	KindSegment     Kind = iota + 1 // 000000010000000000000003
	KindPartial                     // 000000010000000000000003.partial
	KindBackupLabel                 // 000000010000000000000003.00000028.backup
	KindHistory                     // 00000002.history
	// KindStreamed is the streaming receiver's copy of the segment it is
	// receiving (see Stream): the first bytes of a segment, replaced as more
	// arrive. PostgreSQL never archives such a file, so Push refuses the name,
	// and the suffix cannot collide with the .partial PostgreSQL archives after
	// a promotion.
	KindStreamed // 000000010000000000000003.stream
)

// String names the kind as PostgreSQL's documentation does.
func (k Kind) String() string {
	switch k {
	case KindSegment:
		return "segment"
	case KindPartial:
		return "partial segment"
	case KindBackupLabel:
		return "backup label"
	case KindHistory:
		return "timeline history"
	case KindStreamed:
		return "streamed partial segment"
	}
	return "unknown"
}

var (
	segmentRE = regexp.MustCompile(`^[0-9A-F]{24}$`)
	partialRE = regexp.MustCompile(`^[0-9A-F]{24}\.partial$`)
	labelRE   = regexp.MustCompile(`^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$`)
	historyRE = regexp.MustCompile(`^[0-9A-F]{8}\.history$`)
	streamRE  = regexp.MustCompile(`^[0-9A-F]{24}\.stream$`)
)

// streamSuffix ends the name of a streamed partial: <segment>.stream.
const streamSuffix = ".stream"

// ParseName returns the kind and timeline of a WAL file name, or an error
// wrapping ErrInvalidName. Timeline 0 does not exist.
func ParseName(name string) (Kind, uint32, error) {
	var kind Kind
	switch {
	case segmentRE.MatchString(name):
		kind = KindSegment
	case partialRE.MatchString(name):
		kind = KindPartial
	case labelRE.MatchString(name):
		kind = KindBackupLabel
	case historyRE.MatchString(name):
		kind = KindHistory
	case streamRE.MatchString(name):
		kind = KindStreamed
	default:
		return 0, 0, fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	tli, _ := strconv.ParseUint(name[:8], 16, 32)
	if tli == 0 {
		return 0, 0, fmt.Errorf("%w: %q has timeline 0", ErrInvalidName, name)
	}
	return kind, uint32(tli), nil
}

// SegmentName returns the name of the WAL segment segno of timeline tli for
// segments of segSize bytes, as PostgreSQL's XLogFileName does.
func SegmentName(tli uint32, segno uint64, segSize int64) string {
	perID := uint64(0x100000000) / uint64(segSize)
	return fmt.Sprintf("%08X%08X%08X", tli, segno/perID, segno%perID)
}

// ParseSegmentName returns the timeline and segment number of a segment name
// for segments of segSize bytes: the inverse of SegmentName.
func ParseSegmentName(name string, segSize int64) (tli uint32, segno uint64, err error) {
	if !segmentRE.MatchString(name) {
		return 0, 0, fmt.Errorf("%w: %q is not a segment name", ErrInvalidName, name)
	}
	if !ValidSegmentSize(segSize) {
		return 0, 0, fmt.Errorf("wal: invalid segment size %d", segSize)
	}
	t, _ := strconv.ParseUint(name[:8], 16, 32)
	log, _ := strconv.ParseUint(name[8:16], 16, 32)
	seg, _ := strconv.ParseUint(name[16:], 16, 32)
	perID := uint64(0x100000000) / uint64(segSize)
	if seg >= perID {
		return 0, 0, fmt.Errorf("%w: %q is not a segment name for %d-byte segments", ErrInvalidName, name, segSize)
	}
	return uint32(t), log*perID + seg, nil
}

// SegmentOf returns the number of the segment holding the WAL byte at lsn.
func SegmentOf(lsn uint64, segSize int64) uint64 {
	return lsn / uint64(segSize)
}

// ValidSegmentSize reports whether n is a WAL segment size initdb accepts: a
// power of two from 1 MiB to 1 GiB.
func ValidSegmentSize(n int64) bool {
	return n >= 1<<20 && n <= 1<<30 && n&(n-1) == 0
}

// ParseLSN reads the text form of pg_lsn, such as "0/1A2B3C4D".
func ParseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("wal: invalid LSN %q", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("wal: invalid LSN %q", s)
	}
	return h<<32 | l, nil
}

// FormatLSN writes an LSN the way PostgreSQL does.
func FormatLSN(lsn uint64) string {
	return fmt.Sprintf("%X/%X", uint32(lsn>>32), uint32(lsn))
}

// timelineDir is the directory of a timeline's files inside wal/.
func timelineDir(tli uint32) string {
	return fmt.Sprintf("%08X", tli)
}
