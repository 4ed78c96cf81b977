package physical_test

// TEMPORARY: a by-hand comparison with pgBackRest; deleted before hand-over.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/backup/physical"
)

type zSink struct {
	root string
	rcp  age.Recipient
}

var encPool sync.Pool

type zObj struct {
	f   *os.File
	buf *bufio.Writer
	enc io.WriteCloser
	z   *zstd.Encoder
}

func (s *zSink) Create(name string) (io.WriteCloser, error) {
	p := filepath.Join(s.root, filepath.FromSlash(name)) + ".zst.age"
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	o := &zObj{f: f, buf: bufio.NewWriterSize(f, 256<<10)}
	o.enc, err = age.Encrypt(o.buf, s.rcp)
	if err != nil {
		return nil, err
	}
	if e, ok := encPool.Get().(*zstd.Encoder); ok {
		e.Reset(o.enc)
		o.z = e
	} else {
		o.z, err = zstd.NewWriter(o.enc, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(2<<20), zstd.WithEncoderCRC(true))
		if err != nil {
			return nil, err
		}
	}
	return o, nil
}

func (o *zObj) Write(p []byte) (int, error) { return o.z.Write(p) }
func (o *zObj) Close() error {
	if err := o.z.Close(); err != nil {
		return err
	}
	o.z.Reset(nil)
	encPool.Put(o.z)
	if err := o.enc.Close(); err != nil {
		return err
	}
	if err := o.buf.Flush(); err != nil {
		return err
	}
	if os.Getenv("NOSYNC") != "" {
	} else if err := o.f.Sync(); err != nil {
		return err
	}
	return o.f.Close()
}

func dirBytes(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

func TestCompareWithPgBackRest(t *testing.T) {
	if os.Getenv("COMPARE") == "" {
		t.Skip()
	}
	ctx := context.Background()
	sock := "/tmp/pgbr/sock"
	os.MkdirAll(sock, 0o700)
	os.Chown(sock, 101, 104)
	c := startCluster(t, map[string]string{"shared_buffers": "128MB", "max_wal_size": "1GB", "unix_socket_directories": sock})
	require.NoError(t, c.CreateDatabase(ctx, "bench"))
	rows := os.Getenv("ROWS")
	if rows == "" {
		rows = "150000"
	}
	var stmts []string
	for i := range 4 {
		stmts = append(stmts,
			fmt.Sprintf(`CREATE TABLE sat_%d (hk bytea NOT NULL, load_date timestamptz NOT NULL, tenant_hk bytea NOT NULL,
				payload text NOT NULL, PRIMARY KEY (hk, load_date))`, i),
			fmt.Sprintf(`INSERT INTO sat_%d SELECT sha256(int8send(g)), now() - g * interval '1 second',
				sha256(int8send(g %% 7)), md5(random()::text) || md5(random()::text) || md5(random()::text)
				FROM generate_series(1, %s) g`, i, rows))
	}
	stmts = append(stmts, "VACUUM ANALYZE", "CHECKPOINT")
	execSQL(t, c.URL("bench"), stmts...)
	t.Logf("data dir %.1f MB", float64(dataDirSizeT(c.DataDir()))/1e6)

	id, err := age.GenerateX25519Identity()
	require.NoError(t, err)
	runs := 3
	if os.Getenv("RUNS") == "1" {
		runs = 1
	}
	for i := range runs {
		root := filepath.Join(t.TempDir(), "z")
		start := time.Now()
		var last string
		m, err := physical.Backup(ctx, &zSink{root: root, rcp: id.Recipient()}, physical.Options{ConnString: c.URL("postgres"),
			Progress: func(p physical.Progress) {
				if p.Phase != last {
					t.Logf("  %v phase %s", time.Since(start), p.Phase)
					last = p.Phase
				}
			}})
		require.NoError(t, err)
		t.Logf("Backup+zstd3+age run %d: %v, read %d, stored %d", i, time.Since(start), m.BytesScanned, dirBytes(root))
		start = time.Now()
		require.NoError(t, physical.Restore(ctx, []*physical.Manifest{m}, []physical.Source{unzSource{root: root, id: id}}, filepath.Join(t.TempDir(), "r"), nil))
		t.Logf("Restore run %d: %v", i, time.Since(start))
		st, _ := os.ReadFile("/proc/self/status")
		for _, l := range strings.Split(string(st), "\n") {
			if strings.HasPrefix(l, "VmHWM") {
				t.Log(l)
			}
		}
	}
	if os.Getenv("NOPGBR") != "" {
		return
	}
	conf := "/tmp/pgbr/empty.conf"
	os.WriteFile(conf, nil, 0o644)
	for i := range runs {
		repo := fmt.Sprintf("/tmp/pgbr/repo%d", i)
		os.RemoveAll(repo)
		require.NoError(t, c.MkdirOwned(repo))
		args := []string{"--config=" + conf, "--stanza=bench", "--pg1-path=" + c.DataDir(), "--pg1-socket-path=" + sock,
			fmt.Sprintf("--pg1-port=%d", c.Port()), "--repo1-path=" + repo, "--lock-path=/tmp/pgbr/lock", "--log-path=/tmp/pgbr/log",
			"--log-level-console=warn", "--log-level-file=off"}
		run := func(extra ...string) (time.Duration, string) {
			cmd := exec.Command("pgbackrest", append(append([]string{}, args...), extra...)...)
			cmd.Dir = "/"
			c.RunAsOwner(cmd)
			start := time.Now()
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, string(out))
			return time.Since(start), string(out)
		}
		run("stanza-create")
		d, out := run("--type=full", "--compress-type=zst", "--compress-level=3", "--process-max=2", "--start-fast", "--archive-check=n", "backup")
		t.Logf("pgbackrest full run %d: %v, repo %d bytes %s", i, d, dirBytes(repo), out)
		rdir := fmt.Sprintf("/tmp/pgbr/restore%d", i)
		os.RemoveAll(rdir)
		require.NoError(t, c.MkdirOwned(rdir))
		cmd := exec.Command("pgbackrest", "--config="+conf, "--stanza=bench", "--pg1-path="+rdir, "--repo1-path="+repo,
			"--lock-path=/tmp/pgbr/lock", "--log-path=/tmp/pgbr/log", "--log-level-console=warn", "--log-level-file=off", "--process-max=2", "restore")
		cmd.Dir = "/"
		c.RunAsOwner(cmd)
		start := time.Now()
		o, err := cmd.CombinedOutput()
		require.NoError(t, err, string(o))
		t.Logf("pgbackrest restore run %d: %v", i, time.Since(start))
		os.RemoveAll(rdir)
		os.RemoveAll(repo)
	}
}

func dataDirSizeT(dir string) int64 {
	var total int64
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		if fi.IsDir() && fi.Name() == "pg_wal" {
			return filepath.SkipDir
		}
		if fi.Mode().IsRegular() {
			total += fi.Size()
		}
		return nil
	})
	return total
}

type unzSource struct {
	root string
	id   *age.X25519Identity
}

type rc struct {
	io.Reader
	f *os.File
	d *zstd.Decoder
}

func (r rc) Close() error { r.d.Close(); return r.f.Close() }

func (s unzSource) Open(name string) (io.ReadCloser, error) {
	f, err := os.Open(filepath.Join(s.root, filepath.FromSlash(name)) + ".zst.age")
	if err != nil {
		return nil, err
	}
	p, err := age.Decrypt(bufio.NewReaderSize(f, 256<<10), s.id)
	if err != nil {
		return nil, err
	}
	d, err := zstd.NewReader(p, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, err
	}
	return rc{Reader: d, f: f, d: d}, nil
}
