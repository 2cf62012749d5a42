// Package testkit holds the real peers Latchkey's end-to-end tests talk to:
// an SMTP server, a relying-party app, a form-driving HTTP client, Chromium,
// and a Latchkey started in-process on a generated realm.yaml.
package testkit

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Message is one mail the SMTP server accepted.
type Message struct {
	From, To  string
	Subject   string
	MessageID string
	Text      string // the text/plain part, decoded
	HTML      string
	Raw       []byte
}

var linkRe = regexp.MustCompile(`https?://\S+/login-actions/magic-link\?token=[A-Za-z0-9_\-%]+`)

// Link returns the magic link in the message.
func (m Message) Link() string { return linkRe.FindString(m.Text) }

// codeRe is the line "... sign-in page: 123456" of the text part.
var codeRe = regexp.MustCompile(`: ([0-9]{6,8})\r?\n`)

// Code returns the one-time code mailed beside the link ("" for none).
func (m Message) Code() string {
	if g := codeRe.FindStringSubmatch(m.Text); g != nil {
		return g[1]
	}
	return ""
}

// SMTPServer is a real SMTP server (go-smtp) that keeps what it receives.
// It can be stopped and started again on the same port, to test delivery
// while the mail server is down.
type SMTPServer struct {
	Addr   string
	reject int           // answer RCPT with this code (e.g. 450, 550); 0 accepts
	delay  time.Duration // wait before accepting each message (a slow server)
	greet  time.Duration // wait before the 220 greeting (an anti-spam setting)
	greetN int           // ... on this many more connections

	mu       sync.Mutex
	msgs     []Message
	sessions int            // connections accepted
	commands map[string]int // commands received, by verb
	srv      *smtp.Server
	cond     *sync.Cond
}

// StartSMTP starts a server on a free loopback port.
func StartSMTP(t testing.TB) *SMTPServer {
	t.Helper()
	s := &SMTPServer{}
	s.cond = sync.NewCond(&s.mu)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = l.Addr().String()
	s.serve(l)
	t.Cleanup(s.Stop)
	return s
}

// Port is the server's port.
func (s *SMTPServer) Port() string { _, p, _ := net.SplitHostPort(s.Addr); return p }

func (s *SMTPServer) serve(l net.Listener) {
	srv := smtp.NewServer(&backend{s})
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go func() { _ = srv.Serve(greetingDelayer{l, s}) }()
}

// SetGreetingDelay makes the server wait d before its 220 greeting on the
// next n connections, as anti-spam "greet pause" settings do.
func (s *SMTPServer) SetGreetingDelay(d time.Duration, n int) {
	s.mu.Lock()
	s.greet, s.greetN = d, n
	s.mu.Unlock()
}

// greetingDelayer hands out connections whose first write (the greeting)
// waits for the server's greeting delay.
type greetingDelayer struct {
	net.Listener
	s *SMTPServer
}

func (l greetingDelayer) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	var d time.Duration
	l.s.mu.Lock()
	if l.s.greetN > 0 {
		d = l.s.greet
		l.s.greetN--
	}
	l.s.mu.Unlock()
	return &delayedConn{Conn: c, delay: d, s: l.s}, nil
}

type delayedConn struct {
	net.Conn
	delay   time.Duration
	greeted sync.Once
	s       *SMTPServer
	line    []byte // the client's unfinished line
	data    bool   // reading a message's data, not commands
}

// Read counts the client's commands by verb (not the lines of a message).
func (c *delayedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.line = append(c.line, p[:n]...)
	for {
		i := bytes.Index(c.line, []byte("\r\n"))
		if i < 0 {
			break
		}
		l := string(c.line[:i])
		c.line = c.line[i+2:]
		switch {
		case c.data:
			c.data = l != "."
		default:
			verb, _, _ := strings.Cut(strings.ToUpper(l), " ")
			c.data = verb == "DATA"
			c.s.mu.Lock()
			if c.s.commands == nil {
				c.s.commands = map[string]int{}
			}
			c.s.commands[verb]++
			c.s.mu.Unlock()
		}
	}
	return n, err
}

// Commands is how many commands with this verb (MAIL, NOOP, RSET, ...) the
// server has received.
func (s *SMTPServer) Commands(verb string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commands[verb]
}

func (c *delayedConn) Write(p []byte) (int, error) {
	c.greeted.Do(func() { time.Sleep(c.delay) })
	return c.Conn.Write(p)
}

// Stop closes the listener and connections: connections are refused.
func (s *SMTPServer) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Restart listens again on the same address.
func (s *SMTPServer) Restart(t testing.TB) {
	t.Helper()
	var l net.Listener
	var err error
	for range 50 { // the port may linger briefly
		if l, err = net.Listen("tcp", s.Addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	s.serve(l)
}

// SetReject makes the server answer RCPT with code (0: accept).
func (s *SMTPServer) SetReject(code int) {
	s.mu.Lock()
	s.reject = code
	s.mu.Unlock()
}

// SetDelay makes the server wait d before accepting each message.
func (s *SMTPServer) SetDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// Messages returns what arrived so far.
func (s *SMTPServer) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// To returns the messages to one address.
func (s *SMTPServer) To(addr string) []Message {
	var out []Message
	for _, m := range s.Messages() {
		if strings.EqualFold(m.To, addr) {
			out = append(out, m)
		}
	}
	return out
}

// WaitFor waits until n messages to addr arrived, and returns them.
func (s *SMTPServer) WaitFor(t testing.TB, addr string, n int, timeout time.Duration) []Message {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := s.To(addr)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %d mail(s) to %s; got %d (all: %d)", timeout, n, addr, len(got), len(s.Messages()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type backend struct{ s *SMTPServer }

func (b *backend) NewSession(*smtp.Conn) (smtp.Session, error) {
	b.s.mu.Lock()
	b.s.sessions++
	b.s.mu.Unlock()
	return &session{s: b.s}, nil
}

// Sessions is how many SMTP connections the server has accepted.
func (s *SMTPServer) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

type session struct {
	s    *SMTPServer
	from string
	to   []string
}

func (x *session) AuthPlain(string, string) error { return nil }
func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	x.from = from
	return nil
}
func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.s.mu.Lock()
	code := x.s.reject
	x.s.mu.Unlock()
	if code != 0 {
		return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{code / 100, 0, 0}, Message: "rejected by test"}
	}
	x.to = append(x.to, to)
	return nil
}
func (x *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	text, html, subject := parse(raw)
	var id string
	if m, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil {
		id = m.Header.Get("Message-Id")
	}
	x.s.mu.Lock()
	delay := x.s.delay
	x.s.mu.Unlock()
	time.Sleep(delay)
	x.s.mu.Lock()
	for _, to := range x.to {
		x.s.msgs = append(x.s.msgs, Message{From: x.from, To: to, Subject: subject, MessageID: id, Text: text, HTML: html, Raw: raw})
	}
	x.s.mu.Unlock()
	return nil
}
func (x *session) Reset()        { x.from, x.to = "", nil }
func (x *session) Logout() error { return nil }

// parse extracts the decoded text and HTML parts and the subject.
func parse(raw []byte) (text, html, subject string) {
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return string(raw), "", ""
	}
	subject, _ = new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	mt, params, _ := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if !strings.HasPrefix(mt, "multipart/") {
		b, _ := io.ReadAll(m.Body)
		return string(b), "", subject
	}
	var walk func(r io.Reader, boundary string)
	walk = func(r io.Reader, boundary string) {
		mr := multipart.NewReader(r, boundary)
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) || err != nil {
				return
			}
			pt, pp, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
			switch {
			case strings.HasPrefix(pt, "multipart/"):
				walk(p, pp["boundary"])
			case pt == "text/plain":
				b, _ := io.ReadAll(p) // multipart.Part decodes quoted-printable
				text = string(b)
			case pt == "text/html":
				b, _ := io.ReadAll(p)
				html = string(b)
			}
		}
	}
	walk(m.Body, params["boundary"])
	return text, html, subject
}
