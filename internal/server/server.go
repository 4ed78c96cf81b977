// Package server wires the HTTP service: echo, the middleware chain of ARCHITECTURE.md (recover,
// request id, access log, rate limit, OpenAPI validation with authentication, audit), the one
// error envelope, health endpoints, the served contract and /metrics.
package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	echomiddleware "github.com/oapi-codegen/echo-middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	oapi "github.com/onevault/readiness/gen/api"
	"github.com/onevault/readiness/internal/api"
	"github.com/onevault/readiness/internal/auth"
	"github.com/onevault/readiness/internal/vault"
	"github.com/onevault/readiness/openapi"
)

// Options are what the server is built from.
type Options struct {
	Store     *vault.Store
	Verifier  *auth.Verifier
	Handlers  *api.Handlers
	RateLimit int // authenticated requests a minute per tenant; 0 disables the limit
	Logger    *slog.Logger
	Metrics   prometheus.Gatherer // what /metrics serves; the default registry when nil
}

// registerFormats makes the validator check the formats email and uuid, which kin-openapi
// leaves unchecked unless asked (uuid after RFC 9562, so that v7 ids pass).
var registerFormats = sync.OnceFunc(func() {
	openapi3.DefineStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC9562))
	openapi3.DefineStringFormatValidator("email", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForEmail))
})

// New builds the echo server with every route of the contract.
func New(opts Options) (*echo.Echo, error) {
	registerFormats()
	spec, err := oapi.GetSpec()
	if err != nil {
		return nil, err
	}
	spec.Servers = nil // paths carry /api/v1 themselves; do not validate the Host header
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	operations := operationIDs(spec)
	authn := &authenticator{store: opts.Store, verifier: opts.Verifier, operations: operations, logger: logger}
	if opts.RateLimit > 0 {
		authn.limiter = newLimiter(opts.RateLimit, time.Minute)
	}
	e.HTTPErrorHandler = errorHandler(logger, authn)
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			logger.Error("panic", "request_id", requestID(c), "error", err.Error(), "stack", string(stack))
			return err
		},
	}))
	// Request ids are always made here: a client's X-Request-ID is not trusted, since the id
	// ties together the access log, the audit log and security events.
	e.Use(middleware.RequestIDWithConfig(middleware.RequestIDConfig{
		Skipper: func(c echo.Context) bool {
			c.Request().Header.Del(echo.HeaderXRequestID)
			return false
		},
		Generator: func() string { return uuid.NewString() },
	}))
	e.Use(accessLog(logger))
	e.Use(middleware.BodyLimit("1M"))

	e.GET("/healthz", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]any{"status": "ok"})
	})
	e.GET("/readyz", readyz(opts.Store))
	e.GET("/openapi.yaml", func(c echo.Context) error {
		return c.Blob(http.StatusOK, "application/yaml", openapi.YAML)
	})
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	e.GET("/openapi.json", func(c echo.Context) error {
		return c.JSONBlob(http.StatusOK, specJSON)
	})
	gatherer := opts.Metrics
	if gatherer == nil {
		gatherer = prometheus.DefaultGatherer
	}
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{})))

	chain := []echo.MiddlewareFunc{
		auditTrail(opts.Store, operations, logger),
		echomiddleware.OapiRequestValidatorWithOptions(spec, &echomiddleware.Options{
			Options: openapi3filter.Options{
				AuthenticationFunc: authn.authenticate,
				MultiError:         true,
			},
			MultiErrorHandler: validationErrors,
			ErrorHandler: func(c echo.Context, err *echo.HTTPError) error {
				return err
			},
		}),
	}
	oapi.RegisterHandlers(v1Router{e: e, chain: chain}, oapi.NewStrictHandler(opts.Handlers, nil))
	return e, nil
}

// v1Router registers the generated routes with the /api/v1 middleware chain on each route, so
// that /healthz, /metrics and the served contract stay outside it.
type v1Router struct {
	e     *echo.Echo
	chain []echo.MiddlewareFunc
}

func (r v1Router) add(method, path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.e.Add(method, path, h, append(append([]echo.MiddlewareFunc{}, r.chain...), m...)...)
}

// CONNECT registers a route.
func (r v1Router) CONNECT(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodConnect, p, h, m...)
}

// DELETE registers a route.
func (r v1Router) DELETE(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodDelete, p, h, m...)
}

// GET registers a route.
func (r v1Router) GET(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodGet, p, h, m...)
}

// HEAD registers a route.
func (r v1Router) HEAD(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodHead, p, h, m...)
}

// OPTIONS registers a route.
func (r v1Router) OPTIONS(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodOptions, p, h, m...)
}

// PATCH registers a route.
func (r v1Router) PATCH(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodPatch, p, h, m...)
}

// POST registers a route.
func (r v1Router) POST(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodPost, p, h, m...)
}

// PUT registers a route.
func (r v1Router) PUT(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodPut, p, h, m...)
}

// TRACE registers a route.
func (r v1Router) TRACE(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodTrace, p, h, m...)
}

// operationIDs maps "METHOD /echo/path/:param" to the contract's operationId, for the audit log.
func operationIDs(spec *openapi3.T) map[string]string {
	ids := map[string]string{}
	for path, item := range spec.Paths.Map() {
		echoPath := path
		for {
			i := strings.IndexByte(echoPath, '{')
			if i < 0 {
				break
			}
			j := strings.IndexByte(echoPath[i:], '}')
			echoPath = echoPath[:i] + ":" + echoPath[i+1:i+j] + echoPath[i+j+1:]
		}
		for method, op := range item.Operations() {
			ids[method+" "+echoPath] = op.OperationID
		}
	}
	return ids
}

func readyz(store *vault.Store) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		if err := store.Pool.Ping(ctx); err != nil {
			return c.JSON(http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "reason": "database unreachable"})
		}
		pending, err := store.Pending(ctx)
		if err != nil || pending {
			return c.JSON(http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "reason": "migrations not applied"})
		}
		return c.JSON(http.StatusOK, map[string]any{"status": "ready"})
	}
}

func requestID(c echo.Context) string {
	return c.Response().Header().Get(echo.HeaderXRequestID)
}

func accessLog(logger *slog.Logger) echo.MiddlewareFunc {
	return middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		LogMethod: true, LogURIPath: true, LogStatus: true, LogLatency: true, LogRemoteIP: true,
		HandleError: true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			logger.LogAttrs(c.Request().Context(), slog.LevelInfo, "request",
				slog.String("request_id", requestID(c)),
				slog.String("method", v.Method),
				slog.String("path", v.URIPath),
				slog.Int("status", v.Status),
				slog.Duration("latency", v.Latency),
				slog.String("remote_ip", v.RemoteIP),
				slog.String("tenant", c.Request().Header.Get("X-Tenant-ID")),
			)
			return nil
		},
	})
}
