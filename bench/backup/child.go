package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/onevault/readiness/bench/internal/benchkit"
	"github.com/onevault/readiness/internal/backup"
	"github.com/onevault/readiness/internal/backup/physical"
	"github.com/onevault/readiness/internal/storage"
)

// childFlag re-executes this program as the child that runs one backup or restore of ours.
// It is not a flag of the flag set, so -help does not show it.
const childFlag = "--bench-child"

// keyEnv passes the repository's age key to the child, rather than its command line.
const keyEnv = "BENCH_BACKUP_ENCRYPTION_KEY"

// childSpec tells the child what to do; the parent writes it as JSON next to the result.
type childSpec struct {
	Op         string   `json:"op"`   // "backup" or "restore"
	Repo       string   `json:"repo"` // the repository root
	ConnString string   `json:"connString,omitempty"`
	ID         string   `json:"id,omitempty"`     // backup: the new backup's id
	Parent     string   `json:"parent,omitempty"` // backup: the parent's id for an INCREMENTAL
	Chain      []string `json:"chain,omitempty"`  // restore: the FULL first, then its deltas
	Target     string   `json:"target,omitempty"` // restore: the new data directory
	Result     string   `json:"result"`           // where the child writes its childResult
}

// childResult is what the child reports back.
type childResult struct {
	Elapsed      time.Duration `json:"elapsed"` // the engine and the commit, inside the child
	StoredBytes  int64         `json:"storedBytes"`
	WALStored    int64         `json:"walStored"` // stored bytes of the WAL objects
	PlainBytes   int64         `json:"plainBytes"`
	BytesScanned int64         `json:"bytesScanned"`
	Files        int           `json:"files"`
	Objects      int           `json:"objects"`
	WALSegments  int           `json:"walSegments"`
	StartLSN     string        `json:"startLsn"`
	StopLSN      string        `json:"stopLsn"`
	VmHWM        int64         `json:"vmHWM"` // bytes, from /proc/self/status at the end
}

// childRun is one finished child: its report and what the kernel says about it.
type childRun struct {
	childResult
	Wall    time.Duration // from start to exit of the child process, as the parent saw it
	PeakRSS int64         // bytes: the larger of ru_maxrss and the child's own VmHWM
}

// runChild re-executes this program with spec and waits for it.
func (b *bench) runChild(ctx context.Context, name string, spec childSpec) (*childRun, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	specPath := b.w.Path("child-" + name + ".json")
	spec.Result = b.w.Path("child-" + name + ".result.json")
	data, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(specPath, data, 0o600); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, childFlag, specPath)
	cmd.Env = append(os.Environ(), keyEnv+"="+b.key)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	start := time.Now()
	err = cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return nil, fmt.Errorf("child %s: %w", name, err)
	}
	run := &childRun{Wall: wall}
	data, err = os.ReadFile(spec.Result)
	if err != nil {
		return nil, fmt.Errorf("child %s: %w", name, err)
	}
	if err := json.Unmarshal(data, &run.childResult); err != nil {
		return nil, fmt.Errorf("child %s: %w", name, err)
	}
	run.PeakRSS = max(benchkit.MaxRSS(cmd.ProcessState), run.VmHWM)
	return run, nil
}

// childMain runs in the child process.
func childMain(specPath string) error {
	data, err := os.ReadFile(specPath)
	if err != nil {
		return err
	}
	var spec childSpec
	if err := json.Unmarshal(data, &spec); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	key, err := storage.ParseKey(os.Getenv(keyEnv))
	if err != nil {
		return err
	}
	repo, err := storage.Open(spec.Repo, key)
	if err != nil {
		return err
	}
	defer repo.Close()

	var res *childResult
	switch spec.Op {
	case "backup":
		res, err = childBackup(ctx, repo, spec)
	case "restore":
		res, err = childRestore(ctx, repo, spec)
	default:
		err = fmt.Errorf("unknown op %q", spec.Op)
	}
	if err != nil {
		return err
	}
	res.VmHWM = selfVmHWM()
	out, err := json.Marshal(res)
	if err != nil {
		return err
	}
	return os.WriteFile(spec.Result, out, 0o600)
}

// childBackup takes a SYSTEM backup the way the backup worker does (Service.take and run in
// internal/backup/run.go): the parent's manifest read from the repository, a new backup
// writer, the physical engine writing through the same sink with compression on and
// concurrency 2, then the service's Manifest committed.
func childBackup(ctx context.Context, repo *storage.Repository, spec childSpec) (*childResult, error) {
	logf := childLogf("backup " + spec.ID[:8])
	id, err := uuid.Parse(spec.ID)
	if err != nil {
		return nil, err
	}
	started := time.Now()
	m := &backup.Manifest{Version: 1, BackupID: id, Tenant: backup.PlatformTenant, Type: backup.TypeFull,
		Scope: backup.ScopeSystem, Compressed: true}
	var parent *backup.Manifest
	if spec.Parent != "" {
		pid, err := uuid.Parse(spec.Parent)
		if err != nil {
			return nil, err
		}
		m.Type, m.Parent = backup.TypeIncremental, &pid
		parent = &backup.Manifest{}
		rd, err := repo.OpenBackup("", spec.Parent)
		if err != nil {
			return nil, fmt.Errorf("open parent backup %s: %w", spec.Parent, err)
		}
		if err := rd.Manifest(parent); err != nil {
			return nil, fmt.Errorf("read parent manifest: %w", err)
		}
	}
	w, err := repo.NewBackup("", spec.ID)
	if err != nil {
		return nil, err
	}
	defer func() { _ = w.Abort() }() // nothing after Commit
	prog := &progressLog{logf: logf}
	opts := physical.Options{ConnString: spec.ConnString, Label: "readiness " + spec.ID, Concurrency: 2,
		Progress: prog.set, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	if parent != nil {
		opts.Parent = parent.Physical
	}
	pm, err := physical.Backup(ctx, sink{w: w, compress: true}, opts)
	if err != nil {
		return nil, err
	}
	m.Physical, m.PGVersion = pm, pm.PGVersion
	m.Objects = w.Objects()
	m.StartedAt, m.CompletedAt = started.UTC(), time.Now().UTC()
	if err := w.Commit(m); err != nil {
		return nil, err
	}
	res := &childResult{Elapsed: time.Since(started), StoredBytes: w.StoredBytes(), BytesScanned: pm.BytesScanned,
		Files: len(pm.Files), Objects: len(m.Objects), WALSegments: len(pm.WAL), StartLSN: pm.StartLSN, StopLSN: pm.StopLSN}
	for _, o := range m.Objects {
		res.PlainBytes += o.Size
		if strings.HasPrefix(o.Name, "wal/") {
			res.WALStored += o.StoredSize
		}
	}
	logf("committed: %d objects, %s stored, %s", res.Objects, benchkit.FormatBytes(res.StoredBytes), res.Elapsed.Round(time.Millisecond))
	return res, nil
}

// sink adapts a repository writer to the engine's Sink, as internal/backup's sink does.
type sink struct {
	w        *storage.Writer
	compress bool
}

func (s sink) Create(name string) (io.WriteCloser, error) { return s.w.Create(name, s.compress) }

// source adapts a repository reader to the engine's Source by object name, as
// internal/backup's source does.
type source struct {
	rd    *storage.Reader
	files map[string]string
}

func (s source) Open(name string) (io.ReadCloser, error) {
	f, ok := s.files[name]
	if !ok {
		return nil, fmt.Errorf("object %q is not in the backup", name)
	}
	return s.rd.Open(f)
}

// childRestore lays a chain into a new data directory as Service.OpenChain and
// Service.RestoreSystem do (internal/backup/restore.go).
func childRestore(ctx context.Context, repo *storage.Repository, spec childSpec) (*childResult, error) {
	logf := childLogf("restore")
	started := time.Now()
	var ms []*physical.Manifest
	var srcs []physical.Source
	for _, id := range spec.Chain {
		rd, err := repo.OpenBackup("", id)
		if err != nil {
			return nil, err
		}
		m := &backup.Manifest{}
		if err := rd.Manifest(m); err != nil {
			return nil, err
		}
		if m.Physical == nil {
			return nil, fmt.Errorf("backup %s is not a SYSTEM backup", id)
		}
		files := map[string]string{}
		for _, o := range m.Objects {
			files[o.Name] = o.File
		}
		ms = append(ms, m.Physical)
		srcs = append(srcs, source{rd: rd, files: files})
	}
	prog := &progressLog{logf: logf}
	if err := physical.Restore(ctx, ms, srcs, spec.Target, prog.set); err != nil {
		return nil, err
	}
	res := &childResult{Elapsed: time.Since(started), Files: len(ms[len(ms)-1].Files), WALSegments: len(ms[len(ms)-1].WAL)}
	logf("laid %d files and %d WAL segments into %s in %s", res.Files, res.WALSegments, spec.Target,
		res.Elapsed.Round(time.Millisecond))
	return res, nil
}

// progressLog logs each phase and, within a phase, a line every 15 seconds.
type progressLog struct {
	mu    sync.Mutex
	logf  func(string, ...any)
	phase string
	last  time.Time
}

func (p *progressLog) set(pr physical.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pr.Phase == p.phase && time.Since(p.last) < 15*time.Second {
		return
	}
	p.phase, p.last = pr.Phase, time.Now()
	if pr.BytesTotal > 0 {
		p.logf("phase %s: %s of %s", pr.Phase, benchkit.FormatBytes(pr.BytesDone), benchkit.FormatBytes(pr.BytesTotal))
	}
}

func childLogf(prefix string) func(string, ...any) {
	return func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s   [child %s] %s\n", time.Now().Format("15:04:05"), prefix, fmt.Sprintf(format, args...))
	}
}

// selfVmHWM returns this process's peak resident set size in bytes.
func selfVmHWM() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err == nil {
				return kb * 1024
			}
		}
	}
	return 0
}
