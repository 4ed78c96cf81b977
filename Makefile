# The README's two commands are `make run` and `make test`; both need only Go and the
# PostgreSQL server binaries (PATH or /usr/lib/postgresql/*/bin).
GO       ?= go
BIN      := bin/readiness
DATA_DIR ?= .data
ADDR     ?= 127.0.0.1:8080
OAPI     := $(GO) run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen
# sqlc builds in about 2 minutes without cgo (its WASM parser) instead of 5 with it.
SQLC     := CGO_ENABLED=0 $(GO) run github.com/sqlc-dev/sqlc/cmd/sqlc
REDOCLY  := npx --yes @redocly/cli@2.77.0

.PHONY: build run test bench generate check-generated lint-spec vet

build:
	$(GO) build -o $(BIN) ./cmd/readiness

## run: the service on its embedded default (private PostgreSQL cluster, demo tenants, printed tokens)
run: build
	./$(BIN) dev --data-dir $(DATA_DIR) --addr $(ADDR)

## test: every test against real PostgreSQL clusters that the tests start themselves. The tests
## of the standard tools need zstd (the Debian package, installed here when missing) and build
## the upstream age command from the module, so none of them is skipped on a fresh machine.
test:
	@command -v zstd >/dev/null 2>&1 || { echo "installing zstd for the standard-tools tests"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q zstd; }
	$(GO) mod download
	$(GO) test -count=1 -timeout 30m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## bench-backup: FULL/INCREMENTAL SYSTEM backup and restore vs pgBackRest and pg_basebackup (flags: BENCH_BACKUP_FLAGS='--size 200MB')
.PHONY: bench-backup
bench-backup:
	$(GO) run ./bench/backup $(BENCH_BACKUP_FLAGS)

## bench-recovery: RTO of a point-in-time recovery through the API vs pgBackRest, RPO under pgbench load (flags: BENCH_RECOVERY_FLAGS='--size 200MB --wal-seconds 20')
.PHONY: bench-recovery
bench-recovery:
	$(GO) run ./bench/recovery $(BENCH_RECOVERY_FLAGS)

## vet: go vet and staticcheck (pinned in tools.go)
vet:
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck ./...

## generate: gen/api and gen/client from openapi/, gen/db from sql/ and migrations/
generate:
	$(OAPI) -config openapi/server.cfg.yaml openapi/openapi.yaml
	$(OAPI) -config openapi/client.cfg.yaml openapi/openapi.yaml
	$(SQLC) generate

## check-generated: regenerate in a temporary copy of the tree and fail on any difference in gen/
check-generated:
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	tar --exclude=./.data --exclude=./bin --exclude=./.git --exclude=./node_modules -cf - . | tar -xf - -C "$$tmp"; \
	$(MAKE) -C "$$tmp" --no-print-directory generate >/dev/null; \
	if diff -r gen "$$tmp/gen"; then echo "gen/ matches openapi/, sql/ and migrations/"; \
	else echo "gen/ is stale: run make generate"; exit 1; fi

lint-spec:
	$(REDOCLY) lint --config openapi/redocly.yaml openapi/openapi.yaml
