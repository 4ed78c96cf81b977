package wal_test

import (
	"context"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/storage"
	"github.com/onevault/readiness/internal/wal"
)

// commandEnv makes the test binary act as `readiness`: TestMain then runs
// wal.Run on its arguments, the way cmd/readiness wires wal-push and wal-fetch,
// so that PostgreSQL's archive_command and restore_command can call it.
const commandEnv = "READINESS_WAL_TEST_COMMAND"

func TestMain(m *testing.M) {
	if os.Getenv(commandEnv) == "1" {
		os.Exit(wal.Run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// newKey returns a fresh repository key and a file holding it.
func newKey(t testing.TB) (*storage.Key, string) {
	t.Helper()
	secret, err := storage.GenerateKey()
	require.NoError(t, err)
	key, err := storage.ParseKey(secret)
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "key.txt")
	require.NoError(t, os.WriteFile(file, []byte(secret+"\n"), 0o600))
	return key, file
}

// newConfig returns a Config on a fresh repository.
func newConfig(t testing.TB) wal.Config {
	t.Helper()
	key, file := newKey(t)
	return wal.Config{RepoPath: filepath.Join(t.TempDir(), "repo"), KeyFile: file, Key: key}
}

// fakeSegment writes a WAL-like file of size bytes named name into a fresh
// directory: random pages followed by zeros, as a segment after a switch.
func fakeSegment(t testing.TB, name string, size int, seed uint64) string {
	t.Helper()
	data := make([]byte, size)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := 0; i < size/2; i++ {
		data[i] = byte(r.Uint32())
	}
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return path
}

// objectPath is where an archived file's object lives.
func objectPath(cfg wal.Config, name string) string {
	return filepath.Join(cfg.RepoPath, "wal", name[:8], name+".zst.age")
}

func recordPath(cfg wal.Config, name string) string {
	return filepath.Join(cfg.RepoPath, "wal", name[:8], name+".json")
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

// copyTree copies a directory tree of regular files.
func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	require.NoError(t, filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	}))
}

// ownerOf returns the uid and gid that own path.
func ownerOf(t testing.TB, path string) (int, int) {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}

// pgxConnect connects to a cluster.
func pgxConnect(ctx context.Context, url string) (*pgx.Conn, error) {
	return pgx.Connect(ctx, url)
}
