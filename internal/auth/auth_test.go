package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/auth"
)

// testSecret is 40 bytes, comfortably above the 32-byte minimum.
var testSecret = []byte("test-secret-0123456789-abcdefghijklmnop")

// validClaims returns the claims of a token that every verifier in these tests
// accepts; each test changes one thing about it.
func validClaims() map[string]any {
	now := time.Now()
	return map[string]any{
		"sub":     "user-1",
		"tenants": []string{"acme"},
		"roles":   []string{auth.RoleOperator},
		"iat":     now.Unix(),
		"nbf":     now.Unix(),
		"exp":     now.Add(time.Hour).Unix(),
	}
}

// signJWS signs claims with jwx, so tests control every claim, including
// malformed ones that auth.Sign would refuse to produce.
func signJWS(t *testing.T, alg jwa.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	require.NoError(t, err)
	hdrs := jws.NewHeaders()
	require.NoError(t, hdrs.Set(jws.TypeKey, "JWT"))
	if kid != "" {
		require.NoError(t, hdrs.Set(jws.KeyIDKey, kid))
	}
	signed, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(hdrs)))
	require.NoError(t, err)
	return string(signed)
}

// forge builds a compact token by hand from a header and claims and signs it
// with HMAC-SHA256 under key (or leaves the signature empty when key is nil),
// whatever the header claims the algorithm is. It is how attackers build tokens.
func forge(t *testing.T, header, claims map[string]any, key []byte) string {
	t.Helper()
	h, err := json.Marshal(header)
	require.NoError(t, err)
	p, err := json.Marshal(claims)
	require.NoError(t, err)
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p)
	if key == nil {
		return input + "."
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func newHS256Verifier(t *testing.T, cfg auth.Config) *auth.Verifier {
	t.Helper()
	cfg.Secret = testSecret
	v, err := auth.NewVerifier(t.Context(), cfg)
	require.NoError(t, err)
	return v
}

// requireInvalid asserts that err is a token failure with the given reason and
// that the message does not leak the token.
func requireInvalid(t *testing.T, err error, reason, token string) {
	t.Helper()
	require.ErrorIs(t, err, auth.ErrInvalidToken)
	require.Contains(t, err.Error(), reason)
	if token != "" {
		require.NotContains(t, err.Error(), token)
		for _, part := range strings.Split(token, ".") {
			if len(part) > 8 {
				require.NotContains(t, err.Error(), part)
			}
		}
	}
}

func TestNewVerifier(t *testing.T) {
	t.Run("refuses a configuration without a secret or a JWKS URL", func(t *testing.T) {
		_, err := auth.NewVerifier(t.Context(), auth.Config{Issuer: "x"})
		require.ErrorIs(t, err, auth.ErrNoKeys)
	})

	t.Run("refuses a secret shorter than 32 bytes without printing it", func(t *testing.T) {
		short := []byte("hunter2-is-not-a-secret")
		_, err := auth.NewVerifier(t.Context(), auth.Config{Secret: short})
		require.ErrorIs(t, err, auth.ErrSecretTooShort)
		require.NotContains(t, err.Error(), string(short))
		require.Contains(t, err.Error(), "23 bytes")
	})

	t.Run("accepts a secret of exactly 32 bytes", func(t *testing.T) {
		_, err := auth.NewVerifier(t.Context(), auth.Config{Secret: []byte(strings.Repeat("k", 32))})
		require.NoError(t, err)
	})

	t.Run("fails clearly when the JWKS URL is unreachable", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL + "/jwks.json"
		srv.Close()

		_, err := auth.NewVerifier(t.Context(), auth.Config{JWKSURL: url})
		require.ErrorIs(t, err, auth.ErrJWKSUnavailable)
		require.Contains(t, err.Error(), url)
	})

	t.Run("fails when the JWKS URL answers with an error status", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "boom", http.StatusInternalServerError)
		}))
		t.Cleanup(srv.Close)

		_, err := auth.NewVerifier(t.Context(), auth.Config{JWKSURL: srv.URL})
		require.ErrorIs(t, err, auth.ErrJWKSUnavailable)
	})

	t.Run("fails when the JWKS holds no RSA or EC key", func(t *testing.T) {
		jwks := newJWKSServer(t)
		jwks.add(t, []byte(strings.Repeat("o", 32)), "oct-1")

		_, err := auth.NewVerifier(t.Context(), auth.Config{JWKSURL: jwks.url()})
		require.ErrorIs(t, err, auth.ErrJWKSUnavailable)
		require.Contains(t, err.Error(), "no RSA")
	})

	t.Run("refuses a JWKS URL that is not absolute http(s)", func(t *testing.T) {
		_, err := auth.NewVerifier(t.Context(), auth.Config{JWKSURL: "file:///etc/passwd"})
		require.ErrorIs(t, err, auth.ErrJWKSUnavailable)
	})
}

func TestVerifyHS256(t *testing.T) {
	v := newHS256Verifier(t, auth.Config{})

	t.Run("accepts a valid token and returns its principal", func(t *testing.T) {
		claims := validClaims()
		claims["tenants"] = []string{"acme", "globex"}
		p, err := v.Verify(t.Context(), signJWS(t, jwa.HS256, testSecret, "", claims))
		require.NoError(t, err)
		require.Equal(t, &auth.Principal{
			Subject: "user-1",
			Tenants: []string{"acme", "globex"},
			Roles:   []string{auth.RoleOperator},
		}, p)
	})

	t.Run("accepts a token made by Sign with issuer and audience", func(t *testing.T) {
		v := newHS256Verifier(t, auth.Config{Issuer: "onevault", Audience: "readiness"})
		raw, err := auth.Sign(testSecret, auth.Claims{
			Subject:  "cli",
			Tenants:  []string{"acme"},
			Roles:    []string{auth.RoleAdmin},
			Issuer:   "onevault",
			Audience: "readiness",
		})
		require.NoError(t, err)

		p, err := v.Verify(t.Context(), raw)
		require.NoError(t, err)
		require.Equal(t, "cli", p.Subject)
		require.Equal(t, []string{"acme"}, p.Tenants)
		require.Equal(t, []string{auth.RoleAdmin}, p.Roles)
	})

	t.Run("refuses an expired token", func(t *testing.T) {
		claims := validClaims()
		claims["iat"] = time.Now().Add(-2 * time.Hour).Unix()
		claims["nbf"] = time.Now().Add(-2 * time.Hour).Unix()
		claims["exp"] = time.Now().Add(-time.Minute).Unix()
		raw := signJWS(t, jwa.HS256, testSecret, "", claims)
		_, err := v.Verify(t.Context(), raw)
		requireInvalid(t, err, "token expired", raw)
	})

	t.Run("accepts a token that expired within the allowed clock skew", func(t *testing.T) {
		claims := validClaims()
		claims["iat"] = time.Now().Add(-time.Hour).Unix()
		claims["nbf"] = time.Now().Add(-time.Hour).Unix()
		claims["exp"] = time.Now().Add(-10 * time.Second).Unix()
		_, err := v.Verify(t.Context(), signJWS(t, jwa.HS256, testSecret, "", claims))
		require.NoError(t, err)
	})

	t.Run("refuses a token that is not yet valid", func(t *testing.T) {
		claims := validClaims()
		claims["nbf"] = time.Now().Add(5 * time.Minute).Unix()
		raw := signJWS(t, jwa.HS256, testSecret, "", claims)
		_, err := v.Verify(t.Context(), raw)
		requireInvalid(t, err, "token not yet valid", raw)
	})

	t.Run("refuses a token issued in the future", func(t *testing.T) {
		claims := validClaims()
		claims["iat"] = time.Now().Add(5 * time.Minute).Unix()
		raw := signJWS(t, jwa.HS256, testSecret, "", claims)
		_, err := v.Verify(t.Context(), raw)
		requireInvalid(t, err, "token issued in the future", raw)
	})

	t.Run("refuses a token without exp", func(t *testing.T) {
		claims := validClaims()
		delete(claims, "exp")
		raw := signJWS(t, jwa.HS256, testSecret, "", claims)
		_, err := v.Verify(t.Context(), raw)
		requireInvalid(t, err, "missing claim exp", raw)
	})

	t.Run("refuses a token signed with another key", func(t *testing.T) {
		raw := signJWS(t, jwa.HS256, []byte(strings.Repeat("x", 40)), "", validClaims())
		_, err := v.Verify(t.Context(), raw)
		requireInvalid(t, err, "signature invalid", raw)
	})

	t.Run("refuses a token whose claims were changed after signing", func(t *testing.T) {
		raw := signJWS(t, jwa.HS256, testSecret, "", validClaims())
		parts := strings.Split(raw, ".")
		claims := validClaims()
		claims["roles"] = []string{auth.RolePlatformAdmin}
		payload, err := json.Marshal(claims)
		require.NoError(t, err)
		tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]

		_, err = v.Verify(t.Context(), tampered)
		requireInvalid(t, err, "signature invalid", tampered)
	})

	t.Run("refuses alg none", func(t *testing.T) {
		raw := forge(t, map[string]any{"alg": "none", "typ": "JWT"}, validClaims(), nil)
		_, err := v.Verify(t.Context(), raw)
		requireInvalid(t, err, "algorithm not allowed", raw)
	})

	t.Run("refuses alg none even with a signature attached", func(t *testing.T) {
		raw := forge(t, map[string]any{"alg": "none", "typ": "JWT"}, validClaims(), testSecret)
		_, err := v.Verify(t.Context(), raw)
		requireInvalid(t, err, "algorithm not allowed", raw)
	})

	t.Run("refuses an RS256 header over an HMAC signature made with the secret", func(t *testing.T) {
		raw := forge(t, map[string]any{"alg": "RS256", "typ": "JWT", "kid": "k1"}, validClaims(), testSecret)
		_, err := v.Verify(t.Context(), raw)
		requireInvalid(t, err, "algorithm not allowed", raw)
	})

	t.Run("refuses HS512 although the secret would verify it", func(t *testing.T) {
		raw := signJWS(t, jwa.HS512, testSecret, "", validClaims())
		_, err := v.Verify(t.Context(), raw)
		requireInvalid(t, err, "algorithm not allowed", raw)
	})

	t.Run("refuses a token with a critical header it does not understand", func(t *testing.T) {
		raw := forge(t, map[string]any{"alg": "HS256", "crit": []string{"exp-policy"}, "exp-policy": 1}, validClaims(), testSecret)
		_, err := v.Verify(t.Context(), raw)
		requireInvalid(t, err, "unsupported critical header", raw)
	})

	t.Run("refuses strings that are not compact tokens", func(t *testing.T) {
		for _, raw := range []string{
			"",
			"not-a-token",
			"a.b",
			"a.b.c.d.e",
			`{"payload":"e30","signatures":[]}`,
			"Bearer " + signJWS(t, jwa.HS256, testSecret, "", validClaims()),
			strings.Repeat("a", 20<<10) + ".b.c",
		} {
			_, err := v.Verify(t.Context(), raw)
			require.ErrorIs(t, err, auth.ErrInvalidToken, "token %.40q", raw)
		}
	})

	t.Run("refuses a token without sub", func(t *testing.T) {
		claims := validClaims()
		delete(claims, "sub")
		raw := signJWS(t, jwa.HS256, testSecret, "", claims)
		_, err := v.Verify(t.Context(), raw)
		requireInvalid(t, err, "missing claim sub", raw)
	})

	t.Run("refuses a token without tenants", func(t *testing.T) {
		claims := validClaims()
		delete(claims, "tenants")
		raw := signJWS(t, jwa.HS256, testSecret, "", claims)
		_, err := v.Verify(t.Context(), raw)
		requireInvalid(t, err, "missing claim tenants", raw)
	})

	t.Run("refuses a token without roles", func(t *testing.T) {
		claims := validClaims()
		delete(claims, "roles")
		raw := signJWS(t, jwa.HS256, testSecret, "", claims)
		_, err := v.Verify(t.Context(), raw)
		requireInvalid(t, err, "missing claim roles", raw)
	})

	t.Run("refuses a tenants claim that is a string instead of an array", func(t *testing.T) {
		claims := validClaims()
		claims["tenants"] = "acme"
		raw := signJWS(t, jwa.HS256, testSecret, "", claims)
		_, err := v.Verify(t.Context(), raw)
		requireInvalid(t, err, "claim tenants must be an array of strings", raw)
	})

	t.Run("refuses an empty tenants array", func(t *testing.T) {
		claims := validClaims()
		claims["tenants"] = []string{}
		raw := signJWS(t, jwa.HS256, testSecret, "", claims)
		_, err := v.Verify(t.Context(), raw)
		requireInvalid(t, err, "claim tenants is empty", raw)
	})

	t.Run("refuses a roles array that holds a number", func(t *testing.T) {
		claims := validClaims()
		claims["roles"] = []any{auth.RoleViewer, 7}
		raw := signJWS(t, jwa.HS256, testSecret, "", claims)
		_, err := v.Verify(t.Context(), raw)
		requireInvalid(t, err, "claim roles must be an array of strings", raw)
	})

	t.Run("refuses a tenants array that holds an empty string", func(t *testing.T) {
		claims := validClaims()
		claims["tenants"] = []string{"acme", ""}
		raw := signJWS(t, jwa.HS256, testSecret, "", claims)
		_, err := v.Verify(t.Context(), raw)
		requireInvalid(t, err, "claim tenants holds an empty string", raw)
	})
}

func TestVerifyIssuerAndAudience(t *testing.T) {
	v := newHS256Verifier(t, auth.Config{Issuer: "https://id.onevault.example", Audience: "readiness"})
	withIssAud := func(iss, aud any) map[string]any {
		claims := validClaims()
		if iss != nil {
			claims["iss"] = iss
		}
		if aud != nil {
			claims["aud"] = aud
		}
		return claims
	}

	t.Run("accepts the configured issuer and an audience list that contains ours", func(t *testing.T) {
		raw := signJWS(t, jwa.HS256, testSecret, "", withIssAud("https://id.onevault.example", []string{"other", "readiness"}))
		_, err := v.Verify(t.Context(), raw)
		require.NoError(t, err)
	})

	t.Run("refuses another issuer", func(t *testing.T) {
		raw := signJWS(t, jwa.HS256, testSecret, "", withIssAud("https://evil.example", "readiness"))
		_, err := v.Verify(t.Context(), raw)
		requireInvalid(t, err, "issuer not accepted", raw)
	})

	t.Run("refuses a token without an issuer when one is configured", func(t *testing.T) {
		raw := signJWS(t, jwa.HS256, testSecret, "", withIssAud(nil, "readiness"))
		_, err := v.Verify(t.Context(), raw)
		requireInvalid(t, err, "issuer not accepted", raw)
	})

	t.Run("refuses another audience", func(t *testing.T) {
		raw := signJWS(t, jwa.HS256, testSecret, "", withIssAud("https://id.onevault.example", "billing"))
		_, err := v.Verify(t.Context(), raw)
		requireInvalid(t, err, "audience not accepted", raw)
	})

	t.Run("refuses a token without an audience when one is configured", func(t *testing.T) {
		raw := signJWS(t, jwa.HS256, testSecret, "", withIssAud("https://id.onevault.example", nil))
		_, err := v.Verify(t.Context(), raw)
		requireInvalid(t, err, "audience not accepted", raw)
	})

	t.Run("ignores issuer and audience when none is configured", func(t *testing.T) {
		plain := newHS256Verifier(t, auth.Config{})
		raw := signJWS(t, jwa.HS256, testSecret, "", withIssAud("anyone", "anything"))
		_, err := plain.Verify(t.Context(), raw)
		require.NoError(t, err)
	})
}

// jwksServer serves a JWKS that a test can change while a verifier uses it,
// and counts the fetches.
type jwksServer struct {
	mu   sync.Mutex
	set  jwk.Set
	hits atomic.Int32
	srv  *httptest.Server
}

func newJWKSServer(t *testing.T) *jwksServer {
	t.Helper()
	s := &jwksServer{set: jwk.NewSet()}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		body, err := json.Marshal(s.set)
		s.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *jwksServer) url() string { return s.srv.URL + "/.well-known/jwks.json" }

// add publishes the public half of key (or key itself, for a symmetric key)
// under kid.
func (s *jwksServer) add(t *testing.T, key any, kid string) {
	t.Helper()
	pub, err := jwk.PublicKeyOf(key)
	require.NoError(t, err)
	require.NoError(t, pub.Set(jwk.KeyIDKey, kid))
	s.mu.Lock()
	defer s.mu.Unlock()
	require.NoError(t, s.set.AddKey(pub))
}

func TestVerifyJWKS(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	rotatedRSAKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	attackerRSAKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	octKey := []byte(strings.Repeat("s", 48))

	jwks := newJWKSServer(t)
	jwks.add(t, rsaKey, "rsa-1")
	jwks.add(t, ecKey, "ec-1")
	jwks.add(t, octKey, "oct-1")

	jwksOnly, err := auth.NewVerifier(t.Context(), auth.Config{JWKSURL: jwks.url()})
	require.NoError(t, err)
	jwksAndSecret, err := auth.NewVerifier(t.Context(), auth.Config{JWKSURL: jwks.url(), Secret: testSecret})
	require.NoError(t, err)

	rsaPublicDER, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	require.NoError(t, err)
	rsaPublicPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaPublicDER})
	rsaPKCS1PEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey)})

	t.Run("accepts an RS256 token signed by a key in the JWKS", func(t *testing.T) {
		p, err := jwksOnly.Verify(t.Context(), signJWS(t, jwa.RS256, rsaKey, "rsa-1", validClaims()))
		require.NoError(t, err)
		require.Equal(t, "user-1", p.Subject)
	})

	t.Run("accepts an ES256 token signed by a key in the JWKS", func(t *testing.T) {
		p, err := jwksOnly.Verify(t.Context(), signJWS(t, jwa.ES256, ecKey, "ec-1", validClaims()))
		require.NoError(t, err)
		require.Equal(t, []string{"acme"}, p.Tenants)
	})

	t.Run("still accepts HS256 with the secret when a JWKS is configured too", func(t *testing.T) {
		_, err := jwksAndSecret.Verify(t.Context(), signJWS(t, jwa.HS256, testSecret, "", validClaims()))
		require.NoError(t, err)
	})

	t.Run("refuses an RS256 token signed by another key under a known kid", func(t *testing.T) {
		raw := signJWS(t, jwa.RS256, attackerRSAKey, "rsa-1", validClaims())
		_, err := jwksOnly.Verify(t.Context(), raw)
		requireInvalid(t, err, "signature invalid", raw)
	})

	t.Run("refuses an RS256 token without a kid", func(t *testing.T) {
		raw := signJWS(t, jwa.RS256, rsaKey, "", validClaims())
		_, err := jwksOnly.Verify(t.Context(), raw)
		requireInvalid(t, err, "missing key id", raw)
	})

	t.Run("refuses an ES256 token whose kid names an RSA key", func(t *testing.T) {
		raw := signJWS(t, jwa.ES256, ecKey, "rsa-1", validClaims())
		_, err := jwksOnly.Verify(t.Context(), raw)
		requireInvalid(t, err, "key not usable for algorithm", raw)
	})

	t.Run("refuses an expired RS256 token", func(t *testing.T) {
		claims := validClaims()
		claims["exp"] = time.Now().Add(-time.Hour).Unix()
		raw := signJWS(t, jwa.RS256, rsaKey, "rsa-1", claims)
		_, err := jwksOnly.Verify(t.Context(), raw)
		requireInvalid(t, err, "token expired", raw)
	})

	t.Run("refuses HS256 signed with the RSA public key bytes as the secret", func(t *testing.T) {
		for name, keyBytes := range map[string][]byte{
			"in PKIX PEM form":  rsaPublicPEM,
			"in PKCS1 PEM form": rsaPKCS1PEM,
			"in PKIX DER form":  rsaPublicDER,
		} {
			t.Run(name, func(t *testing.T) {
				raw := signJWS(t, jwa.HS256, keyBytes, "rsa-1", validClaims())

				_, err := jwksOnly.Verify(t.Context(), raw)
				requireInvalid(t, err, "algorithm not allowed", raw)

				_, err = jwksAndSecret.Verify(t.Context(), raw)
				requireInvalid(t, err, "signature invalid", raw)
			})
		}
	})

	t.Run("never uses an oct key from the JWKS as an HMAC secret", func(t *testing.T) {
		raw := signJWS(t, jwa.HS256, octKey, "oct-1", validClaims())
		_, err := jwksOnly.Verify(t.Context(), raw)
		requireInvalid(t, err, "algorithm not allowed", raw)
		_, err = jwksAndSecret.Verify(t.Context(), raw)
		requireInvalid(t, err, "signature invalid", raw)

		forged := forge(t, map[string]any{"alg": "RS256", "typ": "JWT", "kid": "oct-1"}, validClaims(), octKey)
		_, err = jwksOnly.Verify(t.Context(), forged)
		requireInvalid(t, err, "key not usable for algorithm", forged)
	})

	t.Run("refuses an RS256 header over an HMAC signature made with the secret", func(t *testing.T) {
		raw := forge(t, map[string]any{"alg": "RS256", "typ": "JWT", "kid": "rsa-1"}, validClaims(), testSecret)
		_, err := jwksAndSecret.Verify(t.Context(), raw)
		requireInvalid(t, err, "signature invalid", raw)
	})

	t.Run("refuses RS256 and ES256 tokens when only a secret is configured", func(t *testing.T) {
		secretOnly := newHS256Verifier(t, auth.Config{})
		for _, raw := range []string{
			signJWS(t, jwa.RS256, rsaKey, "rsa-1", validClaims()),
			signJWS(t, jwa.ES256, ecKey, "ec-1", validClaims()),
		} {
			_, err := secretOnly.Verify(t.Context(), raw)
			requireInvalid(t, err, "algorithm not allowed", raw)
		}
	})

	t.Run("refuses RS384 and PS256 although the RSA key would verify them", func(t *testing.T) {
		for _, alg := range []jwa.SignatureAlgorithm{jwa.RS384, jwa.PS256} {
			raw := signJWS(t, alg, rsaKey, "rsa-1", validClaims())
			_, err := jwksOnly.Verify(t.Context(), raw)
			requireInvalid(t, err, "algorithm not allowed", raw)
		}
	})

	t.Run("verifies tokens from many goroutines at once", func(t *testing.T) {
		tokens := []string{
			signJWS(t, jwa.RS256, rsaKey, "rsa-1", validClaims()),
			signJWS(t, jwa.ES256, ecKey, "ec-1", validClaims()),
			signJWS(t, jwa.HS256, testSecret, "", validClaims()),
		}
		errs := make(chan error, 30)
		var wg sync.WaitGroup
		for i := range cap(errs) {
			wg.Go(func() {
				_, err := jwksAndSecret.Verify(t.Context(), tokens[i%len(tokens)])
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
	})

	t.Run("picks up a key rotated in after start and rate-limits further refetches", func(t *testing.T) {
		rotating := newJWKSServer(t)
		rotating.add(t, rsaKey, "rsa-1")
		v, err := auth.NewVerifier(t.Context(), auth.Config{JWKSURL: rotating.url()})
		require.NoError(t, err)
		require.Equal(t, int32(1), rotating.hits.Load(), "NewVerifier fetches the JWKS once")

		_, err = v.Verify(t.Context(), signJWS(t, jwa.RS256, rsaKey, "rsa-1", validClaims()))
		require.NoError(t, err)
		require.Equal(t, int32(1), rotating.hits.Load(), "a known kid is served from the cache")

		rotating.add(t, rotatedRSAKey, "rsa-2")
		p, err := v.Verify(t.Context(), signJWS(t, jwa.RS256, rotatedRSAKey, "rsa-2", validClaims()))
		require.NoError(t, err)
		require.Equal(t, "user-1", p.Subject)
		require.Equal(t, int32(2), rotating.hits.Load(), "an unknown kid triggers one refetch")

		_, err = v.Verify(t.Context(), signJWS(t, jwa.RS256, rsaKey, "rsa-1", validClaims()))
		require.NoError(t, err, "the old key keeps working while it is still published")

		unknown := signJWS(t, jwa.RS256, attackerRSAKey, "made-up", validClaims())
		_, err = v.Verify(t.Context(), unknown)
		requireInvalid(t, err, "unknown key id", unknown)
		require.Equal(t, int32(2), rotating.hits.Load(), "a second unknown kid within the interval does not refetch")
	})
}

func TestSign(t *testing.T) {
	t.Run("refuses a secret shorter than 32 bytes", func(t *testing.T) {
		_, err := auth.Sign([]byte("short"), auth.Claims{Subject: "s", Tenants: []string{"t"}, Roles: []string{"viewer"}})
		require.ErrorIs(t, err, auth.ErrSecretTooShort)
	})

	t.Run("refuses claims that Verify would refuse", func(t *testing.T) {
		for _, c := range []auth.Claims{
			{Tenants: []string{"t"}, Roles: []string{"viewer"}},
			{Subject: "s", Roles: []string{"viewer"}},
			{Subject: "s", Tenants: []string{"t"}},
			{Subject: "s", Tenants: []string{"t"}, Roles: []string{"viewer"}, TTL: -time.Second},
		} {
			_, err := auth.Sign(testSecret, c)
			require.Error(t, err)
		}
	})

	t.Run("sets iat, nbf, a one hour exp by default and a random jti", func(t *testing.T) {
		c := auth.Claims{Subject: "s", Tenants: []string{"t"}, Roles: []string{"viewer"}}
		first, err := auth.Sign(testSecret, c)
		require.NoError(t, err)
		second, err := auth.Sign(testSecret, c)
		require.NoError(t, err)

		decode := func(raw string) map[string]any {
			payload, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[1])
			require.NoError(t, err)
			var claims map[string]any
			require.NoError(t, json.Unmarshal(payload, &claims))
			return claims
		}
		a, b := decode(first), decode(second)
		require.InDelta(t, float64(time.Now().Unix()), a["iat"], 5)
		require.Equal(t, a["iat"], a["nbf"])
		require.InDelta(t, a["iat"].(float64)+3600, a["exp"], 1)
		require.NotEmpty(t, a["jti"])
		require.NotEqual(t, a["jti"], b["jti"])
		require.Equal(t, []any{"t"}, a["tenants"])
	})

	t.Run("makes tokens that expire after the TTL", func(t *testing.T) {
		v := newHS256Verifier(t, auth.Config{Skew: time.Second})
		raw, err := auth.Sign(testSecret, auth.Claims{Subject: "s", Tenants: []string{"t"}, Roles: []string{"viewer"}, TTL: time.Second})
		require.NoError(t, err)
		_, err = v.Verify(t.Context(), raw)
		require.NoError(t, err)
		// No sleeping: the expiry itself is covered by the "refuses an expired
		// token" case; here we only check that a short TTL ends up in exp.
		payload, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[1])
		require.NoError(t, err)
		var claims struct{ Iat, Exp int64 }
		require.NoError(t, json.Unmarshal(payload, &claims))
		require.Equal(t, int64(1), claims.Exp-claims.Iat)
	})
}

func TestScopesForRoles(t *testing.T) {
	allScopes := []string{
		"backups:read", "backups:write", "recovery:read", "recovery:write", "recovery:approve",
		"schedules:read", "schedules:write", "monitoring:read", "alerts:read", "alerts:write",
		"incidents:read", "incidents:write", "dashboard:read", "notifications:read",
		"notifications:write", "tenants:admin", "system:backup",
	}
	readScopes := []string{
		"backups:read", "recovery:read", "schedules:read", "monitoring:read",
		"alerts:read", "incidents:read", "dashboard:read", "notifications:read",
	}
	set := func(scopes ...string) map[string]bool {
		m := map[string]bool{}
		for _, s := range scopes {
			m[s] = true
		}
		return m
	}

	t.Run("viewer gets every read scope and nothing else", func(t *testing.T) {
		require.Equal(t, set(readScopes...), auth.ScopesForRoles([]string{auth.RoleViewer}))
	})

	t.Run("viewer cannot write backups", func(t *testing.T) {
		p := &auth.Principal{Roles: []string{auth.RoleViewer}}
		require.True(t, p.HasScope(auth.ScopeBackupsRead))
		require.False(t, p.HasScope(auth.ScopeBackupsWrite))
	})

	t.Run("operator can write schedules but cannot approve recoveries", func(t *testing.T) {
		p := &auth.Principal{Roles: []string{auth.RoleOperator}}
		require.True(t, p.HasScope(auth.ScopeSchedulesWrite))
		require.True(t, p.HasScope(auth.ScopeNotificationsWrite))
		require.True(t, p.HasScope(auth.ScopeMonitoringRead))
		require.False(t, p.HasScope(auth.ScopeRecoveryApprove))
		require.False(t, p.HasScope(auth.ScopeTenantsAdmin))
	})

	t.Run("approver can approve recoveries but cannot write backups", func(t *testing.T) {
		p := &auth.Principal{Roles: []string{auth.RoleApprover}}
		require.True(t, p.HasScope(auth.ScopeRecoveryApprove))
		require.False(t, p.HasScope(auth.ScopeBackupsWrite))
		require.Equal(t, set(append(readScopes, "recovery:approve")...), p.Scopes())
	})

	t.Run("admin is operator plus approver without platform scopes", func(t *testing.T) {
		admin := auth.ScopesForRoles([]string{auth.RoleAdmin})
		require.Equal(t, auth.ScopesForRoles([]string{auth.RoleOperator, auth.RoleApprover}), admin)
		require.False(t, admin[auth.ScopeTenantsAdmin])
		require.False(t, admin[auth.ScopeSystemBackup])
	})

	t.Run("platform_admin gets every scope", func(t *testing.T) {
		require.Equal(t, set(allScopes...), auth.ScopesForRoles([]string{auth.RolePlatformAdmin}))
	})

	t.Run("an unknown role grants nothing and does not hide the others", func(t *testing.T) {
		require.Empty(t, auth.ScopesForRoles([]string{"superuser", "Admin"}))
		require.Empty(t, auth.ScopesForRoles(nil))
		require.Equal(t, set(readScopes...), auth.ScopesForRoles([]string{"superuser", auth.RoleViewer}))
	})

	t.Run("the returned map belongs to the caller", func(t *testing.T) {
		m := auth.ScopesForRoles([]string{auth.RoleViewer})
		m[auth.ScopeSystemBackup] = true
		require.False(t, auth.ScopesForRoles([]string{auth.RoleViewer})[auth.ScopeSystemBackup])
	})
}

func TestPrincipal(t *testing.T) {
	t.Run("platform_admin may access any tenant", func(t *testing.T) {
		p := &auth.Principal{Subject: "ops", Tenants: []string{"onevault"}, Roles: []string{auth.RolePlatformAdmin}}
		require.True(t, p.MayAccessTenant("acme"))
		require.True(t, p.MayAccessTenant("globex"))
		require.True(t, p.HasRole(auth.RolePlatformAdmin))
	})

	t.Run("admin may access only its own tenants", func(t *testing.T) {
		p := &auth.Principal{Subject: "a", Tenants: []string{"acme"}, Roles: []string{auth.RoleAdmin}}
		require.True(t, p.MayAccessTenant("acme"))
		require.False(t, p.MayAccessTenant("globex"))
		require.False(t, p.MayAccessTenant("ACME"))
		require.False(t, p.MayAccessTenant(""))
		require.False(t, p.HasRole(auth.RolePlatformAdmin))
	})

	t.Run("a nil principal has no scopes, roles or tenants", func(t *testing.T) {
		var p *auth.Principal
		require.False(t, p.HasScope(auth.ScopeBackupsRead))
		require.False(t, p.HasRole(auth.RoleViewer))
		require.False(t, p.MayAccessTenant("acme"))
		require.Empty(t, p.Scopes())
	})

	t.Run("travels through a context", func(t *testing.T) {
		p := &auth.Principal{Subject: "u", Tenants: []string{"acme"}, Roles: []string{auth.RoleViewer}}
		got, ok := auth.PrincipalFrom(auth.WithPrincipal(context.Background(), p))
		require.True(t, ok)
		require.Same(t, p, got)
	})

	t.Run("is absent from a context that never had one", func(t *testing.T) {
		_, ok := auth.PrincipalFrom(context.Background())
		require.False(t, ok)
		_, ok = auth.PrincipalFrom(auth.WithPrincipal(context.Background(), nil))
		require.False(t, ok)
	})
}
