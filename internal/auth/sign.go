package auth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// DefaultTTL is the lifetime of a token signed with a zero Claims.TTL.
const DefaultTTL = time.Hour

// Claims describes a token to sign with Sign.
type Claims struct {
	// Subject becomes sub; required.
	Subject string
	// Tenants becomes the tenants claim; at least one is required.
	Tenants []string
	// Roles becomes the roles claim; at least one is required.
	Roles []string
	// Issuer becomes iss when set.
	Issuer string
	// Audience becomes aud when set.
	Audience string
	// TTL is the lifetime from now; DefaultTTL when zero.
	TTL time.Duration
}

// Sign returns an HS256 token for c, signed with secret, with iat and nbf set
// to now, exp to now+TTL, and a random jti. It is meant for the CLI and for
// tests; production tokens come from the identity provider.
//
// Sign refuses what Verify would refuse (a short secret, a missing subject,
// tenants or roles), so a token it returns is one the service accepts.
func Sign(secret []byte, c Claims) (string, error) {
	if len(secret) < MinSecretLength {
		return "", fmt.Errorf("%w (got %d bytes)", ErrSecretTooShort, len(secret))
	}
	switch {
	case c.Subject == "":
		return "", errors.New("auth: sign: subject is required")
	case len(c.Tenants) == 0:
		return "", errors.New("auth: sign: at least one tenant is required")
	case len(c.Roles) == 0:
		return "", errors.New("auth: sign: at least one role is required")
	case c.TTL < 0:
		return "", fmt.Errorf("auth: sign: TTL must not be negative (got %s)", c.TTL)
	}
	ttl := c.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}

	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return "", fmt.Errorf("auth: sign: jti: %w", err)
	}

	now := time.Now()
	b := jwt.NewBuilder().
		Subject(c.Subject).
		IssuedAt(now).
		NotBefore(now).
		Expiration(now.Add(ttl)).
		JwtID(base64.RawURLEncoding.EncodeToString(nonce[:])).
		Claim("tenants", c.Tenants).
		Claim("roles", c.Roles)
	if c.Issuer != "" {
		b = b.Issuer(c.Issuer)
	}
	if c.Audience != "" {
		b = b.Audience([]string{c.Audience})
	}
	tok, err := b.Build()
	if err != nil {
		return "", fmt.Errorf("auth: sign: build: %w", err)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.HS256, secret))
	if err != nil {
		return "", fmt.Errorf("auth: sign: %w", err)
	}
	return string(signed), nil
}
