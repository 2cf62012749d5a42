package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"latchkey/authenticators/password"
	"latchkey/e2e/testkit"
)

// TestSIGHUPReloadsRealmYAML runs the real binary: a client added to
// realm.yaml logs in after SIGHUP without a restart; a broken file keeps
// the running configuration; a setting that needs a restart is named.
func TestSIGHUPReloadsRealmYAML(t *testing.T) {
	h, err := password.Hash(alicePassword)
	if err != nil {
		t.Fatal(err)
	}
	smtp := testkit.StartSMTP(t)
	app, late := testkit.StartApp(t), testkit.StartApp(t)
	dir := t.TempDir()
	doc := binaryRealm(dir, smtp, app, h)
	path := filepath.Join(dir, "realm.yaml")
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(doc)
	node := testkit.StartNode(t, "reload", path)
	issuer := "http://localhost:" + node.Addr[strings.LastIndex(node.Addr, ":")+1:] + "/realms/test" // publicURL unset: it follows --listen
	if !strings.Contains(node.Logs(), "Log in:     "+issuer+"/account") {
		t.Errorf("the banner does not follow --listen:\n%s", node.Logs())
	}
	late.Connect(issuer, "late", "")
	lateLogin := func() *setup {
		s := &setup{App: late, SMTP: smtp}
		s.passwordLogin(t, testkit.NewClient(t), nil, "alice@example.com", alicePassword)
		return s
	}
	waitLog := func(what string, n int) {
		t.Helper()
		waitFor(t, what, 10*time.Second, func() bool { return strings.Count(node.Logs(), what) >= n })
	}

	resp, err := http.Get(late.LoginURL(nil))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("the client before it is configured: %d, want 400", resp.StatusCode)
	}

	// Add the client (and change the SMTP port, which needs a restart).
	added := strings.Replace(doc, "clients:\n", "clients:\n  - clientId: late\n    redirectUris: ["+late.RedirectURI()+"]\n", 1)
	added = strings.Replace(added, "port: "+smtp.Port(), "port: 1", 1)
	write(added)
	node.Reload()
	waitLog("event=config_reloaded", 1)
	if !strings.Contains(node.Logs(), `settings=[smtp]`) {
		t.Errorf("the restart-only SMTP change is not named:\n%s", node.Logs())
	}
	lateLogin()
	if r := late.Last(); r.Err != "" || r.Claims["email"] != "alice@example.com" {
		t.Fatalf("the new client after SIGHUP: %q %v", r.Err, r.Claims)
	}

	logins := 0
	for _, line := range strings.Split(node.Logs(), "\n") {
		if strings.Contains(line, `msg="login succeeded"`) {
			logins++
			if !strings.Contains(line, "request_id=") {
				t.Errorf("a request's log line without its request_id: %s", line)
			}
		}
	}
	if logins == 0 {
		t.Error("no login line in the log")
	}

	// A broken file changes nothing: the new client still logs in.
	write(strings.Replace(added, "  - clientId: late\n", "  - clientID: late\n", 1))
	node.Reload()
	waitLog("event=config_reload_failed", 1)
	if !strings.Contains(node.Logs(), "clientID: unknown key") {
		t.Errorf("the reload error does not say what is wrong:\n%s", node.Logs())
	}
	before := len(late.Results())
	lateLogin()
	if len(late.Results()) != before+1 || late.Last().Err != "" {
		t.Fatalf("after a broken reload the running client stopped working: %+v", late.Last())
	}
}

// binaryRealm is the e2e realm for a latchkey process: SQLite in dir, mail
// to smtp, app as its client, a management listener on a free port, and
// the password binding (alice's hash).
func binaryRealm(dir string, smtp *testkit.SMTPServer, app *testkit.App, hash string) string {
	return strings.NewReplacer("  listen: {{LISTEN}}\n", "  listen: 127.0.0.1:1\n  managementListen: 127.0.0.1:0\n",
		"{{PUBLIC}}", `""`, "{{DRIVER}}", "sqlite", "{{DSN}}", filepath.Join(dir, "l.db"), "{{SMTP_HOST}}", "127.0.0.1",
		"{{DEV_MAILBOX}}", "false", "{{SMTP_PORT}}", smtp.Port(), "{{REDIRECT}}", app.RedirectURI(), "{{APPLOGIN}}", app.URL+"/login",
		"{{BINDING}}", "browser-password", "{{ML_OPTIONS}}", "", "{{HASH}}", hash).Replace(realm)
}
