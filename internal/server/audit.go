package server

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/onevault/readiness/internal/audit"
	"github.com/onevault/readiness/internal/vault"
)

// auditTrail writes one audit record for every mutating request, whatever its outcome,
// denials included: who, tenant, operation, resource id, status, request id, time and the
// body with its secrets masked.
func auditTrail(store *vault.Store, operations map[string]string, logger *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			method := c.Request().Method
			if method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions {
				return next(c)
			}
			var body []byte
			if c.Request().Body != nil {
				var err error
				if body, err = io.ReadAll(c.Request().Body); err != nil {
					return err
				}
				c.Request().Body = io.NopCloser(bytes.NewReader(body))
			}
			ctx, draft := audit.WithDraft(c.Request().Context())
			c.SetRequest(c.Request().WithContext(ctx))
			started := time.Now()
			if err := next(c); err != nil {
				c.Error(err) // write the response now, so that its status is known
			}
			rec := audit.Record{
				OccurredAt: started, Tenant: draft.Tenant, Subject: draft.Subject,
				Operation: operations[method+" "+c.Path()], Method: method, Path: c.Request().URL.Path,
				ResourceID: draft.ResourceID, Outcome: c.Response().Status, RequestID: requestID(c),
				Body: audit.Mask(body),
			}
			if rec.ResourceID == "" && len(c.ParamValues()) > 0 {
				rec.ResourceID = c.ParamValues()[0]
			}
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := audit.Append(actx, store.Pool, rec); err != nil {
				logger.Error("write audit record", "request_id", rec.RequestID, "error", err.Error())
			}
			return nil
		}
	}
}
