package storage

import (
	"bufio"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Compression uses zstd level 3 (klauspost's SpeedDefault), the level of the
// zstd command line and of pgBackRest's default, with a 2 MiB window: that is
// the window zstd itself picks for level 3 on large inputs, it keeps an encoder
// at a few MiB, and any zstd decoder accepts it. Concurrency 1 makes the
// encoder and the decoder synchronous, so each object costs one encoder and no
// goroutines; parallelism comes from writing several objects at once.
const (
	encoderWindow    = 2 << 20
	decoderMaxWindow = 64 << 20
	fileBufferSize   = 256 << 10
)

// Compression levels: Default for backup objects; Fastest for WAL (internal/wal), which is
// archived one segment at a time on the recovery point's path.
const (
	LevelDefault = zstd.SpeedDefault
	LevelFastest = zstd.SpeedFastest
)

func encoderOptions(level zstd.EncoderLevel) []zstd.EOption {
	return []zstd.EOption{
		zstd.WithEncoderLevel(level),
		zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(encoderWindow),
		zstd.WithEncoderCRC(true),
	}
}

// The decoder skips the frame's own checksum: every reader checks the plaintext's SHA-256
// against the manifest (and age authenticates every chunk), which the checksum would only repeat
// (3% of a restore's CPU). Encoders still write it, for zstd -d by hand.
var decoderOptions = []zstd.DOption{
	zstd.WithDecoderConcurrency(1),
	zstd.WithDecoderLowmem(true),
	zstd.WithDecoderMaxWindow(decoderMaxWindow),
	zstd.IgnoreChecksum(true),
}

// Encoders and decoders are pooled: allocating their tables for each of the
// thousands of small files in a data directory would cost more than
// compressing them. The pools hold at most as many as are in use at once.
var (
	encoderPools = map[zstd.EncoderLevel]*sync.Pool{LevelDefault: {}, LevelFastest: {}}
	decoderPool  sync.Pool
	bufioPool    = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, fileBufferSize) }}
)

// GetEncoder returns a pooled zstd encoder at level (LevelDefault or LevelFastest) writing to
// w; the standard `zstd -d` reads what it writes. Return it with PutEncoder after Close.
func GetEncoder(w io.Writer, level zstd.EncoderLevel) (*zstd.Encoder, error) {
	if e, ok := encoderPools[level].Get().(*zstd.Encoder); ok {
		e.Reset(w)
		return e, nil
	}
	return zstd.NewWriter(w, encoderOptions(level)...)
}

// PutEncoder returns a closed encoder of level to its pool, dropping its reference to the
// object's writer.
func PutEncoder(e *zstd.Encoder, level zstd.EncoderLevel) {
	e.Reset(nil)
	encoderPools[level].Put(e)
}

// GetDecoder returns a pooled zstd decoder reading r; return it with PutDecoder.
func GetDecoder(r io.Reader) (*zstd.Decoder, error) { return getDecoder(r) }

// PutDecoder returns a decoder to the pool.
func PutDecoder(d *zstd.Decoder) { putDecoder(d) }

func getDecoder(r io.Reader) (*zstd.Decoder, error) {
	if d, ok := decoderPool.Get().(*zstd.Decoder); ok {
		if err := d.Reset(r); err != nil {
			return nil, err
		}
		return d, nil
	}
	return zstd.NewReader(r, decoderOptions...)
}

func putDecoder(d *zstd.Decoder) {
	if err := d.Reset(nil); err != nil {
		d.Close()
		return
	}
	decoderPool.Put(d)
}

func getBufio(w io.Writer) *bufio.Writer {
	b := bufioPool.Get().(*bufio.Writer)
	b.Reset(w)
	return b
}

func putBufio(b *bufio.Writer) {
	b.Reset(nil)
	bufioPool.Put(b)
}
