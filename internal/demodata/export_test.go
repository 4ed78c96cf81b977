package demodata

// SetForceNoPgcrypto makes Generate and Change make payloads as they do on a database
// without pgcrypto; it returns a function that restores the default.
func SetForceNoPgcrypto(v bool) (restore func()) {
	old := forceNoPgcrypto
	forceNoPgcrypto = v
	return func() { forceNoPgcrypto = old }
}
