package logical

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// rowSum is an order-independent checksum of a set of rows: the count of the rows and the
// sum, modulo 2^128, of the MD5 digests of their COPY text lines. Unlike a digest of the rows
// in some order it needs neither sorting nor memory, and sums of disjoint sets of rows add up,
// so the checksum of a table restored from a FULL plus INCREMENTALs is known in advance.
type rowSum struct {
	hi, lo uint64
	rows   int64
}

// add adds one row, given as its COPY text line without the newline.
func (s *rowSum) add(line []byte) {
	d := md5.Sum(line)
	var carry uint64
	s.lo, carry = bits.Add64(s.lo, binary.BigEndian.Uint64(d[8:]), 0)
	s.hi, _ = bits.Add64(s.hi, binary.BigEndian.Uint64(d[:8]), carry)
	s.rows++
}

// merge adds the rows of o.
func (s *rowSum) merge(o rowSum) {
	var carry uint64
	s.lo, carry = bits.Add64(s.lo, o.lo, 0)
	s.hi, _ = bits.Add64(s.hi, o.hi, carry)
	s.rows += o.rows
}

// String returns the checksum (not the count) as 32 hexadecimal digits.
func (s rowSum) String() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], s.hi)
	binary.BigEndian.PutUint64(b[8:], s.lo)
	return hex.EncodeToString(b[:])
}

// parseRowSum reads a checksum written by String, with the given row count.
func parseRowSum(checksum string, rows int64) (rowSum, error) {
	b, err := hex.DecodeString(checksum)
	if err != nil || len(b) != 16 {
		return rowSum{}, fmt.Errorf("logical: invalid checksum %q", checksum)
	}
	return rowSum{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:]), rows: rows}, nil
}

// lineSplitter cuts a stream of COPY text into rows. In text format a row ends with a
// newline and a newline inside a value is written as \n, so every newline ends a row.
type lineSplitter struct {
	carry []byte
	line  func([]byte)
}

func (l *lineSplitter) write(p []byte) {
	if len(l.carry) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.carry = append(l.carry, p...)
			return
		}
		l.carry = append(l.carry, p[:i]...)
		l.line(l.carry)
		l.carry = l.carry[:0]
		p = p[i+1:]
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.carry = append(l.carry, p...)
			return
		}
		l.line(p[:i])
		p = p[i+1:]
	}
}

// close reports a last row without its newline, which COPY never writes.
func (l *lineSplitter) close() error {
	if len(l.carry) > 0 {
		return errors.New("the data ends in the middle of a row")
	}
	return nil
}

// summingWriter computes the rowSum of the COPY text written to it.
type summingWriter struct {
	split lineSplitter
	sum   rowSum
}

func newSummingWriter() *summingWriter {
	w := &summingWriter{}
	w.split.line = w.sum.add
	return w
}

func (w *summingWriter) Write(p []byte) (int, error) {
	w.split.write(p)
	return len(p), nil
}

// copyChecksum computes the rowSum of what a COPY ... TO STDOUT returns.
func copyChecksum(ctx context.Context, conn *pgconn.PgConn, copySQL string) (rowSum, error) {
	w := newSummingWriter()
	if _, err := conn.CopyTo(ctx, w, copySQL); err != nil {
		return rowSum{}, err
	}
	if err := w.split.close(); err != nil {
		return rowSum{}, err
	}
	return w.sum, nil
}

// markTracker finds the greatest load_date among the rows of a COPY text stream, which
// becomes the table's high-water mark, recorded for the manifest's reader (rows are selected
// by transaction id, never by it). It compares the values as text, which orders them
// correctly for the form that DateStyle ISO and TimeZone UTC give every timestamp from year
// 1000 to 9999 ("2025-01-02 03:04:05[.ffffff][+00]"). Any other value (NULL, infinity, a
// date BC) makes the table's mark unknown.
type markTracker struct {
	field   int  // index of load_date among the COPY columns
	tz      bool // timestamptz rather than timestamp
	max     []byte
	unknown bool
}

func (m *markTracker) observe(line []byte) {
	if m.unknown {
		return
	}
	v := line
	for range m.field {
		i := bytes.IndexByte(v, '\t')
		if i < 0 {
			m.unknown = true
			return
		}
		v = v[i+1:]
	}
	if i := bytes.IndexByte(v, '\t'); i >= 0 {
		v = v[:i]
	}
	if !isPlainTimestamp(v, m.tz) {
		m.unknown = true
		return
	}
	if bytes.Compare(v, m.max) > 0 {
		m.max = append(m.max[:0], v...)
	}
}

// mark returns the greatest load_date seen, or nil when none was seen or one could not be
// ordered.
func (m *markTracker) mark() (*time.Time, error) {
	if m.unknown || len(m.max) == 0 {
		return nil, nil
	}
	layout := "2006-01-02 15:04:05"
	if m.tz {
		layout += "-07"
	}
	t, err := time.Parse(layout, string(m.max))
	if err != nil {
		return nil, fmt.Errorf("logical: reading load_date %q: %w", m.max, err)
	}
	t = t.UTC()
	return &t, nil
}

// isPlainTimestamp reports whether v is "YYYY-MM-DD HH:MM:SS", with an optional fraction of
// up to six digits and, for timestamptz, the suffix "+00".
func isPlainTimestamp(v []byte, tz bool) bool {
	const form = "0000-00-00 00:00:00"
	if len(v) < len(form) {
		return false
	}
	for i := range len(form) {
		if form[i] == '0' {
			if v[i] < '0' || v[i] > '9' {
				return false
			}
		} else if v[i] != form[i] {
			return false
		}
	}
	rest := v[len(form):]
	if len(rest) > 0 && rest[0] == '.' {
		n := 1
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 1 || n > 7 {
			return false
		}
		rest = rest[n:]
	}
	if tz {
		return string(rest) == "+00"
	}
	return len(rest) == 0
}

// verifyingReader passes an object's COPY text through while computing its rowSum, and
// fails at the end of the object when the rows or the checksum differ from the manifest's.
type verifyingReader struct {
	r     io.Reader
	name  string
	want  rowSum
	sw    *summingWriter
	err   error
	ended bool
}

func newVerifyingReader(r io.Reader, name string, want rowSum) *verifyingReader {
	return &verifyingReader{r: r, name: name, want: want, sw: newSummingWriter()}
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	v.sw.split.write(p[:n])
	if errors.Is(err, io.EOF) && !v.ended {
		v.ended = true
		if cerr := v.sw.split.close(); cerr != nil {
			v.err = fmt.Errorf("%w: object %s: %v", ErrVerifyFailed, v.name, cerr)
		} else if got := v.sw.sum; got != v.want {
			v.err = fmt.Errorf("%w: object %s holds %d rows with checksum %s; the manifest records %d rows with checksum %s",
				ErrVerifyFailed, v.name, got.rows, got, v.want.rows, v.want)
		}
		if v.err != nil {
			return n, v.err
		}
	}
	return n, err
}
