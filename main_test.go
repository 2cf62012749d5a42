package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"latchkey/server"
	"latchkey/server/store"
)

func TestBrokenRealmYAMLExits2AndServesNothing(t *testing.T) {
	good, err := os.ReadFile("realm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// A port that must stay closed: the broken config points serve at it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cases := []struct{ name, from, to, want string }{
		{"unknown key", "  publicURL:", "  publicUrl:", "realm.yaml:5: server.publicUrl: unknown key"},
		{"bad URL", "redirectUris: [http://localhost:3000/callback]", "redirectUris: [http://localhost:3000/callback, not-a-url]", "realm.yaml:25: clients[0].redirectUris[1]: must be an absolute URL"},
		{"duplicate client", "flows:\n", "  - clientId: demo-app\n    redirectUris: [http://localhost:3000/cb]\nflows:\n", "realm.yaml:28: clients[1].clientId: duplicate client \"demo-app\""},
		{"unknown authenticator", "authenticator: magic-link", "authenticator: magic-lnk", "realm.yaml:35: flows.browser-magic-link[1].executions[0].authenticator: unknown authenticator \"magic-lnk\""},
		// Mail must never vanish, and the development mailbox is never public.
		{"no SMTP host, no dev mailbox", "  devMailbox: true", "  devMailbox: false", "realm.yaml:10: smtp.host: must be set"},
		{"dev mailbox on https", "publicURL: ${LATCHKEY_PUBLIC_URL:-}", "publicURL: https://id.example.com", "realm.yaml:11: smtp.devMailbox: is for development only"},
		{"dev mailbox on a LAN address", "publicURL: ${LATCHKEY_PUBLIC_URL:-}", "publicURL: http://192.0.2.10:8080", "realm.yaml:11: smtp.devMailbox: is for development only"},
		{"dev mailbox and SMTP host", `host: ""`, "host: smtp.example.com", "realm.yaml:11: smtp.devMailbox: cannot be used with smtp.host"},
		// Checks that only serve used to run, and checks that ran nowhere.
		{"link outlives its login", "            updateProfileOnCreate: true\n", "            updateProfileOnCreate: true\n            linkTTL: 2h\n",
			"realm.yaml:41: flows.browser-magic-link[1].executions[0].config.linkTTL: 2h0m0s is longer than sessions.authSessionTTL (1h0m0s)"},
		{"negative checkpoint interval", "  dsn: latchkey.db\n", "  dsn: latchkey.db\n  checkpointInterval: -1s\n",
			"realm.yaml:9: database.checkpointInterval: must be 0 (checkpoints by the WAL's size) or between 1ms and 1m"},
		{"postgres without cookie secret", "  driver: sqlite", "  driver: postgres", "realm.yaml:7: database.driver: postgres needs server.cookieSecret"},
		{"empty file", "", "", "realm.yaml:1: the file is empty"},
		{"only a comment", "", "# nothing here\n", "realm.yaml:1: the file is empty"},
		{"YAML syntax", "realm: demo", "realm: [demo", "realm.yaml:2: YAML syntax: did not find expected ',' or ']'"},
		{"unknown required action", "    emailVerified: true", "    emailVerified: true\n    requiredActions: [UPDATE_PROFIL]",
			"realm.yaml:56: users[0].requiredActions[0]: unknown required action \"UPDATE_PROFIL\""},
		{"negative attempt window", "        - authenticator: username-password-form\n", "        - authenticator: username-password-form\n          config: {attemptWindow: -5m}\n",
			"realm.yaml:48: flows.browser-password[1].executions[0].config.attemptWindow: must be a positive duration"},
		{"unknown signing algorithm", "signingAlgorithm: RS256", "signingAlgorithm: HS256", "realm.yaml:21: tokens.signingAlgorithm: must be RS256, ES256 or EdDSA"},
		{"unknown realm role", "    emailVerified: true", "    emailVerified: true\n    roles: [admin]", "realm.yaml:56: users[0].roles[0]: unknown realm role \"admin\""},
		{"bad web origin", "    scopes: [openid, email, profile, offline_access]", "    scopes: [openid, email, profile, offline_access]\n    webOrigins: [not-an-origin]",
			"realm.yaml:28: clients[0].webOrigins[0]: must be an origin"},
		{"bad brand colour", "users:", "branding:\n  primaryColor: red\nusers:", "realm.yaml:52: branding.primaryColor: must be a CSS hex colour like #2d5bd7"},
		{"plain-http logo", "users:", "branding:\n  logoUrl: http://cdn.example/logo.png\nusers:", "realm.yaml:52: branding.logoUrl: must be an https URL or a file in the theme's static folder"},
		{"theme file without a theme", "users:", "branding:\n  logoUrl: logo.png\nusers:", "realm.yaml:52: branding.logoUrl: names a file of the theme, but branding.themeDir is not set"},
		{"quotes in a font", "users:", "branding:\n  fontFamily: 'x\"; } body { color: red'\nusers:", "realm.yaml:52: branding.fontFamily: must be a CSS font list"},
		{"default locale not supported", "users:", "i18n:\n  defaultLocale: de\n  supportedLocales: [en, fr]\nusers:", "realm.yaml:52: i18n.defaultLocale: de is not one of i18n.supportedLocales (en, fr)"},
		{"locale without messages", "users:", "i18n:\n  supportedLocales: [en, it]\nusers:", "i18n.supportedLocales: locale it has no messages"},
		{"management listener address", "  publicURL:", "  managementListen: port-9000\n  publicURL:", "realm.yaml:5: server.managementListen: must be host:port"},
		{"unset environment variable", "password: ${SMTP_PASSWORD:-}", "password: ${LATCHKEY_TEST_UNSET_SECRET}", "realm.yaml:15: smtp.password: environment variable LATCHKEY_TEST_UNSET_SECRET is not set"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := tc.to // an empty from replaces the whole file
			if tc.from != "" {
				doc = strings.Replace(string(good), tc.from, tc.to, 1)
				if doc == string(good) {
					t.Fatalf("test edit %q did not apply", tc.from)
				}
			}
			path := filepath.Join(t.TempDir(), "realm.yaml")
			if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, cmd := range [][]string{{"check", "--config", path}, {"serve", "--config", path, "--listen", addr}} {
				var out, errb bytes.Buffer
				code := run(cmd, strings.NewReader(""), &out, &errb)
				msg := strings.ReplaceAll(errb.String(), path, "realm.yaml")
				if code != 2 || !strings.Contains(msg, tc.want) {
					t.Errorf("%s: exit %d, stderr:\n%s\nwant exit 2 and %q", cmd[0], code, msg, tc.want)
				}
				if c, err := net.Dial("tcp", addr); err == nil {
					c.Close()
					t.Errorf("%s: something is listening on %s", cmd[0], addr)
				}
			}
		})
	}
}

func TestCheckAcceptsDefaultRealm(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"check", "--config", "realm.yaml"}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}

func TestHashPassword(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"users", "hash-password"}, strings.NewReader("a long enough password\n"), &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "$2a$") {
		t.Fatalf("exit %d, out %q, err %q", code, out.String(), errb.String())
	}
}

func TestSetPasswordAndRotateKeys(t *testing.T) {
	path, db := realmCopy(t, nil)
	var out, errb bytes.Buffer
	// A typo must not create an account: an unknown address needs --create.
	code := run([]string{"users", "set-password", "--config", path, "--dsn", db, "--email", "Bob@Example.com"}, strings.NewReader("a long enough password\n"), &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), "no user has the email bob@example.com (add --create") {
		t.Fatalf("set-password on an unknown address: exit %d %s %s", code, out.String(), errb.String())
	}
	code = run([]string{"users", "set-password", "--config", path, "--dsn", db, "--email", "Bob@Example.com", "--create"}, strings.NewReader("a long enough password\n"), &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "user bob@example.com created with a password") {
		t.Fatalf("set-password --create: exit %d %s %s", code, out.String(), errb.String())
	}
	out.Reset()
	code = run([]string{"users", "set-password", "--config", path, "--dsn", db, "--email", "bob@example.com"}, strings.NewReader("another long password\n"), &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "password set for bob@example.com") {
		t.Fatalf("set-password: exit %d %s %s", code, out.String(), errb.String())
	}
	out.Reset()
	code = run([]string{"keys", "rotate", "--config", path, "--dsn", db}, strings.NewReader(""), &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "new signing key") {
		t.Fatalf("keys rotate: exit %d %s %s", code, out.String(), errb.String())
	}
	if code := run([]string{"users", "set-password", "--config", path, "--dsn", db, "--email", "bob@example.com"}, strings.NewReader("short\n"), &out, &errb); code != 2 {
		t.Fatalf("a short password was accepted (exit %d)", code)
	}
}

// The users verbs, on a realm.yaml whose SMTP password comes from a
// variable that is not set: commands that send no mail do not need it.
func TestUsersCLI(t *testing.T) {
	path, db := realmCopy(t, func(doc string) string {
		return strings.Replace(doc, "password: ${SMTP_PASSWORD:-}", "password: ${LATCHKEY_TEST_UNSET_SECRET}", 1)
	})
	cli := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(append(args, "--config", path, "--dsn", db), strings.NewReader("a long enough password\n"), &out, &errb)
		return code, out.String(), errb.String()
	}
	var errb bytes.Buffer
	if code := run([]string{"check", "--config", path}, strings.NewReader(""), &errb, &errb); code != 2 || !strings.Contains(errb.String(), "LATCHKEY_TEST_UNSET_SECRET") {
		t.Fatalf("check must still need every variable: exit %d %s", code, errb.String())
	}
	if code, _, errs := cli("users", "set-password", "--email", "carol@example.com", "--create"); code != 0 {
		t.Fatalf("set-password --create: exit %d %s", code, errs)
	}
	code, out, errs := cli("users", "list", "--search", "car")
	if code != 0 || !strings.Contains(out, "carol@example.com") || !strings.Contains(out, "EMAIL") {
		t.Fatalf("list: exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = cli("users", "get", "--email", "carol@example.com")
	var u struct {
		ID      string
		Enabled bool
	}
	if code != 0 || json.Unmarshal([]byte(out), &u) != nil || u.ID == "" || !u.Enabled {
		t.Fatalf("get: exit %d %s", code, out)
	}
	for _, step := range []struct {
		args []string
		want string
	}{
		{[]string{"users", "disable", u.ID}, "disabled; their sessions ended"},
		{[]string{"users", "list", "--enabled", "false"}, "carol@example.com"},
		{[]string{"users", "enable", "--email", "carol@example.com"}, "enabled"},
		{[]string{"users", "logout", u.ID}, "logged out everywhere"},
		{[]string{"users", "delete", u.ID}, "deleted"},
	} {
		if code, out, errs := cli(step.args...); code != 0 || !strings.Contains(out, step.want) {
			t.Errorf("%v: exit %d %s%s", step.args, code, out, errs)
		}
	}
	if code, _, errs := cli("users", "get", u.ID); code != 1 || !strings.Contains(errs, "User not found") {
		t.Errorf("get after delete: exit %d %s", code, errs)
	}
	if code, _, errs := cli("users", "disable"); code != 2 || !strings.Contains(errs, "one user id, or --email") {
		t.Errorf("disable without a user: exit %d %s", code, errs)
	}
}

func TestMagicLinkCLI(t *testing.T) {
	path, db := realmCopy(t, nil)
	cli := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(append(args, "--config", path, "--dsn", db), strings.NewReader(""), &out, &errb)
		return code, out.String(), errb.String()
	}
	code, out, errs := cli("magic-link", "create", "--email", "alice@example.com", "--client", "demo-app",
		"--redirect-uri", "http://localhost:3000/callback", "--ttl", "1h")
	var created struct{ ID, URL string }
	if code != 0 || json.Unmarshal([]byte(out), &created) != nil || !strings.Contains(created.URL, "/realms/demo/login-actions/magic-link?token=") {
		t.Fatalf("create: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, _ = cli("magic-link", "list", "--status", "pending")
	if code != 0 || !strings.Contains(out, created.ID) {
		t.Fatalf("list: exit %d\n%s", code, out)
	}
	if code, out, errs = cli("magic-link", "revoke", created.ID); code != 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke: exit %d\n%s%s", code, out, errs)
	}
	code, _, errs = cli("magic-link", "create", "--email", "alice@example.com", "--client", "demo-app", "--redirect-uri", "https://evil.example/")
	if code != 2 || !strings.Contains(errs, "--redirect-uri") {
		t.Fatalf("bad redirect: exit %d %s", code, errs)
	}
}

// realmCopy writes the default realm.yaml, changed by edit, to a temporary
// folder and returns its path and a database path beside it.
func realmCopy(t *testing.T, edit func(string) string) (path, db string) {
	t.Helper()
	good, err := os.ReadFile("realm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(good)
	if edit != nil {
		if doc = edit(doc); doc == string(good) {
			t.Fatal("the edit did not apply")
		}
	}
	dir := t.TempDir()
	path = filepath.Join(dir, "realm.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, filepath.Join(dir, "l.db")
}

// Each verb takes only its own flags, and --help shows them.
func TestEachVerbHasItsOwnFlags(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		contains string
	}{
		{[]string{"check", "--config", "realm.yaml", "--email", "x@example.com"}, 2, "flag provided but not defined: -email"},
		{[]string{"check", "--listen", "127.0.0.1:1"}, 2, "flag provided but not defined: -listen"},
		{[]string{"magic-link", "revoke", "--send"}, 2, "flag provided but not defined: -send"},
		{[]string{"users", "hash-password", "--config", "realm.yaml"}, 2, "flag provided but not defined: -config"},
		{[]string{"check", "--help"}, 0, "-config string"},
		{[]string{"magic-link", "create", "--help"}, 0, "-redirect-uri string"},
		{[]string{"users", "frobnicate"}, 2, "usage:"},
	} {
		var out, errb bytes.Buffer
		code := run(tc.args, strings.NewReader(""), &out, &errb)
		if code != tc.code || !strings.Contains(errb.String(), tc.contains) {
			t.Errorf("%v: exit %d, stderr:\n%s\nwant exit %d and %q", tc.args, code, errb.String(), tc.code, tc.contains)
		}
	}
}

// A theme template that replaces no page (a typo) is a configuration
// error for check and serve alike, not a page that silently never changes.
func TestThemeTemplateTypoIsAConfigError(t *testing.T) {
	good, err := os.ReadFile("realm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ file, content, want string }{
		{"magic-link-emial.html", `{{define "content"}}x{{end}}`, "branding.themeDir: theme template"},
		{"magic-link-emial.html", `{{define "content"}}x{{end}}`, "magic-link-emial.html: no page or mail has this name"},
		// A theme catalog overrides messages by id: an id nothing has is a typo.
		{"acme.de.json", `{"email.headng": "Anmelden"}`, "email.headng: no built-in message has this id"},
	} {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "theme", "templates"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "theme", "templates", tc.file), []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		doc := string(good) + "branding:\n  themeDir: " + filepath.Join(dir, "theme") + "\n"
		path := filepath.Join(dir, "realm.yaml")
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, cmd := range [][]string{{"check", "--config", path}, {"serve", "--config", path, "--listen", "127.0.0.1:1"}} {
			var out, errb bytes.Buffer
			code := run(cmd, strings.NewReader(""), &out, &errb)
			if code != 2 || !strings.Contains(errb.String(), tc.want) {
				t.Errorf("%s with %s: exit %d, stderr:\n%s\nwant %q", cmd[0], tc.file, code, errb.String(), tc.want)
			}
		}
	}
}

// events tail prints stored login events as JSON lines, oldest first.
func TestEventsTail(t *testing.T) {
	path, db := realmCopy(t, nil)
	cfg, err := server.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database.DSN = db
	st, err := server.OpenStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i, typ := range []string{"LOGIN", "LOGIN_ERROR", "LOGIN", "LOGOUT"} {
		e := &store.Event{ID: fmt.Sprintf("e%d", i), Time: now.Add(time.Duration(i) * time.Second), Kind: "login", Type: typ, UserID: "u1"}
		if err := st.RecordEvent(context.Background(), e, nil); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	var out, errb bytes.Buffer
	if code := run([]string{"events", "tail", "--config", path, "--dsn", db, "--type", "LOGIN,LOGIN_ERROR", "--max", "2"}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var ids []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var e struct{ ID, Type, RealmID string }
		if err := json.Unmarshal([]byte(line), &e); err != nil || e.RealmID != "demo" {
			t.Fatalf("line %q: %v", line, err)
		}
		ids = append(ids, e.ID)
	}
	if strings.Join(ids, ",") != "e1,e2" {
		t.Errorf("tail --max 2 of LOGIN and LOGIN_ERROR printed %v, want e1,e2 (the last two, oldest first)", ids)
	}
}
