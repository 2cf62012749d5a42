package e2e

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"latchkey/e2e/testkit"
)

func TestOtherSigningAlgorithms(t *testing.T) {
	for _, alg := range []string{"ES256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			s := startDoc(t, strings.Replace(realm, "branding:", "tokens:\n  signingAlgorithm: "+alg+"\nbranding:", 1), opts{})
			s.passwordLogin(t, testkit.NewClient(t), nil, "alice@example.com", alicePassword)
			res := s.App.Last()
			if res.Err != "" {
				t.Fatal(res.Err)
			}
			raw, _ := res.Token.Extra("id_token").(string)
			if h := decodeHeader(t, raw); !strings.Contains(h, `"alg":"`+alg+`"`) {
				t.Fatalf("header %s", h)
			}
		})
	}
}

func TestRevocationAndIntrospection(t *testing.T) {
	s := start(t, opts{})
	s.App.Connect(s.LK.Issuer, "confidential", "s3cret-for-the-confidential-client")
	s.passwordLogin(t, testkit.NewClient(t), nil, "alice@example.com", alicePassword)
	tok := s.App.Last().Token
	introspect := func() map[string]any {
		req, _ := http.NewRequest(http.MethodPost, s.LK.Issuer+"/protocol/openid-connect/token/introspect",
			strings.NewReader(url.Values{"token": {tok.AccessToken}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("confidential", "s3cret-for-the-confidential-client")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		decodeJSON(t, resp, &out)
		return out
	}
	if got := introspect(); got["active"] != true || got["client_id"] != "confidential" {
		t.Fatalf("introspection of a live token: %v", got)
	}
	req, _ := http.NewRequest(http.MethodPost, s.LK.Issuer+"/protocol/openid-connect/revoke",
		strings.NewReader(url.Values{"token": {tok.RefreshToken}, "token_type_hint": {"refresh_token"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("confidential", "s3cret-for-the-confidential-client")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	if got := introspect(); got["active"] != false {
		t.Fatalf("after revoking the grant: %v", got)
	}
	if _, err := refresh(t, s, tok.RefreshToken); err == nil {
		t.Fatal("a revoked refresh token still works")
	}
}

func TestLoginSurvivesServerRestart(t *testing.T) {
	s := start(t, opts{})
	c := testkit.NewClient(t)
	p := c.Get(s.App.LoginURL(nil))
	s.LK.Restart()
	p = c.Submit(p, p.Form(t, "password"), map[string]string{"email": "alice@example.com", "password": alicePassword})
	if res := s.App.Last(); res.Err != "" || !p.Has("Logged in as") {
		t.Fatalf("after restart: %q\n%s", res.Err, p.Body)
	}
}

func TestThemeFolderOverridesPages(t *testing.T) {
	theme := t.TempDir()
	if err := os.MkdirAll(filepath.Join(theme, "templates"), 0o755); err != nil {
		t.Fatal(err)
	}
	page := `{{define "content"}}<h1>ACME sign-in</h1><form method="post" action="{{.Action}}"><input type="hidden" name="csrf" value="{{.CSRF}}"><input type="hidden" name="execution" value="{{.Exec}}"><input name="email"></form>{{end}}`
	if err := os.WriteFile(filepath.Join(theme, "templates", "magic-link-email.html"), []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	doc := strings.Replace(realm, "  displayName: Test Realm", "  displayName: Test Realm\n  themeDir: "+theme, 1)
	s := startDoc(t, doc, magic(nil))
	p := s.requestLinkPage(t, testkit.NewClient(t))
	if !p.Has("ACME sign-in") {
		t.Fatalf("theme not applied:\n%s", p.Body)
	}
}

// A theme overrides a step's messages by the catalog's file name.
func TestThemeFolderOverridesMessages(t *testing.T) {
	theme := t.TempDir()
	if err := os.MkdirAll(filepath.Join(theme, "templates"), 0o755); err != nil {
		t.Fatal(err)
	}
	catalog := `{"password.invalid": "ACME: that did not match.", "password.tooMany": "ACME: wait {{duration .Wait}}."}`
	if err := os.WriteFile(filepath.Join(theme, "templates", "password.en.json"), []byte(catalog), 0o644); err != nil {
		t.Fatal(err)
	}
	// One message of another locale, in a file of the theme's own name.
	if err := os.WriteFile(filepath.Join(theme, "templates", "acme.de.json"), []byte(`{"password.heading": "Bei ACME anmelden"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	doc := strings.Replace(realm, "  displayName: Test Realm", "  displayName: Test Realm\n  themeDir: "+theme, 1)
	s := startDoc(t, doc, opts{})
	p := s.passwordLogin(t, testkit.NewClient(t), nil, "alice@example.com", "wrong password")
	if !p.Has("ACME: that did not match.") || p.Has("Invalid email or password") {
		t.Fatalf("theme catalog not applied:\n%s", p.Body)
	}
	p = testkit.NewClient(t).Get(s.App.LoginURL(url.Values{"ui_locales": {"de"}}))
	if !p.Has("<h1>Bei ACME anmelden</h1>") || !p.Has(`<label for="password">Passwort</label>`) {
		t.Fatalf("the German override, or the rest of the German catalog, is missing:\n%s", p.Body)
	}
}

// deniedRealm binds as the browser flow "denied": the steps given, then
// deny-access saying "Sign-ups are closed."
func deniedRealm(steps string) string {
	doc := strings.Replace(realm, "bindings:", "  denied:\n"+steps+`    - authenticator: deny-access
      config:
        errorMessage: Sign-ups are closed.
bindings:`, 1)
	return strings.Replace(doc, "browser: {{BINDING}}", "browser: denied", 1)
}

func TestDenyAccessFlow(t *testing.T) {
	s := startDoc(t, deniedRealm("    - authenticator: username-password-form\n"), opts{})
	p := s.passwordLogin(t, testkit.NewClient(t), nil, "alice@example.com", alicePassword)
	if p.Status != http.StatusForbidden || !p.Has("Sign-ups are closed.") || !p.Has("Start again") {
		t.Fatalf("status %d:\n%s", p.Status, p.Body)
	}
	if len(s.App.Results()) != 0 {
		t.Fatal("denied login reached the app")
	}
}

// A login refused by its first step (no page was shown) is one LOGIN_ERROR.
func TestLoginRefusedAtTheStartIsOneEvent(t *testing.T) {
	s := startDoc(t, deniedRealm(""), opts{})
	p := testkit.NewClient(t).Get(s.App.LoginURL(nil))
	if p.Status != http.StatusForbidden || !p.Has("Sign-ups are closed.") {
		t.Fatalf("status %d:\n%s", p.Status, p.Body)
	}
	code, evs := apiList(t, s, "/admin/realms/test/events?type=LOGIN_ERROR", peopleKey)
	if code != http.StatusOK || len(evs) != 1 {
		t.Fatalf("LOGIN_ERROR events: %d %v", code, evs)
	}
}

func TestUserInputIsEscaped(t *testing.T) {
	s := start(t, opts{})
	c := testkit.NewClient(t)
	p := s.passwordLogin(t, c, nil, "newbie@example.com", alicePassword)
	p = c.Submit(p, p.Form(t, "firstName"), map[string]string{"firstName": "<script>alert(1)</script>", "lastName": ""})
	if strings.Contains(p.Body, "<script>alert(1)</script>") || !strings.Contains(p.Body, "&lt;script&gt;") {
		t.Fatalf("user input rendered unescaped:\n%s", p.Body)
	}
	for _, h := range []string{"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options"} {
		if p.Header.Get(h) == "" {
			t.Errorf("header %s missing", h)
		}
	}
}

// The README's promise: with no SMTP server, `go run .` lets a person log in
// through the development mailbox.
func TestDevelopmentMailboxLogin(t *testing.T) {
	o := magic(nil)
	o.noSMTP = true
	s := start(t, o)
	c := testkit.NewClient(t)
	s.requestLink(t, c, "alice@example.com")
	var link string
	for deadline := time.Now().Add(10 * time.Second); link == "" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		box := c.Get(s.LK.Issuer + "/dev/mail")
		link = regexp.MustCompile(`http://[^\s<"]+/login-actions/magic-link\?token=[A-Za-z0-9_\-]+`).FindString(box.Body)
	}
	if link == "" {
		t.Fatal("no link in the development mailbox")
	}
	confirm(t, c, link)
	if res := s.App.Last(); res.Err != "" {
		t.Fatal(res.Err)
	}
	if !strings.Contains(s.LK.Logs(), "mail NOT delivered") {
		t.Error("no warning that mail is not delivered")
	}
}

func (s *setup) requestLinkPage(t *testing.T, c *testkit.Client) *testkit.Page {
	t.Helper()
	return c.Get(s.App.LoginURL(nil))
}

func decodeJSON(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	if err := jsonDecode(resp.Body, v); err != nil {
		t.Fatal(err)
	}
}

// `go run .` prints the account page as the place to log in: it must work
// with nothing else running (development mailbox, built-in client).
func TestAccountPageLoginAndLogout(t *testing.T) {
	o := magic(nil)
	o.noSMTP = true
	s := start(t, o)
	c := testkit.NewClient(t)
	p := c.Get(s.LK.Issuer + "/account")
	p = c.Submit(p, p.Form(t, "email"), map[string]string{"email": "alice@example.com"})
	if !p.Has("Check your email") {
		t.Fatalf("account login:\n%s", p.Body)
	}
	var link string
	for deadline := time.Now().Add(10 * time.Second); link == "" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		link = regexp.MustCompile(`http://[^\s<"]+/login-actions/magic-link\?token=[A-Za-z0-9_\-]+`).FindString(c.Get(s.LK.Issuer + "/dev/mail").Body)
	}
	p = confirm(t, c, link)
	if !p.Has("Signed in") || !p.Has("alice@example.com") || !p.Has("Verified") || p.URL.Path != "/realms/test/account" {
		t.Fatalf("account page at %s:\n%s", p.URL, p.Body)
	}
	// Its language switcher works, and the choice sticks.
	if p := c.Get(s.LK.Issuer + "/account?kc_locale=de"); !p.Has(`<html lang="de">`) || !p.Has("<h1>Angemeldet</h1>") {
		t.Fatalf("account page in German:\n%s", p.Body)
	}
	if p := c.Get(s.LK.Issuer + "/account"); !p.Has(`<html lang="de">`) {
		t.Fatalf("the switcher's choice did not stick:\n%s", p.Body)
	}
	c.Get(s.LK.Issuer + "/account?kc_locale=en")
	// A cross-site link cannot sign the user out: sign-out is a POST with a token.
	if p := c.Get(s.LK.Issuer + "/account/logout"); p.Status != http.StatusMethodNotAllowed {
		t.Fatalf("GET sign-out: status %d", p.Status)
	}
	if p := c.Post(s.LK.Issuer+"/account/logout", url.Values{"csrf": {"forged"}}); !p.Has("Signed in") {
		t.Fatalf("sign-out with a forged token:\n%s", p.Body)
	}
	p = c.Submit(p, p.Form(t, "csrf"), nil)
	if p.Form(t, "email").Action == "" || p.URL.Path != "/realms/test/protocol/openid-connect/auth" {
		t.Fatalf("after sign-out, expected the login page again, got %s:\n%s", p.URL, p.Body)
	}
}
