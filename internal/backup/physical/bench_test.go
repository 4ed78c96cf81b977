package physical_test

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/backup/physical"
)

// BenchmarkFullBackup backs up a cluster holding a generated database of about 200 MB
// whose payloads do not compress to nothing, with Backup into a directory that fsyncs
// every object, and with pg_basebackup -X fetch for comparison. Both report MB/s of the
// data directory (without pg_wal); Backup also reports the process's peak RSS.
//
//	go test ./internal/backup/physical/ -run '^$' -bench FullBackup -benchtime 5x
func BenchmarkFullBackup(b *testing.B) {
	ctx := context.Background()
	c := startCluster(b, map[string]string{"shared_buffers": "128MB", "max_wal_size": "1GB"})
	require.NoError(b, c.CreateDatabase(ctx, "bench"))
	var stmts []string
	for i := range 4 {
		stmts = append(stmts,
			fmt.Sprintf(`CREATE TABLE sat_%d (hk bytea NOT NULL, load_date timestamptz NOT NULL, tenant_hk bytea NOT NULL,
				payload text NOT NULL, PRIMARY KEY (hk, load_date))`, i),
			fmt.Sprintf(`INSERT INTO sat_%d SELECT sha256(int8send(g)), now() - g * interval '1 second',
				sha256(int8send(g %% 7)), md5(random()::text) || md5(random()::text) || md5(random()::text)
				FROM generate_series(1, 150000) g`, i))
	}
	stmts = append(stmts, "VACUUM ANALYZE", "CHECKPOINT")
	execSQL(b, c.URL("bench"), stmts...)
	size := dataDirSize(b, c.DataDir())
	b.Logf("data directory: %.1f MB without pg_wal", float64(size)/1e6)

	b.Run("Backup", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			store := &dirStore{root: b.TempDir(), sync: true}
			b.StartTimer()
			m, err := physical.Backup(ctx, store, physical.Options{ConnString: c.URL("postgres")})
			require.NoError(b, err)
			b.StopTimer()
			require.NoError(b, os.RemoveAll(store.root))
			if i == 0 {
				b.Logf("read %d bytes, wrote %d bytes, %d files", m.BytesScanned, m.BytesWritten, len(m.Files))
			}
			b.StartTimer()
		}
		b.ReportMetric(float64(size)*float64(b.N)/1e6/b.Elapsed().Seconds(), "MB/s")
		b.ReportMetric(float64(peakRSS(b))/1e6, "peak-RSS-MB")
	})

	b.Run("pg_basebackup", func(b *testing.B) {
		bin := filepath.Join(c.BinDir(), "pg_basebackup")
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			dir := filepath.Join(b.TempDir(), "base")
			require.NoError(b, c.MkdirOwned(dir))
			cmd := exec.Command(bin, "-D", dir, "-X", "fetch", "-c", "fast", "-d", c.URL("postgres"))
			cmd.Dir = "/"
			c.RunAsOwner(cmd)
			b.StartTimer()
			out, err := cmd.CombinedOutput()
			require.NoError(b, err, string(out))
			b.StopTimer()
			require.NoError(b, os.RemoveAll(dir))
			b.StartTimer()
		}
		b.ReportMetric(float64(size)*float64(b.N)/1e6/b.Elapsed().Seconds(), "MB/s")
	})
}

// dataDirSize sums the sizes of the regular files of a data directory outside pg_wal.
func dataDirSize(b *testing.B, dir string) int64 {
	var total int64
	require.NoError(b, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // files come and go under a running server
		}
		if d.IsDir() && d.Name() == "pg_wal" {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				total += fi.Size()
			}
		}
		return nil
	}))
	return total
}

// peakRSS returns the process's peak resident set size (VmHWM) in bytes.
func peakRSS(b *testing.B) int64 {
	f, err := os.Open("/proc/self/status")
	require.NoError(b, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			require.NoError(b, err)
			return kb * 1024
		}
	}
	return 0
}
