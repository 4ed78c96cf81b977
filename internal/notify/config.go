// Package notify delivers notifications to people. Today that is e-mail over SMTP, sent by a
// river job so that a mail server that is down delays a notification instead of failing the
// backup that asked for it.
package notify

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"time"
)

// The TLS modes of SMTPConfig.TLS, set by SMTP_TLS.
const (
	// TLSOpportunistic upgrades the connection with STARTTLS whenever the server offers it and
	// sends in clear text otherwise (credentials are then only sent to localhost).
	TLSOpportunistic = "opportunistic"
	// TLSRequired refuses to send unless the server offers STARTTLS and the handshake succeeds.
	TLSRequired = "required"
	// TLSImplicit speaks TLS from the first byte (SMTPS, port 465).
	TLSImplicit = "implicit"
	// TLSOff never uses TLS: only for a relay on the same host or a test server.
	TLSOff = "off"
)

// The defaults of SMTPConfigFromEnv and NewMailer.
const (
	// DefaultSMTPPort is the submission port (RFC 6409).
	DefaultSMTPPort = 587
	// ImplicitTLSPort is the SMTPS port; it selects TLSImplicit when SMTP_TLS is not set.
	ImplicitTLSPort = 465
	// DefaultSMTPTimeout bounds a whole delivery: connect, TLS, auth and data.
	DefaultSMTPTimeout = 30 * time.Second
)

// SMTPConfig says how to reach the mail server. A zero Host disables e-mail.
//
// The password is a secret: String, GoString and LogValue leave it out, and the errors of Send
// never contain it.
type SMTPConfig struct {
	Host string
	// Port is DefaultSMTPPort when zero (ImplicitTLSPort when TLS is TLSImplicit).
	Port int
	// Username and Password are sent with AUTH PLAIN, and only over TLS or to localhost.
	Username string
	Password string
	// From is the sender, an address with an optional display name
	// ("Readiness <noreply@example.com>").
	From string
	// TLS is one of TLSOpportunistic, TLSRequired, TLSImplicit or TLSOff; empty means
	// TLSImplicit on port 465 and TLSOpportunistic otherwise.
	TLS string
	// Timeout bounds one delivery; DefaultSMTPTimeout when zero.
	Timeout time.Duration
	// TLSConfig, when set, is used for the TLS handshake (its ServerName defaults to Host).
	// Tests use it to trust their server's self-signed certificate.
	TLSConfig *tls.Config `json:"-"`
}

// SMTPConfigFromEnv reads SMTP_HOST, SMTP_PORT, SMTP_USERNAME, SMTP_PASSWORD, SMTP_FROM,
// SMTP_TLS (required, opportunistic, implicit or off) and SMTP_TIMEOUT (a Go duration such as
// "30s", or whole seconds). An empty SMTP_HOST disables e-mail and is not an error. Every bad
// value is reported, each naming its variable and none showing the password.
func SMTPConfigFromEnv(getenv func(string) string) (SMTPConfig, error) {
	get := func(name string) string { return strings.TrimSpace(getenv(name)) }
	c := SMTPConfig{Host: get("SMTP_HOST")}
	if c.Host == "" {
		return SMTPConfig{}, nil
	}
	var problems []error
	if _, _, err := net.SplitHostPort(c.Host); err == nil {
		problems = append(problems, fmt.Errorf("SMTP_HOST must be a host name without a port (set SMTP_PORT), got %q", c.Host))
	} else if strings.ContainsAny(c.Host, " /@") {
		problems = append(problems, fmt.Errorf("SMTP_HOST must be a host name, got %q", c.Host))
	}
	c.Host = strings.TrimSuffix(strings.TrimPrefix(c.Host, "["), "]")

	c.TLS = strings.ToLower(get("SMTP_TLS"))
	switch c.TLS {
	case "", TLSOpportunistic, TLSRequired, TLSImplicit, TLSOff:
	default:
		problems = append(problems, fmt.Errorf("SMTP_TLS must be one of required, opportunistic, implicit or off, got %q", c.TLS))
	}

	if v := get("SMTP_PORT"); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 1 || p > 65535 {
			problems = append(problems, fmt.Errorf("SMTP_PORT must be a port number from 1 to 65535, got %q", v))
		}
		c.Port = p
	}
	c.Port, c.TLS = portAndTLS(c.Port, c.TLS)

	c.Username = get("SMTP_USERNAME")
	c.Password = getenv("SMTP_PASSWORD") // Spaces may be part of a password.
	switch {
	case c.Username != "" && c.Password == "":
		problems = append(problems, errors.New("SMTP_USERNAME is set but SMTP_PASSWORD is not (AUTH PLAIN needs both)"))
	case c.Username == "" && c.Password != "":
		problems = append(problems, errors.New("SMTP_PASSWORD is set but SMTP_USERNAME is not (AUTH PLAIN needs both)"))
	}
	if c.Password != "" && c.TLS == TLSOff && !isLocalhost(c.Host) {
		problems = append(problems, fmt.Errorf("SMTP_TLS=off would send SMTP_PASSWORD in clear text to %s: use opportunistic or required", c.Host))
	}

	c.From = get("SMTP_FROM")
	if c.From == "" {
		problems = append(problems, errors.New("SMTP_FROM is required when SMTP_HOST is set"))
	} else if _, err := mail.ParseAddress(c.From); err != nil {
		problems = append(problems, fmt.Errorf("SMTP_FROM must be an e-mail address such as \"Readiness <noreply@example.com>\", got %q", c.From))
	}

	c.Timeout = DefaultSMTPTimeout
	if v := get("SMTP_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			if secs, aerr := strconv.Atoi(v); aerr == nil {
				d, err = time.Duration(secs)*time.Second, nil
			}
		}
		if err != nil || d <= 0 {
			problems = append(problems, fmt.Errorf("SMTP_TIMEOUT must be a positive duration such as 30s, got %q", v))
		}
		c.Timeout = d
	}

	if len(problems) > 0 {
		return SMTPConfig{}, fmt.Errorf("SMTP configuration: %w", errors.Join(problems...))
	}
	return c, nil
}

// portAndTLS fills in the default port and TLS mode: an unset mode is implicit TLS on port 465
// and opportunistic STARTTLS elsewhere, and an unset port is 465 for implicit TLS and 587
// otherwise.
func portAndTLS(port int, mode string) (int, string) {
	if port == 0 {
		port = DefaultSMTPPort
		if mode == TLSImplicit {
			port = ImplicitTLSPort
		}
	}
	if mode == "" {
		mode = TLSOpportunistic
		if port == ImplicitTLSPort {
			mode = TLSImplicit
		}
	}
	return port, mode
}

// Enabled reports whether e-mail is configured at all.
func (c SMTPConfig) Enabled() bool { return c.Host != "" }

// String describes the configuration for logs and errors, without the password.
func (c SMTPConfig) String() string {
	if !c.Enabled() {
		return "smtp disabled"
	}
	port, mode := portAndTLS(c.Port, c.TLS)
	var b strings.Builder
	b.WriteString("smtp://")
	if c.Username != "" {
		b.WriteString(c.Username)
		b.WriteString("@")
	}
	b.WriteString(net.JoinHostPort(c.Host, strconv.Itoa(port)))
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultSMTPTimeout
	}
	fmt.Fprintf(&b, " tls=%s from=%q timeout=%s", mode, c.From, timeout)
	if c.Password != "" {
		b.WriteString(" password=set")
	}
	return b.String()
}

// GoString keeps the password out of %#v.
func (c SMTPConfig) GoString() string { return "notify.SMTPConfig{" + c.String() + "}" }

// LogValue keeps the password out of slog records that log the configuration.
func (c SMTPConfig) LogValue() slog.Value { return slog.StringValue(c.String()) }

// isLocalhost is net/smtp's rule for where PLAIN may go without TLS; keeping the same rule
// lets Mailer refuse early with a clear error instead of net/smtp's "unencrypted connection".
func isLocalhost(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}
