package notify

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors of Send, wrapped in a *SendError.
var (
	// ErrDisabled is returned by Send when no SMTP_HOST is configured.
	ErrDisabled = errors.New("e-mail is disabled: SMTP_HOST is not set")
	// ErrSTARTTLSUnavailable means TLS is required but the server does not offer STARTTLS.
	ErrSTARTTLSUnavailable = errors.New("TLS is required but the server does not offer STARTTLS")
	// ErrInsecureAuth means credentials are configured but the connection is neither
	// encrypted nor to localhost, so the password is not sent.
	ErrInsecureAuth = errors.New("refusing to send credentials over an unencrypted connection")
	// ErrAuthUnsupported means credentials are configured but the server offers no AUTH PLAIN
	// on this connection.
	ErrAuthUnsupported = errors.New("the server does not offer AUTH PLAIN")
)

// Stage names the step of an SMTP delivery that failed.
type Stage string

// The stages of a delivery, in order.
const (
	StageConfig    Stage = "config"
	StageConnect   Stage = "connect"
	StageSTARTTLS  Stage = "STARTTLS"
	StageAuth      Stage = "auth"
	StageSender    Stage = "sender refused"
	StageRecipient Stage = "recipient refused"
	StageData      Stage = "data"
)

// SendError says which step of a delivery failed and how the server answered. Its message
// never contains the SMTP password.
type SendError struct {
	// Server is host:port.
	Server string
	Stage  Stage
	// Recipients are the refused recipients when Stage is StageRecipient.
	Recipients []string
	// Code is the SMTP reply code when the server answered the failed command, else 0.
	Code int
	Err  error
}

func (e *SendError) Error() string {
	return fmt.Sprintf("send e-mail via %s: %s: %v", e.Server, e.Stage, e.Err)
}

func (e *SendError) Unwrap() error { return e.Err }

// Permanent reports whether the server refused with a 5xx reply, which a retry of the same
// message is unlikely to change.
func (e *SendError) Permanent() bool { return e.Code >= 500 && e.Code < 600 }

// Timeout reports whether the delivery ran out of time (the mailer's timeout or the context's
// deadline).
func (e *SendError) Timeout() bool {
	var ne net.Error
	return errors.Is(e.Err, context.DeadlineExceeded) || errors.Is(e.Err, os.ErrDeadlineExceeded) ||
		(errors.As(e.Err, &ne) && ne.Timeout())
}

// Mailer sends e-mail through one SMTP server. It is safe for concurrent use; each Send opens
// its own connection, which suits the few messages that notifications send.
type Mailer struct {
	cfg  SMTPConfig
	helo string
}

// NewMailer returns a mailer for cfg, filling in the default port, TLS mode and timeout. A
// mailer for a disabled configuration is valid: Enabled reports false and Send returns
// ErrDisabled.
func NewMailer(cfg SMTPConfig) *Mailer {
	cfg.Port, cfg.TLS = portAndTLS(cfg.Port, strings.ToLower(cfg.TLS))
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultSMTPTimeout
	}
	helo, err := os.Hostname()
	if err != nil || helo == "" {
		helo = "localhost"
	}
	return &Mailer{cfg: cfg, helo: helo}
}

// Enabled reports whether the mailer has a server to send to.
func (m *Mailer) Enabled() bool { return m != nil && m.cfg.Enabled() }

// String describes the mailer without its password.
func (m *Mailer) String() string { return "notify.Mailer(" + m.cfg.String() + ")" }

// GoString keeps the password out of %#v.
func (m *Mailer) GoString() string { return m.String() }

// LogValue keeps the password out of slog records.
func (m *Mailer) LogValue() slog.Value { return slog.StringValue(m.String()) }

func (m *Mailer) server() string { return net.JoinHostPort(m.cfg.Host, strconv.Itoa(m.cfg.Port)) }

// Send delivers msg and returns an identifier of the delivery: the queue id from the server's
// reply to the message ("250 2.0.0 Ok: queued as 4Xyz" gives "4Xyz") when the reply names one,
// otherwise the Message-ID the message was sent with ("<...@example.com>").
//
// STARTTLS is used whenever the server offers it (TLSOpportunistic) or must be
// (TLSRequired); a failed handshake fails the send rather than falling back to clear text.
// Credentials go with AUTH PLAIN, only over TLS or to localhost. The message goes to all its
// recipients or to none: a refused recipient fails the send before the message is
// transferred, with an error naming every refused recipient. The whole delivery is bounded by
// the configured timeout and by ctx. Errors are ErrDisabled or a *SendError, and never contain
// the password.
func (m *Mailer) Send(ctx context.Context, msg Message) (string, error) {
	if !m.Enabled() {
		return "", ErrDisabled
	}
	switch m.cfg.TLS {
	case TLSOpportunistic, TLSRequired, TLSImplicit, TLSOff:
	default:
		return "", &SendError{Server: m.server(), Stage: StageConfig, Err: fmt.Errorf("unknown TLS mode %q", m.cfg.TLS)}
	}
	env, err := compose(m.cfg.From, msg, time.Now())
	if err != nil {
		return "", &SendError{Server: m.server(), Stage: StageConfig, Err: err}
	}

	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	conn, err := m.dial(ctx)
	if err != nil {
		return "", m.fail(ctx, StageConnect, err)
	}
	// net/smtp knows no contexts: the deadline bounds every read and write, and cancelling ctx
	// moves the deadline to now so that a blocked read returns at once.
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()

	c, err := smtp.NewClient(conn, m.cfg.Host)
	if err != nil {
		_ = conn.Close()
		return "", m.fail(ctx, StageConnect, err)
	}
	defer c.Close()
	if err := c.Hello(m.helo); err != nil {
		return "", m.fail(ctx, StageConnect, err)
	}

	if m.cfg.TLS == TLSOpportunistic || m.cfg.TLS == TLSRequired {
		offered, _ := c.Extension("STARTTLS")
		switch {
		case offered:
			if err := c.StartTLS(m.tlsConfig()); err != nil {
				return "", m.fail(ctx, StageSTARTTLS, err)
			}
		case m.cfg.TLS == TLSRequired:
			return "", m.fail(ctx, StageSTARTTLS, ErrSTARTTLSUnavailable)
		}
	}

	if m.cfg.Username != "" || m.cfg.Password != "" {
		if _, encrypted := c.TLSConnectionState(); !encrypted && !isLocalhost(m.cfg.Host) {
			return "", m.fail(ctx, StageAuth, ErrInsecureAuth)
		}
		ok, mechanisms := c.Extension("AUTH")
		if !ok || !slices.Contains(strings.Fields(strings.ToUpper(mechanisms)), "PLAIN") {
			err := ErrAuthUnsupported
			if ok {
				err = fmt.Errorf("%w (it offers %s)", err, mechanisms)
			}
			return "", m.fail(ctx, StageAuth, err)
		}
		if err := c.Auth(smtp.PlainAuth("", m.cfg.Username, m.cfg.Password, m.cfg.Host)); err != nil {
			return "", m.fail(ctx, StageAuth, err)
		}
	}

	if err := c.Mail(env.from); err != nil {
		return "", m.fail(ctx, StageSender, err)
	}
	var refused []string
	var refusals []error
	for _, to := range env.to {
		if err := c.Rcpt(to); err != nil {
			refused = append(refused, to)
			refusals = append(refusals, fmt.Errorf("<%s>: %w", to, err))
		}
	}
	if len(refused) > 0 {
		_ = c.Reset()
		_ = c.Quit()
		se := m.fail(ctx, StageRecipient, joinErrors(refusals))
		se.Recipients = refused
		return "", se
	}

	reply, err := data(c, env.data)
	if err != nil {
		return "", m.fail(ctx, StageData, err)
	}
	// The message is accepted; a failed QUIT changes nothing about that.
	_ = c.Quit()
	if id := queueID(reply); id != "" {
		return id, nil
	}
	return env.messageID, nil
}

// dial connects, speaking TLS at once in TLSImplicit mode.
func (m *Mailer) dial(ctx context.Context) (net.Conn, error) {
	d := &net.Dialer{Timeout: m.cfg.Timeout}
	if m.cfg.TLS == TLSImplicit {
		return (&tls.Dialer{NetDialer: d, Config: m.tlsConfig()}).DialContext(ctx, "tcp", m.server())
	}
	return d.DialContext(ctx, "tcp", m.server())
}

func (m *Mailer) tlsConfig() *tls.Config {
	cfg := &tls.Config{}
	if m.cfg.TLSConfig != nil {
		cfg = m.cfg.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = m.cfg.Host
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	return cfg
}

// data sends the message with DATA and returns the server's final reply text. It is
// net/smtp's Client.Data, which discards that reply, written out: the same DotWriter stuffs
// leading dots and ends the message with "\r\n.\r\n".
func data(c *smtp.Client, msg []byte) (string, error) {
	id, err := c.Text.Cmd("DATA")
	if err != nil {
		return "", err
	}
	c.Text.StartResponse(id)
	_, _, err = c.Text.ReadResponse(354)
	c.Text.EndResponse(id)
	if err != nil {
		return "", err
	}
	w := c.Text.DotWriter()
	if _, err := w.Write(msg); err != nil {
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	_, reply, err := c.Text.ReadResponse(250)
	return reply, err
}

// queueIDPatterns find the queue id in the final reply of common servers: Postfix, Sendmail,
// mailpit ("Ok: queued as ID") and Exim ("OK id=ID").
var queueIDPatterns = []*regexp.Regexp{
	regexp.MustCompile(`(?i)queued as ([A-Za-z0-9._@<>-]+)`),
	regexp.MustCompile(`(?i)\bid=([A-Za-z0-9._@<>-]+)`),
}

// queueID returns the queue id named in a reply to DATA, or "".
func queueID(reply string) string {
	for _, p := range queueIDPatterns {
		if m := p.FindStringSubmatch(reply); m != nil {
			return m[1]
		}
	}
	return ""
}

// fail wraps err as a *SendError at stage: it records the server's reply code, notes when the
// context ended the delivery, and takes the password out of the message.
func (m *Mailer) fail(ctx context.Context, stage Stage, err error) *SendError {
	se := &SendError{Server: m.server(), Stage: stage}
	var te *textproto.Error
	if errors.As(err, &te) {
		se.Code = te.Code
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w (%w)", err, cerr)
	}
	se.Err = m.redact(err)
	return se
}

// redact replaces the password, alone or inside an AUTH PLAIN or LOGIN exchange, with
// "[REDACTED]". A server has no business echoing it, but the rule is that the password is in
// no error message, whatever the server does.
func (m *Mailer) redact(err error) error {
	if m.cfg.Password == "" {
		return err
	}
	msg := err.Error()
	secrets := []string{
		m.cfg.Password,
		base64.StdEncoding.EncodeToString([]byte(m.cfg.Password)),
		base64.StdEncoding.EncodeToString([]byte("\x00" + m.cfg.Username + "\x00" + m.cfg.Password)),
	}
	clean := msg
	for _, s := range secrets {
		clean = strings.ReplaceAll(clean, s, "[REDACTED]")
	}
	if clean == msg {
		return err
	}
	// The original error is dropped, not wrapped, so that no Unwrap leads back to the secret.
	return errors.New(clean)
}

// joinErrors joins errors on one line, which reads better in a log than errors.Join's lines,
// and keeps them all reachable for errors.Is and errors.As.
func joinErrors(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	return multiError(errs)
}

type multiError []error

func (e multiError) Error() string {
	parts := make([]string, len(e))
	for i, err := range e {
		parts[i] = err.Error()
	}
	return strings.Join(parts, "; ")
}

func (e multiError) Unwrap() []error { return e }
