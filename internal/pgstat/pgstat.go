// Package pgstat holds the read-only queries on the managed PostgreSQL cluster, one file per
// view, in the manner of postgres_exporter's collectors: a query constant, the row it reads
// with NULLs made explicit, and a Read function over any connection. It knows nothing of the
// service's domain; the WAL status reads it today, the monitoring collector next.
package pgstat

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// Querier is what the reads need of a connection: *pgx.Conn, *pgxpool.Pool and pgx.Tx are one.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// deref returns the string s points to, or "" for NULL.
func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
