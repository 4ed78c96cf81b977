package wal

import "time"

// SetConflictRetry makes receivers started afterwards retry a conflicting
// segment every d, and returns the function that restores the default.
func SetConflictRetry(d time.Duration) (restore func()) {
	old := conflictRetry
	conflictRetry = d
	return func() { conflictRetry = old }
}
