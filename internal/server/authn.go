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

	"github.com/onevault/readiness/internal/api"
	"github.com/onevault/readiness/internal/audit"
	"github.com/onevault/readiness/internal/auth"
	"github.com/onevault/readiness/internal/security"
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
	store      *vault.Store
	verifier   *auth.Verifier
	limiter    *limiter          // nil: no rate limit
	operations map[string]string // "METHOD /echo/path" -> operationId
	logger     *slog.Logger
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

	scheme, raw, _ := strings.Cut(strings.TrimSpace(req.Header.Get(echo.HeaderAuthorization)), " ")
	if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(raw) == "" {
		return deny(http.StatusUnauthorized, eventAuthFailure, "LOW", "", "missing bearer token")
	}
	p, err := a.verifier.Verify(req.Context(), strings.TrimSpace(raw))
	if err != nil {
		reason := "invalid token"
		if errors.Is(err, auth.ErrInvalidToken) {
			// A short, safe reason: never the token or a key.
			reason = strings.TrimPrefix(err.Error(), "auth: ")
		}
		return deny(http.StatusUnauthorized, eventAuthFailure, "MEDIUM", "", reason)
	}
	// From here the caller is known: the audit record names who asked, also when refused.
	draft := audit.DraftFrom(req.Context())
	draft.Subject, draft.Tenant = p.Subject, tenant

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

	// The rate limit counts only authenticated requests, per tenant (per subject on operations
	// without a tenant), so that nobody can use up a tenant's budget without its token.
	if a.limiter != nil {
		key := "tenant:" + tenant
		if !tenantOp || tenant == "" {
			key = "subject:" + p.Subject
		}
		if err := a.limiter.check(ec, key); err != nil {
			return err
		}
	}

	rctx := auth.WithPrincipal(req.Context(), p)
	if tenantOp && tenant != "" {
		hk, err := a.store.TenantHK(rctx, tenant)
		if errors.Is(err, vault.ErrTenantNotRegistered) {
			return deny(http.StatusForbidden, eventUnauthorized, "MEDIUM", p.Subject,
				fmt.Sprintf("tenant %q is not registered", tenant))
		}
		if err != nil {
			return err
		}
		rctx = api.WithTenant(rctx, api.Tenant{ID: tenant, HK: hk})
	}
	ec.SetRequest(req.WithContext(rctx))
	return nil
}

// recordDenial stores a security event; a failure to store it is logged, never shown.
func (a *authenticator) recordDenial(c echo.Context, kind, severity, tenant, subject, operation, reason string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), 2*time.Second)
	defer cancel()
	err := security.Record(ctx, a.store, security.Event{Tenant: tenant, Kind: kind, Severity: severity,
		Subject: subject, SourceAddr: c.RealIP(), Operation: operation, Detail: reason, RequestID: requestID(c)})
	if err != nil {
		a.logger.Error("record security event", "request_id", requestID(c), "error", err.Error())
	}
	a.logger.Warn("request denied", "request_id", requestID(c), "kind", kind, "tenant", tenant,
		"subject", subject, "operation", operation, "reason", reason)
}
