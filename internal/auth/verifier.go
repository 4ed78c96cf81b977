package auth

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

var (
	// ErrNoKeys is returned by NewVerifier when the configuration names neither
	// a shared secret nor a JWKS URL, so no token could ever be verified.
	ErrNoKeys = errors.New("auth: no verification keys configured: set a JWT secret or a JWKS URL")

	// ErrSecretTooShort is returned by NewVerifier and Sign when the HS256
	// secret is shorter than MinSecretLength bytes. The error names the length,
	// never the secret.
	ErrSecretTooShort = errors.New("auth: JWT secret is too short: it must be at least 32 bytes")

	// ErrJWKSUnavailable is returned by NewVerifier when the JWKS URL is invalid,
	// cannot be fetched at start-up, or holds no RSA or P-256 EC signing key.
	// Failing at start-up beats answering every request with 401.
	ErrJWKSUnavailable = errors.New("auth: JWKS unavailable")

	// ErrInvalidToken is wrapped by every error that Verify returns. The wrapping
	// error adds a short reason that is safe to log ("token expired", "signature
	// invalid", "algorithm not allowed", "missing claim tenants", ...) and never
	// contains the token or a key. Callers map errors.Is(err, ErrInvalidToken)
	// to 401.
	ErrInvalidToken = errors.New("auth: invalid token")
)

const (
	// MinSecretLength is the shortest HS256 secret accepted: 256 bits, the
	// output size of SHA-256, as RFC 7518 section 3.2 requires.
	MinSecretLength = 32

	// DefaultSkew is the clock skew allowed for exp, nbf and iat when
	// Config.Skew is zero.
	DefaultSkew = 30 * time.Second

	// maxTokenLength bounds the work done on a header value before any
	// signature check; real tokens are well under 2 KiB.
	maxTokenLength = 16 << 10

	// jwksFetchTimeout bounds every JWKS fetch, at start-up and on refetch, so
	// a hanging identity provider cannot hang requests.
	jwksFetchTimeout = 10 * time.Second

	// jwksMinRefreshInterval is the floor of the background refresh: the JWKS
	// response's Cache-Control max-age is honoured when it is longer.
	jwksMinRefreshInterval = 5 * time.Minute

	// jwksRefetchInterval rate-limits the refetches that a token naming an
	// unknown kid triggers, so random kids cannot turn us into a load generator
	// against the identity provider.
	jwksRefetchInterval = 30 * time.Second

	// minRSABits refuses RSA keys too weak to trust, even if the JWKS serves them.
	minRSABits = 2048
)

// Config configures a Verifier. At least one of Secret and JWKSURL is required.
type Config struct {
	// Secret is the HS256 key (JWT_SECRET), at least MinSecretLength bytes.
	// Optional when JWKSURL is set. HS256 tokens are refused without it.
	Secret []byte
	// JWKSURL serves the RS256 and ES256 public keys. It is fetched once in
	// NewVerifier, refreshed in the background, and refetched (rate-limited)
	// when a token names a kid that the cached set does not hold. RS256 and
	// ES256 tokens are refused without it.
	JWKSURL string
	// Issuer, when set, must equal the token's iss claim.
	Issuer string
	// Audience, when set, must be one of the token's aud values.
	Audience string
	// Skew is the clock skew allowed for exp, nbf and iat; DefaultSkew when zero.
	Skew time.Duration
	// HTTPClient fetches the JWKS. When nil, a client with a 10 s timeout is
	// used; a client without a timeout gets one, because the JWKS cache cannot
	// cancel a fetch in flight.
	HTTPClient *http.Client
}

// Verifier verifies bearer tokens. It is safe for concurrent use.
type Verifier struct {
	secret   []byte
	jwksURL  string
	cache    *jwk.Cache
	issuer   string
	audience string
	skew     time.Duration

	refetchMu   sync.Mutex
	lastRefetch time.Time
}

// NewVerifier checks cfg and, when cfg.JWKSURL is set, fetches the key set once
// so that a wrong URL or an unreachable identity provider fails start-up
// clearly (ErrJWKSUnavailable) instead of failing every request later.
//
// ctx bounds the life of the background JWKS refresh: pass the process's
// context, not a request's. When ctx ends, the verifier keeps using the keys
// it last fetched.
func NewVerifier(ctx context.Context, cfg Config) (*Verifier, error) {
	if len(cfg.Secret) == 0 && cfg.JWKSURL == "" {
		return nil, ErrNoKeys
	}
	if len(cfg.Secret) > 0 && len(cfg.Secret) < MinSecretLength {
		return nil, fmt.Errorf("%w (got %d bytes)", ErrSecretTooShort, len(cfg.Secret))
	}
	if cfg.Skew < 0 {
		return nil, fmt.Errorf("auth: clock skew must not be negative (got %s)", cfg.Skew)
	}

	v := &Verifier{
		issuer:   cfg.Issuer,
		audience: cfg.Audience,
		skew:     cfg.Skew,
	}
	if v.skew == 0 {
		v.skew = DefaultSkew
	}
	if len(cfg.Secret) > 0 {
		// A copy, so that a caller who zeroes or reuses its buffer cannot
		// change the key under us.
		v.secret = bytes.Clone(cfg.Secret)
	}

	if cfg.JWKSURL != "" {
		cache, err := newJWKSCache(ctx, cfg.JWKSURL, cfg.HTTPClient)
		if err != nil {
			return nil, err
		}
		v.jwksURL = cfg.JWKSURL
		v.cache = cache
	}
	return v, nil
}

// newJWKSCache registers jwksURL in a jwk.Cache and fetches it once.
func newJWKSCache(ctx context.Context, jwksURL string, client *http.Client) (*jwk.Cache, error) {
	u, err := url.Parse(jwksURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("%w: JWKS URL must be an absolute http(s) URL", ErrJWKSUnavailable)
	}
	where := u.Redacted()

	if client == nil {
		client = &http.Client{Timeout: jwksFetchTimeout}
	} else if client.Timeout == 0 {
		withTimeout := *client
		withTimeout.Timeout = jwksFetchTimeout
		client = &withTimeout
	}

	cache := jwk.NewCache(ctx)
	err = cache.Register(jwksURL,
		jwk.WithHTTPClient(client),
		jwk.WithMinRefreshInterval(jwksMinRefreshInterval),
		// A key the library cannot parse (a new key type, say) is skipped
		// rather than making the whole set, and so every token, unusable.
		jwk.WithIgnoreParseError(true),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: register %s: %w", ErrJWKSUnavailable, where, err)
	}

	fetchCtx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
	defer cancel()
	set, err := cache.Refresh(fetchCtx, jwksURL)
	if err != nil {
		// The cache wraps the cause twice in messages that repeat the URL;
		// keep the one error that says what went wrong.
		var httpErr *url.Error
		if errors.As(err, &httpErr) {
			return nil, fmt.Errorf("%w: %w", ErrJWKSUnavailable, httpErr)
		}
		for errors.Unwrap(err) != nil {
			err = errors.Unwrap(err)
		}
		return nil, fmt.Errorf("%w: fetch %s: %w", ErrJWKSUnavailable, where, err)
	}
	if !hasUsableKey(set) {
		return nil, fmt.Errorf("%w: %s holds no RSA (2048 bits or more) or P-256 EC signing key", ErrJWKSUnavailable, where)
	}
	return cache, nil
}

// Verify checks raw, a compact JWS without the "Bearer " prefix, and returns
// the principal it names. Every failure wraps ErrInvalidToken.
//
// The header's alg chooses the key source before any cryptography runs: HS256
// uses only the shared secret, RS256 and ES256 use only RSA and P-256 EC keys
// from the JWKS, and anything else (none, HS512, PS256, ...) is refused. Then
// the signature, exp (required), nbf and iat (with the configured skew),
// issuer and audience (when configured), and the sub, tenants and roles claims
// are checked in that order.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Principal, error) {
	if raw == "" {
		return nil, invalid("missing token")
	}
	if len(raw) > maxTokenLength {
		return nil, invalid("token too large")
	}
	// Only the compact serialisation is a bearer token; refusing the JSON
	// serialisation (and JWE) up front keeps one parsing path.
	if strings.Count(raw, ".") != 2 {
		return nil, invalid("malformed token")
	}
	msg, err := jws.Parse([]byte(raw), jws.WithCompact())
	if err != nil || len(msg.Signatures()) != 1 {
		return nil, invalid("malformed token")
	}
	hdr := msg.Signatures()[0].ProtectedHeaders()
	if len(hdr.Critical()) > 0 {
		return nil, invalid("unsupported critical header")
	}
	if b64, ok := hdr.Get("b64"); ok && b64 != true {
		return nil, invalid("unsupported unencoded payload")
	}
	if strings.EqualFold(hdr.ContentType(), "JWT") {
		return nil, invalid("nested token not supported")
	}

	alg := hdr.Algorithm()
	var key any
	switch alg {
	case jwa.HS256:
		if v.secret == nil {
			return nil, invalid("algorithm not allowed")
		}
		key = v.secret
	case jwa.RS256, jwa.ES256:
		if v.cache == nil {
			return nil, invalid("algorithm not allowed")
		}
		key, err = v.jwksKey(ctx, alg, hdr.KeyID())
		if err != nil {
			return nil, err
		}
	default:
		return nil, invalid("algorithm not allowed")
	}

	// The algorithm passed here is the one the header named and the key was
	// chosen for; jws.Verify does not compare it with the header itself.
	payload, err := jws.Verify([]byte(raw), jws.WithKey(alg, key), jws.WithCompact())
	if err != nil {
		return nil, invalid("signature invalid")
	}

	tok := jwt.New()
	if err := json.Unmarshal(payload, tok); err != nil {
		return nil, invalid("malformed claims")
	}
	if err := v.validate(tok); err != nil {
		return nil, err
	}

	if tok.Subject() == "" {
		return nil, invalid("missing claim sub")
	}
	tenants, err := stringListClaim(tok, "tenants")
	if err != nil {
		return nil, err
	}
	roles, err := stringListClaim(tok, "roles")
	if err != nil {
		return nil, err
	}
	return &Principal{Subject: tok.Subject(), Tenants: tenants, Roles: roles}, nil
}

// validate checks the registered claims: exp (required), nbf and iat with the
// skew, and iss and aud when configured.
func (v *Verifier) validate(tok jwt.Token) error {
	opts := []jwt.ValidateOption{
		jwt.WithAcceptableSkew(v.skew),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
	}
	if v.issuer != "" {
		opts = append(opts, jwt.WithIssuer(v.issuer))
	}
	if v.audience != "" {
		opts = append(opts, jwt.WithAudience(v.audience))
	}
	err := jwt.Validate(tok, opts...)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jwt.ErrTokenExpired()):
		return invalid("token expired")
	case errors.Is(err, jwt.ErrTokenNotYetValid()):
		return invalid("token not yet valid")
	case errors.Is(err, jwt.ErrInvalidIssuedAt()):
		return invalid("token issued in the future")
	case errors.Is(err, jwt.ErrInvalidIssuer()):
		return invalid("issuer not accepted")
	case errors.Is(err, jwt.ErrInvalidAudience()):
		return invalid("audience not accepted")
	case errors.Is(err, jwt.ErrRequiredClaim()):
		return invalid("missing claim exp")
	default:
		return invalid("claims invalid")
	}
}

// stringListClaim reads a claim that must be a non-empty JSON array of
// non-empty strings. A bare string is refused rather than promoted to a
// one-element list: issuers that emit it are misconfigured, and guessing would
// make "acme,globex" a tenant name.
func stringListClaim(tok jwt.Token, name string) ([]string, error) {
	v, ok := tok.Get(name)
	if !ok || v == nil {
		return nil, invalid("missing claim " + name)
	}
	var list []any
	switch v := v.(type) {
	case []any:
		list = v
	case []string:
		// Only if some package registered the claim as a typed field.
		for _, s := range v {
			list = append(list, s)
		}
	default:
		return nil, invalid("claim " + name + " must be an array of strings")
	}
	if len(list) == 0 {
		return nil, invalid("claim " + name + " is empty")
	}
	out := make([]string, 0, len(list))
	for _, item := range list {
		s, ok := item.(string)
		if !ok {
			return nil, invalid("claim " + name + " must be an array of strings")
		}
		if s == "" {
			return nil, invalid("claim " + name + " holds an empty string")
		}
		out = append(out, s)
	}
	return out, nil
}

// jwksKey returns the public key that kid names in the JWKS, usable for alg.
// When the cached set does not know kid, the set is refetched (at most once per
// jwksRefetchInterval) to pick up a key that the issuer has just rotated in.
func (v *Verifier) jwksKey(ctx context.Context, alg jwa.SignatureAlgorithm, kid string) (any, error) {
	if kid == "" {
		return nil, invalid("missing key id")
	}
	if set, err := v.cache.Get(ctx, v.jwksURL); err == nil {
		if key, known := selectKey(set, alg, kid); key != nil {
			return key, nil
		} else if known {
			return nil, invalid("key not usable for algorithm")
		}
	}

	v.refetch(ctx)

	// Read the cache again even if this caller did not refetch: a concurrent
	// caller may just have fetched the new key.
	set, err := v.cache.Get(ctx, v.jwksURL)
	if err != nil {
		return nil, invalid("unknown key id")
	}
	key, known := selectKey(set, alg, kid)
	switch {
	case key != nil:
		return key, nil
	case known:
		return nil, invalid("key not usable for algorithm")
	default:
		return nil, invalid("unknown key id")
	}
}

// refetch refreshes the cached JWKS unless that happened less than
// jwksRefetchInterval ago. A failed fetch counts too, so a down identity
// provider is not hammered; the cache keeps serving the last good set.
func (v *Verifier) refetch(ctx context.Context) {
	v.refetchMu.Lock()
	defer v.refetchMu.Unlock()
	if !v.lastRefetch.IsZero() && time.Since(v.lastRefetch) < jwksRefetchInterval {
		return
	}
	v.lastRefetch = time.Now()

	// Detached from the request: a client that hangs up must not abort the
	// one refetch that the rate limit allows for the next interval.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jwksFetchTimeout)
	defer cancel()
	_, _ = v.cache.Refresh(ctx, v.jwksURL)
}

// selectKey returns the first key with kid that is usable for alg. known
// reports whether any key carries kid, to tell a rotated-in key (refetch) from
// a key of the wrong family (refuse).
func selectKey(set jwk.Set, alg jwa.SignatureAlgorithm, kid string) (key any, known bool) {
	for i := range set.Len() {
		k, ok := set.Key(i)
		if !ok || k.KeyID() != kid {
			continue
		}
		known = true
		if pub := publicKeyFor(k, alg); pub != nil {
			return pub, true
		}
	}
	return nil, known
}

// hasUsableKey reports whether set holds at least one key that Verify could use.
func hasUsableKey(set jwk.Set) bool {
	for i := range set.Len() {
		k, ok := set.Key(i)
		if ok && (publicKeyFor(k, jwa.RS256) != nil || publicKeyFor(k, jwa.ES256) != nil) {
			return true
		}
	}
	return false
}

// publicKeyFor returns k's raw public key when k may verify alg, else nil.
// Only RSA keys of at least minRSABits serve RS256 and only P-256 EC keys serve
// ES256; symmetric ("oct") keys never serve anything, so a JWKS can never turn
// into an HMAC secret. A key that declares another use, operation or alg is
// skipped.
func publicKeyFor(k jwk.Key, alg jwa.SignatureAlgorithm) any {
	if use := k.KeyUsage(); use != "" && use != jwk.ForSignature.String() {
		return nil
	}
	if ops := k.KeyOps(); len(ops) > 0 && !slices.Contains(ops, jwk.KeyOpVerify) {
		return nil
	}
	if a := k.Algorithm().String(); a != "" && a != alg.String() {
		return nil
	}
	switch k.KeyType() {
	case jwa.RSA, jwa.EC:
	default:
		return nil
	}
	raw, err := jwk.PublicRawKeyOf(k)
	if err != nil {
		return nil
	}
	switch pub := raw.(type) {
	case *rsa.PublicKey:
		if alg == jwa.RS256 && pub.N.BitLen() >= minRSABits {
			return pub
		}
	case *ecdsa.PublicKey:
		if alg == jwa.ES256 && pub.Curve == elliptic.P256() {
			return pub
		}
	}
	return nil
}

// invalid builds a verification error: ErrInvalidToken plus a safe reason.
func invalid(reason string) error {
	return fmt.Errorf("%w: %s", ErrInvalidToken, reason)
}
