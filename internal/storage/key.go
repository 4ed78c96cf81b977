package storage

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"filippo.io/age"
)

// ErrInvalidKey is returned by ParseKey for an empty key or for a string that
// looks like an age identity but does not parse as one. The message never
// repeats the key.
var ErrInvalidKey = errors.New("storage: invalid encryption key")

// passphraseInfo is the HKDF info label that binds a passphrase-derived
// identity to this use. Changing it would make every existing repository
// unreadable with its ENCRYPTION_KEY, so it is fixed forever.
const passphraseInfo = "onevault-readiness storage age-x25519 identity v1"

// identityPrefix starts every age X25519 identity string.
const identityPrefix = "AGE-SECRET-KEY-1"

// Key is the repository's age key: an X25519 identity whose recipient every
// object is encrypted to. Its String, GoString and LogValue methods show only the
// public recipient, so that a Key passed to a logger or a format verb cannot leak
// the secret; the secret leaves only through Identity.
type Key struct {
	identity  *age.X25519Identity
	recipient *age.X25519Recipient
}

// ParseKey turns ENCRYPTION_KEY into a Key. Surrounding white space is ignored,
// so that a key read from a file with a trailing newline is the same key. An age
// X25519 identity ("AGE-SECRET-KEY-1...") is used as is. Any other non-empty
// string is a passphrase from which an identity is derived deterministically:
// HKDF-SHA256 over the passphrase with a fixed info label gives 32 bytes, which
// are the identity's scalar, so the same passphrase always opens the same
// repository.
//
// HKDF does not slow down guessing, so a passphrase must be long and random (for
// example the output of GenerateKey or 32 random bytes in base64); a short human
// password would let anyone holding the repository find it offline.
func ParseKey(s string) (*Key, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("%w: the key is empty", ErrInvalidKey)
	}
	if strings.HasPrefix(strings.ToUpper(s), identityPrefix) {
		id, err := age.ParseX25519Identity(strings.ToUpper(s))
		if err != nil {
			// age's message may quote part of the key, so it is not wrapped.
			return nil, fmt.Errorf("%w: it starts like an age identity (%s...) but does not parse as one", ErrInvalidKey, identityPrefix)
		}
		return newKey(id), nil
	}
	scalar, err := hkdf.Key(sha256.New, []byte(s), nil, passphraseInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("storage: deriving the key from the passphrase: %w", err)
	}
	id, err := age.ParseX25519Identity(bech32Encode("AGE-SECRET-KEY-", scalar, true))
	if err != nil {
		return nil, fmt.Errorf("storage: deriving the key from the passphrase: %w", err)
	}
	return newKey(id), nil
}

func newKey(id *age.X25519Identity) *Key {
	return &Key{identity: id, recipient: id.Recipient()}
}

// GenerateKey returns a new random age identity string (AGE-SECRET-KEY-1...),
// suitable as ENCRYPTION_KEY; `readiness dev` uses it.
func GenerateKey() (string, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", fmt.Errorf("storage: generating an age identity: %w", err)
	}
	return id.String(), nil
}

// Identity returns the secret age identity (AGE-SECRET-KEY-1...). It is what
// `readiness key export` prints, so that an operator can decrypt objects with
// `age -d -i`; nothing else should print it.
func (k *Key) Identity() string {
	return k.identity.String()
}

// Recipient returns the public age recipient (age1...) that objects are
// encrypted to. It is safe to show.
func (k *Key) Recipient() string {
	return k.recipient.String()
}

// String shows the public recipient only, never the secret.
func (k *Key) String() string {
	if k == nil || k.recipient == nil {
		return "storage.Key(<nil>)"
	}
	return "storage.Key(" + k.Recipient() + ")"
}

// GoString keeps %#v from printing the identity's fields.
func (k *Key) GoString() string {
	return k.String()
}

// LogValue keeps slog from printing the identity's fields.
func (k *Key) LogValue() slog.Value {
	return slog.StringValue(k.String())
}
