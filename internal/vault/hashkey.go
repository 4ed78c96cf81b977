package vault

import (
	"crypto/sha256"
	"strings"
)

// HashKey is the Data Vault hash key of a business key, computed in Go exactly as the
// migrations' hash_key SQL function computes it: SHA-256 of the parts, each trimmed of spaces
// (btrim) and upper-cased, joined with '||'. Hubs, links and the tenant key column of One
// Vault's tables hold it, so the backup code finds a tenant's rows with HashKey(tenant).
func HashKey(parts ...string) []byte {
	norm := make([]string, len(parts))
	for i, p := range parts {
		norm[i] = NormalizeKey(p)
	}
	sum := sha256.Sum256([]byte(strings.Join(norm, "||")))
	return sum[:]
}

// NormalizeKey is hash_key's normalisation of one business key part: btrim (spaces only),
// then upper.
func NormalizeKey(s string) string {
	return strings.ToUpper(strings.Trim(s, " "))
}
