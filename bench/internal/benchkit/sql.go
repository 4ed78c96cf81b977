package benchkit

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// QueryOne runs a query that returns one row on a new connection.
func QueryOne(ctx context.Context, url, sql string, dest ...any) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := conn.QueryRow(ctx, sql).Scan(dest...); err != nil {
		return fmt.Errorf("%s: %w", strings.Fields(sql)[0], err)
	}
	return nil
}

// ExecSQL runs a statement on a new connection.
func ExecSQL(ctx context.Context, url, sql string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// Settle makes a measurement start from the same state: a checkpoint (so that no
// measurement pays for flushing another's dirty buffers), every finished WAL segment
// archived (so that no archive_command of earlier WAL competes for the CPUs), and the page
// cache's dirty pages written out. url is a database of the source cluster; logDir is named
// in the error when archiving is stuck.
func Settle(ctx context.Context, url, what, logDir string, logf func(string, ...any)) error {
	if err := ExecSQL(ctx, url, "CHECKPOINT"); err != nil {
		return err
	}
	deadline := time.Now().Add(20 * time.Minute)
	lastLog := time.Now()
	for {
		var ready, failed int64
		var lastFailed string
		err := QueryOne(ctx, url, `SELECT (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'),
			failed_count, coalesce(last_failed_wal, '') FROM pg_stat_archiver`, &ready, &failed, &lastFailed)
		if err != nil {
			return err
		}
		if ready == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("WAL archiving is stuck %s: %d segments not archived, %d failures (last %s); see the server log and %s",
				what, ready, failed, lastFailed, filepath.Clean(logDir))
		}
		if time.Since(lastLog) > 30*time.Second {
			logf("waiting for the archiving of %d WAL segments %s (%d failures so far)", ready, what, failed)
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	syscall.Sync()
	return nil
}
