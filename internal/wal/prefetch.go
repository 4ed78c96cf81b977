package wal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
)

// Prefetching for wal-fetch.
//
// PostgreSQL's startup process replays one segment at a time and runs restore_command for the
// next one only when it needs it, so each segment's fetch (read, decrypt, decompress, check)
// stands between the replay of two segments, on the one core replay uses. wal-fetch therefore
// starts, after it has served a segment, a background `wal-prefetch` that fetches the next
// archived segments (DefaultPrefetch of them) into a spool directory beside the file PostgreSQL
// asked for: pg_wal/readiness-prefetch, on pg_wal's file system, so that a prefetched segment is
// served by a rename. pgBackRest's archive-get with archive-async does the same.
//
// A prefetched segment went through Fetch, so its size and SHA-256 were checked against its
// record before it was renamed into the spool. One prefetcher runs at a time (an flock on the
// spool); a fetch that finds nothing archived (the end of the archive, at the end of recovery)
// removes the spool, and so does the recovery service once the instance is promoted.

// DefaultPrefetch is how many segments wal-fetch fetches ahead unless --prefetch says otherwise.
const DefaultPrefetch = 4

// SpoolDir is the spool's name inside the directory of the file restore_command writes.
const SpoolDir = "readiness-prefetch"

// fetchAhead serves name into path from the spool when it was prefetched, or else fetches it,
// and then starts a prefetcher for the segments after it.
func fetchAhead(ctx context.Context, cfg Config, name, path string) error {
	kind, _, err := ParseName(name)
	if err != nil {
		return err
	}
	if kind != KindSegment || cfg.Prefetch <= 0 {
		return Fetch(ctx, cfg, name, path)
	}
	spool := filepath.Join(filepath.Dir(path), SpoolDir)
	if err := os.Rename(filepath.Join(spool, name), path); err != nil {
		if err := Fetch(ctx, cfg, name, path); err != nil {
			if errors.Is(err, ErrNotArchived) {
				_ = os.RemoveAll(spool)
			}
			return err
		}
	}
	startPrefetch(cfg, name, spool)
	return nil
}

// startPrefetch runs `wal-prefetch` in a process of its own session, which restore_command does
// not wait for. A failure to start it only costs speed. It runs only from a process that was
// itself started as `wal-fetch` (the readiness executable, or a test binary acting as it), since
// only such an executable is known to take `wal-prefetch`.
func startPrefetch(cfg Config, after, spool string) {
	if len(os.Args) < 2 || os.Args[1] != "wal-fetch" {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	args := []string{"wal-prefetch", "--repo", cfg.RepoPath, "--prefetch", strconv.Itoa(cfg.Prefetch)}
	if cfg.KeyFile != "" {
		args = append(args, "--key-file", cfg.KeyFile)
	}
	cmd := exec.Command(exe, append(args, after, spool)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if cmd.Start() == nil {
		_ = cmd.Process.Release()
	}
}

// Prefetch fetches the cfg.Prefetch archived segments that follow after on its timeline into
// spool, unless another prefetcher holds the spool, and removes what the spool holds besides.
func Prefetch(ctx context.Context, cfg Config, after, spool string) error {
	kind, tli, err := ParseName(after)
	if err != nil {
		return err
	}
	if kind != KindSegment {
		return fmt.Errorf("%w: %s is not a segment", ErrInvalidName, after)
	}
	if err := os.Mkdir(spool, dirPerm); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("wal: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(spool, ".lock"), os.O_CREATE|os.O_RDWR, filePerm)
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return nil // another prefetcher is at work
	}
	names, err := Segments(ctx, cfg, tli)
	if err != nil {
		return err
	}
	i, _ := slices.BinarySearch(names, after)
	for i < len(names) && names[i] <= after {
		i++
	}
	want := names[i:min(i+cfg.Prefetch, len(names))]
	entries, err := os.ReadDir(spool)
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	for _, e := range entries {
		if e.Name() != ".lock" && !slices.Contains(want, e.Name()) {
			_ = os.Remove(filepath.Join(spool, e.Name()))
		}
	}
	for _, n := range want {
		if _, err := os.Stat(filepath.Join(spool, n)); err == nil {
			continue
		}
		if err := Fetch(ctx, cfg, n, filepath.Join(spool, n)); err != nil {
			return err
		}
	}
	return nil
}
