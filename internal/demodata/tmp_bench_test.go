package demodata_test

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/demodata"
)

// clusterCPU returns the CPU seconds used by the cluster's processes so far.
func clusterCPU(b *testing.B) float64 {
	pidb, err := os.ReadFile("/tmp/ddpg/data/postmaster.pid")
	require.NoError(b, err)
	pm := strings.SplitN(string(pidb), "\n", 2)[0]
	field := func(pid string) []string {
		s, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			return nil
		}
		str := string(s)
		str = str[strings.LastIndex(str, ")")+2:]
		return strings.Fields(str) // field index: original N -> N-3
	}
	num := func(s string) float64 { v, _ := strconv.ParseFloat(s, 64); return v }
	f := field(pm)
	total := num(f[13-3]) + num(f[14-3]) + num(f[15-3]) + num(f[16-3])
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		ff := field(e.Name())
		if ff != nil && ff[4-3] == pm {
			total += num(ff[13-3]) + num(ff[14-3])
		}
	}
	return total / 100
}

func BenchmarkTmpWorkers(b *testing.B) {
	size, _ := demodata.ParseSize(os.Getenv("DD_SIZE"))
	for _, n := range []string{"a"} {
		w := 2
		b.Run(n, func(b *testing.B) {
			url := "postgres://postgres@/postgres?host=/tmp/ddpg&port=55432"
			name := "dd_w" + strconv.Itoa(w)
			conn := connect(b, url)
			_, err := conn.Exec(b.Context(), "DROP DATABASE IF EXISTS "+name)
			require.NoError(b, err)
			_, err = conn.Exec(b.Context(), "CREATE DATABASE "+name)
			require.NoError(b, err)
			durl := "postgres://postgres@/" + name + "?host=/tmp/ddpg&port=55432"
			for b.Loop() {
				cpu0 := clusterCPU(b)
				st, err := demodata.Generate(b.Context(), durl, demodata.Options{Tenants: []string{"t1", "t2", "t3", "t4"}, Size: size, Workers: w})
				require.NoError(b, err)
				cpu := clusterCPU(b) - cpu0
				b.ReportMetric(float64(st.Bytes)/1e6/st.Duration.Seconds(), "MB/s")
				b.ReportMetric(float64(st.Bytes)/1e6/cpu, "MB/cpu-s")
				if os.Getenv("DD_CHANGE") != "" {
					t0 := time.Now()
					n, err := demodata.Change(b.Context(), durl, 0.01)
					require.NoError(b, err)
					b.Logf("Change: %d rows in %s", n, time.Since(t0))
					t0 = time.Now()
					st, err := demodata.Generate(b.Context(), durl, demodata.Options{Tenants: []string{"t1", "t2", "t3", "t4"}, Size: 10 << 20, Workers: w})
					require.NoError(b, err)
					b.Logf("second Generate 10MB: %+v in %s", st, time.Since(t0))
				}
			}
		})
	}
}
