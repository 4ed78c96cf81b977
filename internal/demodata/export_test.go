package demodata

// SetForceMD5 makes Generate and Change use the md5 payloads of a database without
// pgcrypto; it returns a function that restores the default.
func SetForceMD5(v bool) (restore func()) {
	old := forceMD5
	forceMD5 = v
	return func() { forceMD5 = old }
}
