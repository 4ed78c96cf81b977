package notify

import (
	"crypto/rand"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"
)

// ErrInvalidMessage is wrapped by Send when the message itself cannot be sent (no recipient,
// an address that does not parse, a bad sender). Sending it again cannot succeed, so the
// EmailWorker cancels such a job instead of retrying it.
var ErrInvalidMessage = errors.New("invalid e-mail message")

// Message is one plain-text e-mail. It is stored as JSON in river job arguments.
type Message struct {
	// To holds the recipients, each an address with an optional display name.
	To []string `json:"to"`
	// Subject may hold any Unicode; Send encodes it (RFC 2047) when it is not ASCII.
	Subject string `json:"subject"`
	// Text is the plain-text body; line breaks may be "\n" or "\r\n".
	Text string `json:"text"`
}

// envelope is a composed message ready for the SMTP transaction.
type envelope struct {
	from      string   // MAIL FROM address
	to        []string // RCPT TO addresses
	messageID string   // the Message-ID header, with its angle brackets
	data      []byte   // the RFC 5322 message with CRLF line ends, not yet dot-stuffed
}

// compose validates msg and builds the RFC 5322 message: headers (From, To, Subject, Date,
// Message-ID, MIME-Version, Content-Type, Content-Transfer-Encoding, Auto-Submitted) folded
// at 78 characters, and the body in quoted-printable, so that no line is too long and any
// UTF-8 survives 7-bit relays.
func compose(fromHeader string, msg Message, now time.Time) (envelope, error) {
	from, err := mail.ParseAddress(fromHeader)
	if err != nil {
		return envelope{}, fmt.Errorf("%w: sender %q: %v", ErrInvalidMessage, fromHeader, err)
	}
	if len(msg.To) == 0 {
		return envelope{}, fmt.Errorf("%w: no recipient", ErrInvalidMessage)
	}
	env := envelope{from: from.Address}
	toHeader := make([]string, 0, len(msg.To))
	for _, r := range msg.To {
		a, err := mail.ParseAddress(r)
		if err != nil {
			return envelope{}, fmt.Errorf("%w: recipient %q: %v", ErrInvalidMessage, r, err)
		}
		env.to = append(env.to, a.Address)
		toHeader = append(toHeader, a.String())
	}
	env.messageID = newMessageID(from.Address)

	var b strings.Builder
	writeHeader(&b, "From", from.String())
	writeHeader(&b, "To", strings.Join(toHeader, ", "))
	writeHeader(&b, "Subject", mime.QEncoding.Encode("utf-8", oneLine(msg.Subject)))
	writeHeader(&b, "Date", now.UTC().Format(time.RFC1123Z))
	writeHeader(&b, "Message-ID", env.messageID)
	writeHeader(&b, "MIME-Version", "1.0")
	writeHeader(&b, "Content-Type", "text/plain; charset=utf-8")
	writeHeader(&b, "Content-Transfer-Encoding", "quoted-printable")
	// RFC 3834: this is a machine's message, so vacation responders stay quiet.
	writeHeader(&b, "Auto-Submitted", "auto-generated")
	b.WriteString("\r\n")

	// The quoted-printable writer turns "\n" and "\r\n" alike into CRLF and keeps lines at 76
	// characters. It leaves a leading "." alone: the SMTP DATA writer stuffs those.
	qp := quotedprintable.NewWriter(&b)
	text := msg.Text
	if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	if _, err := qp.Write([]byte(text)); err != nil {
		return envelope{}, err
	}
	if err := qp.Close(); err != nil {
		return envelope{}, err
	}
	env.data = []byte(b.String())
	return env, nil
}

// newMessageID makes a globally unique Message-ID in the sender's domain.
func newMessageID(fromAddress string) string {
	domain := "readiness.invalid"
	if at := strings.LastIndexByte(fromAddress, '@'); at >= 0 && at < len(fromAddress)-1 {
		domain = fromAddress[at+1:]
	}
	return "<" + strings.ToLower(rand.Text()) + "@" + domain + ">"
}

// oneLine keeps a header value on one logical line: a newline in a subject would otherwise
// let its text add headers of its own.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\r' || r == '\n' || r == '\t':
			return ' '
		case r < ' ' || r == 0x7f:
			return -1
		}
		return r
	}, s)
}

// writeHeader writes "Name: value" folded at spaces (RFC 5322 2.2.3) so that lines stay within
// 78 characters where the value allows it (and encoded-words within RFC 2047's 76); unfolding
// gives the value back unchanged.
func writeHeader(b *strings.Builder, name, value string) {
	const maxLine = 78
	b.WriteString(name)
	b.WriteString(":")
	n := len(name) + 1
	for _, word := range strings.Split(oneLine(value), " ") {
		// Even the first word moves to a continuation line when it does not fit after the
		// name: an encoded-word may be 75 characters long, and "Subject: " plus 75 is too long.
		if word != "" && n+1+len(word) > maxLine {
			b.WriteString("\r\n")
			n = 0
		}
		b.WriteString(" ")
		b.WriteString(word)
		n += 1 + len(word)
	}
	b.WriteString("\r\n")
}
