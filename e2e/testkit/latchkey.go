package testkit

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"latchkey/server"
)

// Latchkey is a server started in-process on a realm.yaml written by the test.
type Latchkey struct {
	URL    string // public URL
	Issuer string
	Realm  string
	Server *server.Server

	t      testing.TB
	addr   string
	cfg    string
	cancel context.CancelFunc
	done   chan error
	logs   *SyncBuffer
}

// Vars fill the placeholders of a realm.yaml template.
type Vars struct {
	SMTPPort    string // {{SMTP_PORT}}; empty: the development sink
	RedirectURI string // {{REDIRECT}}
	DSN         string // {{DSN}}; empty: a fresh SQLite file
	Driver      string // {{DRIVER}}; empty: sqlite
}

// StartLatchkey writes the realm.yaml template (placeholders {{PUBLIC}},
// {{SMTP_PORT}}, {{SMTP_HOST}}, {{DEV_MAILBOX}}, {{REDIRECT}}, {{DSN}}, {{DRIVER}}) and starts Latchkey.
func StartLatchkey(t testing.TB, realmYAML string, v Vars) *Latchkey {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	public := "http://" + addr
	if v.DSN == "" {
		v.DSN = filepath.Join(t.TempDir(), "latchkey.db")
	}
	if v.Driver == "" {
		v.Driver = "sqlite"
	}
	smtpHost, devMailbox := "127.0.0.1", "false"
	if v.SMTPPort == "" {
		smtpHost, v.SMTPPort, devMailbox = "", "25", "true"
	}
	doc := strings.NewReplacer("{{PUBLIC}}", public, "{{SMTP_PORT}}", v.SMTPPort, "{{SMTP_HOST}}", smtpHost, "{{DEV_MAILBOX}}", devMailbox,
		"{{REDIRECT}}", v.RedirectURI, "{{DSN}}", v.DSN, "{{DRIVER}}", v.Driver, "{{LISTEN}}", addr).Replace(realmYAML)
	path := filepath.Join(t.TempDir(), "realm.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	lk := &Latchkey{URL: public, t: t, addr: addr, cfg: path, logs: &SyncBuffer{}}
	lk.start(l)
	t.Cleanup(lk.Stop)
	return lk
}

func (lk *Latchkey) start(l net.Listener) {
	t := lk.t
	cfg, err := server.LoadConfig(lk.cfg)
	if err != nil {
		t.Fatalf("realm.yaml: %v", err)
	}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(lk.logs, testWriter{t}), &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv, err := server.New(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	lk.Server, lk.Issuer, lk.Realm = srv, cfg.Issuer(), cfg.Realm
	ctx, cancel := context.WithCancel(context.Background())
	lk.cancel, lk.done = cancel, make(chan error, 1)
	go func() { lk.done <- srv.Serve(ctx, l) }()
}

// Stop shuts the server down gracefully and closes its database.
func (lk *Latchkey) Stop() {
	if lk.cancel == nil {
		return
	}
	lk.cancel()
	if err := <-lk.done; err != nil {
		lk.t.Errorf("serve: %v", err)
	}
	_ = lk.Server.Close()
	lk.cancel = nil
}

// Restart stops and starts the server on the same address and database.
func (lk *Latchkey) Restart() {
	lk.t.Helper()
	lk.Stop()
	var l net.Listener
	var err error
	for range 50 {
		if l, err = net.Listen("tcp", lk.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		lk.t.Fatal(err)
	}
	lk.start(l)
}

// EditConfig replaces from with to in the realm.yaml the server reads at
// its next (re)start.
func (lk *Latchkey) EditConfig(from, to string) {
	lk.t.Helper()
	raw, err := os.ReadFile(lk.cfg)
	if err != nil {
		lk.t.Fatal(err)
	}
	doc := strings.Replace(string(raw), from, to, 1)
	if doc == string(raw) {
		lk.t.Fatalf("realm.yaml has no %q", from)
	}
	if err := os.WriteFile(lk.cfg, []byte(doc), 0o600); err != nil {
		lk.t.Fatal(err)
	}
}

// Logs returns everything the server logged.
func (lk *Latchkey) Logs() string { return lk.logs.String() }

// SyncBuffer collects output written from several goroutines (a server's
// log, a child process's stdout and stderr).
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testWriter sends server logs to the test log (shown with -v or on failure).
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	defer func() { _ = recover() }() // the test may have ended
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
