package demodata_test

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/demodata"
)

func BenchmarkTmpWorkers(b *testing.B) {
	size, _ := demodata.ParseSize(os.Getenv("DD_SIZE"))
	for _, w := range []int{2, 20, 2, 20, 2, 20} {
		demodata.SetRotate(w == 2)
		w := min(w, 2)
		b.Run(fmt.Sprintf("workers=%d", w), func(b *testing.B) {
			url := "postgres://postgres@/postgres?host=/tmp/ddpg&port=55432"
			// fresh db
			name := "dd_w" + strconv.Itoa(w)
			conn := connect(b, url)
			_, err := conn.Exec(b.Context(), "DROP DATABASE IF EXISTS "+name)
			require.NoError(b, err)
			_, err = conn.Exec(b.Context(), "CREATE DATABASE "+name)
			require.NoError(b, err)
			durl := "postgres://postgres@/" + name + "?host=/tmp/ddpg&port=55432"
			for b.Loop() {
				st, err := demodata.Generate(b.Context(), durl, demodata.Options{Tenants: []string{"t1", "t2", "t3", "t4"}, Size: size, Workers: w, Logf: b.Logf})
				require.NoError(b, err)
				b.ReportMetric(float64(st.Bytes)/1e6/st.Duration.Seconds(), "MB/s")
			}
		})
	}
}
