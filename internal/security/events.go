// Package security keeps the security events of the platform: the API's denials today
// (recorded by the server's authenticator), PostgreSQL's log events and their folding into
// brute-force incidents next (the monitoring issue).
package security

import (
	"context"

	"github.com/onevault/readiness/gen/db"
	"github.com/onevault/readiness/internal/vault"
)

// Event is one security event as it is recorded. Empty strings are stored as NULL.
type Event struct {
	Tenant     string // the tenant the request named, if any
	Kind       string // e.g. UNAUTHORIZED_ACCESS
	Severity   string // LOW, MEDIUM, HIGH, CRITICAL
	Subject    string // the token's sub, when the token was valid
	SourceAddr string
	Operation  string // the operationId asked for
	Detail     string // why it was denied, never a secret
	RequestID  string
}

// Record stores one event.
func Record(ctx context.Context, store *vault.Store, e Event) error {
	return store.Queries().SecurityEventInsert(ctx, db.SecurityEventInsertParams{
		TenantBk: optional(e.Tenant), Kind: e.Kind, Severity: e.Severity, Subject: optional(e.Subject),
		SourceAddr: optional(e.SourceAddr), Operation: optional(e.Operation), Detail: e.Detail,
		RequestID: optional(e.RequestID),
	})
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
