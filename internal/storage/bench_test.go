package storage

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const (
	benchTotal = 256 << 20 // bytes written per benchmark iteration
	benchBlock = 8 << 20   // distinct half-random data, four times the 2 MiB zstd window
)

var benchData = sync.OnceValue(func() []byte { return halfRandom(42, benchBlock) })

// writeBench streams size bytes of half-random data into one object, in 1 MiB
// writes as a file copy would make them.
func writeBench(b *testing.B, w *Writer, name string, compress bool, size int) ObjectInfo {
	data := benchData()
	ow, err := w.Create(name, compress)
	require.NoError(b, err)
	for written := 0; written < size; {
		off := written % len(data)
		n := min(1<<20, size-written, len(data)-off)
		_, err := ow.Write(data[off : off+n])
		require.NoError(b, err)
		written += n
	}
	require.NoError(b, ow.Close())
	return ow.Info()
}

// BenchmarkWrite measures the throughput of one object's pipeline (SHA-256,
// zstd level 3, age, fsync) on one goroutine, and with 2 and 4 objects written
// at once. Peak RSS is reported for the whole process, data included.
func BenchmarkWrite(b *testing.B) {
	benchData()
	for _, compress := range []bool{true, false} {
		for _, parallel := range []int{1, 2, 4} {
			b.Run(fmt.Sprintf("compress=%t/objects=%d", compress, parallel), func(b *testing.B) {
				repo, _ := newTestRepository(b)
				b.SetBytes(benchTotal)
				resetPeakRSS()
				var stored int64
				cpu := cpuTime()
				b.ResetTimer()
				for i := range b.N {
					w, err := repo.NewBackup("bench", strconv.Itoa(i))
					require.NoError(b, err)
					var wg sync.WaitGroup
					for j := range parallel {
						wg.Go(func() { writeBench(b, w, fmt.Sprintf("obj-%d", j), compress, benchTotal/parallel) })
					}
					wg.Wait()
					stored = w.StoredBytes()
					require.NoError(b, w.Abort())
				}
				b.StopTimer()
				b.ReportMetric(float64(b.N)*benchTotal/1e6/(cpuTime()-cpu).Seconds(), "MB/CPU-s")
				b.ReportMetric(float64(stored)/benchTotal, "stored/plain")
				if rss := peakRSS(); rss > 0 {
					b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MiB")
				}
			})
		}
	}
}

// BenchmarkWriteSmallObjects measures a data directory's many small files,
// where the fsync of each file and the per-object setup dominate.
func BenchmarkWriteSmallObjects(b *testing.B) {
	const objects, size = 200, 8 << 10
	repo, _ := newTestRepository(b)
	b.SetBytes(objects * size)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		w, err := repo.NewBackup("small", strconv.Itoa(i))
		require.NoError(b, err)
		for j := range objects {
			writeBench(b, w, fmt.Sprintf("base/1/%d", j), true, size)
		}
		require.NoError(b, w.Abort())
	}
	b.ReportMetric(float64(b.N*objects)/b.Elapsed().Seconds(), "objects/s")
}

// BenchmarkVerify measures reading an object back: age, zstd and SHA-256.
func BenchmarkVerify(b *testing.B) {
	for _, compress := range []bool{true, false} {
		b.Run(fmt.Sprintf("compress=%t", compress), func(b *testing.B) {
			repo, _ := newTestRepository(b)
			w, err := repo.NewBackup("", "verify")
			require.NoError(b, err)
			info := writeBench(b, w, "obj", compress, benchTotal)
			require.NoError(b, w.Commit(struct{}{}))
			rd, err := repo.OpenBackup("", "verify")
			require.NoError(b, err)
			b.SetBytes(benchTotal)
			b.ResetTimer()
			for range b.N {
				require.NoError(b, rd.Verify(info))
			}
		})
	}
}

// cpuTime returns the user and system CPU time this process has used. Bytes
// per CPU second is a figure that other processes on a shared machine do not
// disturb, unlike MB/s.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// resetPeakRSS resets the kernel's high-water mark of this process's RSS
// (Linux 4.0 and later), so peakRSS reports the benchmark alone.
func resetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSS returns VmHWM, the peak resident set size, in bytes, or 0 when
// /proc is not available.
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	status, err := io.ReadAll(f)
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
