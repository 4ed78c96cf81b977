// Package migrations embeds the goose SQL migrations of the service's Data Vault schema,
// so the binary applies them itself (readiness migrate, and at server start).
package migrations

import "embed"

// FS holds every migration file, applied in file-name order.
//
//go:embed *.sql
var FS embed.FS
