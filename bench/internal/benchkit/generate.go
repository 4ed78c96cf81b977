package benchkit

import (
	"context"
	"fmt"
	"time"

	"github.com/onevault/readiness/internal/demodata"
)

// Generated describes the data Generate made.
type Generated struct {
	Time        time.Duration
	Bytes, Rows int64
	DBSize      int64 // pg_database_size
	DataDirSize int64 // the cluster's data directory without pg_wal
}

// Generate fills the database at url with demodata for tenants tenant001..tenantNNN until
// it has grown by at least size, and measures the database and the data directory dataDir.
func Generate(ctx context.Context, url, dataDir string, size int64, tenants int, w *Work) (Generated, error) {
	logf := w.Logf
	var g Generated
	if err := demodata.Ensure(ctx, url); err != nil {
		return g, err
	}
	names := make([]string, tenants)
	for i := range names {
		names[i] = fmt.Sprintf("tenant%03d", i+1)
	}
	logf("generating %s of demo data for %d tenants ...", FormatBytes(size), len(names))
	start := time.Now()
	// Generate meets its target within about 10%; top up until the dataset has at least size.
	for round := 0; g.Bytes < size && round < 4; round++ {
		st, err := demodata.Generate(ctx, url, demodata.Options{Tenants: names, Size: max(size-g.Bytes, 1<<20), Logger: w.Logger()})
		if err != nil {
			return g, err
		}
		g.Bytes += st.Bytes
		g.Rows += st.Rows
	}
	g.Time = time.Since(start)
	if err := QueryOne(ctx, url, "SELECT pg_database_size(current_database())", &g.DBSize); err != nil {
		return g, err
	}
	var err error
	if g.DataDirSize, err = DataDirBytes(dataDir); err != nil {
		return g, err
	}
	logf("generated %s in %d rows in %s (%.1f MB/s); the database is %s, the data directory %s without pg_wal",
		FormatBytes(g.Bytes), g.Rows, FmtDur(g.Time), float64(g.Bytes)/1e6/g.Time.Seconds(),
		FormatBytes(g.DBSize), FormatBytes(g.DataDirSize))
	return g, nil
}
