package config_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/config"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestFromEnv(t *testing.T) {
	t.Run("serve refuses to start without its secrets and names each one", func(t *testing.T) {
		_, err := config.FromEnv(config.Defaults(), env(nil))
		require.Error(t, err)
		for _, name := range []string{"DATABASE_URL", "JWT_SECRET or JWKS_URL", "ENCRYPTION_KEY"} {
			require.Contains(t, err.Error(), name)
		}
	})

	t.Run("a short JWT secret is refused without printing it", func(t *testing.T) {
		_, err := config.FromEnv(config.Defaults(), env(map[string]string{"DATABASE_URL": "postgres://x/y",
			"JWT_SECRET": "tooshort-s3cr3t", "ENCRYPTION_KEY": "k"}))
		require.ErrorContains(t, err, "at least 32 bytes")
		require.NotContains(t, err.Error(), "tooshort-s3cr3t")
	})

	t.Run("the seed's BACKUP_DB_ variables build the database URL", func(t *testing.T) {
		c, err := config.FromEnv(config.Defaults(), env(map[string]string{
			"BACKUP_DB_HOST": "db.internal", "BACKUP_DB_PORT": "5433", "BACKUP_DB_NAME": "readiness",
			"BACKUP_DB_USER": "backup_user", "BACKUP_DB_PASSWORD": "p@ss word",
			"JWT_SECRET": strings.Repeat("s", 32), "ENCRYPTION_KEY": "k", "API_RATE_LIMIT": "50"}))
		require.NoError(t, err)
		require.Equal(t, "postgres://backup_user:p%40ss%20word@db.internal:5433/readiness", c.DatabaseURL)
		require.Equal(t, 50, c.RateLimit)
	})

	t.Run("bad numbers are refused by name", func(t *testing.T) {
		_, err := config.FromEnv(config.Defaults(), env(map[string]string{"API_RATE_LIMIT": "lots"}))
		require.ErrorContains(t, err, "API_RATE_LIMIT")
	})

	t.Run("WAL streaming is switched on and off by WAL_STREAM, and needs a connection", func(t *testing.T) {
		base := map[string]string{"DATABASE_URL": "postgres://x/y", "JWT_SECRET": strings.Repeat("s", 32), "ENCRYPTION_KEY": "k"}
		with := func(extra map[string]string) map[string]string {
			m := map[string]string{}
			for k, v := range base {
				m[k] = v
			}
			for k, v := range extra {
				m[k] = v
			}
			return m
		}
		c, err := config.FromEnv(config.Defaults(), env(with(map[string]string{"WAL_STREAM": "on",
			"MANAGED_DATABASE_URL": "postgres://pg/one_vault"})))
		require.NoError(t, err)
		require.True(t, c.WALStream)
		require.Equal(t, "readiness_wal", c.WALStreamSlot)
		_, err = config.FromEnv(config.Defaults(), env(with(map[string]string{"WAL_STREAM": "on"})))
		require.ErrorContains(t, err, "WAL_STREAM needs WAL_STREAM_URL or MANAGED_DATABASE_URL")
		_, err = config.FromEnv(config.Defaults(), env(with(map[string]string{"WAL_STREAM": "sometimes"})))
		require.ErrorContains(t, err, "WAL_STREAM must be on or off")
		c, err = config.FromEnv(config.Defaults(), env(with(map[string]string{"WAL_STREAM": "off"})))
		require.NoError(t, err)
		require.False(t, c.WALStream)
	})

	t.Run("String never shows a secret", func(t *testing.T) {
		c, err := config.FromEnv(config.Defaults(), env(map[string]string{
			"DATABASE_URL": "postgres://u:dbpassw0rd@h/d", "JWT_SECRET": strings.Repeat("j", 40),
			"ENCRYPTION_KEY": "encKEY123", "SLACK_WEBHOOK_URL": "https://hooks.slack.example/T/B/xyz"}))
		require.NoError(t, err)
		s := c.String()
		for _, secret := range []string{"dbpassw0rd", strings.Repeat("j", 40), "encKEY123", "xyz"} {
			require.NotContains(t, s, secret)
		}
	})
}
