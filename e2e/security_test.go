package e2e

import (
	"database/sql"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"latchkey/authenticators/magiclink"
	"latchkey/e2e/testkit"
	"latchkey/flows"
	"latchkey/server/httplimit"
)

// Regression tests for the outside attack run of 2026-11 (issue 11). Each
// drives the server over HTTP the way the attacker did.

// csrfOf returns a CSRF token valid for c's browser cookie: any page with a
// form carries it, so an attacker has one for his own browser.
func csrfOf(t *testing.T, s *setup, c *testkit.Client) string {
	t.Helper()
	p := c.Get(s.App.LoginURL(nil))
	return p.Form(t, "csrf").Fields.Get("csrf")
}

func linkToken(t *testing.T, link string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("token")
}

func (s *setup) resendURL() string { return s.LK.URL + "/realms/test/login-actions/magic-link/resend" }

// mailCount counts the mails queued for an address: what will be sent,
// decided before the page that queued them answered. A mail leaves the
// outbox once the SMTP server has it, so the outbox is read first, the
// server second, and each mail counted once by its outbox id (the
// Message-ID outbox-{id}@...).
func (s *setup) mailCount(t *testing.T, to string) int {
	t.Helper()
	mails, err := s.LK.Server.Store.RecentMail(t.Context(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, m := range mails {
		if m.To == to {
			ids[strconv.FormatUint(m.ID, 10)] = true
		}
	}
	for _, m := range s.SMTP.To(to) {
		id, ok := strings.CutPrefix(strings.Trim(m.MessageID, "<>"), "outbox-")
		if id, _, found := strings.Cut(id, "@"); ok && found {
			ids[id] = true
		} else {
			t.Fatalf("mail to %s without an outbox Message-ID: %q", to, m.MessageID)
		}
	}
	return len(ids)
}

// A used link, found in a scanner's or proxy's log, must not lead a browser
// without cookies to the victim's pending step (here: the profile form of a
// new account) and from there to the victim's session and code.
func TestUsedLinkCannotResumeTheVictimsLogin(t *testing.T) {
	s := start(t, magic(map[string]string{"forceCreateUser": "true", "updateProfileOnCreate": "true"}))
	victim := testkit.NewClient(t)
	profile, link := s.signUpToProfile(t, victim, "victim@example.com", "victim@example.com")

	attacker := testkit.NewClient(t)
	if p := attacker.Get(link); p.Status != http.StatusGone || !p.Has("already used") {
		t.Fatalf("used link: status %d\n%s", p.Status, p.Body)
	}
	p := attacker.Post(s.resendURL(), url.Values{"csrf": {csrfOf(t, s, attacker)}, "token": {linkToken(t, link)}})
	for _, f := range p.Forms {
		if _, ok := f.Fields["firstName"]; ok {
			p = attacker.Submit(p, f, map[string]string{"firstName": "Mallory", "lastName": "M"})
			t.Fatalf("the attacker reached the victim's profile form; submitting it gave %d logins:\n%s", len(s.App.Results()), p.Body)
		}
		if _, ok := f.Fields["execution"]; ok {
			t.Fatalf("the attacker was shown a step of the victim's login:\n%s", p.Body)
		}
	}
	if p.Status != http.StatusGone || !p.Has("already used") {
		t.Fatalf("resend from a used link: status %d\n%s", p.Status, p.Body)
	}
	// The victim's own login goes on.
	p = victim.Submit(profile, profile.Form(t, "firstName"), map[string]string{"firstName": "Vic", "lastName": "Tim"})
	if res := s.App.Last(); res.Err != "" || res.Claims["email"] != "victim@example.com" {
		t.Fatalf("victim's login: %+v\n%s", res, p.Body)
	}
	if n := len(s.App.Results()); n != 1 {
		t.Fatalf("%d logins, want the victim's only", n)
	}
}

// Resending from a dead link of an account disabled since answers as for
// any account (no enumeration) but mails nothing and keeps no new link:
// the rehearsal that makes it take as long is undone, though it runs
// inside the transaction of the login it resumes, which commits.
func TestResendForADisabledAccountMailsNothing(t *testing.T) {
	s := start(t, magic(map[string]string{"resendCooldown": "1ms"}))
	ctx := t.Context()
	s.requestLink(t, testkit.NewClient(t), "alice@example.com")
	first := s.SMTP.WaitFor(t, "alice@example.com", 1, 10*time.Second)[0].Link()
	st := s.LK.Server.Store
	l, err := st.MagicLinkByHash(ctx, magiclink.HashToken(linkToken(t, first)))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := st.RevokeMagicLink(ctx, l.ID, magiclink.RevokedByAdmin, time.Now()); err != nil || !ok {
		t.Fatalf("revoke the link: %v %v", ok, err)
	}
	u, err := st.UserByEmail(ctx, "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	u.Disabled = true
	if err := st.UpdateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond) // past the resend cooldown

	other := testkit.NewClient(t)
	p := other.Post(s.resendURL(), url.Values{"csrf": {csrfOf(t, s, other)}, "token": {linkToken(t, first)}})
	if p.Status != http.StatusOK || !p.Has("We sent a new sign-in link to alice@example.com") {
		t.Fatalf("resend for a disabled account: status %d\n%s", p.Status, p.Body)
	}
	if n := s.mailCount(t, "alice@example.com"); n != 1 {
		t.Errorf("%d mails to the disabled account, want the first only", n)
	}
	if last, err := st.MagicLinkForLogin(ctx, l.AuthSessionID); err != nil || last.ID != l.ID {
		t.Errorf("the login's newest link: %+v %v, want the revoked first one", last, err)
	}
}

// Resending from a replaced (or expired) link mails a fresh link to the
// stored address and says so; a browser that does not own the login sees
// none of its pages and gets nothing to continue it with.
func TestResendFromDeadLinkInAnotherBrowserOnlyMails(t *testing.T) {
	s := start(t, magic(map[string]string{"resendCooldown": "1s"}))
	owner := testkit.NewClient(t)
	p := s.requestLink(t, owner, "alice@example.com")
	first := s.SMTP.WaitFor(t, "alice@example.com", 1, 10*time.Second)[0].Link()
	time.Sleep(1100 * time.Millisecond) // past the resend cooldown
	owner.Submit(p, p.FormWith(t, "action", "resend"), nil)
	s.SMTP.WaitFor(t, "alice@example.com", 2, 10*time.Second)

	other := testkit.NewClient(t)
	if p := other.Get(first); p.Status != http.StatusGone || !p.Has("replaced by a newer one") {
		t.Fatalf("replaced link: status %d\n%s", p.Status, p.Body)
	}
	time.Sleep(1100 * time.Millisecond) // past the resend cooldown again
	p = other.Post(s.resendURL(), url.Values{"csrf": {csrfOf(t, s, other)}, "token": {linkToken(t, first)}})
	if p.Status != http.StatusOK || !p.Has("Check your email") || !p.Has("We sent a new sign-in link to alice@example.com") {
		t.Fatalf("resend from another browser: status %d\n%s", p.Status, p.Body)
	}
	if len(p.Forms) != 0 {
		t.Fatalf("the other browser was shown a form of the login:\n%s", p.Body)
	}
	third := s.SMTP.WaitFor(t, "alice@example.com", 3, 10*time.Second)[2].Link()
	// The owner's browser still holds the login, and the newest link finishes it.
	confirm(t, owner, third)
	if res := s.App.Last(); res.Err != "" || res.Claims["email"] != "alice@example.com" {
		t.Fatalf("owner's login: %+v", res)
	}
}

// The fields a users[] entry writes are applied at every start; declaring
// an account disabled ends its SSO session and revokes its tokens at once.
// Fields the entry leaves out keep what was changed later.
func TestRealmYAMLUsersAreAppliedAtEveryStart(t *testing.T) {
	s := start(t, opts{dsn: t.TempDir() + "/lk.db"})
	c := testkit.NewClient(t)
	s.passwordLogin(t, c, nil, "alice@example.com", alicePassword)
	tok := s.App.Last().Token
	if tok == nil {
		t.Fatalf("login: %+v", s.App.Last())
	}
	ctx := t.Context()
	st := s.LK.Server.Store
	alice, _ := st.UserByEmail(ctx, "alice@example.com")
	alice.LastName = "Changed" // declared in realm.yaml: reset at start
	newbie, _ := st.UserByEmail(ctx, "newbie@example.com")
	newbie.FirstName = "Newt" // not declared: kept
	for _, u := range []*flows.User{alice, newbie} {
		if err := st.UpdateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}

	s.LK.EditConfig("    emailVerified: true\n", "    emailVerified: true\n    disabled: true\n")
	s.LK.Restart()
	st = s.LK.Server.Store
	alice, _ = st.UserByEmail(ctx, "alice@example.com")
	newbie, _ = st.UserByEmail(ctx, "newbie@example.com")
	if !alice.Disabled || alice.LastName != "Example" || newbie.FirstName != "Newt" {
		t.Fatalf("after restart: alice disabled=%v lastName=%q, newbie firstName=%q", alice.Disabled, alice.LastName, newbie.FirstName)
	}
	if _, err := s.App.Provider().UserInfo(ctx, oauth2.StaticTokenSource(tok)); err == nil {
		t.Fatal("the disabled user's access token still works at userinfo")
	}
	if _, err := refresh(t, s, tok.RefreshToken); err == nil {
		t.Fatal("the disabled user's refresh token still works")
	}
	// The SSO cookie no longer signs her in: the login form is shown.
	if p := c.Get(s.App.LoginURL(nil)); len(s.App.Results()) != 1 || !p.Has("password") {
		t.Fatalf("SSO of a disabled user: %d logins\n%s", len(s.App.Results()), p.Body)
	}
}

// zeros is an endless body that costs the sender nothing to produce.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// Four concurrent 40 MB multipart POSTs once took the server from 42 MB to
// 440 MB: forms were parsed before the CSRF check. Every body is now capped
// (a clear 413) before any handler reads it, and memory stays flat.
func TestLargeBodiesAreRefusedWithoutBuffering(t *testing.T) {
	s := start(t, magic(nil))
	target := s.LK.URL + "/realms/test/login-actions/authenticate?session=x"
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var wg sync.WaitGroup
	statuses := make([]int, 4)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			head := "--b\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n"
			body := io.MultiReader(strings.NewReader(head), io.LimitReader(zeros{}, 40<<20))
			req, _ := http.NewRequest(http.MethodPost, target, body)
			req.Header.Set("Content-Type", "multipart/form-data; boundary=b")
			if i%2 == 0 {
				req.ContentLength = int64(len(head)) + 40<<20 // announced: refused before reading
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	for i, st := range statuses {
		if st != http.StatusRequestEntityTooLarge {
			t.Errorf("request %d: status %d, want 413", i, st)
		}
	}
	// The whole process (server and this test's clients) allocated less than
	// one of the bodies: nothing buffered them.
	if grown := after.TotalAlloc - before.TotalAlloc; grown > 16<<20 {
		t.Errorf("4 x 40 MB bodies made the process allocate %d MB", grown>>20)
	}

	// Headers are bounded too.
	req, _ := http.NewRequest(http.MethodGet, s.LK.URL+"/realms/test/.well-known/openid-configuration", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 100<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("100 KB header: status %d, want 431", resp.StatusCode)
	}
	// A management API body over the limit gets a JSON 413, not a truncated parse.
	big := `{"email":"alice@example.com","clientId":"app","redirectUri":"` + strings.Repeat("a", 70<<10) + `"}`
	req, _ = http.NewRequest(http.MethodPost, s.LK.URL+"/realms/test/magic-links", strings.NewReader(big))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer test-api-key-0123456789-0123456789-abcdef")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("large JSON body: status %d, %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// The HTTP server bounds slow clients (slowloris) and idle connections.
func TestHTTPServerHasTimeouts(t *testing.T) {
	srv := httplimit.Server(http.NotFoundHandler(), slog.Default())
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 || srv.MaxHeaderBytes <= 0 || srv.MaxHeaderBytes > 64<<10 {
		t.Fatalf("limits: %+v", srv)
	}
}

// Every GET /auth that shows a page writes a login attempt: one address may
// start only so many per minute, and the refused ones write nothing.
func TestLoginAttemptsPerAddressAreBounded(t *testing.T) {
	dsn := t.TempDir() + "/lk.db"
	doc := strings.Replace(realm, "branding:", "sessions:\n  authSessionsPerMinutePerIP: 5\nbranding:", 1)
	s := startDoc(t, doc, opts{dsn: dsn})
	for i := 1; i <= 8; i++ {
		p := testkit.NewClient(t).Get(s.App.LoginURL(nil))
		limited := p.Status == http.StatusTooManyRequests
		if limited != (i > 5) {
			t.Fatalf("attempt %d: status %d\n%s", i, p.Status, p.Body)
		}
		if limited && (p.Header.Get("Retry-After") == "" || !p.Has("Too many sign-ins")) {
			t.Fatalf("attempt %d: no Retry-After or message\n%s", i, p.Body)
		}
	}
	db := openSQLite(t, dsn)
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM auth_sessions`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 5 {
		t.Fatalf("%d login attempts stored, want 5", n)
	}
}

func openSQLite(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", dsn+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// A cross-site GET with the attacker's own id_token_hint must not end the
// victim's session: a hint naming another user or another SSO session asks.
func TestLogoutHintForAnotherSessionAsks(t *testing.T) {
	s := start(t, opts{})
	attacker := testkit.NewClient(t)
	s.passwordLogin(t, attacker, nil, "alice@example.com", alicePassword)
	otherSession, _ := s.App.Last().Token.Extra("id_token").(string) // alice, but another SSO session
	p := s.passwordLogin(t, attacker, url.Values{"prompt": {"login"}}, "newbie@example.com", alicePassword)
	attacker.Submit(p, p.Form(t, "firstName"), map[string]string{"firstName": "Mal", "lastName": "Lory"})
	attackersOwn, _ := s.App.Last().Token.Extra("id_token").(string)

	victim := testkit.NewClient(t)
	s.passwordLogin(t, victim, nil, "alice@example.com", alicePassword)
	for name, hint := range map[string]string{"another user's hint": attackersOwn, "another session's hint": otherSession} {
		q := url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {s.App.RedirectURI() + "/bye"}}
		p := victim.Get(s.LK.Issuer + "/protocol/openid-connect/logout?" + q.Encode())
		if p.Status != http.StatusOK || !p.Has("Do you want to sign out") {
			t.Fatalf("%s: status %d at %s\n%s", name, p.Status, p.URL, p.Body)
		}
		n := len(s.App.Results())
		victim.Get(s.App.LoginURL(url.Values{"prompt": {"none"}}))
		if res := s.App.Last(); len(s.App.Results()) != n+1 || res.Err != "" {
			t.Fatalf("%s ended the victim's session: %+v", name, res)
		}
	}
}

func postForm(t *testing.T, u string, vals url.Values, header map[string]string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(vals.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return doJSON(t, req)
}

// doJSON sends req and decodes the JSON answer.
func doJSON(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = jsonDecode(resp.Body, &out)
	return resp.StatusCode, out
}

// Only authenticated confidential clients may introspect (RFC 7662 §2.1):
// a public client's access token, or its bare client_id, is no credential.
func TestIntrospectionNeedsAConfidentialClient(t *testing.T) {
	s := start(t, opts{})
	s.passwordLogin(t, testkit.NewClient(t), nil, "alice@example.com", alicePassword)
	victims := s.App.Last().Token
	s.passwordLogin(t, testkit.NewClient(t), url.Values{"prompt": {"login"}}, "alice@example.com", alicePassword)
	attackers := s.App.Last().Token // any public client's token
	endpoint := s.LK.Issuer + "/protocol/openid-connect/token/introspect"
	for name, tc := range map[string]struct {
		vals   url.Values
		header map[string]string
	}{
		"public client's bearer token": {url.Values{"token": {victims.AccessToken}}, map[string]string{"Authorization": "Bearer " + attackers.AccessToken}},
		"public client_id only":        {url.Values{"token": {victims.AccessToken}, "client_id": {"app"}}, nil},
		"wrong secret":                 {url.Values{"token": {victims.AccessToken}, "client_id": {"confidential"}, "client_secret": {"wrong"}}, nil},
	} {
		if status, out := postForm(t, endpoint, tc.vals, tc.header); status != http.StatusUnauthorized || out["error"] != "invalid_client" || out["sub"] != nil {
			t.Errorf("%s: status %d, %v", name, status, out)
		}
	}
	// A confidential client, by client_secret_post too.
	status, out := postForm(t, endpoint, url.Values{"token": {victims.AccessToken}, "client_id": {"confidential"}, "client_secret": {"s3cret-for-the-confidential-client"}}, nil)
	if status != http.StatusOK || out["active"] != true {
		t.Fatalf("confidential client: status %d, %v", status, out)
	}
}

// Userinfo takes access tokens only, from the header or a form body.
func TestUserinfoTakesAccessTokensOnly(t *testing.T) {
	s := start(t, opts{})
	s.passwordLogin(t, testkit.NewClient(t), nil, "alice@example.com", alicePassword)
	tok := s.App.Last().Token
	endpoint := s.LK.Issuer + "/protocol/openid-connect/userinfo"
	get := func(u string, header map[string]string) int {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := get(endpoint, map[string]string{"Authorization": "Bearer " + tok.RefreshToken}); st != http.StatusUnauthorized {
		t.Errorf("refresh token as bearer: status %d", st)
	}
	if st := get(endpoint+"?access_token="+url.QueryEscape(tok.AccessToken), nil); st != http.StatusUnauthorized {
		t.Errorf("access token in the query string: status %d", st)
	}
	if st, _ := postForm(t, endpoint, url.Values{"access_token": {tok.RefreshToken}}, nil); st != http.StatusUnauthorized {
		t.Errorf("refresh token in the body: status %d", st)
	}
	if st, out := postForm(t, endpoint, url.Values{"access_token": {tok.AccessToken}}, nil); st != http.StatusOK || out["email"] != "alice@example.com" {
		t.Errorf("access token in the body: status %d %v", st, out)
	}
	if st := get(endpoint, map[string]string{"Authorization": "Bearer " + tok.AccessToken}); st != http.StatusOK {
		t.Errorf("access token in the header: status %d", st)
	}
}

// authorizeRedirect sends an authorization request with c's cookies and
// returns where Latchkey redirects the browser (without following it).
func (s *setup) authorizeRedirect(t *testing.T, c *testkit.Client, extra url.Values) (*http.Response, *url.URL) {
	t.Helper()
	q := url.Values{"client_id": {"app"}, "redirect_uri": {s.App.RedirectURI()}, "response_type": {"code"}, "scope": {"openid"},
		"state": {"state-0123456789"}, "nonce": {"nonce-0123456789"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"}}
	for k, v := range extra {
		if v == nil {
			delete(q, k)
			continue
		}
		q[k] = v
	}
	hc := &http.Client{Jar: c.HTTP.Jar, CheckRedirect: noRedirect}
	resp, err := hc.Get(s.LK.Issuer + "/protocol/openid-connect/auth?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	return resp, loc
}

// Every authorization response names its issuer (RFC 9207), success and
// error alike, and discovery says so.
func TestAuthorizationResponsesCarryIss(t *testing.T) {
	s := start(t, opts{})
	c := testkit.NewClient(t)
	_, loc := s.authorizeRedirect(t, c, url.Values{"prompt": {"none"}})
	if loc.Query().Get("error") != "login_required" || loc.Query().Get("iss") != s.LK.Issuer {
		t.Fatalf("error response: %s", loc)
	}
	p := c.Get(s.LK.Issuer + "/protocol/openid-connect/auth?" + url.Values{"client_id": {"app"}, "redirect_uri": {s.App.RedirectURI()},
		"response_type": {"code"}, "scope": {"openid"}, "prompt": {"none"}, "response_mode": {"form_post"}, "state": {"state-0123456789"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"}}.Encode())
	if f := p.Form(t, "error"); f.Fields.Get("iss") != s.LK.Issuer || f.Fields.Get("error") == "" {
		t.Fatalf("form_post error response: %v\n%s", f.Fields, p.Body)
	}
	s.passwordLogin(t, c, nil, "alice@example.com", alicePassword)
	_, loc = s.authorizeRedirect(t, c, url.Values{"prompt": {"none"}})
	if loc.Query().Get("code") == "" || loc.Query().Get("iss") != s.LK.Issuer || loc.Query().Get("state") != "state-0123456789" {
		t.Fatalf("success response: %s", loc)
	}
	var disc map[string]any
	getJSON(t, s.LK.Issuer+"/.well-known/openid-configuration", &disc)
	if disc["authorization_response_iss_parameter_supported"] != true {
		t.Fatal("discovery does not announce iss in authorization responses")
	}
}

// Look-alike addresses are refused with a clear message, and create no
// account and send no mail, even with forceCreateUser.
func TestLookalikeAddressesAreRefused(t *testing.T) {
	s := start(t, magic(map[string]string{"forceCreateUser": "true"}))
	for _, addr := range []string{
		"alice@ex\u0430mple.com", "ali\u200bce@example.com", "alice@example.com\u202e", "\uff41lice@example.com", "alice@[127.0.0.1]",
	} {
		p := s.requestLink(t, testkit.NewClient(t), addr)
		if !p.Has("type it again in one alphabet") || p.Has("Check your email") {
			t.Errorf("%q: not refused:\n%s", addr, p.Body)
		}
	}
	n, err := s.LK.Server.Store.CountUsers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 { // the two of realm.yaml
		t.Errorf("%d users, want the 2 of realm.yaml", n)
	}
	if mails, _ := s.LK.Server.Store.RecentMail(t.Context(), 10); len(mails) != 0 || len(s.SMTP.Messages()) != 0 {
		t.Errorf("%d mails queued, %d delivered for look-alike addresses", len(mails), len(s.SMTP.Messages()))
	}
}

// Repeated parameters are invalid_request (RFC 6749 3.1), never "first
// value wins": by redirect when client and redirect URI are single, on an
// error page otherwise, and as JSON at the token endpoint.
func TestRepeatedParametersAreRefused(t *testing.T) {
	s := start(t, opts{})
	c := testkit.NewClient(t)
	resp, loc := s.authorizeRedirect(t, c, url.Values{"state": {"state-0123456789", "state-other-0123"}})
	if loc.Query().Get("error") != "invalid_request" || !strings.Contains(loc.Query().Get("error_description"), "state") {
		t.Fatalf("repeated state: %d %s", resp.StatusCode, loc)
	}
	resp, loc = s.authorizeRedirect(t, c, url.Values{"redirect_uri": {s.App.RedirectURI(), s.App.RedirectURI()}})
	if resp.StatusCode != http.StatusBadRequest || loc.String() != "" {
		t.Fatalf("repeated redirect_uri: status %d, Location %q", resp.StatusCode, loc)
	}
	status, out := postForm(t, s.LK.Issuer+"/protocol/openid-connect/token",
		url.Values{"grant_type": {"authorization_code"}, "code": {"a", "b"}, "client_id": {"app"}}, nil)
	if status != http.StatusBadRequest || out["error"] != "invalid_request" {
		t.Fatalf("repeated code at the token endpoint: %d %v", status, out)
	}
}

// prompt is a space-separated list: "login consent" forces a login, and
// "none" with anything else is an error.
func TestPromptIsAList(t *testing.T) {
	s := start(t, opts{})
	c := testkit.NewClient(t)
	s.passwordLogin(t, c, nil, "alice@example.com", alicePassword)
	p := c.Get(s.App.LoginURL(url.Values{"prompt": {"login consent"}}))
	if _, ok := p.Form(t, "password").Fields["password"]; !ok || len(s.App.Results()) != 1 {
		t.Fatalf("prompt=login consent reused the SSO session:\n%s", p.Body)
	}
	_, loc := s.authorizeRedirect(t, c, url.Values{"prompt": {"none login"}})
	if loc.Query().Get("error") != "invalid_request" {
		t.Fatalf("prompt=none login: %s", loc)
	}
}

// "Use another email" and then the same address again is a resend: it waits
// for the cooldown like the resend button.
func TestAnotherEmailThenSameAddressKeepsTheCooldown(t *testing.T) {
	s := start(t, magic(nil))
	c := testkit.NewClient(t)
	p := s.requestLink(t, c, "alice@example.com")
	s.SMTP.WaitFor(t, "alice@example.com", 1, 10*time.Second)
	p = c.Submit(p, p.FormWith(t, "action", "another"), nil)
	p = c.Submit(p, p.Form(t, "email"), map[string]string{"email": "alice@example.com"})
	if !p.Has("Check your email") {
		t.Fatalf("after typing the same address again:\n%s", p.Body)
	}
	if n := s.mailCount(t, "alice@example.com"); n != 1 {
		t.Fatalf("%d mails queued, want 1 (the cooldown applies)", n)
	}
}

// Someone elsewhere cannot use up a user's links: the per-address limit
// counts per client address, with a higher cap for all addresses together.
func TestSendLimitsDoNotLockOutFromElsewhere(t *testing.T) {
	doc := strings.Replace(realm, "  publicURL: {{PUBLIC}}\n", "  publicURL: {{PUBLIC}}\n  trustedProxies: [127.0.0.1]\n", 1)
	s := startDoc(t, doc, magic(map[string]string{"maxPerEmail": "3", "maxPerEmailAllIPs": "5"}))
	for i := 1; i <= 4; i++ {
		p := s.requestLink(t, testkit.NewClientFrom(t, "203.0.113.9"), "alice@example.com")
		if limited := p.Has("too many links"); limited != (i == 4) {
			t.Fatalf("attacker's request %d: limited=%v", i, limited)
		}
	}
	if p := s.requestLink(t, testkit.NewClientFrom(t, "198.51.100.7"), "alice@example.com"); p.Has("too many links") {
		t.Fatalf("the user, elsewhere, is locked out:\n%s", p.Body)
	}
	s.SMTP.WaitFor(t, "alice@example.com", 4, 10*time.Second)
	// The cap over all addresses still bounds a distributed attacker.
	s.requestLink(t, testkit.NewClientFrom(t, "192.0.2.1"), "alice@example.com")
	if p := s.requestLink(t, testkit.NewClientFrom(t, "192.0.2.2"), "alice@example.com"); !p.Has("too many links") {
		t.Fatalf("the all-addresses cap did not hold:\n%s", p.Body)
	}
	if n := s.mailCount(t, "alice@example.com"); n != 5 {
		t.Fatalf("%d mails queued, want 5", n)
	}
	// The rate-limit log lines name the limit, never any part of the address.
	for _, line := range strings.Split(s.LK.Logs(), "\n") {
		if strings.Contains(line, "event=link_rate_limited") && (strings.Contains(line, "ml:") || strings.Contains(line, "ali")) {
			t.Fatalf("a log line carries the address: %s", line)
		}
	}
}

// A management API body is one JSON object; a huge ttl is a 400, not a wrap.
func TestManagementAPIBodiesAreStrict(t *testing.T) {
	s := start(t, magic(nil))
	post := func(body string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, s.LK.URL+"/realms/test/magic-links", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer test-api-key-0123456789-0123456789-abcdef")
		return doJSON(t, req)
	}
	good := `{"email":"alice@example.com","clientId":"app","redirectUri":"` + s.App.RedirectURI() + `"`
	if st, out := post(good + `}{"email":"x@example.com"}`); st != http.StatusBadRequest {
		t.Errorf("trailing data: %d %v", st, out)
	}
	if st, out := post(good + `,"ttl":"106751991167301d"}`); st != http.StatusBadRequest || out["field"] != "ttl" {
		t.Errorf("huge ttl: %d %v", st, out)
	}
	if st, out := post(good + `}`); st != http.StatusCreated {
		t.Errorf("valid request: %d %v", st, out)
	}
}

// One wrong code_verifier (from whoever intercepted the code) must not
// break the legitimate exchange: fosite deletes the PKCE record before it
// checks the verifier, so the store keeps it until the code is redeemed.
func TestWrongVerifierDoesNotBreakTheRealExchange(t *testing.T) {
	s := start(t, opts{})
	c := testkit.NewClient(t)
	s.passwordLogin(t, c, nil, "alice@example.com", alicePassword)
	verifier := oauth2.GenerateVerifier()
	_, loc := s.authorizeRedirect(t, c, url.Values{"prompt": {"none"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}})
	code := loc.Query().Get("code")
	if code == "" {
		t.Fatalf("no code: %s", loc)
	}
	exchange := func(v string) (int, map[string]any) {
		return postForm(t, s.LK.Issuer+"/protocol/openid-connect/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
			"client_id": {"app"}, "redirect_uri": {s.App.RedirectURI()}, "code_verifier": {v}}, nil)
	}
	if st, out := exchange(oauth2.GenerateVerifier()); st != http.StatusBadRequest || out["error"] != "invalid_grant" {
		t.Fatalf("wrong verifier: %d %v", st, out)
	}
	if st, out := exchange(verifier); st != http.StatusOK || out["access_token"] == nil {
		t.Fatalf("the right verifier after a wrong one: %d %v", st, out)
	}
	if st, _ := exchange(verifier); st != http.StatusBadRequest {
		t.Fatalf("the code was accepted twice: %d", st)
	}
}

// SSO sessions end after sessions.ssoIdleTimeout without use, and each
// login they answer renews them.
func TestSSOSessionsHaveAnIdleTimeout(t *testing.T) {
	dsn := t.TempDir() + "/lk.db"
	s := start(t, opts{dsn: dsn})
	c := testkit.NewClient(t)
	s.passwordLogin(t, c, nil, "alice@example.com", alicePassword)
	db := openSQLite(t, dsn)
	idle := func() time.Time {
		var at time.Time
		if err := db.QueryRow(`SELECT idle_expires_at FROM sso_sessions`).Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at
	}
	first := idle()
	if d := time.Until(first); d < 29*time.Minute || d > 31*time.Minute {
		t.Fatalf("idle deadline in %s, want the default 30m", d)
	}
	if _, err := db.Exec(`UPDATE sso_sessions SET idle_expires_at = ?`, time.Now().UTC().Add(-time.Minute).Add(30*time.Minute-time.Second)); err != nil {
		t.Fatal(err)
	}
	before := idle()
	c.Get(s.App.LoginURL(url.Values{"prompt": {"none"}}))
	if res := s.App.Last(); res.Err != "" || !idle().After(before) {
		t.Fatalf("SSO reuse: %+v; idle deadline %s -> %s", res, before, idle())
	}
	// Idle past the deadline: the session no longer answers.
	if _, err := db.Exec(`UPDATE sso_sessions SET idle_expires_at = ?`, time.Now().UTC().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	c.Get(s.App.LoginURL(url.Values{"prompt": {"none"}}))
	if res := s.App.Last(); res.Err != "login_required" {
		t.Fatalf("idle SSO session still answered: %+v", res)
	}
}

// Send limits survive a restart of a single SQLite node (checklist item 9).
func TestSendLimitsSurviveARestart(t *testing.T) {
	o := magic(map[string]string{"maxPerEmail": "3"})
	o.dsn = t.TempDir() + "/lk.db"
	s := start(t, o)
	for range 3 {
		if p := s.requestLink(t, testkit.NewClient(t), "alice@example.com"); p.Has("too many links") {
			t.Fatal("limited too early")
		}
	}
	s.LK.Restart()
	if p := s.requestLink(t, testkit.NewClient(t), "alice@example.com"); !p.Has("too many links") {
		t.Fatalf("the limit was reset by the restart:\n%s", p.Body)
	}
	// What was saved names no address or IP: each counter is a digest.
	saved, err := s.LK.Server.Store.LiveRateCounters(t.Context(), time.Now())
	if err != nil || len(saved) == 0 {
		t.Fatalf("saved counters: %v, %v", saved, err)
	}
	for _, c := range saved {
		if strings.Contains(c.Key, "alice") || strings.Contains(c.Key, "127.0.0.1") || !strings.HasPrefix(c.Key, "#") {
			t.Errorf("a saved counter is named %q", c.Key)
		}
	}
}

// max_age is enforced by the login flow: an SSO session older than max_age
// does not answer; the user signs in again and auth_time is fresh.
func TestMaxAgeForcesAFreshLogin(t *testing.T) {
	s := start(t, opts{})
	c := testkit.NewClient(t)
	s.passwordLogin(t, c, nil, "alice@example.com", alicePassword)
	first, _ := s.App.Last().Claims["auth_time"].(float64)
	time.Sleep(1100 * time.Millisecond) // let the SSO session age past max_age=1 (seconds)
	p := c.Get(s.App.LoginURL(url.Values{"max_age": {"1"}}))
	if _, ok := p.Form(t, "password").Fields["password"]; !ok || len(s.App.Results()) != 1 {
		t.Fatalf("max_age=1 reused a session older than a second:\n%s", p.Body)
	}
	c.Submit(p, p.Form(t, "password"), map[string]string{"email": "alice@example.com", "password": alicePassword})
	res := s.App.Last()
	if at, _ := res.Claims["auth_time"].(float64); res.Err != "" || at <= first {
		t.Fatalf("after max_age: %+v (auth_time %v, first %v)", res.Err, res.Claims["auth_time"], first)
	}
}
