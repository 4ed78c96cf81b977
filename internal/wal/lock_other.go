//go:build !unix

package wal

import "os"

// lockDir is a no-op where flock does not exist; PostgreSQL's archiver pushes
// one file at a time anyway.
func lockDir(*os.File) (bool, error) { return true, nil }
