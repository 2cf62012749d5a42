package main

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// mailSink is the generator's own SMTP server: it hands each link to the
// virtual user waiting for that address.
type mailSink struct {
	addr     string
	srv      *smtp.Server
	mu       sync.Mutex
	waiting  map[string]chan string
	received atomic.Int64
	orphans  atomic.Int64 // mail nobody waited for
}

func startMailSink() (*mailSink, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	m := &mailSink{addr: l.Addr().String(), waiting: map[string]chan string{}}
	m.srv = smtp.NewServer(m)
	m.srv.Domain = "localhost"
	m.srv.ReadTimeout, m.srv.WriteTimeout = 30*time.Second, 30*time.Second
	go func() { _ = m.srv.Serve(l) }()
	return m, nil
}

func (m *mailSink) port() string { _, p, _ := net.SplitHostPort(m.addr); return p }

func (m *mailSink) expect(addr string) <-chan string {
	ch := make(chan string, 1)
	m.mu.Lock()
	m.waiting[addr] = ch
	m.mu.Unlock()
	return ch
}

func (m *mailSink) forget(addr string) {
	m.mu.Lock()
	delete(m.waiting, addr)
	m.mu.Unlock()
}

func (m *mailSink) deliver(to, link string) {
	m.received.Add(1)
	m.mu.Lock()
	ch := m.waiting[to]
	m.mu.Unlock()
	if ch == nil {
		m.orphans.Add(1)
		return
	}
	select {
	case ch <- link:
	default:
	}
}

// NewSession implements smtp.Backend.
func (m *mailSink) NewSession(*smtp.Conn) (smtp.Session, error) { return &sinkSession{m: m}, nil }

type sinkSession struct {
	m  *mailSink
	to []string
}

func (s *sinkSession) AuthPlain(string, string) error            { return nil }
func (s *sinkSession) Mail(string, *smtp.MailOptions) error      { return nil }
func (s *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error { s.to = append(s.to, to); return nil }
func (s *sinkSession) Reset()                                    { s.to = nil }
func (s *sinkSession) Logout() error                             { return nil }
func (s *sinkSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	link := linkRe.FindString(textPart(raw))
	for _, to := range s.to {
		s.m.deliver(strings.ToLower(to), link)
	}
	return nil
}

var linkRe = regexp.MustCompile(`https?://\S+/login-actions/magic-link\?token=[A-Za-z0-9_\-%]+`)

// textPart decodes the text/plain part (quoted-printable is undone by multipart).
func textPart(raw []byte) string {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return ""
	}
	mt, params, _ := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if !strings.HasPrefix(mt, "multipart/") {
		b, _ := io.ReadAll(msg.Body)
		return string(b)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			return ""
		}
		if strings.HasPrefix(p.Header.Get("Content-Type"), "text/plain") {
			b, _ := io.ReadAll(p)
			return string(b)
		}
	}
}
