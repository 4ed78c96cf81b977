// Command backup is the backup benchmark of issue 3, section 10 (`make bench-backup`).
//
// It starts a private PostgreSQL cluster, fills the one_vault database with generated Data
// Vault rows (payloads of random bytes, which zstd cannot shrink to nothing), and measures:
//
//   - a FULL SYSTEM backup by the service's physical engine, written to the service's
//     repository (zstd level 3 + age, concurrency 2, compression on) exactly as the backup
//     worker writes it, against a pgBackRest full backup (zstd level 3, process-max 2) and
//     pg_basebackup (plain, -X fetch, no compression);
//   - the restore of each FULL backup into a new data directory, and how long the restored
//     instance takes to accept a query, checked by the row count of one table;
//   - an INCREMENTAL backup after demodata.Change touched 1% of the rows, clustered in a few
//     tables: its stored bytes and time, against a pgBackRest incr; and the restore of the
//     FULL + INCREMENTAL chain, checked the same way;
//   - the peak memory of the service's engine: every backup and restore of ours runs in a
//     child process (this program, re-executed with a hidden flag), whose peak RSS the
//     kernel reports when it ends (wait4's rusage ru_maxrss, cross-checked with the VmHWM
//     the child reads from /proc/self/status just before it exits).
//
// It prints a markdown table and a PASS/FAIL line per target of the issue. It exits non-zero
// only on an error, never on a missed target.
//
//	go run ./bench/backup [--size 2GB] [--tenants 10] [--runs 1] [--dir DIR] [--keep]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/onevault/readiness/bench/internal/benchkit"
	"github.com/onevault/readiness/internal/demodata"
)

// config is what the flags say.
type config struct {
	sizeText string
	size     int64
	dir      string
	keep     bool
	tenants  int
	runs     int
}

func main() {
	// The hidden child mode: `backup --bench-child SPEC.json`, run by runChild.
	if len(os.Args) == 3 && os.Args[1] == childFlag {
		if err := childMain(os.Args[2]); err != nil {
			fmt.Fprintf(os.Stderr, "bench child: %v\n", err)
			os.Exit(1)
		}
		return
	}

	var cfg config
	fs := flag.NewFlagSet("bench-backup", flag.ContinueOnError)
	fs.StringVar(&cfg.sizeText, "size", "2GB", "size of the generated one_vault data (table data, as pg_total_relation_size counts it), e.g. 2GB, 200MB")
	fs.StringVar(&cfg.dir, "dir", "", "work directory, which must be empty or absent (default: a new temporary directory under /tmp)")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the work directory (data directories, repositories, restores) at the end")
	fs.IntVar(&cfg.tenants, "tenants", 10, "number of tenants the generated rows are spread across")
	fs.IntVar(&cfg.runs, "runs", 1, "FULL backups of ours and of pgBackRest, alternating; the report takes the median times (use 3 on a busy machine)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench-backup: unexpected arguments %q\n", fs.Args())
		os.Exit(2)
	}
	var err error
	if cfg.size, err = demodata.ParseSize(cfg.sizeText); err != nil {
		fmt.Fprintf(os.Stderr, "bench-backup: --size: %v\n", err)
		os.Exit(2)
	}
	if cfg.tenants < 1 || cfg.runs < 1 {
		fmt.Fprintln(os.Stderr, "bench-backup: --tenants and --runs must be at least 1")
		os.Exit(2)
	}

	benchkit.Main("bench-backup", cfg.dir, cfg.keep, func(ctx context.Context, w *benchkit.Work) error {
		b := &bench{cfg: cfg, w: w}
		return b.run(ctx)
	})
}
