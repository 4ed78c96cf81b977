package storage

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/stretchr/testify/require"
)

func TestParseKey(t *testing.T) {
	t.Run("An age identity round-trips", func(t *testing.T) {
		s, err := GenerateKey()
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(s, "AGE-SECRET-KEY-1"))

		key, err := ParseKey(s)
		require.NoError(t, err)
		require.Equal(t, s, key.Identity())
		require.True(t, strings.HasPrefix(key.Recipient(), "age1"))

		id, err := age.ParseX25519Identity(s)
		require.NoError(t, err)
		require.Equal(t, id.Recipient().String(), key.Recipient())
	})

	t.Run("An identity with surrounding white space or in lower case is the same identity", func(t *testing.T) {
		s, err := GenerateKey()
		require.NoError(t, err)
		for _, variant := range []string{s + "\n", "  " + s + "\t", strings.ToLower(s)} {
			key, err := ParseKey(variant)
			require.NoError(t, err)
			require.Equal(t, s, key.Identity())
		}
	})

	t.Run("The same passphrase gives the same identity", func(t *testing.T) {
		a, err := ParseKey("correct horse battery staple, but much longer and random")
		require.NoError(t, err)
		b, err := ParseKey("correct horse battery staple, but much longer and random")
		require.NoError(t, err)
		require.Equal(t, a.Identity(), b.Identity())
		require.Equal(t, a.Recipient(), b.Recipient())
		require.True(t, strings.HasPrefix(a.Identity(), "AGE-SECRET-KEY-1"))

		// The derived string is a real age identity.
		id, err := age.ParseX25519Identity(a.Identity())
		require.NoError(t, err)
		require.Equal(t, a.Identity(), id.String())
	})

	t.Run("A passphrase derivation is stable across releases", func(t *testing.T) {
		// Pinned so that a change to the label or the encoding, which would
		// make every existing repository unreadable, fails this test.
		key, err := ParseKey("onevault")
		require.NoError(t, err)
		require.Equal(t, "age1s674axp4s5gszc0l8g24wkalpqm68xmcped9qwnla2d2leuveg8q5zsqea", key.Recipient())
	})

	t.Run("Different passphrases give different identities", func(t *testing.T) {
		a, err := ParseKey("passphrase-one")
		require.NoError(t, err)
		b, err := ParseKey("passphrase-two")
		require.NoError(t, err)
		require.NotEqual(t, a.Identity(), b.Identity())
		require.NotEqual(t, a.Recipient(), b.Recipient())
	})

	t.Run("The derived identity's recipient is the X25519 public key of the HKDF output", func(t *testing.T) {
		const pass = "an independent check of the derivation and of bech32"
		scalar, err := hkdf.Key(sha256.New, []byte(pass), nil, passphraseInfo, 32)
		require.NoError(t, err)
		priv, err := ecdh.X25519().NewPrivateKey(scalar)
		require.NoError(t, err)

		key, err := ParseKey(pass)
		require.NoError(t, err)
		require.Equal(t, bech32Encode("age", priv.PublicKey().Bytes(), false), key.Recipient())
	})

	t.Run("An empty key is refused", func(t *testing.T) {
		for _, s := range []string{"", "   ", "\n"} {
			_, err := ParseKey(s)
			require.ErrorIs(t, err, ErrInvalidKey)
		}
	})

	t.Run("A malformed identity is refused without repeating it", func(t *testing.T) {
		s, err := GenerateKey()
		require.NoError(t, err)
		// Bech32's checksum catches any single changed character.
		last := "Q"
		if s[len(s)-1] == 'Q' {
			last = "P"
		}
		broken := s[:len(s)-1] + last
		_, err = ParseKey(broken)
		require.ErrorIs(t, err, ErrInvalidKey)
		require.NotContains(t, err.Error(), broken[16:])
	})

	t.Run("A key never prints its secret through fmt or slog", func(t *testing.T) {
		s, err := GenerateKey()
		require.NoError(t, err)
		key, err := ParseKey(s)
		require.NoError(t, err)

		out := fmt.Sprintf("%v %+v %#v %s", key, key, key, struct{ K *Key }{key})
		var logged bytes.Buffer
		slog.New(slog.NewJSONHandler(&logged, nil)).Info("opened", "key", key)
		for _, text := range []string{out, logged.String()} {
			require.NotContains(t, text, s)
			require.NotContains(t, text, strings.ToLower(s[16:]))
			require.Contains(t, text, key.Recipient())
		}
	})
}

func TestBech32(t *testing.T) {
	t.Run("The encoder reproduces the BIP 173 test vectors", func(t *testing.T) {
		require.Equal(t, "a12uel5l", bech32Encode("a", nil, false))
		require.Equal(t, "A12UEL5L", bech32Encode("A", nil, true))
		data, err := hex.DecodeString("00443214c74254b635cf84653a56d7c675be77df")
		require.NoError(t, err)
		require.Equal(t, "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw", bech32Encode("abcdef", data, false))
	})
}
