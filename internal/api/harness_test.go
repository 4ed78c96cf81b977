package api_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/gen/client"
	"github.com/onevault/readiness/internal/apitest"
	"github.com/onevault/readiness/internal/auth"
	"github.com/onevault/readiness/internal/pgtest"
	"github.com/onevault/readiness/internal/vault"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var testSecret = apitest.Secret

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
	var o envOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	svc := apitest.Start(t, apitest.Options{RateLimit: o.rateLimit})
	return &env{t: t, store: svc.App.Store, url: svc.URL, client: svc.Client}
}

// validatingTransport and errorEnvelope are apitest's, under the names these tests use.
type validatingTransport = apitest.ValidatingTransport

type errorEnvelope = apitest.ErrorEnvelope

func requireEnvelope(t *testing.T, body []byte) errorEnvelope {
	t.Helper()
	return apitest.RequireEnvelope(t, body)
}

// token signs a token with the test secret.
func token(t *testing.T, sub string, tenants []string, roles ...string) string {
	return apitest.Token(t, sub, tenants, roles...)
}

// as adds a bearer token to a request.
func as(tok string) client.RequestEditorFn { return apitest.As(tok) }

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
	resp, err := (&validatingTransport{T: e.t, Router: apitest.Router(e.t)}).RoundTrip(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return resp.StatusCode, b, resp.Header
}

// count runs a counting query on the service database, for checks that nothing changed.
func (e *env) count(query string, args ...any) int {
	e.t.Helper()
	var n int
	require.NoError(e.t, e.store.Pool.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}
