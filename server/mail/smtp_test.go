package mail_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"latchkey/e2e/testkit"
	"latchkey/server/config"
	"latchkey/server/mail"
	"latchkey/server/store"
)

// Messages share a kept connection, each costing only its MAIL, RCPT and
// DATA round trips (no NOOP before, no RSET after); one the server dropped
// (restart) is replaced without losing the message; a 5xx is permanent.
func TestSMTPKeepsConnectionsAcrossMessages(t *testing.T) {
	srv := testkit.StartSMTP(t)
	port, _ := strconv.Atoi(srv.Port())
	tr, err := mail.NewSMTP(config.SMTP{Host: "127.0.0.1", Port: port, TLS: "none", From: "Latchkey <id@example.com>"})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	send := func(i int) error {
		return tr.Send(context.Background(), &store.OutboxMail{ID: uint64(i), To: fmt.Sprintf("u%d@example.com", i), Subject: "hi", Text: "body"})
	}
	for i := range 5 {
		if err := send(i); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if got := srv.Sessions(); got != 1 {
		t.Fatalf("5 messages took %d connections, want 1", got)
	}
	for verb, want := range map[string]int{"MAIL": 5, "RCPT": 5, "DATA": 5, "NOOP": 0, "RSET": 0} {
		if got := srv.Commands(verb); got != want {
			t.Errorf("5 messages sent %d %s commands, want %d", got, verb, want)
		}
	}
	srv.Stop()
	srv.Restart(t)
	if err := send(5); err != nil {
		t.Fatalf("send after the server restarted: %v", err)
	}
	srv.WaitFor(t, "u5@example.com", 1, 5*time.Second)
	srv.SetReject(550)
	var perm *mail.PermanentError
	if err := send(6); err == nil || !errorsAs(err, &perm) {
		t.Fatalf("550 gave %v, want a permanent error", err)
	}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// A send must end before its lease does, at every SMTP stage: an SMTP
// server that pauses before its greeting (an anti-spam setting) once let a
// second node claim and send the same message while the first still waited,
// and the first node's outcome was then dropped. Here the first three
// connections pause 3 s before the greeting with a 2 s lease: the first
// attempts are cut off inside the lease and recorded as retries, and each
// message arrives exactly once.
func TestSendEndsInsideTheLeaseWhenTheGreetingIsSlow(t *testing.T) {
	srv := testkit.StartSMTP(t)
	srv.SetGreetingDelay(3*time.Second, 3)
	port, _ := strconv.Atoi(srv.Port())
	st, err := store.Open("sqlite", filepath.Join(t.TempDir(), "outbox.db"), store.Options{MaxOpenConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	for i := range 3 {
		if err := st.EnqueueMail(ctx, &store.OutboxMail{To: fmt.Sprintf("u%d@example.com", i), Subject: "link", Text: "body"}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for _, owner := range []string{"node-a", "node-b"} {
		tr, err := mail.NewSMTP(config.SMTP{Host: "127.0.0.1", Port: port, TLS: "none", From: "Latchkey <id@example.com>"})
		if err != nil {
			t.Fatal(err)
		}
		// Keep: delivered rows stay, marked sent, for the test to count attempts.
		s := (&mail.Sender{Outbox: st, Transport: tr, Owner: owner, Log: slog.Default(), Poll: 50 * time.Millisecond, Lease: 2 * time.Second, Keep: true}).Init()
		wg.Add(1)
		go func() { defer wg.Done(); s.Run(ctx) }()
	}
	var mails []store.OutboxMail
	for deadline := time.Now().Add(30 * time.Second); ; {
		if mails, err = st.RecentMail(ctx, 10); err != nil {
			t.Fatal(err)
		}
		if allSent(mails) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not delivered in 30 s: %+v", mails)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	for _, m := range mails {
		// The cut-off attempt was recorded by the node that held the lease.
		if m.Attempts != 2 {
			t.Errorf("mail %d to %s: %d attempts recorded, want 2 (the timed-out one and the delivery)", m.ID, m.To, m.Attempts)
		}
		if got := len(srv.To(m.To)); got != 1 {
			t.Errorf("mail to %s arrived %d times", m.To, got)
		}
	}
}

func allSent(mails []store.OutboxMail) bool {
	for _, m := range mails {
		if m.SentAt == nil {
			return false
		}
	}
	return len(mails) > 0
}
