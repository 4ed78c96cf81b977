//go:build unix

package wal

import (
	"errors"
	"os"
	"syscall"
)

// lockDir takes an exclusive, non-blocking flock on an open directory. The
// kernel drops it when the process dies, so a killed push never blocks the next.
func lockDir(d *os.File) (bool, error) {
	err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}
