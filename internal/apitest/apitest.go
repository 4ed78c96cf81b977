// Package apitest helps tests talk to the service as its users do: through the generated
// client, with every response checked against the contract.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
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
	"github.com/onevault/readiness/internal/app"
	"github.com/onevault/readiness/internal/auth"
	"github.com/onevault/readiness/internal/config"
	"github.com/onevault/readiness/internal/notify"
	"github.com/onevault/readiness/internal/pgtest"
	"github.com/onevault/readiness/internal/storage"
	"github.com/onevault/readiness/internal/vault"
)

// Secret is the JWT secret test services are configured with.
var Secret = []byte("test-secret-that-is-at-least-32-bytes-long")

// Router returns the contract's router, for validating responses.
func Router(t testing.TB) routers.Router {
	t.Helper()
	spec, err := oapi.GetSpec()
	require.NoError(t, err)
	spec.Servers = nil
	r, err := gorillamux.NewRouter(spec)
	require.NoError(t, err)
	return r
}

// NewClient returns the generated client on baseURL; every response it gets is validated.
func NewClient(t testing.TB, baseURL string) *client.ClientWithResponses {
	t.Helper()
	c, err := client.NewClientWithResponses(baseURL, client.WithHTTPClient(&http.Client{
		Transport: &ValidatingTransport{T: t, Router: Router(t)}, Timeout: 60 * time.Second}))
	require.NoError(t, err)
	return c
}

// ValidatingTransport checks every response of an /api/v1 operation against the contract: its
// status must be declared, its headers and body must match the declared schema.
type ValidatingTransport struct {
	T      testing.TB
	Router routers.Router
}

// RoundTrip sends the request and validates the response.
func (v *ValidatingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
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
	route, params, err := v.Router.FindRoute(req)
	if err != nil {
		// Unknown paths and methods are answered by the router, in the envelope.
		RequireEnvelope(v.T, body)
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
		v.T.Errorf("%s %s answered %d, which the contract does not allow: %v\nbody: %s",
			req.Method, req.URL.Path, resp.StatusCode, err, body)
	}
	return resp, nil
}

// ErrorEnvelope is the error shape, decoded loosely so tests can check any status.
type ErrorEnvelope struct {
	Success *bool `json:"success"`
	Error   struct {
		Code      string       `json:"code"`
		Message   string       `json:"message"`
		Details   []api.Detail `json:"details"`
		RequestID string       `json:"requestId"`
	} `json:"error"`
}

// RequireEnvelope checks that body is an error envelope and returns it.
func RequireEnvelope(t testing.TB, body []byte) ErrorEnvelope {
	t.Helper()
	var e ErrorEnvelope
	require.NoError(t, json.Unmarshal(body, &e), "body: %s", body)
	require.NotNil(t, e.Success, "body: %s", body)
	require.False(t, *e.Success)
	require.NotEmpty(t, e.Error.Code)
	require.NotEmpty(t, e.Error.Message)
	require.NotEmpty(t, e.Error.RequestID)
	return e
}

// Token signs a token with Secret.
func Token(t testing.TB, sub string, tenants []string, roles ...string) string {
	t.Helper()
	tok, err := auth.Sign(Secret, auth.Claims{Subject: sub, Tenants: tenants, Roles: roles, TTL: time.Hour})
	require.NoError(t, err)
	return tok
}

// As adds a bearer token to a request of the generated client.
func As(tok string) client.RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+tok)
		return nil
	}
}

// Options shape a test service.
type Options struct {
	RateLimit   int           // requests a minute per tenant; 0: none
	Workers     int           // job workers; 0: the API only, no job runs
	ManagedURL  string        // the managed database; "" gives a fresh empty one
	RescueAfter time.Duration // how soon a dead worker's job is retried; 0: the default
	Scheduler   bool          // run the schedule runner (off by default, so tests' schedules do not fire)
	SMTP        notify.SMTPConfig
	MaxAttempts int // tries per backup; 0: the default
	// StoragePath and EncryptionKey, when set, are the repository's (a test that archives WAL
	// into it sets them up first); RestoreCommand is recovered instances' restore_command.
	StoragePath, EncryptionKey, RestoreCommand string
	// WALStream streams the managed cluster's WAL into the repository (WAL_STREAM).
	WALStream bool
}

// Service is a whole service started for a test: the app, its base URL and a validating client.
type Service struct {
	App    *app.App
	URL    string
	Client *client.ClientWithResponses
	Config config.Config
}

// Start assembles the service on a fresh migrated database with the tenants acme and globex
// registered, a backup repository in a temporary directory, and an HTTP test server.
func Start(t testing.TB, opts Options) *Service {
	t.Helper()
	ctx := context.Background()
	srv := pgtest.Server(t)
	cfg := config.Defaults()
	cfg.DatabaseURL = srv.NewDatabaseFrom(t, "migrated", vault.Migrate)
	cfg.ManagedDatabaseURL = opts.ManagedURL
	if cfg.ManagedDatabaseURL == "" {
		cfg.ManagedDatabaseURL = srv.NewDatabase(t)
	}
	cfg.JWTSecret = Secret
	cfg.EncryptionKey, cfg.StoragePath, cfg.RestoreCommand = opts.EncryptionKey, opts.StoragePath, opts.RestoreCommand
	if cfg.EncryptionKey == "" {
		key, err := storage.GenerateKey()
		require.NoError(t, err)
		cfg.EncryptionKey = key
	}
	if cfg.StoragePath == "" {
		cfg.StoragePath = t.TempDir()
	}
	cfg.RecoveryDataPath = t.TempDir()
	cfg.RateLimit = opts.RateLimit
	cfg.BackupWorkers = opts.Workers
	if opts.RescueAfter > 0 {
		cfg.RescueAfter = opts.RescueAfter
	}
	cfg.SchedulerEnabled = opts.Scheduler
	cfg.WALStream = opts.WALStream
	cfg.SMTP = opts.SMTP
	if opts.MaxAttempts > 0 {
		cfg.BackupMaxAttempts = opts.MaxAttempts
	}
	cfg.ScheduleSyncEvery = time.Second
	svc := StartWith(t, cfg)
	for _, tenant := range []string{"acme", "globex"} {
		_, err := svc.App.Store.Queries().TenantCreate(ctx, db.TenantCreateParams{TenantBk: tenant, DisplayName: tenant,
			ChangedBy: "test", RecordSource: "test"})
		require.NoError(t, err)
	}
	return svc
}

// StartWith starts another replica of a service from its configuration (the same database and
// repository), with its own HTTP test server.
func StartWith(t testing.TB, cfg config.Config) *Service {
	t.Helper()
	ctx := context.Background()
	a, err := app.New(ctx, cfg, logger())
	require.NoError(t, err)
	require.NoError(t, a.Start(ctx))
	ts := httptest.NewServer(a.HTTP)
	t.Cleanup(func() {
		ts.Close()
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		a.Stop(sctx)
	})
	return &Service{App: a, URL: ts.URL, Client: NewClient(t, ts.URL), Config: cfg}
}

func logger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewJSONHandler(io.Discard, nil))
}

// replicaConfigEnv names the configuration file of a replica process started by StartReplica.
const replicaConfigEnv = "READINESS_TEST_REPLICA_CONFIG"

// RunReplicaIfAsked turns the test binary into a replica of a service when StartReplica
// started it: call it first in TestMain. It runs the job workers and the scheduler of the
// configuration it was given, until it is killed, and never returns then.
func RunReplicaIfAsked() {
	path := os.Getenv(replicaConfigEnv)
	if path == "" {
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	var cfg config.Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		panic(err)
	}
	ctx := context.Background()
	a, err := app.New(ctx, cfg, slog.New(slog.NewJSONHandler(os.Stderr, nil)))
	if err != nil {
		panic(err)
	}
	if err := a.Start(ctx); err != nil {
		panic(err)
	}
	select {}
}

// StartReplica starts another process of the test binary as a replica of the service
// described by cfg (see RunReplicaIfAsked); it is killed when the test ends.
func StartReplica(t testing.TB, cfg config.Config) *exec.Cmd {
	t.Helper()
	path := filepath.Join(t.TempDir(), "replica.json")
	b, err := json.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o600))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), replicaConfigEnv+"="+path)
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}
