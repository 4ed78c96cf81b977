package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/labstack/echo/v4"
	echomiddleware "github.com/oapi-codegen/echo-middleware"

	"github.com/onevault/readiness/gen/db"
	"github.com/onevault/readiness/internal/api"
	"github.com/onevault/readiness/internal/audit"
	"github.com/onevault/readiness/internal/auth"
	"github.com/onevault/readiness/internal/vault"
)

// Security event kinds recorded for denied requests.
const (
	eventAuthFailure  = "AUTHENTICATION_FAILURE"
	eventUnauthorized = "UNAUTHORIZED_ACCESS"
)

// authenticator is the validator's AuthenticationFunc: it verifies the bearer token, checks
// that X-Tenant-ID is one of the token's tenants and that the token's roles grant the
// operation's scope, and puts the principal and tenant in the request context. Every denial is
// recorded as a security event.
type authenticator struct {
	store    *vault.Store
	verifier *auth.Verifier
	logger   *slog.Logger
}

func (a *authenticator) authenticate(ctx context.Context, in *openapi3filter.AuthenticationInput) error {
	ec := echomiddleware.GetEchoContext(ctx)
	if ec == nil {
		return errors.New("authenticator: no echo context")
	}
	req := ec.Request()
	op := in.RequestValidationInput.Route.Operation
	tenant := req.Header.Get("X-Tenant-ID")
	deny := func(status int, kind, severity, subject, reason string) error {
		a.recordDenial(ec, kind, severity, tenant, subject, op.OperationID, reason)
		return &api.Error{Status: status, Code: api.CodeForStatus(status), Message: reason}
	}

	raw, ok := strings.CutPrefix(req.Header.Get(echo.HeaderAuthorization), "Bearer ")
	if !ok || strings.TrimSpace(raw) == "" {
		return deny(http.StatusUnauthorized, eventAuthFailure, "LOW", "", "missing bearer token")
	}
	p, err := a.verifier.Verify(req.Context(), strings.TrimSpace(raw))
	if err != nil {
		reason := "invalid token"
		if errors.Is(err, auth.ErrInvalidToken) {
			reason = err.Error() // a short, safe reason: never the token or a key
		}
		return deny(http.StatusUnauthorized, eventAuthFailure, "MEDIUM", "", reason)
	}

	tenantOp := op.Parameters.GetByInAndName("header", "X-Tenant-ID") != nil
	if tenantOp && tenant != "" && !p.MayAccessTenant(tenant) {
		return deny(http.StatusForbidden, eventUnauthorized, "HIGH", p.Subject,
			fmt.Sprintf("tenant %q is not granted by the token", tenant))
	}
	for _, scope := range in.Scopes {
		if !p.HasScope(scope) {
			return deny(http.StatusForbidden, eventUnauthorized, "MEDIUM", p.Subject,
				fmt.Sprintf("the token's roles do not grant scope %q", scope))
		}
	}

	rctx := auth.WithPrincipal(req.Context(), p)
	draft := audit.DraftFrom(rctx)
	draft.Subject = p.Subject
	if tenantOp && tenant != "" {
		hk, err := a.store.TenantHK(rctx, tenant)
		if errors.Is(err, vault.ErrTenantNotRegistered) {
			return &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound,
				Message: fmt.Sprintf("tenant %q is not registered", tenant)}
		}
		if err != nil {
			return err
		}
		draft.Tenant = tenant
		rctx = api.WithTenant(rctx, api.Tenant{ID: tenant, HK: hk})
	}
	ec.SetRequest(req.WithContext(rctx))
	return nil
}

// recordDenial stores a security event; a failure to store it is logged, never shown.
func (a *authenticator) recordDenial(c echo.Context, kind, severity, tenant, subject, operation, reason string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), 2*time.Second)
	defer cancel()
	err := a.store.Queries().SecurityEventInsert(ctx, db.SecurityEventInsertParams{
		TenantBk: optional(tenant), Kind: kind, Severity: severity, Subject: optional(subject),
		SourceAddr: optional(c.RealIP()), Operation: optional(operation), Detail: reason,
		RequestID: optional(requestID(c)),
	})
	if err != nil {
		a.logger.Error("record security event", "request_id", requestID(c), "error", err.Error())
	}
	a.logger.Warn("request denied", "request_id", requestID(c), "kind", kind, "tenant", tenant,
		"subject", subject, "operation", operation, "reason", reason)
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
