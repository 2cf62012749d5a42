package mail_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"latchkey/e2e/testkit"
	"latchkey/server/config"
	"latchkey/server/mail"
	"latchkey/server/store"
)

// Messages share a kept connection; one the server dropped (restart) is
// replaced without losing the message; a 5xx is permanent.
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
