// Package auth verifies bearer JWTs, turns them into a Principal, maps the
// principal's roles to the scopes that the OpenAPI contract declares per
// operation, and signs HS256 tokens for the CLI and for tests.
//
// Tokens carry sub, tenants (a list of tenant business keys) and roles; scopes
// are never read from the token but derived from roles by ScopesForRoles, so
// the role model lives in one reviewed place. Verification accepts HS256 only
// with the configured shared secret, and RS256 or ES256 only with public keys
// from the configured JWKS, which closes the classic "alg: none" and
// algorithm-confusion holes by construction: the algorithm in the token header
// picks the key source, and each key source serves exactly one key family.
package auth
