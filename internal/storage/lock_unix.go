//go:build unix

package storage

import (
	"errors"
	"os"
	"syscall"
)

// LockDir takes an exclusive, non-blocking flock on an open directory. The
// kernel drops it when the process dies, which is how NewBackup tells a
// leftover .partial directory of a killed writer from one that a live writer
// still holds.
//
// LockDir is shared with internal/wal, whose pushes to one timeline take turns through it.
func LockDir(d *os.File) (bool, error) {
	err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}
