package storage

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
)

// Sealer is the pipeline every stored object goes through, backup objects (ObjectWriter) and
// archived WAL (internal/wal) alike: the plaintext is hashed (SHA-256), compressed with zstd
// when asked, encrypted with age to the repository's recipient, and buffered on its way to
// the file. So `age -d | zstd -d` reads every object the same way, and there is one place
// where the format is decided. The caller owns the file: it syncs, closes and renames it.
type Sealer struct {
	buf   *bufio.Writer
	disk  CountingWriter
	enc   io.WriteCloser // age
	zenc  *zstd.Encoder  // nil when not compressed
	level zstd.EncoderLevel
	sink  io.Writer // zenc or enc
	hash  hash.Hash
	size  int64
}

// NewSealer starts an object written to dst, compressed at level when compress is set.
// onStored, when set, hears of every byte that reaches dst (progress while a large object is
// still being written). Close must be called, also after an error, to return the pooled
// encoder and buffer.
func NewSealer(dst io.Writer, k *Key, compress bool, level zstd.EncoderLevel, onStored func(n int64)) (*Sealer, error) {
	s := &Sealer{level: level, hash: sha256.New()}
	s.buf = getBufio(dst)
	s.disk = CountingWriter{W: s.buf, OnWrite: onStored}
	var err error
	if s.enc, err = age.Encrypt(&s.disk, k.recipient); err != nil {
		s.release()
		return nil, err
	}
	s.sink = s.enc
	if compress {
		if s.zenc, err = GetEncoder(s.enc, level); err != nil {
			s.release()
			return nil, err
		}
		s.sink = s.zenc
	}
	return s, nil
}

// Write hashes, compresses and encrypts p.
func (s *Sealer) Write(p []byte) (int, error) {
	s.hash.Write(p)
	n, err := s.sink.Write(p)
	s.size += int64(n)
	return n, err
}

// Finish flushes zstd, writes age's last chunk and flushes the buffer to dst. The object is
// then complete in dst (not yet synced).
func (s *Sealer) Finish() error {
	if s.zenc != nil {
		if err := s.zenc.Close(); err != nil {
			return err
		}
	}
	if err := s.enc.Close(); err != nil {
		return err
	}
	return s.buf.Flush()
}

// Close returns the pooled encoder and buffer; the Sealer is unusable afterwards.
func (s *Sealer) Close() { s.release() }

// Size is the number of plaintext bytes written.
func (s *Sealer) Size() int64 { return s.size }

// StoredSize is the number of bytes that reached dst.
func (s *Sealer) StoredSize() int64 { return s.disk.N }

// SHA256 is the hex SHA-256 of the plaintext written so far.
func (s *Sealer) SHA256() string { return hex.EncodeToString(s.hash.Sum(nil)) }

func (s *Sealer) release() {
	if s.zenc != nil {
		PutEncoder(s.zenc, s.level)
		s.zenc = nil
	}
	if s.buf != nil {
		putBufio(s.buf)
		s.buf = nil
	}
	s.sink = nil
}

// CountingWriter counts the bytes written through it to W, and tells OnWrite (when set) of
// each write.
type CountingWriter struct {
	W       io.Writer
	N       int64
	OnWrite func(n int64)
}

func (c *CountingWriter) Write(p []byte) (int, error) {
	n, err := c.W.Write(p)
	c.N += int64(n)
	if c.OnWrite != nil {
		c.OnWrite(int64(n))
	}
	return n, err
}
