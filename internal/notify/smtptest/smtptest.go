// Package smtptest runs a real SMTP server (github.com/emersion/go-smtp) on a loopback port for
// tests: it records every message and every AUTH attempt, and can offer STARTTLS or implicit TLS
// with a self-signed certificate.
package smtptest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"
)

// Received is one message as the test server got it.
type Received struct {
	From string
	To   []string
	// Data is the message after the server undid the dot-stuffing.
	Data []byte
	// TLS reports whether the session that sent it was encrypted.
	TLS bool
	// AuthUser and AuthPassword are what AUTH PLAIN carried, empty without AUTH.
	AuthUser, AuthPassword string
}

// Options shape the test SMTP server.
type Options struct {
	// Host to listen on; 127.0.0.1 when empty.
	Host string
	// STARTTLS offers STARTTLS with the test certificate.
	STARTTLS bool
	// ImplicitTLS speaks TLS from the first byte (SMTPS).
	ImplicitTLS bool
	// User and Password enable AUTH PLAIN and are the only credentials it accepts; the server
	// then refuses MAIL before a successful AUTH.
	User, Password string
	// AllowInsecureAuth offers AUTH without TLS.
	AllowInsecureAuth bool
	// Refuse lists recipients refused with 550.
	Refuse []string
}

// Server is a real SMTP server (github.com/emersion/go-smtp) on a loopback port that
// records every message and every AUTH attempt.
type Server struct {
	Host string
	Port int
	// RootCAs trusts the server's self-signed certificate.
	RootCAs *x509.CertPool

	opts Options

	mu       sync.Mutex
	messages []Received
	auths    []string // usernames of AUTH attempts, successful or not
	wire     bytes.Buffer
}

// Start starts a server for the test and stops it when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	cert, pool := testCertificate(t)
	ts := &Server{Host: opts.Host, RootCAs: pool, opts: opts}

	s := gosmtp.NewServer(gosmtp.BackendFunc(func(c *gosmtp.Conn) (gosmtp.Session, error) {
		return &session{srv: ts, conn: c}, nil
	}))
	s.Domain = "mx.test"
	s.ReadTimeout = 10 * time.Second
	s.WriteTimeout = 10 * time.Second
	s.AllowInsecureAuth = opts.AllowInsecureAuth
	// Clients that hang up on purpose (a refused certificate) are expected here.
	s.ErrorLog = log.New(io.Discard, "", 0)
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if opts.STARTTLS {
		s.TLSConfig = tlsConfig
	}

	l, err := net.Listen("tcp", net.JoinHostPort(opts.Host, "0"))
	if err != nil {
		// Every 127.0.0.0/8 address is loopback on Linux, so a failure here is a broken machine
		// that must fail the test, not hide it.
		t.Fatalf("cannot listen on %s: %v", opts.Host, err)
	}
	l = &tapListener{Listener: l, srv: ts}
	if opts.ImplicitTLS {
		l = tls.NewListener(l, tlsConfig)
	}
	ts.Port = l.Addr().(*net.TCPAddr).Port
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { _ = s.Close() })
	return ts
}

// Messages returns what the server has Received so far.
func (ts *Server) Messages() []Received {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]Received(nil), ts.messages...)
}

// AuthAttempts returns the usernames of every AUTH the server saw.
func (ts *Server) AuthAttempts() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]string(nil), ts.auths...)
}

// Wire returns the bytes the clients sent, as they crossed the network (before TLS
// decryption, so only meaningful without TLS).
func (ts *Server) Wire() string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.wire.String()
}

type session struct {
	srv        *Server
	conn       *gosmtp.Conn
	user, pass string
	from       string
	to         []string
}

func (s *session) AuthMechanisms() []string {
	if s.srv.opts.User == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, username, password string) error {
		s.srv.mu.Lock()
		s.srv.auths = append(s.srv.auths, username)
		s.srv.mu.Unlock()
		if username != s.srv.opts.User || password != s.srv.opts.Password {
			return gosmtp.ErrAuthFailed
		}
		s.user, s.pass = username, password
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *gosmtp.MailOptions) error {
	if s.srv.opts.User != "" && s.user == "" {
		return gosmtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	for _, r := range s.srv.opts.Refuse {
		if r == to {
			return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no such mailbox here"}
		}
	}
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	s.srv.messages = append(s.srv.messages, Received{From: s.from, To: s.to, Data: data, TLS: isTLS,
		AuthUser: s.user, AuthPassword: s.pass})
	return nil
}

func (s *session) Reset() { s.from, s.to = "", nil }

func (s *session) Logout() error { return nil }

// tapListener records what clients send, so a test can look at the real bytes on the wire.
type tapListener struct {
	net.Listener
	srv *Server
}

func (l *tapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &tapConn{Conn: c, srv: l.srv}, nil
}

type tapConn struct {
	net.Conn
	srv *Server
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.srv.mu.Lock()
	c.srv.wire.Write(p[:n])
	c.srv.mu.Unlock()
	return n, err
}

// testCertificate makes a self-signed certificate for localhost and the loopback addresses,
// once per test binary, and a pool that trusts it.
func testCertificate(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	c, err := testCert()
	require.NoError(t, err)
	return c.cert, c.pool
}

type certAndPool struct {
	cert tls.Certificate
	pool *x509.CertPool
}

var testCert = sync.OnceValues(func() (certAndPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return certAndPool{}, err
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return certAndPool{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "readiness notify test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv4(127, 0, 0, 2), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return certAndPool{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return certAndPool{}, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return certAndPool{cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool: pool}, nil
})

// ClosedPort returns a loopback port nothing listens on.
func ClosedPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return port
}

// SilentServer accepts connections and never says a word, like a firewall that lets SYNs in
// and a mail server that hangs.
func SilentServer(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err == nil {
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().(*net.TCPAddr).Port
}

// User and Password are the credentials the server accepts ("" when AUTH is off).
func (ts *Server) User() string { return ts.opts.User }

// Password is the password the server accepts.
func (ts *Server) Password() string { return ts.opts.Password }
