package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/gen/client"
	"github.com/onevault/readiness/internal/apitest"
	"github.com/onevault/readiness/internal/audit"
	"github.com/onevault/readiness/internal/auth"
)

// authScheduleBody is a schedule that every check of these tests accepts.
const authScheduleBody = `{"scheduleName":"nightly","backupType":"FULL","cronExpression":"0 2 * * *","timezone":"UTC"}`

// authResponse is one answer of the service as a user sees it.
type authResponse struct {
	status int
	body   []byte
	header http.Header
}

// authDo sends a request with exactly the given headers (so tests can send any Authorization
// value) and validates the answer against the contract, reporting violations on t.
func authDo(t *testing.T, e *env, method, path string, headers map[string]string, body string) authResponse {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, r)
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := (&validatingTransport{T: t, Router: apitest.Router(t)}).RoundTrip(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return authResponse{status: resp.StatusCode, body: b, header: resp.Header}
}

// authCall sends a request as the holder of tok (no Authorization header when tok is empty)
// acting for tenant (no X-Tenant-ID when tenant is empty).
func authCall(t *testing.T, e *env, method, path, tenant, tok, body string) authResponse {
	t.Helper()
	h := map[string]string{}
	if tenant != "" {
		h["X-Tenant-ID"] = tenant
	}
	if tok != "" {
		h["Authorization"] = "Bearer " + tok
	}
	return authDo(t, e, method, path, h, body)
}

// authClient is the generated client whose answers are validated against the contract and
// reported on t, so that a violation fails the subtest that caused it.
func authClient(t *testing.T, e *env) *client.ClientWithResponses {
	t.Helper()
	c, err := client.NewClientWithResponses(e.url, client.WithHTTPClient(&http.Client{
		Transport: &validatingTransport{T: t, Router: apitest.Router(t)}, Timeout: 30 * time.Second}))
	require.NoError(t, err)
	return c
}

// requireRefusal checks that r is an error envelope with the given status and code whose
// requestId is the request id the service logged (X-Request-ID), and returns it.
func requireRefusal(t *testing.T, r authResponse, status int, code string) errorEnvelope {
	t.Helper()
	require.Equal(t, status, r.status, "body: %s", r.body)
	env := requireEnvelope(t, r.body)
	require.Equal(t, code, env.Error.Code, "body: %s", r.body)
	require.Equal(t, r.header.Get("X-Request-ID"), env.Error.RequestID)
	return env
}

// requireNoToken checks that message does not carry the token or any sizeable part of it.
func requireNoToken(t *testing.T, message, tok string) {
	t.Helper()
	if tok == "" {
		return
	}
	require.NotContains(t, message, tok)
	for _, part := range strings.Split(tok, ".") {
		if len(part) > 8 {
			require.NotContains(t, message, part)
		}
	}
}

// signBuilt signs a token built with jwx, so that tests control every claim, including ones
// that auth.Sign refuses to produce.
func signBuilt(t *testing.T, b *jwt.Builder, key []byte) string {
	t.Helper()
	tok, err := b.Build()
	require.NoError(t, err)
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.HS256, key))
	require.NoError(t, err)
	return string(signed)
}

// validBuilder is the builder of a valid acme admin token; tests change one thing about it.
func validBuilder(withSub, withTenants, withRoles bool) *jwt.Builder {
	now := time.Now()
	b := jwt.NewBuilder().IssuedAt(now).NotBefore(now).Expiration(now.Add(time.Hour))
	if withSub {
		b = b.Subject("mallory")
	}
	if withTenants {
		b = b.Claim("tenants", []string{"acme"})
	}
	if withRoles {
		b = b.Claim("roles", []string{auth.RoleAdmin})
	}
	return b
}

// unsignedToken builds an alg=none token by hand, the way an attacker would.
func unsignedToken(t *testing.T, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	require.NoError(t, err)
	return base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		base64.RawURLEncoding.EncodeToString(payload) + "."
}

// securityEvent is a row of security_event.
type securityEvent struct {
	kind, severity, detail                 string
	tenant, subject, sourceAddr, operation *string
}

// requireSecurityEvent checks that exactly one security event carries requestID and that it
// says what was denied, to whom, where and from where; an empty tenant or subject must be NULL.
func requireSecurityEvent(t *testing.T, e *env, requestID, kind, tenant, subject, operation string) securityEvent {
	t.Helper()
	require.NotEmpty(t, requestID)
	rows, err := e.store.Pool.Query(context.Background(), `SELECT kind, severity, detail, tenant_bk, subject,
		source_addr, operation FROM security_event WHERE request_id = $1`, requestID)
	require.NoError(t, err)
	events, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (securityEvent, error) {
		var ev securityEvent
		err := row.Scan(&ev.kind, &ev.severity, &ev.detail, &ev.tenant, &ev.subject, &ev.sourceAddr, &ev.operation)
		return ev, err
	})
	require.NoError(t, err)
	require.Len(t, events, 1, "security events of request %s", requestID)
	ev := events[0]
	require.Equal(t, kind, ev.kind)
	require.NotEmpty(t, ev.severity)
	require.NotEmpty(t, ev.detail)
	requireOptional(t, tenant, ev.tenant, "tenant_bk")
	requireOptional(t, subject, ev.subject, "subject")
	requireOptional(t, operation, ev.operation, "operation")
	require.NotNil(t, ev.sourceAddr, "source_addr")
	require.NotEmpty(t, *ev.sourceAddr, "source_addr")
	return ev
}

func requireOptional(t *testing.T, want string, got *string, column string) {
	t.Helper()
	if want == "" {
		require.Nil(t, got, "%s should be NULL", column)
		return
	}
	require.NotNil(t, got, "%s should be %q", column, want)
	require.Equal(t, want, *got, column)
}

func (e *env) schedulesOf(tenant string) int {
	return e.count(`SELECT count(*) FROM hub_backup_schedule s JOIN hub_tenant t USING (tenant_hk)
		WHERE t.tenant_bk = $1`, tenant)
}

func TestAuthRefusesBadTokens(t *testing.T) {
	e := newEnv(t)
	const path = "/api/v1/schedule/list"
	now := time.Now()
	otherKey := []byte("another-secret-that-is-also-32-bytes-or-more")
	require.GreaterOrEqual(t, len(otherKey), 32)

	cases := []struct {
		name    string
		header  string // the whole Authorization header; empty sends none
		tok     string // the token inside it, which the answer must not echo
		message string // what the message must say
	}{
		{
			name: "an expired token is refused",
			tok: signBuilt(t, jwt.NewBuilder().Subject("mallory").IssuedAt(now.Add(-2*time.Hour)).
				NotBefore(now.Add(-2*time.Hour)).Expiration(now.Add(-time.Hour)).
				Claim("tenants", []string{"acme"}).Claim("roles", []string{auth.RoleAdmin}), testSecret),
			message: "token expired",
		},
		{
			name:    "a token signed with another key is refused",
			tok:     signBuilt(t, validBuilder(true, true, true), otherKey),
			message: "signature invalid",
		},
		{
			name: "an unsigned alg none token is refused",
			tok: unsignedToken(t, map[string]any{"sub": "mallory", "tenants": []string{"acme"},
				"roles": []string{auth.RolePlatformAdmin}, "iat": now.Unix(), "nbf": now.Unix(),
				"exp": now.Add(time.Hour).Unix()}),
			message: "algorithm not allowed",
		},
		{
			name:    "a token without sub is refused",
			tok:     signBuilt(t, validBuilder(false, true, true), testSecret),
			message: "missing claim sub",
		},
		{
			name:    "a token without tenants is refused",
			tok:     signBuilt(t, validBuilder(true, false, true), testSecret),
			message: "missing claim tenants",
		},
		{
			name:    "a token without roles is refused",
			tok:     signBuilt(t, validBuilder(true, true, false), testSecret),
			message: "missing claim roles",
		},
		{
			name:    "a malformed token is refused",
			tok:     "abc",
			message: "malformed token",
		},
		{
			name:    "a request without an Authorization header is refused",
			message: "missing bearer token",
		},
		{
			name:    "a Basic Authorization header is refused",
			header:  "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:hunter2-password")),
			tok:     base64.StdEncoding.EncodeToString([]byte("alice:hunter2-password")),
			message: "missing bearer token",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{"X-Tenant-ID": "acme"}
			switch {
			case tc.header != "":
				h["Authorization"] = tc.header
			case tc.tok != "":
				h["Authorization"] = "Bearer " + tc.tok
			}
			r := authDo(t, e, http.MethodGet, path, h, "")

			env := requireRefusal(t, r, http.StatusUnauthorized, "UNAUTHORIZED")
			require.Contains(t, env.Error.Message, tc.message)
			requireNoToken(t, env.Error.Message, tc.tok)
			requireNoToken(t, string(r.body), tc.tok)

			ev := requireSecurityEvent(t, e, env.Error.RequestID, "AUTHENTICATION_FAILURE", "acme", "", "listSchedules")
			require.Contains(t, ev.detail, tc.message)
			requireNoToken(t, ev.detail, tc.tok)
		})
	}

	t.Run("a valid token is accepted on the same request", func(t *testing.T) {
		r := authCall(t, e, http.MethodGet, path, "acme", token(t, "alice", []string{"acme"}, auth.RoleViewer), "")
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	})
}

func TestAuthEnforcesTenantAndScope(t *testing.T) {
	e := newEnv(t)
	viewer := token(t, "victor", []string{"acme"}, auth.RoleViewer)
	approver := token(t, "april", []string{"acme"}, auth.RoleApprover)
	operator := token(t, "olivia", []string{"acme"}, auth.RoleOperator)
	acmeAdminTok := token(t, "alice", []string{"acme"}, auth.RoleAdmin)

	t.Run("a tenant the token does not grant is forbidden and recorded", func(t *testing.T) {
		r := authCall(t, e, http.MethodGet, "/api/v1/schedule/list", "globex", acmeAdminTok, "")
		env := requireRefusal(t, r, http.StatusForbidden, "FORBIDDEN")
		require.Contains(t, env.Error.Message, "globex")
		requireSecurityEvent(t, e, env.Error.RequestID, "UNAUTHORIZED_ACCESS", "globex", "alice", "listSchedules")
	})

	t.Run("a tenant the token does not grant cannot write either", func(t *testing.T) {
		r := authCall(t, e, http.MethodPost, "/api/v1/schedule/create", "globex", acmeAdminTok, authScheduleBody)
		env := requireRefusal(t, r, http.StatusForbidden, "FORBIDDEN")
		requireSecurityEvent(t, e, env.Error.RequestID, "UNAUTHORIZED_ACCESS", "globex", "alice", "createSchedule")
		require.Zero(t, e.schedulesOf("globex"))
	})

	t.Run("a viewer cannot create a schedule and nothing is stored", func(t *testing.T) {
		r := authCall(t, e, http.MethodPost, "/api/v1/schedule/create", "acme", viewer, authScheduleBody)
		env := requireRefusal(t, r, http.StatusForbidden, "FORBIDDEN")
		require.Contains(t, env.Error.Message, "schedules:write")
		requireSecurityEvent(t, e, env.Error.RequestID, "UNAUTHORIZED_ACCESS", "acme", "victor", "createSchedule")
		require.Zero(t, e.count(`SELECT count(*) FROM hub_backup_schedule`))
	})

	t.Run("a viewer can list schedules", func(t *testing.T) {
		res, err := authClient(t, e).ListSchedulesWithResponse(context.Background(),
			&client.ListSchedulesParams{XTenantID: "acme"}, as(viewer))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "body: %s", res.Body)
		require.NotNil(t, res.JSON200)
		require.Empty(t, res.JSON200.Data.Schedules)
	})

	t.Run("an approver cannot create a schedule", func(t *testing.T) {
		r := authCall(t, e, http.MethodPost, "/api/v1/schedule/create", "acme", approver, authScheduleBody)
		env := requireRefusal(t, r, http.StatusForbidden, "FORBIDDEN")
		require.Contains(t, env.Error.Message, "schedules:write")
		requireSecurityEvent(t, e, env.Error.RequestID, "UNAUTHORIZED_ACCESS", "acme", "april", "createSchedule")
		require.Zero(t, e.count(`SELECT count(*) FROM hub_backup_schedule`))
	})

	t.Run("an operator can create a schedule", func(t *testing.T) {
		res, err := authClient(t, e).CreateScheduleWithBodyWithResponse(context.Background(),
			&client.CreateScheduleParams{XTenantID: "acme"}, "application/json",
			strings.NewReader(authScheduleBody), as(operator))
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, res.StatusCode(), "body: %s", res.Body)
		require.NotNil(t, res.JSON201)
		require.Equal(t, "nightly", res.JSON201.Data.ScheduleName)
		require.Equal(t, "olivia", res.JSON201.Data.CreatedBy)
		require.Equal(t, 1, e.schedulesOf("acme"))
	})

	t.Run("a granted request leaves no security event", func(t *testing.T) {
		before := e.count(`SELECT count(*) FROM security_event`)
		r := authCall(t, e, http.MethodGet, "/api/v1/schedule/list", "acme", viewer, "")
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		require.Equal(t, before, e.count(`SELECT count(*) FROM security_event`))
	})
}

func TestAuthSystemScope(t *testing.T) {
	e := newEnv(t)
	body := `{"scheduleName":"instance","backupType":"FULL","backupScope":"SYSTEM","cronExpression":"0 3 * * *","timezone":"UTC"}`

	t.Run("an admin cannot schedule a SYSTEM backup and nothing is stored", func(t *testing.T) {
		r := authCall(t, e, http.MethodPost, "/api/v1/schedule/create", "acme",
			token(t, "alice", []string{"acme"}, auth.RoleAdmin), body)
		env := requireRefusal(t, r, http.StatusForbidden, "FORBIDDEN")
		require.Contains(t, env.Error.Message, "SYSTEM")
		require.Zero(t, e.count(`SELECT count(*) FROM hub_backup_schedule`))
		requireSecurityEvent(t, e, env.Error.RequestID, "UNAUTHORIZED_ACCESS", "acme", "alice", "createSchedule")
	})

	t.Run("a platform admin can schedule a SYSTEM backup", func(t *testing.T) {
		r := authCall(t, e, http.MethodPost, "/api/v1/schedule/create", "acme",
			token(t, "pat", []string{"acme"}, auth.RolePlatformAdmin), body)
		require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
		var created client.ScheduleResponse
		require.NoError(t, json.Unmarshal(r.body, &created))
		require.Equal(t, client.BackupScope("SYSTEM"), created.Data.BackupScope)
		require.Equal(t, 1, e.schedulesOf("acme"))

		t.Run("and an admin cannot change it: no new version is stored", func(t *testing.T) {
			before := e.count(`SELECT count(*) FROM sat_backup_schedule_definition`)
			r := authCall(t, e, http.MethodPut, "/api/v1/schedule/"+created.Data.ScheduleId.String(), "acme",
				token(t, "alice", []string{"acme"}, auth.RoleAdmin), `{"cronExpression":"0 4 * * *"}`)
			env := requireRefusal(t, r, http.StatusForbidden, "FORBIDDEN")
			require.Contains(t, env.Error.Message, "SYSTEM")
			require.Equal(t, before, e.count(`SELECT count(*) FROM sat_backup_schedule_definition`))
		})
	})
}

func TestTenantRegistry(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	platformAdmin := token(t, "pat", []string{"acme"}, auth.RolePlatformAdmin)
	tenantAdmin := token(t, "alice", []string{"acme"}, auth.RoleAdmin)

	t.Run("a platform admin may act for any registered tenant", func(t *testing.T) {
		res, err := authClient(t, e).ListSchedulesWithResponse(ctx,
			&client.ListSchedulesParams{XTenantID: "globex"}, as(platformAdmin))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "body: %s", res.Body)
		require.NotNil(t, res.JSON200)
	})

	t.Run("a platform admin lists the registered tenants", func(t *testing.T) {
		res, err := authClient(t, e).ListTenantsWithResponse(ctx, as(platformAdmin))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "body: %s", res.Body)
		require.NotNil(t, res.JSON200)
		var ids []string
		for _, tn := range res.JSON200.Data.Tenants {
			ids = append(ids, tn.TenantId)
		}
		require.Equal(t, []string{"acme", "globex", "platform"}, ids, "platform owns SYSTEM backups")
	})

	t.Run("a tenant admin may not list the tenants", func(t *testing.T) {
		r := authCall(t, e, http.MethodGet, "/api/v1/tenants", "", tenantAdmin, "")
		env := requireRefusal(t, r, http.StatusForbidden, "FORBIDDEN")
		require.Contains(t, env.Error.Message, "tenants:admin")
		requireSecurityEvent(t, e, env.Error.RequestID, "UNAUTHORIZED_ACCESS", "", "alice", "listTenants")
	})

	t.Run("a tenant admin may not register a tenant and nothing is stored", func(t *testing.T) {
		r := authCall(t, e, http.MethodPost, "/api/v1/tenants", "", tenantAdmin,
			`{"tenantId":"umbrella","displayName":"Umbrella"}`)
		env := requireRefusal(t, r, http.StatusForbidden, "FORBIDDEN")
		requireSecurityEvent(t, e, env.Error.RequestID, "UNAUTHORIZED_ACCESS", "", "alice", "createTenant")
		require.Zero(t, e.count(`SELECT count(*) FROM hub_tenant WHERE tenant_bk = 'umbrella'`))
	})

	t.Run("a platform admin registers a tenant that a token granting it can then use", func(t *testing.T) {
		res, err := authClient(t, e).CreateTenantWithResponse(ctx,
			client.CreateTenantJSONRequestBody{TenantId: "initrode", DisplayName: "Initrode"}, as(platformAdmin))
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, res.StatusCode(), "body: %s", res.Body)
		require.NotNil(t, res.JSON201)
		require.Equal(t, "initrode", res.JSON201.Data.TenantId)
		require.Equal(t, "Initrode", res.JSON201.Data.DisplayName)
		require.Equal(t, 1, e.count(`SELECT count(*) FROM hub_tenant WHERE tenant_bk = 'initrode'`))

		owner := token(t, "ivy", []string{"initrode"}, auth.RoleOperator)
		r := authCall(t, e, http.MethodGet, "/api/v1/schedule/list", "initrode", owner, "")
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		r = authCall(t, e, http.MethodPost, "/api/v1/schedule/create", "initrode", owner, authScheduleBody)
		require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
		require.Equal(t, 1, e.schedulesOf("initrode"))
	})

	t.Run("registering the same tenant again is a conflict", func(t *testing.T) {
		r := authCall(t, e, http.MethodPost, "/api/v1/tenants", "", platformAdmin,
			`{"tenantId":"initrode","displayName":"Initrode again"}`)
		env := requireRefusal(t, r, http.StatusConflict, "CONFLICT")
		require.Contains(t, env.Error.Message, "initrode")
		require.Equal(t, 1, e.count(`SELECT count(*) FROM hub_tenant WHERE tenant_bk = 'initrode'`))
	})

	t.Run("a malformed tenant id is refused naming tenantId", func(t *testing.T) {
		before := e.count(`SELECT count(*) FROM hub_tenant`)
		r := authCall(t, e, http.MethodPost, "/api/v1/tenants", "", platformAdmin,
			`{"tenantId":"Bad Id!","displayName":"Bad"}`)
		env := requireRefusal(t, r, http.StatusBadRequest, "VALIDATION_FAILED")
		require.Contains(t, env.Error.Message, "tenantId")
		var fields []string
		for _, d := range env.Error.Details {
			fields = append(fields, d.Field)
		}
		require.Contains(t, fields, "tenantId")
		require.Equal(t, before, e.count(`SELECT count(*) FROM hub_tenant`))
	})

	t.Run("a tenant that is registered nowhere is forbidden even when the token grants it", func(t *testing.T) {
		// A tenant that is not in the registry cannot be acted for, even when a token names it.
		r := authCall(t, e, http.MethodGet, "/api/v1/schedule/list", "initech",
			token(t, "ian", []string{"initech"}, auth.RoleAdmin), "")
		env := requireRefusal(t, r, http.StatusForbidden, "FORBIDDEN")
		require.Contains(t, env.Error.Message, "initech")
		require.Zero(t, e.count(`SELECT count(*) FROM hub_tenant WHERE tenant_bk = 'initech'`))
	})
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, envOptions{rateLimit: 3})
	acme := token(t, "alice", []string{"acme"}, auth.RoleViewer)
	globex := token(t, "gary", []string{"globex"}, auth.RoleViewer)

	t.Run("a tenant's first three requests of the minute pass", func(t *testing.T) {
		for i := range 3 {
			r := authCall(t, e, http.MethodGet, "/api/v1/schedule/list", "acme", acme, "")
			require.Equal(t, http.StatusOK, r.status, "request %d: %s", i+1, r.body)
		}
	})

	t.Run("the fourth is refused with Retry-After", func(t *testing.T) {
		r := authCall(t, e, http.MethodGet, "/api/v1/schedule/list", "acme", acme, "")
		env := requireRefusal(t, r, http.StatusTooManyRequests, "RATE_LIMITED")
		require.Contains(t, env.Error.Message, "rate limit")
		retry, err := strconv.Atoi(r.header.Get("Retry-After"))
		require.NoError(t, err, "Retry-After %q", r.header.Get("Retry-After"))
		require.GreaterOrEqual(t, retry, 1)
		require.LessOrEqual(t, retry, 60)
	})

	t.Run("another tenant is not affected", func(t *testing.T) {
		for i := range 3 {
			r := authCall(t, e, http.MethodGet, "/api/v1/schedule/list", "globex", globex, "")
			require.Equal(t, http.StatusOK, r.status, "request %d: %s", i+1, r.body)
		}
	})
}

// Incident bodies for the 501 checks (incidents are phase 2).
const (
	validIncident = `{"title":"disk full","description":"pg_wal filled the disk","severity":"HIGH","priority":"P2","affectedServices":["one_vault"],"customerImpactLevel":"LOW"}`
	badIncident   = `{"title":"disk full","description":"pg_wal filled the disk","severity":"SEVERE","priority":"P2","affectedServices":["one_vault"],"customerImpactLevel":"LOW"}`
)

func TestNotImplementedOperations(t *testing.T) {
	e := newEnv(t)
	operator := token(t, "olivia", []string{"acme"}, auth.RoleOperator)

	t.Run("an authenticated valid incident is answered 501 in the envelope", func(t *testing.T) {
		r := authCall(t, e, http.MethodPost, "/api/v1/incidents", "acme", operator, validIncident)
		env := requireRefusal(t, r, http.StatusNotImplemented, "NOT_IMPLEMENTED")
		require.Contains(t, env.Error.Message, "createIncident")
	})

	t.Run("performance analytics are answered 501 in the envelope", func(t *testing.T) {
		r := authCall(t, e, http.MethodGet, "/api/v1/monitoring/performance", "acme", operator, "")
		env := requireRefusal(t, r, http.StatusNotImplemented, "NOT_IMPLEMENTED")
		require.Contains(t, env.Error.Message, "getPerformanceAnalytics")
	})

	t.Run("the incident list is answered 501 in the envelope", func(t *testing.T) {
		r := authCall(t, e, http.MethodGet, "/api/v1/incidents", "acme", operator, "")
		env := requireRefusal(t, r, http.StatusNotImplemented, "NOT_IMPLEMENTED")
		require.Contains(t, env.Error.Message, "listIncidents")
	})

	t.Run("bad input is refused with 400 before 501", func(t *testing.T) {
		r := authCall(t, e, http.MethodPost, "/api/v1/incidents", "acme", operator, badIncident)
		env := requireRefusal(t, r, http.StatusBadRequest, "VALIDATION_FAILED")
		require.Contains(t, env.Error.Message, "severity")
		var fields []string
		for _, d := range env.Error.Details {
			fields = append(fields, d.Field)
		}
		require.Contains(t, fields, "severity")
	})

	t.Run("a missing token is refused with 401 before bad input or 501", func(t *testing.T) {
		for _, body := range []string{badIncident, validIncident} {
			r := authCall(t, e, http.MethodPost, "/api/v1/incidents", "acme", "", body)
			env := requireRefusal(t, r, http.StatusUnauthorized, "UNAUTHORIZED")
			requireSecurityEvent(t, e, env.Error.RequestID, "AUTHENTICATION_FAILURE", "acme", "", "createIncident")
		}
		r := authCall(t, e, http.MethodGet, "/api/v1/incidents", "acme", "", "")
		requireRefusal(t, r, http.StatusUnauthorized, "UNAUTHORIZED")
	})

	t.Run("a viewer is refused with 403 before 501", func(t *testing.T) {
		r := authCall(t, e, http.MethodPost, "/api/v1/incidents", "acme",
			token(t, "victor", []string{"acme"}, auth.RoleViewer), validIncident)
		requireRefusal(t, r, http.StatusForbidden, "FORBIDDEN")
	})
}

func TestRouterAnswers(t *testing.T) {
	e := newEnv(t)
	tok := token(t, "alice", []string{"acme"}, auth.RoleAdmin)

	t.Run("an unknown path is 404 in the envelope", func(t *testing.T) {
		r := authCall(t, e, http.MethodGet, "/api/v1/nope", "acme", tok, "")
		env := requireRefusal(t, r, http.StatusNotFound, "NOT_FOUND")
		require.Contains(t, env.Error.Message, "/api/v1/nope")
	})

	t.Run("a known path with another method is 405 in the envelope", func(t *testing.T) {
		r := authCall(t, e, http.MethodPatch, "/api/v1/schedule/list", "acme", tok, "")
		env := requireRefusal(t, r, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED")
		require.Contains(t, env.Error.Message, "PATCH")
	})

	t.Run("healthz answers 200", func(t *testing.T) {
		r := authDo(t, e, http.MethodGet, "/healthz", nil, "")
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	})

	t.Run("readyz answers 200 ready on a migrated database", func(t *testing.T) {
		r := authDo(t, e, http.MethodGet, "/readyz", nil, "")
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		require.JSONEq(t, `{"status":"ready"}`, string(r.body))
	})

	t.Run("the contract is served as YAML", func(t *testing.T) {
		r := authDo(t, e, http.MethodGet, "/openapi.yaml", nil, "")
		require.Equal(t, http.StatusOK, r.status)
		require.Contains(t, string(r.body), "/api/v1/schedule/create:")
	})

	t.Run("the contract is served as JSON", func(t *testing.T) {
		r := authDo(t, e, http.MethodGet, "/openapi.json", nil, "")
		require.Equal(t, http.StatusOK, r.status)
		var spec struct {
			OpenAPI string                    `json:"openapi"`
			Paths   map[string]map[string]any `json:"paths"`
		}
		require.NoError(t, json.Unmarshal(r.body, &spec))
		require.NotEmpty(t, spec.OpenAPI)
		require.Contains(t, spec.Paths, "/api/v1/schedule/create")
		require.Contains(t, spec.Paths["/api/v1/schedule/create"], "post")
	})
}

// auditRow is a row of audit_log.
type auditRow struct {
	operation, method, path, requestID string
	outcome                            int
	tenant, subject, resourceID, body  *string
}

func auditRows(t *testing.T, e *env) []auditRow {
	t.Helper()
	rows, err := e.store.Pool.Query(context.Background(), `SELECT operation, method, path, request_id, outcome,
		tenant_bk, subject, resource_id, body FROM audit_log ORDER BY seq`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (auditRow, error) {
		var a auditRow
		err := row.Scan(&a.operation, &a.method, &a.path, &a.requestID, &a.outcome, &a.tenant, &a.subject,
			&a.resourceID, &a.body)
		return a, err
	})
	require.NoError(t, err)
	return out
}

func TestAuditTrail(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	operator := token(t, "olivia", []string{"acme"}, auth.RoleOperator)
	viewer := token(t, "victor", []string{"acme"}, auth.RoleViewer)

	created := authCall(t, e, http.MethodPost, "/api/v1/schedule/create", "acme", operator, authScheduleBody)
	require.Equal(t, http.StatusCreated, created.status, "body: %s", created.body)
	var schedule client.ScheduleResponse
	require.NoError(t, json.Unmarshal(created.body, &schedule))
	id := schedule.Data.ScheduleId.String()

	updated := authCall(t, e, http.MethodPut, "/api/v1/schedule/"+id, "acme", operator, `{"scheduleName":"renamed"}`)
	require.Equal(t, http.StatusOK, updated.status, "body: %s", updated.body)

	denied := authCall(t, e, http.MethodPost, "/api/v1/schedule/create", "acme", viewer, authScheduleBody)
	deniedEnv := requireRefusal(t, denied, http.StatusForbidden, "FORBIDDEN")

	// Reads are not audited.
	listed := authCall(t, e, http.MethodGet, "/api/v1/schedule/list", "acme", viewer, "")
	require.Equal(t, http.StatusOK, listed.status, "body: %s", listed.body)

	rows := auditRows(t, e)

	t.Run("each mutating request leaves one record and reads leave none", func(t *testing.T) {
		require.Len(t, rows, 3)
	})

	t.Run("the create is recorded with who, where, what and its outcome", func(t *testing.T) {
		require.GreaterOrEqual(t, len(rows), 1)
		r := rows[0]
		require.Equal(t, "createSchedule", r.operation)
		require.Equal(t, http.MethodPost, r.method)
		require.Equal(t, "/api/v1/schedule/create", r.path)
		require.Equal(t, http.StatusCreated, r.outcome)
		requireOptional(t, "olivia", r.subject, "subject")
		requireOptional(t, "acme", r.tenant, "tenant_bk")
		requireOptional(t, id, r.resourceID, "resource_id")
		require.Equal(t, created.header.Get("X-Request-ID"), r.requestID)
		require.NotNil(t, r.body)
		require.JSONEq(t, authScheduleBody, *r.body)
	})

	t.Run("the update is recorded with the schedule id", func(t *testing.T) {
		require.GreaterOrEqual(t, len(rows), 2)
		r := rows[1]
		require.Equal(t, "updateSchedule", r.operation)
		require.Equal(t, http.MethodPut, r.method)
		require.Equal(t, http.StatusOK, r.outcome)
		requireOptional(t, "olivia", r.subject, "subject")
		requireOptional(t, "acme", r.tenant, "tenant_bk")
		requireOptional(t, id, r.resourceID, "resource_id")
		require.Equal(t, updated.header.Get("X-Request-ID"), r.requestID)
	})

	t.Run("the denied create is recorded with its outcome and request id", func(t *testing.T) {
		require.GreaterOrEqual(t, len(rows), 3)
		r := rows[2]
		require.Equal(t, "createSchedule", r.operation)
		require.Equal(t, http.StatusForbidden, r.outcome)
		require.Equal(t, deniedEnv.Error.RequestID, r.requestID)
		require.Nil(t, r.resourceID)
	})

	t.Run("the denied create names who was denied and in which tenant", func(t *testing.T) {
		// A request refused after its token was verified is audited with who asked and for which tenant.
		require.GreaterOrEqual(t, len(rows), 3)
		r := rows[2]
		requireOptional(t, "victor", r.subject, "subject")
		requireOptional(t, "acme", r.tenant, "tenant_bk")
	})

	t.Run("the chain verifies", func(t *testing.T) {
		rep, err := audit.Verify(ctx, e.store.Queries())
		require.NoError(t, err)
		require.True(t, rep.OK(), "bad record %d: %s", rep.BadSeq, rep.Problem)
		require.EqualValues(t, 3, rep.Records)
	})
}

func TestAuditMasksSecrets(t *testing.T) {
	e := newEnv(t)
	body := `{"channelName":"pager","channelType":"PAGERDUTY",
		"configuration":{"webhookUrl":"https://hooks.example/secret-path","routingKey":"abc123secret","channel":"#ops"},
		"recipientGroups":["ops"],"severityFilter":["HIGH"],"categoryFilter":["BACKUP"],"rateLimitPerHour":10}`
	r := authCall(t, e, http.MethodPost, "/api/v1/notifications/channels", "acme",
		token(t, "olivia", []string{"acme"}, auth.RoleOperator), body)
	requireRefusal(t, r, http.StatusNotImplemented, "NOT_IMPLEMENTED")

	rows := auditRows(t, e)

	t.Run("the request is recorded", func(t *testing.T) {
		require.Len(t, rows, 1)
		require.Equal(t, "createNotificationChannel", rows[0].operation)
		require.Equal(t, http.StatusNotImplemented, rows[0].outcome)
		require.NotNil(t, rows[0].body)
	})

	t.Run("its secrets are masked and the rest is kept", func(t *testing.T) {
		require.Len(t, rows, 1)
		recorded := *rows[0].body
		require.NotContains(t, recorded, "secret-path")
		require.NotContains(t, recorded, "abc123secret")
		var got struct {
			ChannelName   string            `json:"channelName"`
			Configuration map[string]string `json:"configuration"`
		}
		require.NoError(t, json.Unmarshal([]byte(recorded), &got))
		require.Equal(t, "pager", got.ChannelName)
		require.Equal(t, "***", got.Configuration["webhookUrl"])
		require.Equal(t, "***", got.Configuration["routingKey"])
		require.Equal(t, "#ops", got.Configuration["channel"])
	})

	t.Run("the chain verifies", func(t *testing.T) {
		rep, err := audit.Verify(context.Background(), e.store.Queries())
		require.NoError(t, err)
		require.True(t, rep.OK(), "bad record %d: %s", rep.BadSeq, rep.Problem)
		require.EqualValues(t, 1, rep.Records)
	})
}

func TestRateLimitCountsOnlyAuthenticatedRequests(t *testing.T) {
	e := newEnv(t, envOptions{rateLimit: 2})
	acme := token(t, "alice", []string{"acme"}, auth.RoleViewer)
	t.Run("requests without a valid token do not use up a tenant's budget", func(t *testing.T) {
		for range 5 {
			r := authCall(t, e, http.MethodGet, "/api/v1/schedule/list", "acme", "", "")
			require.Equal(t, http.StatusUnauthorized, r.status)
		}
		for i := range 2 {
			r := authCall(t, e, http.MethodGet, "/api/v1/schedule/list", "acme", acme, "")
			require.Equal(t, http.StatusOK, r.status, "request %d: %s", i+1, r.body)
		}
	})
	t.Run("a refusal for the rate is audited when it is a change", func(t *testing.T) {
		admin := token(t, "ada", []string{"acme"}, auth.RoleAdmin)
		r := authCall(t, e, http.MethodPost, "/api/v1/schedule/create", "acme", admin, authScheduleBody)
		requireRefusal(t, r, http.StatusTooManyRequests, "RATE_LIMITED")
		require.Equal(t, 1, e.count("SELECT count(*) FROM audit_log WHERE outcome = 429 AND subject = 'ada'"))
		require.Zero(t, e.schedulesOf("acme"))
	})
}

func TestAuthHeaderDetails(t *testing.T) {
	e := newEnv(t)
	tok := token(t, "alice", []string{"acme"}, auth.RoleViewer)
	t.Run("the bearer scheme is case-insensitive", func(t *testing.T) {
		r := authDo(t, e, http.MethodGet, "/api/v1/schedule/list",
			map[string]string{"Authorization": "bearer " + tok, "X-Tenant-ID": "acme"}, "")
		require.Equal(t, http.StatusOK, r.status, r.body)
	})
	t.Run("a client's own X-Request-ID is not taken as the request id", func(t *testing.T) {
		r := authDo(t, e, http.MethodGet, "/api/v1/schedule/list",
			map[string]string{"X-Request-ID": "forged-id", "X-Tenant-ID": "acme"}, "")
		env := requireRefusal(t, r, http.StatusUnauthorized, "UNAUTHORIZED")
		require.NotEqual(t, "forged-id", env.Error.RequestID)
		require.Zero(t, e.count("SELECT count(*) FROM security_event WHERE request_id = 'forged-id'"))
	})
}
