// Command recovery is the recovery benchmark (`make bench-recovery`).
//
// It starts a private PostgreSQL cluster whose archive_command archives every WAL segment
// into both repositories, ours (`readiness wal-push`, played by this program, which
// PostgreSQL runs as `recovery wal-push ...`) and pgBackRest's (`pgbackrest archive-push`),
// fills the one_vault database with generated Data Vault rows, runs the service in this
// process on that cluster (its own `readiness` database, the one_vault database managed),
// and measures:
//
//   - RTO: from the request (POST /api/v1/recovery/point-in-time, instance:bench, no
//     approval) to a query answered by the promoted instance, after restoring the SYSTEM
//     FULL backup and replaying a stretch of WAL made by pgbench up to a target time; against
//     `pgbackrest restore --type=time` of its own full backup, taken at the same point, with
//     the same target, followed by starting PostgreSQL until the same query is answered.
//     Both checks count the marker rows committed up to the target.
//   - RPO under the pgbench load: a probe commits a marker row every 100 ms; a poller
//     watches, every 50 ms, how far each archive holds the WAL (our archive's complete
//     segments, pgBackRest's, and the archive that wal.Stream fills over a replication slot);
//     a marker's RPO is the time from its commit until an archive holds its WAL.
//
// It prints a markdown table and PASS/FAIL per target. It exits non-zero only on an error,
// never on a missed target.
//
//	go run ./bench/recovery [--size 2GB] [--wal-seconds 60] [--runs 1] [--dir DIR] [--keep]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/onevault/readiness/bench/internal/benchkit"
	"github.com/onevault/readiness/internal/demodata"
	"github.com/onevault/readiness/internal/wal"
)

// config is what the flags say.
type config struct {
	sizeText       string
	size           int64
	walSeconds     int
	runs           int
	dir            string
	keep           bool
	tenants        int
	scale          int
	clients        int
	archiveTimeout time.Duration
	cold           bool
}

func main() {
	// PostgreSQL runs this program as archive_command and restore_command (`wal-push`,
	// `wal-fetch`): it plays the readiness binary there.
	wal.RunIfAsked()

	var cfg config
	fs := flag.NewFlagSet("bench-recovery", flag.ContinueOnError)
	fs.StringVar(&cfg.sizeText, "size", "2GB", "size of the generated one_vault data (table data, as pg_total_relation_size counts it), e.g. 2GB, 200MB")
	fs.IntVar(&cfg.walSeconds, "wal-seconds", 60, "length of the pgbench run that makes the stretch of WAL replayed, during which RPO is measured")
	fs.IntVar(&cfg.runs, "runs", 1, "recoveries of ours and of pgBackRest, alternating; the report takes the median RTOs")
	fs.StringVar(&cfg.dir, "dir", "", "work directory, which must be empty or absent (default: a new temporary directory under /tmp)")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the work directory (data directories, repositories, recovered instances) at the end")
	fs.IntVar(&cfg.tenants, "tenants", 10, "number of tenants the generated rows are spread across")
	fs.IntVar(&cfg.scale, "scale", 10, "pgbench scale factor (pgbench -i -s), in the separate pgbench database")
	fs.IntVar(&cfg.clients, "clients", 4, "pgbench clients (-c); threads (-j) are half of them")
	fs.BoolVar(&cfg.cold, "cold", true, "drop the page cache before each recovery (as root), as on a host recovering after a loss; --cold=false measures with what earlier steps left cached")
	fs.DurationVar(&cfg.archiveTimeout, "archive-timeout", 60*time.Second, "archive_timeout of the source cluster")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench-recovery: unexpected arguments %q\n", fs.Args())
		os.Exit(2)
	}
	var err error
	if cfg.size, err = demodata.ParseSize(cfg.sizeText); err != nil {
		fmt.Fprintf(os.Stderr, "bench-recovery: --size: %v\n", err)
		os.Exit(2)
	}
	if cfg.tenants < 1 || cfg.runs < 1 || cfg.scale < 1 || cfg.clients < 1 {
		fmt.Fprintln(os.Stderr, "bench-recovery: --tenants, --runs, --scale and --clients must be at least 1")
		os.Exit(2)
	}
	if cfg.walSeconds < 10 {
		fmt.Fprintln(os.Stderr, "bench-recovery: --wal-seconds must be at least 10 (the target is 2 s before the end)")
		os.Exit(2)
	}
	if cfg.archiveTimeout < time.Second {
		fmt.Fprintln(os.Stderr, "bench-recovery: --archive-timeout must be at least 1s")
		os.Exit(2)
	}

	benchkit.Main("bench-recovery", cfg.dir, cfg.keep, func(ctx context.Context, w *benchkit.Work) error {
		b := &bench{cfg: cfg, w: w}
		return b.run(ctx)
	})
}
