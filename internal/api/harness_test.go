package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/stretchr/testify/require"

	oapi "github.com/onevault/readiness/gen/api"
	"github.com/onevault/readiness/gen/client"
	"github.com/onevault/readiness/gen/db"
	"github.com/onevault/readiness/internal/api"
	"github.com/onevault/readiness/internal/auth"
	"github.com/onevault/readiness/internal/pgtest"
	"github.com/onevault/readiness/internal/server"
	"github.com/onevault/readiness/internal/vault"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var testSecret = []byte("test-secret-that-is-at-least-32-bytes-long")

// env is one service on a fresh migrated database with the tenants acme and globex, reached
// through the generated client, every response of which is validated against the contract.
type env struct {
	t      *testing.T
	store  *vault.Store
	url    string
	client *client.ClientWithResponses
}

type envOptions struct {
	rateLimit int
}

func newEnv(t *testing.T, opts ...envOptions) *env {
	t.Helper()
	ctx := context.Background()
	dbURL := pgtest.Server(t).NewDatabaseFrom(t, "migrated", vault.Migrate)
	store, err := vault.Open(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(store.Close)
	for _, tenant := range []string{"acme", "globex"} {
		_, err := store.Queries().TenantCreate(ctx, db.TenantCreateParams{TenantBk: tenant, DisplayName: tenant,
			ChangedBy: "test", RecordSource: "test"})
		require.NoError(t, err)
	}
	verifier, err := auth.NewVerifier(ctx, auth.Config{Secret: testSecret})
	require.NoError(t, err)
	var o envOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	e, err := server.New(server.Options{Store: store, Verifier: verifier, RateLimit: o.rateLimit,
		Logger:   slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Handlers: api.NewHandlers(store, api.Settings{RetentionYears: 7})})
	require.NoError(t, err)
	ts := httptest.NewServer(e)
	t.Cleanup(ts.Close)

	spec, err := oapi.GetSpec()
	require.NoError(t, err)
	spec.Servers = nil
	router, err := gorillamux.NewRouter(spec)
	require.NoError(t, err)
	c, err := client.NewClientWithResponses(ts.URL, client.WithHTTPClient(&http.Client{
		Transport: &validatingTransport{t: t, router: router}, Timeout: 30 * time.Second}))
	require.NoError(t, err)
	return &env{t: t, store: store, url: ts.URL, client: c}
}

// validatingTransport checks every response of an /api/v1 operation against the contract:
// its status must be declared, its headers and body must match the declared schema.
type validatingTransport struct {
	t      *testing.T
	router routers.Router
}

func (v *validatingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || !strings.HasPrefix(req.URL.Path, "/api/v1/") {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		// Unknown paths and methods are answered by the router, in the envelope.
		requireEnvelope(v.t, body)
		return resp, nil
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		v.t.Errorf("%s %s answered %d, which the contract does not allow: %v\nbody: %s",
			req.Method, req.URL.Path, resp.StatusCode, err, body)
	}
	return resp, nil
}

// errorEnvelope is the error shape, decoded loosely so tests can check any status.
type errorEnvelope struct {
	Success *bool `json:"success"`
	Error   struct {
		Code      string       `json:"code"`
		Message   string       `json:"message"`
		Details   []api.Detail `json:"details"`
		RequestID string       `json:"requestId"`
	} `json:"error"`
}

func requireEnvelope(t *testing.T, body []byte) errorEnvelope {
	t.Helper()
	var e errorEnvelope
	require.NoError(t, json.Unmarshal(body, &e), "body: %s", body)
	require.NotNil(t, e.Success, "body: %s", body)
	require.False(t, *e.Success)
	require.NotEmpty(t, e.Error.Code)
	require.NotEmpty(t, e.Error.Message)
	require.NotEmpty(t, e.Error.RequestID)
	return e
}

// token signs a token with the test secret.
func token(t *testing.T, sub string, tenants []string, roles ...string) string {
	t.Helper()
	tok, err := auth.Sign(testSecret, auth.Claims{Subject: sub, Tenants: tenants, Roles: roles, TTL: time.Hour})
	require.NoError(t, err)
	return tok
}

// as adds a bearer token to a request.
func as(tok string) client.RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+tok)
		return nil
	}
}

func acmeAdmin(t *testing.T) client.RequestEditorFn {
	return as(token(t, "alice", []string{"acme"}, auth.RoleAdmin))
}

func globexAdmin(t *testing.T) client.RequestEditorFn {
	return as(token(t, "gary", []string{"globex"}, auth.RoleAdmin))
}

// raw sends a request without the generated client's help, for malformed input; the response
// is still validated against the contract.
func (e *env) raw(method, path, tenant, tok, body string) (int, []byte, http.Header) {
	e.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, r)
	require.NoError(e.t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if tenant != "" {
		req.Header.Set("X-Tenant-ID", tenant)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := (&validatingTransport{t: e.t, router: e.router()}).RoundTrip(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return resp.StatusCode, b, resp.Header
}

func (e *env) router() routers.Router {
	spec, err := oapi.GetSpec()
	require.NoError(e.t, err)
	spec.Servers = nil
	r, err := gorillamux.NewRouter(spec)
	require.NoError(e.t, err)
	return r
}

// count runs a counting query on the service database, for checks that nothing changed.
func (e *env) count(query string, args ...any) int {
	e.t.Helper()
	var n int
	require.NoError(e.t, e.store.Pool.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}
