package main

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

// stanza is the pgBackRest stanza of the benchmark's cluster.
const stanza = "bench"

// ensurePgBackRest returns the path of pgbackrest, installing Debian's pgbackrest package
// when it is missing (apt-get update first when the plain install fails).
func (b *bench) ensurePgBackRest(ctx context.Context) (string, error) {
	if p, err := exec.LookPath("pgbackrest"); err == nil {
		b.logf("pgBackRest: already installed at %s", p)
		return p, nil
	}
	b.logf("pgBackRest: not installed; installing Debian's pgbackrest package (apt-get install -y pgbackrest)")
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
		b.logf("pgBackRest: install failed (%v); running apt-get update and trying again", err)
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
	b.logf("pgBackRest: installed %s by this run", p)
	return p, nil
}

// pgBackRest runs pgbackrest as the postgres user with the benchmark's own configuration
// file, repository, log and lock directories, all inside the work directory.
type pgBackRest struct {
	bin     string
	dir     string // holds pgbackrest.conf and the repo, log and lock directories
	conf    string
	repo    string
	cluster *pgcluster.Cluster // whose RunAsOwner runs pgbackrest as postgres
}

func newPgBackRest(bin, dir string, c *pgcluster.Cluster) *pgBackRest {
	return &pgBackRest{bin: bin, dir: dir, conf: filepath.Join(dir, "pgbackrest.conf"),
		repo: filepath.Join(dir, "repo"), cluster: c}
}

// archiveCommand is the source cluster's archive_command.
func (p *pgBackRest) archiveCommand() string {
	return fmt.Sprintf("%s --config=%s --stanza=%s archive-push %%p", p.bin, p.conf, stanza)
}

// setup creates the directories (owned by postgres) and writes the configuration for the
// cluster at dataDir, reached over the Unix socket in sockDir.
func (p *pgBackRest) setup(dataDir, sockDir string, port int) error {
	for _, d := range []string{p.dir, p.repo, filepath.Join(p.dir, "log"), filepath.Join(p.dir, "lock")} {
		if err := p.cluster.MkdirOwned(d); err != nil {
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
`, p.repo, filepath.Join(p.dir, "log"), filepath.Join(p.dir, "lock"), stanza, dataDir, port, sockDir)
	return os.WriteFile(p.conf, []byte(conf), 0o644)
}

// run runs one pgbackrest command and returns its wall time and the peak RSS over its
// processes (wait4's ru_maxrss covers the local processes it waited for).
func (p *pgBackRest) run(ctx context.Context, args ...string) (time.Duration, int64, error) {
	cmd := exec.CommandContext(ctx, p.bin, append([]string{"--config=" + p.conf, "--stanza=" + stanza}, args...)...)
	cmd.Dir = "/"
	p.cluster.RunAsOwner(cmd)
	terminateOnCancel(cmd)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	wall := time.Since(start)
	if err != nil {
		return wall, 0, fmt.Errorf("pgbackrest %s: %w\n%s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return wall, maxRSS(cmd.ProcessState), nil
}

// terminateOnCancel makes a cancelled command end as on Ctrl-C (SIGTERM, which pgBackRest and
// pg_basebackup handle by cleaning up), and kills it only if it has not ended 30 seconds later.
func terminateOnCancel(cmd *exec.Cmd) {
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
}

// pgbrBackup is one backup in `pgbackrest info --output=json`.
type pgbrBackup struct {
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

// lastBackup returns the newest backup of the stanza.
func (p *pgBackRest) lastBackup(ctx context.Context) (*pgbrBackup, error) {
	cmd := exec.CommandContext(ctx, p.bin, "--config="+p.conf, "--stanza="+stanza, "--output=json", "info")
	cmd.Dir = "/"
	p.cluster.RunAsOwner(cmd)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("pgbackrest info: %w", err)
	}
	var info []struct {
		Backup []pgbrBackup `json:"backup"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		return nil, fmt.Errorf("pgbackrest info: %w", err)
	}
	if len(info) == 0 || len(info[0].Backup) == 0 {
		return nil, fmt.Errorf("pgbackrest info: no backup in stanza %s", stanza)
	}
	bs := info[0].Backup
	return &bs[len(bs)-1], nil
}

// backupDir is where the repository keeps a backup's files and manifest.
func (p *pgBackRest) backupDir(label string) string {
	return filepath.Join(p.repo, "backup", stanza, label)
}

// walBytes sums the archived WAL segments from start to stop (the WAL that makes a backup
// consistent, which pgBackRest keeps in the archive rather than in the backup directory).
func (p *pgBackRest) walBytes(start, stop string) (int64, int, error) {
	var total int64
	var n int
	root := filepath.Join(p.repo, "archive", stanza)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
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
