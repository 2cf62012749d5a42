package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"latchkey/e2e/testkit"
	"latchkey/server/store"
	"latchkey/server/testenv"
)

// cluster is two Latchkey processes on one PostgreSQL schema behind a proxy.
type cluster struct {
	setup
	Proxy  *testkit.Proxy
	A, B   *testkit.Node
	Config string
	DSN    string
}

const clusterRealm = `realm: test
server:
  publicURL: {{PUBLIC}}
  managementListen: 127.0.0.1:0
  cookieSecret: cluster-cookie-secret-0123456789-0123456789-abc
database:
  driver: postgres
  dsn: "{{DSN}}"
  maxOpenConns: 8
smtp:
  host: 127.0.0.1
  port: {{SMTP_PORT}}
  tls: none
  from: "Test Realm <no-reply@example.com>"
tokens:
  keyCacheTTL: 1s
outbox:
  pollInterval: 200ms
  lease: 3s
clients:
  - clientId: app
    redirectUris: [{{REDIRECT}}]
flows:
  browser:
    - authenticator: cookie
      requirement: ALTERNATIVE
    - flow: forms
      requirement: ALTERNATIVE
      executions:
        - authenticator: magic-link
          config:
            forceCreateUser: true
            maxPerIP: 1000   # every test request comes from 127.0.0.1
bindings:
  browser: browser
`

func startCluster(t *testing.T, nodes int) *cluster {
	t.Helper()
	dsn := testenv.PostgresDSN(t)
	c := &cluster{Proxy: testkit.StartProxy(t)}
	c.SMTP = testkit.StartSMTP(t)
	c.App = testkit.StartApp(t)
	c.DSN = testenv.WithSearchPath(dsn, testenv.NewSchema(t, dsn))
	doc := strings.NewReplacer("{{PUBLIC}}", c.Proxy.URL, "{{DSN}}", c.DSN, "{{SMTP_PORT}}", c.SMTP.Port(), "{{REDIRECT}}", c.App.RedirectURI()).Replace(clusterRealm)
	c.Config = filepath.Join(t.TempDir(), "realm.yaml")
	if err := os.WriteFile(c.Config, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	c.A = testkit.StartNode(t, "A", c.Config)
	list := []*testkit.Node{c.A}
	if nodes > 1 {
		c.B = testkit.StartNode(t, "B", c.Config)
		list = append(list, c.B)
	}
	c.Proxy.SetNodes(list...)
	c.App.Connect(c.Proxy.URL+"/realms/test", "app", "")
	return c
}

func TestClusterLoginAcrossNodes(t *testing.T) {
	c := startCluster(t, 2)
	const A, B = 0, 1
	c.Proxy.Route(func(r *http.Request) int {
		p := r.URL.Path
		switch {
		case strings.HasSuffix(p, "/login-actions/authenticate") && r.Method == http.MethodGet:
			return A // the login page
		case strings.HasSuffix(p, "/login-actions/authenticate"):
			return B // the email form
		case strings.HasSuffix(p, "/login-actions/magic-link") && r.Method == http.MethodGet:
			return A // the link opened
		case strings.HasSuffix(p, "/login-actions/magic-link"):
			return B // the link confirmed
		case strings.HasSuffix(p, "/token"):
			return B // the code exchanged
		case strings.HasSuffix(p, "/auth"):
			return A
		}
		return -1
	})
	cl := testkit.NewClient(t)
	p := cl.Get(c.App.LoginURL(nil))
	p = cl.Submit(p, p.Form(t, "email"), map[string]string{"email": "alice@example.com"})
	if !p.Has("Check your email") {
		t.Fatalf("email form on B:\n%s", p.Body)
	}
	link := c.SMTP.WaitFor(t, "alice@example.com", 1, 15*time.Second)[0].Link()
	if !strings.HasPrefix(link, c.Proxy.URL) {
		t.Fatalf("link %s not built from the public URL", link)
	}
	confirm(t, cl, link)
	res := c.App.Last()
	if res.Err != "" || res.Claims["email"] != "alice@example.com" {
		t.Fatalf("result %q claims %v", res.Err, res.Claims)
	}
	want := map[string]string{"GET authenticate": "A", "POST authenticate": "B", "GET magic-link": "A", "POST magic-link": "B", "POST token": "B"}
	for _, s := range c.Proxy.Served() {
		key := s.Method + " " + s.Path[strings.LastIndex(s.Path, "/")+1:]
		if node, ok := want[key]; ok && node != s.Node {
			t.Errorf("%s served by %s, want %s", key, s.Node, node)
		}
	}
}

func TestClusterRateLimitHoldsAcrossNodes(t *testing.T) {
	c := startCluster(t, 2)
	for i := 1; i <= 6; i++ {
		node := 0
		if i == 6 {
			node = 1
		}
		c.Proxy.Route(func(*http.Request) int { return node })
		cl := testkit.NewClient(t)
		p := cl.Get(c.App.LoginURL(nil))
		p = cl.Submit(p, p.Form(t, "email"), map[string]string{"email": "alice@example.com"})
		if limited := p.Has("too many links"); limited != (i == 6) {
			t.Fatalf("request %d (node %d): limited=%v", i, node, limited)
		}
	}
}

func TestClusterOutboxDeliversEachMailOnce(t *testing.T) {
	c := startCluster(t, 2)
	st, err := store.Open("postgres", c.DSN, store.Options{MaxOpenConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := range 200 {
		if err := st.EnqueueMail(t.Context(), &store.OutboxMail{To: fmt.Sprintf("user%03d@example.com", i), Subject: "hello", Text: "hi"}); err != nil {
			t.Fatal(err)
		}
	}
	// Every row recorded as sent: no node will claim any of them again, and
	// each was handed to SMTP before it was recorded.
	outboxSettled(t, st, 60*time.Second)
	msgs := c.SMTP.Messages()
	seen := map[string]int{}
	for _, m := range msgs {
		seen[m.To]++
	}
	if len(msgs) != 200 || len(seen) != 200 {
		t.Fatalf("%d messages to %d addresses, want 200 and 200", len(msgs), len(seen))
	}
	a, b := strings.Count(c.A.Logs(), "event=mail_delivered"), strings.Count(c.B.Logs(), "event=mail_delivered")
	if a+b != 200 || a == 0 || b == 0 {
		t.Logf("deliveries: node A %d, node B %d (both should share the work)", a, b)
	}
	if a+b != 200 {
		t.Fatalf("nodes logged %d deliveries, want 200", a+b)
	}
}

func TestClusterNodeKilledDuringLogins(t *testing.T) {
	c := startCluster(t, 2)
	// A slow mail server: node A is killed while holding leased, unsent mail.
	c.SMTP.SetDelay(150 * time.Millisecond)
	const n = 40
	var mu sync.Mutex
	queued := map[string]bool{}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range n {
		if i == n/3 {
			wg.Wait()
			c.A.Kill() // no cleanup: its leases must expire
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(addr string) {
			defer func() { <-sem; wg.Done() }()
			for attempt := 0; attempt < 3; attempt++ { // a request lost with node A is retried, as a person would
				cl := testkit.NewClient(t)
				resp, err := cl.HTTP.Get(c.App.LoginURL(nil))
				if err != nil {
					continue
				}
				resp.Body.Close()
				p := cl.Get(c.App.LoginURL(nil))
				if len(p.Forms) == 0 {
					continue
				}
				p = cl.Submit(p, p.Form(t, "email"), map[string]string{"email": addr})
				if p.Has("Check your email") && !p.Has("too many links") {
					mu.Lock()
					queued[addr] = true
					mu.Unlock()
					return
				}
			}
		}(fmt.Sprintf("person%02d@example.com", i))
	}
	wg.Wait()
	if len(queued) < n*9/10 {
		t.Fatalf("only %d of %d logins got as far as 'check your email' after node A died", len(queued), n)
	}
	// Mail leased by A when it died is sent by B once the lease (3s)
	// expires; once every row is recorded sent, none can be sent again.
	st, err := store.Open("postgres", c.DSN, store.Options{MaxOpenConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	outboxSettled(t, st, 45*time.Second)
	var missing, dup []string
	for addr := range queued {
		msgs := c.SMTP.To(addr)
		ids := map[string]bool{}
		for _, m := range msgs {
			ids[m.MessageID] = true
		}
		switch {
		case len(msgs) == 0:
			missing = append(missing, addr)
		case len(ids) > 1:
			dup = append(dup, addr) // two different mails: a login mailed twice
		case len(msgs) > 1:
			// The same message twice: node A was killed between handing it to
			// SMTP and recording it. The stable Message-ID lets receivers drop it.
			t.Logf("%s: same Message-ID delivered %d times (crash window)", addr, len(msgs))
		}
	}
	if len(missing) > 0 || len(dup) > 0 {
		t.Fatalf("%d queued logins got no mail %v; %d got distinct duplicates %v", len(missing), missing, len(dup), dup)
	}
	// Logins continue on B.
	cl := testkit.NewClient(t)
	p := cl.Get(c.App.LoginURL(nil))
	p = cl.Submit(p, p.Form(t, "email"), map[string]string{"email": "after@example.com"})
	confirm(t, cl, c.SMTP.WaitFor(t, "after@example.com", 1, 15*time.Second)[0].Link())
	if res := c.App.Last(); res.Err != "" {
		t.Fatalf("login on the surviving node: %s", res.Err)
	}
}

func TestClusterKeyRotationReachesEveryNode(t *testing.T) {
	c := startCluster(t, 2)
	out, err := exec.Command(testkit.Binary(t), "keys", "rotate", "--config", c.Config).CombinedOutput()
	if err != nil {
		t.Fatalf("keys rotate: %v\n%s", err, out)
	}
	kid := strings.Fields(string(out))[3]
	for _, n := range []*testkit.Node{c.A, c.B} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			var set struct{ Keys []struct{ Kid string } }
			getJSON(t, n.URL+"/realms/test/protocol/openid-connect/certs", &set)
			if len(set.Keys) == 2 && set.Keys[0].Kid == kid {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s JWKS %v, want new key %s first", n.Name, set.Keys, kid)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

func TestClusterGracefulShutdownAndRequiredSecret(t *testing.T) {
	c := startCluster(t, 1)
	code, err := c.A.Terminate(20 * time.Second)
	if err != nil || code != 0 {
		t.Fatalf("SIGTERM: exit %d, %v\n%s", code, err, c.A.Logs())
	}
	if !strings.Contains(c.A.Logs(), "Latchkey stopped") {
		t.Fatalf("no clean stop in the log:\n%s", c.A.Logs())
	}
	raw, _ := os.ReadFile(c.Config)
	noSecret := filepath.Join(t.TempDir(), "realm.yaml")
	_ = os.WriteFile(noSecret, bytes.Replace(raw, []byte("  cookieSecret: cluster-cookie-secret-0123456789-0123456789-abc\n"), nil, 1), 0o600)
	out, err := exec.Command(testkit.Binary(t), "serve", "--config", noSecret, "--listen", "127.0.0.1:0").CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "database.driver: postgres needs server.cookieSecret") {
		t.Fatalf("postgres without cookieSecret: %v\n%s", err, out)
	}
}

// outboxSettled waits until every outbox row is recorded as sent or failed:
// the state after which no node delivers anything more.
func outboxSettled(t *testing.T, st *store.Store, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(100 * time.Millisecond) {
		rows, err := st.OutboxByKind(t.Context(), "")
		if err != nil {
			t.Fatal(err)
		}
		open := 0
		for _, r := range rows {
			if r.SentAt == nil && r.FailedAt == nil {
				open++
			}
		}
		if open == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d outbox rows still undelivered after %s", open, len(rows), timeout)
		}
	}
}
