package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"latchkey/e2e/testkit"
	"latchkey/server/store"
)

const hookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// waitFor polls cond (a state only the next step has) until it holds.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(timeout); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type delivery struct {
	headers http.Header
	body    []byte
	err     error
}

// TestWebhookGetsSignedLoginEventAfterAnOutage: the realm's webhook is down
// when alice logs in; the LOGIN event waits in the outbox, and once the
// receiver is up it arrives signed per Standard Webhooks (verified by the
// spec's reference library), with the event's id as webhook-id.
func TestWebhookGetsSignedLoginEventAfterAnOutage(t *testing.T) {
	addr := testkit.FreePort(t) // the receiver is down: connections are refused
	doc := realm + "events:\n  webhooks:\n    - url: http://" + addr + "/hook\n      secret: " + hookSecret + "\n      types: [LOGIN]\n"
	s := startDoc(t, doc, opts{})
	s.passwordLogin(t, testkit.NewClient(t), nil, "alice@example.com", alicePassword)
	waitFor(t, "a failed webhook attempt", 10*time.Second, func() bool {
		return strings.Contains(s.LK.Logs(), "kind=webhook") && strings.Contains(s.LK.Logs(), "will retry")
	})
	mgmt := httptest.NewServer(s.LK.Server.Management)
	t.Cleanup(mgmt.Close)
	during := scrape(t, mgmt)
	if n := value(during, "latchkey_outbox_delivery_failures_total", map[string]string{"kind": "webhook", "final": "false"}); n < 1 {
		t.Errorf("webhook failures counted: %v", n)
	}
	if n := value(during, "latchkey_outbox_waiting", nil); n < 1 {
		t.Errorf("outbox waiting: %v, want the webhook delivery", n)
	}

	got := make(chan delivery, 10)
	verifier, err := standardwebhooks.NewWebhook(hookSecret)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- delivery{headers: r.Header.Clone(), body: body, err: verifier.Verify(body, r.Header)}
	})}
	var ln net.Listener
	waitFor(t, "the receiver's port", 5*time.Second, func() bool { ln, err = net.Listen("tcp", addr); return err == nil })
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })

	var d delivery
	select {
	case d = <-got:
	case <-time.After(30 * time.Second):
		t.Fatalf("no webhook delivery after the receiver came up; log:\n%s", s.LK.Logs())
	}
	if d.err != nil {
		t.Fatalf("signature does not verify: %v (headers %v)", d.err, d.headers)
	}
	var msg struct {
		Type string
		Data struct {
			ID, Type, ClientID, UserID, SessionID, IPAddress, RealmID string
		}
	}
	if err := json.Unmarshal(d.body, &msg); err != nil {
		t.Fatal(err)
	}
	claims := s.App.Last().Claims
	if msg.Type != "LOGIN" || msg.Data.Type != "LOGIN" || msg.Data.ClientID != "app" || msg.Data.UserID != claims["sub"] ||
		msg.Data.SessionID != claims["sid"] || msg.Data.RealmID != "test" || msg.Data.IPAddress != "127.0.0.1" {
		t.Errorf("webhook body %s (sub %v, sid %v)", d.body, claims["sub"], claims["sid"])
	}
	if d.headers.Get("webhook-id") != msg.Data.ID {
		t.Errorf("webhook-id %q, event id %q", d.headers.Get("webhook-id"), msg.Data.ID)
	}

	// types: [LOGIN]: the login's other events (CODE_TO_TOKEN) were not
	// queued for it. A delivered entry leaves the outbox, and the receiver
	// has a delivery before its entry is dropped: once the outbox holds no
	// webhook entry, every one queued has reached the receiver.
	waitFor(t, "the outbox to hold no webhook entry", 30*time.Second, func() bool {
		hooks, err := s.LK.Server.Store.OutboxByKind(context.Background(), store.KindWebhook)
		return err == nil && len(hooks) == 0
	})
	if n := len(got); n != 0 {
		t.Errorf("%d webhook deliveries after the LOGIN one, want none", n)
	}

	// The same event through Keycloak's events API.
	code, evs := apiList(t, s, "/admin/realms/test/events?type=LOGIN&client=app", peopleKey)
	if code != 200 || len(evs) != 1 || evs[0]["id"] != msg.Data.ID {
		t.Fatalf("GET /events?type=LOGIN: %d %v", code, evs)
	}
	code, evs = apiList(t, s, "/admin/realms/test/events?type=CODE_TO_TOKEN", peopleKey)
	if code != 200 || len(evs) != 1 || evs[0]["userId"] != claims["sub"] {
		t.Errorf("GET /events?type=CODE_TO_TOKEN: %d %v", code, evs)
	}
	if code, _ := apiList(t, s, "/admin/realms/test/events", apiKey); code != 403 {
		t.Errorf("a key without events:read: %d", code)
	}
}

// TestEventsRecordMagicLinksAndAdminChanges: a magic-link login leaves
// MAGIC_LINK_SENT, _OPENED, _CONFIRMED and LOGIN; a wrong link leaves
// MAGIC_LINK_REJECTED; an account the step creates is REGISTER; a users API change is an admin event naming its caller.
func TestEventsRecordMagicLinksAndAdminChanges(t *testing.T) {
	s := start(t, magic(map[string]string{"forceCreateUser": "true"}))
	c := testkit.NewClient(t)
	s.requestLink(t, c, "alice@example.com")
	msg := s.SMTP.WaitFor(t, "alice@example.com", 1, 10*time.Second)[0]
	confirm(t, c, msg.Link())
	c.Get(strings.Replace(msg.Link(), "token=", "token=x", 1))
	code, evs := apiList(t, s, "/admin/realms/test/events?first=0&max=50", peopleKey)
	if code != 200 {
		t.Fatalf("events: %d", code)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e["type"].(string))
	}
	seen := strings.Join(types, ",")
	for _, want := range []string{"MAGIC_LINK_SENT", "MAGIC_LINK_OPENED", "MAGIC_LINK_CONFIRMED", "LOGIN", "CODE_TO_TOKEN", "MAGIC_LINK_REJECTED"} {
		if !strings.Contains(seen, want) {
			t.Errorf("no %s event in %s", want, seen)
		}
	}
	if !strings.HasPrefix(seen, "MAGIC_LINK_REJECTED") {
		t.Errorf("events are not newest first: %s", seen)
	}
	// An address without an account gets one (forceCreateUser): REGISTER.
	s.requestLink(t, testkit.NewClient(t), "gus@example.com")
	code, evs = apiList(t, s, "/admin/realms/test/events?type=REGISTER", peopleKey)
	if code != 200 || len(evs) != 1 || evs[0]["clientId"] != "app" || evs[0]["userId"] == "" {
		t.Errorf("REGISTER events: %d %v", code, evs)
	}
	if code, _, body := adminCall(t, s, "POST", "/users", peopleKey, `{"email":"fay@example.com"}`); code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	code, evs = apiList(t, s, "/admin/realms/test/admin-events?operationTypes=CREATE&resourcePath=users", peopleKey)
	if code != 200 || len(evs) != 1 || evs[0]["authDetails"].(map[string]any)["clientId"] != "api-key:people" || evs[0]["resourceType"] != "USER" {
		t.Errorf("admin events: %d %v", code, evs)
	}
	if code, _ := apiList(t, s, "/admin/realms/test/events?dateFrom=yesterday", peopleKey); code != 400 {
		t.Errorf("bad dateFrom: %d, want 400", code)
	}
}
