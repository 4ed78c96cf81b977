package notify_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/notify"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// fmtAll prints v every way a log line might: the fmt verbs and a JSON slog attribute.
func fmtAll(v any) string {
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "smtp", v)
	return fmt.Sprintf("%v|%+v|%#v|%s|", v, v, v, v) + logged.String()
}

func TestSMTPConfigFromEnv(t *testing.T) {
	t.Run("no SMTP_HOST disables e-mail without an error", func(t *testing.T) {
		c, err := notify.SMTPConfigFromEnv(env(map[string]string{"SMTP_PORT": "25"}))
		require.NoError(t, err)
		require.False(t, c.Enabled())
		require.Equal(t, "smtp disabled", c.String())
	})

	t.Run("a host and a sender are enough: port 587, opportunistic STARTTLS, 30s timeout", func(t *testing.T) {
		c, err := notify.SMTPConfigFromEnv(env(map[string]string{"SMTP_HOST": "smtp.example.com", "SMTP_FROM": "noreply@example.com"}))
		require.NoError(t, err)
		require.True(t, c.Enabled())
		require.Equal(t, notify.SMTPConfig{Host: "smtp.example.com", Port: 587, From: "noreply@example.com",
			TLS: notify.TLSOpportunistic, Timeout: 30 * time.Second}, c)
	})

	t.Run("every variable is read", func(t *testing.T) {
		c, err := notify.SMTPConfigFromEnv(env(map[string]string{"SMTP_HOST": "smtp.example.com", "SMTP_PORT": "2525",
			"SMTP_USERNAME": "apikey", "SMTP_PASSWORD": " pass with spaces ", "SMTP_FROM": "Readiness <noreply@example.com>",
			"SMTP_TLS": "Required", "SMTP_TIMEOUT": "45"}))
		require.NoError(t, err)
		require.Equal(t, notify.SMTPConfig{Host: "smtp.example.com", Port: 2525, Username: "apikey", Password: " pass with spaces ",
			From: "Readiness <noreply@example.com>", TLS: notify.TLSRequired, Timeout: 45 * time.Second}, c)
	})

	t.Run("port 465 means implicit TLS, and implicit TLS means port 465", func(t *testing.T) {
		c, err := notify.SMTPConfigFromEnv(env(map[string]string{"SMTP_HOST": "smtp.example.com", "SMTP_PORT": "465", "SMTP_FROM": "a@example.com"}))
		require.NoError(t, err)
		require.Equal(t, notify.TLSImplicit, c.TLS)
		c, err = notify.SMTPConfigFromEnv(env(map[string]string{"SMTP_HOST": "smtp.example.com", "SMTP_TLS": "implicit", "SMTP_FROM": "a@example.com"}))
		require.NoError(t, err)
		require.Equal(t, 465, c.Port)
	})

	t.Run("a bad port is refused by name", func(t *testing.T) {
		for _, port := range []string{"smtp", "0", "70000", "-1"} {
			_, err := notify.SMTPConfigFromEnv(env(map[string]string{"SMTP_HOST": "smtp.example.com", "SMTP_PORT": port, "SMTP_FROM": "a@example.com"}))
			require.ErrorContains(t, err, "SMTP_PORT", "port %q", port)
		}
	})

	t.Run("every bad value is named in one error", func(t *testing.T) {
		_, err := notify.SMTPConfigFromEnv(env(map[string]string{"SMTP_HOST": "smtp.example.com:587", "SMTP_TLS": "maybe",
			"SMTP_TIMEOUT": "soon", "SMTP_USERNAME": "u"}))
		for _, name := range []string{"SMTP_HOST", "SMTP_TLS", "SMTP_TIMEOUT", "SMTP_PASSWORD", "SMTP_FROM"} {
			require.ErrorContains(t, err, name)
		}
	})

	t.Run("a password in clear text to a remote host is refused without printing it", func(t *testing.T) {
		_, err := notify.SMTPConfigFromEnv(env(map[string]string{"SMTP_HOST": "smtp.example.com", "SMTP_TLS": "off",
			"SMTP_USERNAME": "u", "SMTP_PASSWORD": testPassword, "SMTP_FROM": "a@example.com"}))
		require.ErrorContains(t, err, "SMTP_TLS=off")
		require.NotContains(t, err.Error(), testPassword)

		c, err := notify.SMTPConfigFromEnv(env(map[string]string{"SMTP_HOST": "localhost", "SMTP_TLS": "off",
			"SMTP_USERNAME": "u", "SMTP_PASSWORD": testPassword, "SMTP_FROM": "a@example.com"}))
		require.NoError(t, err, "a relay on the same host may take credentials in clear text")
		require.Equal(t, notify.TLSOff, c.TLS)
	})

	t.Run("String, GoString and slog show the settings but never the password", func(t *testing.T) {
		c, err := notify.SMTPConfigFromEnv(env(map[string]string{"SMTP_HOST": "smtp.example.com",
			"SMTP_USERNAME": "apikey", "SMTP_PASSWORD": testPassword, "SMTP_FROM": "noreply@example.com"}))
		require.NoError(t, err)
		require.Equal(t, `smtp://apikey@smtp.example.com:587 tls=opportunistic from="noreply@example.com" timeout=30s password=set`, c.String())
		out := fmtAll(c) + fmtAll(&c)
		require.NotContains(t, out, testPassword)
		require.True(t, strings.Contains(out, "smtp.example.com"))
	})
}
