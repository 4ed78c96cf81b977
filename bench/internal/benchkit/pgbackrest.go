package benchkit

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/onevault/readiness/internal/pgcluster"
)

// Stanza is the pgBackRest stanza of the benchmarks' source cluster.
const Stanza = "bench"

// EnsurePgBackRest returns the path of pgbackrest, installing Debian's pgbackrest package
// when it is missing (apt-get update first when the plain install fails).
func EnsurePgBackRest(ctx context.Context, logf func(string, ...any)) (string, error) {
	if p, err := exec.LookPath("pgbackrest"); err == nil {
		logf("pgBackRest: already installed at %s", p)
		return p, nil
	}
	logf("pgBackRest: not installed; installing Debian's pgbackrest package (apt-get install -y pgbackrest)")
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("pgbackrest is not installed and installing it needs root: run `apt-get install -y pgbackrest` as root")
	}
	apt := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
		return cmd.Run()
	}
	if err := apt("install", "-y", "pgbackrest"); err != nil {
		logf("pgBackRest: install failed (%v); running apt-get update and trying again", err)
		if err := apt("update"); err != nil {
			return "", fmt.Errorf("apt-get update: %w", err)
		}
		if err := apt("install", "-y", "pgbackrest"); err != nil {
			return "", fmt.Errorf("apt-get install pgbackrest: %w", err)
		}
	}
	p, err := exec.LookPath("pgbackrest")
	if err != nil {
		return "", fmt.Errorf("pgbackrest is still not on PATH after installing it: %w", err)
	}
	logf("pgBackRest: installed %s by this run", p)
	return p, nil
}

// PgBackRest runs pgbackrest as the postgres user with the benchmark's own configuration
// file, repository, log and lock directories, all inside one directory.
type PgBackRest struct {
	Bin     string
	Dir     string // holds pgbackrest.conf and the repo, log and lock directories
	Conf    string
	Repo    string
	cluster *pgcluster.Cluster // whose RunAsOwner runs pgbackrest as postgres
}

// NewPgBackRest returns pgBackRest with its files in dir; Setup prepares them.
func NewPgBackRest(bin, dir string) *PgBackRest {
	return &PgBackRest{Bin: bin, Dir: dir, Conf: filepath.Join(dir, "pgbackrest.conf"), Repo: filepath.Join(dir, "repo")}
}

// ArchiveCommand is the source cluster's archive_command into the repository.
func (p *PgBackRest) ArchiveCommand() string {
	return fmt.Sprintf("%s --config=%s --stanza=%s archive-push %%p", p.Bin, p.Conf, Stanza)
}

// Setup creates the directories (owned by postgres) and writes the configuration for the
// started cluster c, reached over the Unix socket in sockDir: zstd level 3, process-max 2,
// start-fast, as the benchmarks compare.
func (p *PgBackRest) Setup(c *pgcluster.Cluster, sockDir string) error {
	p.cluster = c
	for _, d := range []string{p.Dir, p.Repo, filepath.Join(p.Dir, "log"), filepath.Join(p.Dir, "lock")} {
		if err := c.MkdirOwned(d); err != nil {
			return err
		}
	}
	conf := fmt.Sprintf(`[global]
repo1-path=%s
repo1-retention-full=9
compress-type=zst
compress-level=3
process-max=2
start-fast=y
archive-timeout=300
log-path=%s
lock-path=%s
log-level-console=warn
log-level-file=info

[%s]
pg1-path=%s
pg1-port=%d
pg1-socket-path=%s
pg1-user=postgres
`, p.Repo, filepath.Join(p.Dir, "log"), filepath.Join(p.Dir, "lock"), Stanza, c.DataDir(), c.Port(), sockDir)
	return os.WriteFile(p.Conf, []byte(conf), 0o644)
}

// Run runs one pgbackrest command and returns its wall time and the peak RSS over its
// processes (wait4's ru_maxrss covers the local processes it waited for).
func (p *PgBackRest) Run(ctx context.Context, args ...string) (time.Duration, int64, error) {
	cmd := exec.CommandContext(ctx, p.Bin, append([]string{"--config=" + p.Conf, "--stanza=" + Stanza}, args...)...)
	cmd.Dir = "/"
	p.cluster.RunAsOwner(cmd)
	TerminateOnCancel(cmd)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	wall := time.Since(start)
	if err != nil {
		return wall, 0, fmt.Errorf("pgbackrest %s: %w\n%s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return wall, MaxRSS(cmd.ProcessState), nil
}

// TerminateOnCancel makes a cancelled command end as on Ctrl-C (SIGTERM, which pgBackRest and
// pg_basebackup handle by cleaning up), and kills it only if it has not ended 30 seconds later.
func TerminateOnCancel(cmd *exec.Cmd) {
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
}

// MaxRSS returns the peak RSS in bytes that wait4 reported for a finished process (and the
// descendants it waited for); Linux gives ru_maxrss in KiB.
func MaxRSS(ps *os.ProcessState) int64 {
	if ps == nil {
		return 0
	}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss * 1024
	}
	return 0
}

// PgBackRestBackup is one backup in `pgbackrest info --output=json`.
type PgBackRestBackup struct {
	Label   string `json:"label"`
	Type    string `json:"type"`
	Archive struct {
		Start string `json:"start"`
		Stop  string `json:"stop"`
	} `json:"archive"`
	Info struct {
		Size       int64 `json:"size"`
		Delta      int64 `json:"delta"`
		Repository struct {
			Size  int64 `json:"size"`
			Delta int64 `json:"delta"`
		} `json:"repository"`
	} `json:"info"`
}

// LastBackup returns the newest backup of the stanza.
func (p *PgBackRest) LastBackup(ctx context.Context) (*PgBackRestBackup, error) {
	cmd := exec.CommandContext(ctx, p.Bin, "--config="+p.Conf, "--stanza="+Stanza, "--output=json", "info")
	cmd.Dir = "/"
	p.cluster.RunAsOwner(cmd)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("pgbackrest info: %w", err)
	}
	var info []struct {
		Backup []PgBackRestBackup `json:"backup"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		return nil, fmt.Errorf("pgbackrest info: %w", err)
	}
	if len(info) == 0 || len(info[0].Backup) == 0 {
		return nil, fmt.Errorf("pgbackrest info: no backup in stanza %s", Stanza)
	}
	bs := info[0].Backup
	return &bs[len(bs)-1], nil
}

// BackupDir is where the repository keeps a backup's files and manifest.
func (p *PgBackRest) BackupDir(label string) string {
	return filepath.Join(p.Repo, "backup", Stanza, label)
}

// ArchiveDir is the stanza's WAL archive: <repo>/archive/<stanza>, which holds one
// directory per PostgreSQL version and archive id ("15-1"), and in it one directory per
// 256 segments ("0000000100000000") of files named <segment>-<sha1>[.zst].
func (p *PgBackRest) ArchiveDir() string { return filepath.Join(p.Repo, "archive", Stanza) }

// WALBytes sums the archived WAL segments from start to stop (the WAL that makes a backup
// consistent, which pgBackRest keeps in the archive rather than in the backup directory).
func (p *PgBackRest) WALBytes(start, stop string) (int64, int, error) {
	var total int64
	var n int
	err := filepath.WalkDir(p.ArchiveDir(), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.Type().IsRegular() && len(name) > 24 && name[24] == '-' && name[:24] >= start && name[:24] <= stop {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			total += fi.Size()
			n++
		}
		return nil
	})
	return total, n, err
}
