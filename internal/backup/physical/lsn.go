package physical

import (
	"encoding/binary"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// lsn is a WAL position, PostgreSQL's XLogRecPtr.
type lsn uint64

// parseLSN reads the text form of pg_lsn, such as "0/1A2B3C4D".
func parseLSN(s string) (lsn, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("physical: invalid LSN %q", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("physical: invalid LSN %q", s)
	}
	return lsn(h<<32 | l), nil
}

// String writes an LSN the way PostgreSQL does.
func (l lsn) String() string { return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l)) }

// pageLSN returns pd_lsn, the first field of every page header: a PageXLogRecPtr of two
// uint32 (xlogid, then xrecoff), in the server's byte order, little endian on the
// platforms this service runs on.
func pageLSN(page []byte) lsn {
	return lsn(uint64(binary.LittleEndian.Uint32(page[0:4]))<<32 | uint64(binary.LittleEndian.Uint32(page[4:8])))
}

// walSegmentName returns the file name of the WAL segment segno of timeline tli, as
// XLogFileName does.
func walSegmentName(tli int, segno uint64, segSize int64) string {
	perID := uint64(0x100000000) / uint64(segSize)
	return fmt.Sprintf("%08X%08X%08X", tli, segno/perID, segno%perID)
}

// isWALSegmentName reports whether name is a WAL segment file name (24 hex digits).
func isWALSegmentName(name string) bool { return walSegmentNameRE.MatchString(name) }

var walSegmentNameRE = regexp.MustCompile(`^[0-9A-F]{24}$`)

// labelTimeline reads "START TIMELINE: n" from a backup_label.
func labelTimeline(label string) (int, error) {
	m := regexp.MustCompile(`(?m)^START TIMELINE: (\d+)$`).FindStringSubmatch(label)
	if m == nil {
		return 0, fmt.Errorf("physical: backup label has no START TIMELINE:\n%s", label)
	}
	return strconv.Atoi(m[1])
}
