//go:build tools

// Package tools pins the code generators that `make generate` runs with `go run`, and the
// upstream age command that the storage and WAL tests build to decrypt backups with, so a
// fresh machine needs only Go and PostgreSQL's server binaries (and zstd, which `make test`
// installs).
package tools

import (
	_ "filippo.io/age/cmd/age"
	_ "github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen"
	_ "github.com/pressly/goose/v3/cmd/goose"
	_ "github.com/sqlc-dev/sqlc/cmd/sqlc"
	_ "honnef.co/go/tools/cmd/staticcheck"
)
