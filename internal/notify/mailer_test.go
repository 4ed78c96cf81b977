package notify_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/notify"
	"github.com/onevault/readiness/internal/notify/smtptest"
)

const (
	testUser     = "readiness@example.com"
	testPassword = "s3cret-Pa55word"
	testFrom     = "One Vault Readiness <readiness@example.com>"
)

// configFor points a mailer at ts, trusting its certificate.
func configFor(ts *smtptest.Server) notify.SMTPConfig {
	return notify.SMTPConfig{
		Host:      ts.Host,
		Port:      ts.Port,
		Username:  ts.User(),
		Password:  ts.Password(),
		From:      testFrom,
		Timeout:   10 * time.Second,
		TLSConfig: &tls.Config{RootCAs: ts.RootCAs},
	}
}

// parsed is a received message read back the way a mail client reads it.
type parsed struct {
	Header  mail.Header
	Subject string
	Body    string
}

func parseMessage(t *testing.T, raw []byte) parsed {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	require.NoError(t, err)
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	require.NoError(t, err)
	require.Equal(t, "quoted-printable", m.Header.Get("Content-Transfer-Encoding"))
	body, err := io.ReadAll(quotedprintable.NewReader(m.Body))
	require.NoError(t, err)
	// Body has "\n" line ends, as a reader would see them.
	return parsed{Header: m.Header, Subject: subject, Body: strings.ReplaceAll(string(body), "\r\n", "\n")}
}

// requireWireFormat checks what every SMTP server expects: CRLF line ends only, and no line
// longer than 78 characters (RFC 5322 recommends 78; the hard limit is 998).
func requireWireFormat(t *testing.T, raw []byte) {
	t.Helper()
	s := string(raw)
	require.Equal(t, strings.Count(s, "\n"), strings.Count(s, "\r\n"), "every line ends in CRLF")
	for _, line := range strings.Split(s, "\r\n") {
		require.LessOrEqual(t, len(line), 78, "line %q", line)
	}
}

func report() notify.BackupReport {
	started := time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC)
	return notify.BackupReport{
		Tenant: "acme", ScheduleName: "nightly full", ScheduleID: "3f1c2e4a-0000-4000-8000-000000000001",
		BackupID: "9b7d5c3e-0000-4000-8000-000000000002", BackupType: "FULL", BackupScope: "TENANT",
		Status: "COMPLETED", SizeBytes: 1_234_567_890, StoredSizeBytes: 456_789_012,
		Duration: 3*time.Minute + 4*time.Second, StartedAt: started, CompletedAt: started.Add(3*time.Minute + 4*time.Second),
		Attempts: 1,
	}
}

func TestMailerSend(t *testing.T) {
	ctx := context.Background()

	t.Run("a schedule report arrives over STARTTLS with AUTH PLAIN and proper headers", func(t *testing.T) {
		ts := smtptest.Start(t, smtptest.Options{STARTTLS: true, User: testUser, Password: testPassword})
		mailer := notify.NewMailer(configFor(ts))

		before := time.Now().Add(-time.Second)
		id, err := mailer.Send(ctx, report().Message([]string{"Ops Team <ops@acme.example>", "dba@acme.example"}))
		require.NoError(t, err)

		msgs := ts.Messages()
		require.Len(t, msgs, 1)
		got := msgs[0]
		require.True(t, got.TLS, "the session was upgraded with STARTTLS")
		require.Equal(t, testUser, got.AuthUser)
		require.Equal(t, testPassword, got.AuthPassword)
		require.Equal(t, "readiness@example.com", got.From)
		require.Equal(t, []string{"ops@acme.example", "dba@acme.example"}, got.To)
		requireWireFormat(t, got.Data)

		m := parseMessage(t, got.Data)
		from, err := m.Header.AddressList("From")
		require.NoError(t, err)
		require.Equal(t, []*mail.Address{{Name: "One Vault Readiness", Address: "readiness@example.com"}}, from)
		to, err := m.Header.AddressList("To")
		require.NoError(t, err)
		require.Equal(t, []*mail.Address{{Name: "Ops Team", Address: "ops@acme.example"}, {Address: "dba@acme.example"}}, to)
		require.Equal(t, "[readiness] acme: nightly full FULL TENANT backup COMPLETED (1.2 GB in 3m4s)", m.Subject)
		date, err := m.Header.Date()
		require.NoError(t, err)
		require.WithinRange(t, date, before.Truncate(time.Second), time.Now().Add(time.Second))
		require.Regexp(t, `^<[a-z0-9]+@example\.com>$`, m.Header.Get("Message-ID"))
		require.Equal(t, "1.0", m.Header.Get("MIME-Version"))
		mediaType, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
		require.NoError(t, err)
		require.Equal(t, "text/plain", mediaType)
		require.Equal(t, "utf-8", params["charset"])
		require.Equal(t, "auto-generated", m.Header.Get("Auto-Submitted"))

		// The go-smtp server names no queue id, so Send returns the Message-ID it sent.
		require.Equal(t, m.Header.Get("Message-ID"), id)

		for _, want := range []string{"nightly full", "acme", "COMPLETED", "FULL", "TENANT",
			"1.2 GB (1234567890 bytes)", "456.8 MB (456789012 bytes)", "3m4s",
			"2026-11-25T02:00:00Z", "2026-11-25T02:03:04Z", "3f1c2e4a-0000-4000-8000-000000000001",
			"9b7d5c3e-0000-4000-8000-000000000002"} {
			require.Contains(t, m.Body, want)
		}
		require.NotContains(t, m.Body, "Reason")
	})

	t.Run("a failure report says why in the subject and the body", func(t *testing.T) {
		ts := smtptest.Start(t, smtptest.Options{STARTTLS: true, User: testUser, Password: testPassword})
		r := report()
		r.Status, r.Attempts = "FAILED", 3
		r.ErrorMessage = "pg_basebackup: could not connect to server: connection refused\nretried 3 times"
		_, err := notify.NewMailer(configFor(ts)).Send(ctx, r.Message([]string{"ops@acme.example"}))
		require.NoError(t, err)

		msgs := ts.Messages()
		require.Len(t, msgs, 1)
		m := parseMessage(t, msgs[0].Data)
		require.Equal(t, "[readiness] acme: nightly full FULL TENANT backup FAILED: "+
			"pg_basebackup: could not connect to server: connection refused", m.Subject)
		require.Contains(t, m.Body, "ended FAILED after 3 attempts")
		require.Contains(t, m.Body, "Reason:       pg_basebackup: could not connect to server: connection refused\n")
		require.Contains(t, m.Body, "retried 3 times")
		require.Contains(t, m.Body, "Attempts:     3")
	})

	t.Run("a non-ASCII subject is encoded and decodes back", func(t *testing.T) {
		ts := smtptest.Start(t, smtptest.Options{STARTTLS: true})
		r := report()
		r.ScheduleName = "Nächtliche Sicherung – Größe prüfen, 日本語のスケジュール名も長くても大丈夫"
		msg := r.Message([]string{"ops@acme.example"})
		_, err := notify.NewMailer(configFor(ts)).Send(ctx, msg)
		require.NoError(t, err)

		raw := ts.Messages()[0].Data
		requireWireFormat(t, raw)
		header := string(raw[:bytes.Index(raw, []byte("\r\n\r\n"))])
		require.Regexp(t, regexp.MustCompile(`(?m)^Subject:\s+=\?utf-8\?q\?`), header)
		for _, b := range []byte(header) {
			require.Less(t, b, byte(0x80), "headers are 7-bit ASCII")
		}
		m := parseMessage(t, raw)
		require.Equal(t, msg.Subject, m.Subject)
		require.Contains(t, m.Body, "Nächtliche Sicherung – Größe prüfen")
	})

	t.Run("body lines starting with a dot are stuffed on the wire and survive", func(t *testing.T) {
		ts := smtptest.Start(t, smtptest.Options{})
		cfg := configFor(ts)
		cfg.TLS = notify.TLSOff
		text := "first line\n.hidden line starting with a dot\n.\n..two dots\nlast line"
		_, err := notify.NewMailer(cfg).Send(ctx, notify.Message{To: []string{"ops@acme.example"}, Subject: "dots", Text: text})
		require.NoError(t, err)

		wire := ts.Wire()
		require.Contains(t, wire, "\r\n..hidden line starting with a dot\r\n", "the client stuffed the dot")
		require.Contains(t, wire, "\r\n..\r\n", "a lone dot did not end the message early")
		require.Contains(t, wire, "\r\n...two dots\r\n")
		m := parseMessage(t, ts.Messages()[0].Data)
		require.Equal(t, text+"\n", m.Body)
	})

	t.Run("a refused recipient fails the send, naming the recipient and not the password", func(t *testing.T) {
		ts := smtptest.Start(t, smtptest.Options{STARTTLS: true, User: testUser, Password: testPassword,
			Refuse: []string{"nobody@acme.example"}})
		_, err := notify.NewMailer(configFor(ts)).Send(ctx, notify.Message{
			To: []string{"ops@acme.example", "nobody@acme.example"}, Subject: "s", Text: "t"})
		require.Error(t, err)
		var se *notify.SendError
		require.ErrorAs(t, err, &se)
		require.Equal(t, notify.StageRecipient, se.Stage)
		require.Equal(t, []string{"nobody@acme.example"}, se.Recipients)
		require.Equal(t, 550, se.Code)
		require.True(t, se.Permanent())
		require.Contains(t, err.Error(), "nobody@acme.example")
		require.Contains(t, err.Error(), "no such mailbox here")
		require.NotContains(t, err.Error(), "ops@acme.example", "only refused recipients are named")
		require.NotContains(t, err.Error(), testPassword)
		require.Empty(t, ts.Messages(), "nobody got the message: it goes to all recipients or none")
	})

	t.Run("wrong credentials fail at auth without the password in the error", func(t *testing.T) {
		ts := smtptest.Start(t, smtptest.Options{STARTTLS: true, User: testUser, Password: testPassword})
		cfg := configFor(ts)
		cfg.Password = "wr0ng-Pa55word"
		_, err := notify.NewMailer(cfg).Send(ctx, notify.Message{To: []string{"ops@acme.example"}, Subject: "s", Text: "t"})
		var se *notify.SendError
		require.ErrorAs(t, err, &se)
		require.Equal(t, notify.StageAuth, se.Stage)
		require.Equal(t, 535, se.Code)
		require.NotContains(t, err.Error(), "wr0ng-Pa55word")
		require.Equal(t, []string{testUser}, ts.AuthAttempts())
		require.Empty(t, ts.Messages())
	})

	t.Run("TLS required fails against a server without STARTTLS", func(t *testing.T) {
		ts := smtptest.Start(t, smtptest.Options{})
		cfg := configFor(ts)
		cfg.TLS = notify.TLSRequired
		_, err := notify.NewMailer(cfg).Send(ctx, notify.Message{To: []string{"ops@acme.example"}, Subject: "s", Text: "t"})
		require.ErrorIs(t, err, notify.ErrSTARTTLSUnavailable)
		var se *notify.SendError
		require.ErrorAs(t, err, &se)
		require.Equal(t, notify.StageSTARTTLS, se.Stage)
		require.Empty(t, ts.Messages())
	})

	t.Run("opportunistic TLS sends in clear text without AUTH when the server offers no STARTTLS and no credentials are set", func(t *testing.T) {
		ts := smtptest.Start(t, smtptest.Options{})
		cfg := configFor(ts)
		require.Empty(t, cfg.Username)
		_, err := notify.NewMailer(cfg).Send(ctx, notify.Message{To: []string{"ops@acme.example"}, Subject: "clear", Text: "t"})
		require.NoError(t, err)
		msgs := ts.Messages()
		require.Len(t, msgs, 1)
		require.False(t, msgs[0].TLS)
		require.Empty(t, msgs[0].AuthUser)
		require.Empty(t, ts.AuthAttempts())
		require.Contains(t, ts.Wire(), "Subject: clear\r\n", "the message crossed the wire in clear text")
	})

	t.Run("credentials are never sent in clear text to a host that is not localhost", func(t *testing.T) {
		// 127.0.0.2 is loopback to the kernel but not "localhost" to the rule, so it stands in
		// for a remote server that offers AUTH without TLS.
		ts := smtptest.Start(t, smtptest.Options{Host: "127.0.0.2", User: testUser, Password: testPassword, AllowInsecureAuth: true})
		_, err := notify.NewMailer(configFor(ts)).Send(ctx, notify.Message{To: []string{"ops@acme.example"}, Subject: "s", Text: "t"})
		require.ErrorIs(t, err, notify.ErrInsecureAuth)
		require.Empty(t, ts.AuthAttempts())
		require.NotContains(t, ts.Wire(), "AUTH")
	})

	t.Run("a certificate the client does not trust fails STARTTLS instead of falling back to clear text", func(t *testing.T) {
		ts := smtptest.Start(t, smtptest.Options{STARTTLS: true, User: testUser, Password: testPassword})
		cfg := configFor(ts)
		cfg.TLSConfig = nil // The system roots do not know the test certificate.
		_, err := notify.NewMailer(cfg).Send(ctx, notify.Message{To: []string{"ops@acme.example"}, Subject: "s", Text: "t"})
		var se *notify.SendError
		require.ErrorAs(t, err, &se)
		require.Equal(t, notify.StageSTARTTLS, se.Stage)
		require.ErrorContains(t, err, "certificate")
		require.Empty(t, ts.AuthAttempts())
		require.Empty(t, ts.Messages())
	})

	t.Run("implicit TLS delivers over SMTPS", func(t *testing.T) {
		ts := smtptest.Start(t, smtptest.Options{ImplicitTLS: true, User: testUser, Password: testPassword})
		cfg := configFor(ts)
		cfg.TLS = notify.TLSImplicit
		_, err := notify.NewMailer(cfg).Send(ctx, notify.Message{To: []string{"ops@acme.example"}, Subject: "s", Text: "t"})
		require.NoError(t, err)
		msgs := ts.Messages()
		require.Len(t, msgs, 1)
		require.True(t, msgs[0].TLS)
		require.Equal(t, testUser, msgs[0].AuthUser)
		require.NotContains(t, ts.Wire(), "EHLO", "nothing crossed the wire in clear text")
	})

	t.Run("a server that is down fails with a connect error", func(t *testing.T) {
		cfg := notify.SMTPConfig{Host: "127.0.0.1", Port: smtptest.ClosedPort(t), From: testFrom,
			Username: testUser, Password: testPassword, Timeout: 2 * time.Second}
		_, err := notify.NewMailer(cfg).Send(ctx, notify.Message{To: []string{"ops@acme.example"}, Subject: "s", Text: "t"})
		var se *notify.SendError
		require.ErrorAs(t, err, &se)
		require.Equal(t, notify.StageConnect, se.Stage)
		require.ErrorContains(t, err, "connection refused")
		require.NotContains(t, err.Error(), testPassword)
	})

	t.Run("a server that never answers fails once the timeout runs out", func(t *testing.T) {
		cfg := notify.SMTPConfig{Host: "127.0.0.1", Port: smtptest.SilentServer(t), From: testFrom, Timeout: 200 * time.Millisecond}
		_, err := notify.NewMailer(cfg).Send(ctx, notify.Message{To: []string{"ops@acme.example"}, Subject: "s", Text: "t"})
		var se *notify.SendError
		require.ErrorAs(t, err, &se)
		require.Equal(t, notify.StageConnect, se.Stage)
		require.True(t, se.Timeout(), "the error is a timeout: %v", err)
		require.True(t, errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded))
	})

	t.Run("a cancelled context stops a send that is waiting on the server", func(t *testing.T) {
		cfg := notify.SMTPConfig{Host: "127.0.0.1", Port: smtptest.SilentServer(t), From: testFrom, Timeout: time.Hour}
		ctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(100*time.Millisecond, cancel)
		_, err := notify.NewMailer(cfg).Send(ctx, notify.Message{To: []string{"ops@acme.example"}, Subject: "s", Text: "t"})
		require.ErrorIs(t, err, context.Canceled)
	})

	t.Run("a message without recipients or with a bad address is refused before connecting", func(t *testing.T) {
		cfg := notify.SMTPConfig{Host: "127.0.0.1", Port: smtptest.ClosedPort(t), From: testFrom}
		for _, to := range [][]string{nil, {"not an address"}} {
			_, err := notify.NewMailer(cfg).Send(ctx, notify.Message{To: to, Subject: "s", Text: "t"})
			require.ErrorIs(t, err, notify.ErrInvalidMessage)
		}
	})

	t.Run("a disabled mailer sends nothing and says so", func(t *testing.T) {
		m := notify.NewMailer(notify.SMTPConfig{})
		require.False(t, m.Enabled())
		_, err := m.Send(ctx, notify.Message{To: []string{"ops@acme.example"}})
		require.ErrorIs(t, err, notify.ErrDisabled)
	})

	t.Run("a subject with a line break cannot add headers", func(t *testing.T) {
		ts := smtptest.Start(t, smtptest.Options{})
		_, err := notify.NewMailer(configFor(ts)).Send(ctx, notify.Message{To: []string{"ops@acme.example"},
			Subject: "hello\r\nBcc: victim@example.com", Text: "t"})
		require.NoError(t, err)
		m := parseMessage(t, ts.Messages()[0].Data)
		require.Empty(t, m.Header.Get("Bcc"))
		require.Equal(t, "hello  Bcc: victim@example.com", m.Subject)
	})

	t.Run("the mailer never prints its password", func(t *testing.T) {
		m := notify.NewMailer(notify.SMTPConfig{Host: "smtp.example.com", Username: testUser, Password: testPassword, From: testFrom})
		for _, s := range []string{m.String(), fmtAll(m)} {
			require.NotContains(t, s, testPassword)
		}
	})
}
