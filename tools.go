//go:build tools

// Package tools pins the code generators that `make generate` runs with `go run`,
// so a fresh machine needs only Go and PostgreSQL's server binaries.
package tools

import (
	_ "github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen"
	_ "github.com/pressly/goose/v3/cmd/goose"
	_ "github.com/sqlc-dev/sqlc/cmd/sqlc"
	_ "honnef.co/go/tools/cmd/staticcheck"
)
