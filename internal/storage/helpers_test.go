package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// newTestRepository opens a repository in a fresh temporary directory with a
// freshly generated key.
func newTestRepository(t testing.TB) (*Repository, *Key) {
	t.Helper()
	s, err := GenerateKey()
	require.NoError(t, err)
	key, err := ParseKey(s)
	require.NoError(t, err)
	repo, err := Open(filepath.Join(t.TempDir(), "repo"), key)
	require.NoError(t, err)
	t.Cleanup(func() { repo.Close() })
	return repo, key
}

// halfRandom returns n bytes shaped like database pages: in every 8 KiB block
// half the bytes are random and half are repetitive text, so zstd has work to
// do but cannot compress the data to nothing.
func halfRandom(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	const text = "tenant_hk=acme load_date=2026-11-25 record_source=one_vault status=ACTIVE "
	buf := make([]byte, n)
	for off := 0; off < n; off += 8192 {
		block := buf[off:min(off+8192, n)]
		half := len(block) / 2
		for i := 0; i < half; i += 8 {
			v := rng.Uint64()
			for j := 0; j < 8 && i+j < half; j++ {
				block[i+j] = byte(v >> (8 * j))
			}
		}
		for i := half; i < len(block); i++ {
			block[i] = text[(i+off/8192)%len(text)]
		}
	}
	return buf
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// writeObject writes data as one object and returns its description.
func writeObject(t testing.TB, w *Writer, name string, compress bool, data []byte) ObjectInfo {
	t.Helper()
	ow, err := w.Create(name, compress)
	require.NoError(t, err)
	// Several writes of uneven sizes, as a streaming caller would make.
	for rest := data; len(rest) > 0; {
		n := min(len(rest), 100_003)
		_, err := ow.Write(rest[:n])
		require.NoError(t, err)
		rest = rest[n:]
	}
	require.NoError(t, ow.Close())
	return ow.Info()
}

// readObject reads one object back through OpenObject.
func readObject(t testing.TB, rd *Reader, info ObjectInfo) []byte {
	t.Helper()
	rc, err := rd.OpenObject(info)
	require.NoError(t, err)
	defer rc.Close()
	got, err := io.ReadAll(rc)
	require.NoError(t, err)
	return got
}

// flipByte inverts the bits of the byte at offset off of a file.
func flipByte(t testing.TB, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	b := make([]byte, 1)
	_, err = f.ReadAt(b, off)
	require.NoError(t, err)
	b[0] ^= 0xff
	_, err = f.WriteAt(b, off)
	require.NoError(t, err)
}
