package e2e

import (
	"database/sql"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3" // direct reads of the SQLite file

	"latchkey/e2e/testkit"
)

func magic(o map[string]string) opts {
	return opts{binding: "browser-magic-link", mlOptions: o}
}

// requestLink starts a login at the app and asks for a link for email.
func (s *setup) requestLink(t testing.TB, c *testkit.Client, email string) *testkit.Page {
	t.Helper()
	p := c.Get(s.App.LoginURL(nil))
	f := p.Form(t, "email")
	if _, ok := f.Fields["password"]; ok {
		t.Fatal("the magic-link page asks for a password")
	}
	return c.Submit(p, f, map[string]string{"email": email})
}

// startOnFile starts the server on a SQLite file the test reads and
// changes beside it.
func startOnFile(t *testing.T, o opts) (*setup, *sql.DB) {
	t.Helper()
	o.dsn = filepath.Join(t.TempDir(), "lk.db")
	return start(t, o), openSQLite(t, o.dsn)
}

// confirm opens a link and presses "Continue".
func confirm(t *testing.T, c *testkit.Client, link string) *testkit.Page {
	t.Helper()
	p := c.Get(link)
	if p.Status != http.StatusOK {
		t.Fatalf("link page status %d:\n%s", p.Status, p.Body)
	}
	// "Continue as ..." or, in a browser that did not start the login,
	// "Sign in on this device": the form that posts to the link itself.
	return c.Submit(p, p.FormTo(t, "/login-actions/magic-link"), nil)
}

// The authorization request answers with the login page itself, as
// Keycloak's does: no redirect (one round trip less for every login). The
// page's form posts to, and a reload may use, the login's own URL.
func TestTheAuthorizationRequestAnswersWithTheLoginPage(t *testing.T) {
	s := start(t, magic(nil))
	c := testkit.NewClient(t)
	c.HTTP.CheckRedirect = func(r *http.Request, _ []*http.Request) error {
		if strings.Contains(r.URL.Path, "/login-actions/") {
			return http.ErrUseLastResponse // the app's redirect is followed, a redirect to the login page is not
		}
		return nil
	}
	p := c.Get(s.App.LoginURL(nil))
	f := p.Form(t, "email")
	if p.Status != http.StatusOK || p.URL.Path != "/realms/test/protocol/openid-connect/auth" ||
		!strings.HasPrefix(f.Action, "/realms/test/login-actions/authenticate?session=") {
		t.Fatalf("authorization request: status %d at %s, form to %q:\n%s", p.Status, p.URL, f.Action, p.Body)
	}
	if h := p.Header; h.Get("Cache-Control") != "no-store" || h.Get("X-Frame-Options") != "DENY" || h.Get("Content-Security-Policy") == "" {
		t.Fatalf("the login page's headers: %v", h)
	}
	own := c.Get(s.LK.URL + f.Action)
	if own.Status != http.StatusOK || own.Form(t, "email").Action != f.Action {
		t.Fatalf("the login's own URL: status %d:\n%s", own.Status, own.Body)
	}
	if sent := c.Submit(p, f, map[string]string{"email": "alice@example.com"}); !sent.Has("Check your email") {
		t.Fatalf("the email posted from the authorization's page:\n%s", sent.Body)
	}
	s.SMTP.WaitFor(t, "alice@example.com", 1, 10*time.Second)
}

func TestMagicLinkLoginThroughSMTP(t *testing.T) {
	s := start(t, magic(nil))
	c := testkit.NewClient(t)
	p := s.requestLink(t, c, "alice@example.com")
	if !p.Has("Check your email") {
		t.Fatalf("after asking for a link:\n%s", p.Body)
	}
	m := s.SMTP.WaitFor(t, "alice@example.com", 1, 10*time.Second)[0]
	if !strings.Contains(m.Subject, "Test Realm") || !strings.Contains(m.Text, "15 minutes") ||
		!strings.Contains(m.Text, "If you did not ask for this") || !strings.Contains(m.HTML, m.Link()) || m.Link() == "" {
		t.Fatalf("mail: subject %q\n%s\n%s", m.Subject, m.Text, m.HTML)
	}
	// Delivered, the mail leaves the outbox (its bodies held the link).
	waitFor(t, "the delivered mail to leave the outbox", 10*time.Second, func() bool {
		mails, err := s.LK.Server.Store.RecentMail(t.Context(), 10)
		if err != nil {
			t.Fatal(err)
		}
		return len(mails) == 0
	})
	p = confirm(t, c, m.Link())
	res := s.App.Last()
	if res.Err != "" || !p.Has("Logged in as alice@example.com") {
		t.Fatalf("result %q, page %s", res.Err, p.Body)
	}
	if res.Claims["email_verified"] != true {
		t.Errorf("email_verified = %v", res.Claims["email_verified"])
	}
	if amr, _ := res.Claims["amr"].([]any); len(amr) != 1 || amr[0] != "email" {
		t.Errorf("amr = %v, want [email]", res.Claims["amr"])
	}
	// The second authorization request is answered by the SSO cookie.
	p = c.Get(s.App.LoginURL(nil))
	if !p.Has("Logged in as alice@example.com") {
		t.Fatalf("SSO did not answer the second request:\n%s", p.Body)
	}
}

func TestMagicLinkScannerFetchDoesNotConsume(t *testing.T) {
	s := start(t, magic(nil))
	c := testkit.NewClient(t)
	s.requestLink(t, c, "alice@example.com")
	link := s.SMTP.WaitFor(t, "alice@example.com", 1, 10*time.Second)[0].Link()
	// A scanner: no cookies, GET and HEAD, several times.
	for range 3 {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			req, _ := http.NewRequest(method, link, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Referrer-Policy") != "no-referrer" {
				t.Fatalf("%s: status %d, Referrer-Policy %q", method, resp.StatusCode, resp.Header.Get("Referrer-Policy"))
			}
		}
	}
	confirm(t, c, link)
	if res := s.App.Last(); res.Err != "" {
		t.Fatalf("link unusable after a scanner fetched it: %s", res.Err)
	}
	if !strings.Contains(s.LK.Logs(), "event=link_opened") || !strings.Contains(s.LK.Logs(), "event=link_confirmed") {
		t.Error("link_opened / link_confirmed events missing from the log")
	}
}

func TestMagicLinkUsedTwiceOrTamperedIsRejected(t *testing.T) {
	s := start(t, magic(nil))
	c := testkit.NewClient(t)
	s.requestLink(t, c, "alice@example.com")
	link := s.SMTP.WaitFor(t, "alice@example.com", 1, 10*time.Second)[0].Link()
	confirm(t, c, link)
	if res := s.App.Last(); res.Err != "" {
		t.Fatal(res.Err)
	}
	p := testkit.NewClient(t).Get(link)
	if p.Status != http.StatusGone || !p.Has("already used") {
		t.Fatalf("reused link: status %d\n%s", p.Status, p.Body)
	}
	u, _ := url.Parse(link)
	tok := u.Query().Get("token")
	u.RawQuery = url.Values{"token": {tok[:len(tok)-2] + "xx"}}.Encode()
	p = testkit.NewClient(t).Get(u.String())
	if p.Status != http.StatusGone || !p.Has("expired or is not valid") {
		t.Fatalf("tampered link: status %d\n%s", p.Status, p.Body)
	}
	if n := len(s.App.Results()); n != 1 {
		t.Fatalf("%d logins, want 1", n)
	}
}

// The confirm POST spends its link in the transaction that ends the login:
// when the login's end cannot be recorded (here a trigger in the real
// database refuses the SSO session once), the link is not spent and the
// same link signs in afterwards.
func TestALinkIsSpentOnlyByALoginThatEnds(t *testing.T) {
	s, db := startOnFile(t, magic(nil))
	c := testkit.NewClient(t)
	s.requestLink(t, c, "alice@example.com")
	link := s.SMTP.WaitFor(t, "alice@example.com", 1, 10*time.Second)[0].Link()
	if _, err := db.Exec(`CREATE TRIGGER refuse_sso BEFORE INSERT ON sso_sessions BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`); err != nil {
		t.Fatal(err)
	}
	if p := confirm(t, c, link); p.Status != http.StatusInternalServerError {
		t.Fatalf("login whose end fails: status %d\n%s", p.Status, p.Body)
	}
	var used sql.NullTime
	if err := db.QueryRow(`SELECT used_at FROM magic_links`).Scan(&used); err != nil || used.Valid {
		t.Fatalf("after the failed end: used_at %v, err %v; want the link unspent", used, err)
	}
	if _, err := db.Exec(`DROP TRIGGER refuse_sso`); err != nil {
		t.Fatal(err)
	}
	p := confirm(t, c, link)
	if res := s.App.Last(); res.Err != "" || res.Claims["email"] != "alice@example.com" {
		t.Fatalf("the same link after the failure: %+v\n%s", res, p.Body)
	}
}

// The email POST's link and mail are kept only with the login they are
// for: when its session cannot be saved, no link is left and no mail is
// queued (so none is sent), and the same form then sends exactly one.
func TestALinkIsSentOnlyForALoginThatIsSaved(t *testing.T) {
	s, db := startOnFile(t, magic(nil))
	c := testkit.NewClient(t)
	page := c.Get(s.App.LoginURL(nil))
	form := page.Form(t, "email")
	if _, err := db.Exec(`CREATE TRIGGER refuse_save BEFORE UPDATE ON auth_sessions BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`); err != nil {
		t.Fatal(err)
	}
	if p := c.Submit(page, form, map[string]string{"email": "alice@example.com"}); p.Status != http.StatusInternalServerError {
		t.Fatalf("email POST whose save fails: status %d\n%s", p.Status, p.Body)
	}
	var links, mails int
	if err := db.QueryRow(`SELECT (SELECT count(*) FROM magic_links), (SELECT count(*) FROM outbox_mails)`).Scan(&links, &mails); err != nil || links != 0 || mails != 0 {
		t.Fatalf("after the failed save: %d links, %d mails queued (err %v); want none", links, mails, err)
	}
	if _, err := db.Exec(`DROP TRIGGER refuse_save`); err != nil {
		t.Fatal(err)
	}
	if p := c.Submit(page, form, map[string]string{"email": "alice@example.com"}); !p.Has("Check your email") {
		t.Fatalf("the same form after the failure:\n%s", p.Body)
	}
	if got := s.SMTP.WaitFor(t, "alice@example.com", 1, 10*time.Second); len(got) != 1 {
		t.Fatalf("%d mails, want 1", len(got))
	}
}

func TestMagicLinkExpiredOffersANewLink(t *testing.T) {
	s, db := startOnFile(t, magic(map[string]string{"resendCooldown": "1s"}))
	c := testkit.NewClient(t)
	s.requestLink(t, c, "alice@example.com")
	link := s.SMTP.WaitFor(t, "alice@example.com", 1, 10*time.Second)[0].Link()
	time.Sleep(1100 * time.Millisecond) // past the resend cooldown
	if _, err := db.Exec(`UPDATE magic_links SET expires_at = ?`, time.Now().UTC().Add(-20*time.Minute)); err != nil {
		t.Fatal(err)
	}
	p := c.Get(link)
	if p.Status != http.StatusGone || !p.Has("This link expired 20 minutes ago") {
		t.Fatalf("expired link: status %d\n%s", p.Status, p.Body)
	}
	p = c.Submit(p, p.Form(t, "token"), nil) // "Email me a new link"
	if !p.Has("Check your email") {
		t.Fatalf("after asking for a new link:\n%s", p.Body)
	}
	fresh := s.SMTP.WaitFor(t, "alice@example.com", 2, 10*time.Second)[1].Link()
	confirm(t, c, fresh)
	if res := s.App.Last(); res.Err != "" {
		t.Fatalf("fresh link: %s", res.Err)
	}
}

func TestMagicLinkConcurrentConfirmsLogInOnce(t *testing.T) {
	s := start(t, magic(nil))
	c := testkit.NewClient(t)
	s.requestLink(t, c, "alice@example.com")
	link := s.SMTP.WaitFor(t, "alice@example.com", 1, 10*time.Second)[0].Link()
	p := c.Get(link)
	f := p.Form(t, "token")
	if n := concurrentLogins(t, c, p.URL.String(), f.Fields); n != 1 {
		t.Fatalf("%d of 10 concurrent confirms produced a code, want exactly 1", n)
	}
}

// concurrentLogins posts form to target 10 times at once with c's cookies
// and counts the answers that send the browser to the app with a code.
func concurrentLogins(t *testing.T, c *testkit.Client, target string, form url.Values) int {
	t.Helper()
	hc := &http.Client{Jar: c.HTTP.Jar, CheckRedirect: noRedirect}
	var logins atomic.Int32
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := hc.PostForm(target, form)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if strings.Contains(resp.Header.Get("Location"), "code=") {
				logins.Add(1)
			}
		}()
	}
	wg.Wait()
	return int(logins.Load())
}

// volatile is what legitimately differs between two renderings of a page
// (the number for number matching is random per login).
var volatile = regexp.MustCompile(`id="match-number">[0-9]+<|value="[A-Za-z0-9_\-]{20,}"|session=[A-Za-z0-9_\-%]+|[a-z0-9.]+@example\.com`)

func TestMagicLinkDoesNotRevealAccounts(t *testing.T) {
	s := start(t, magic(map[string]string{"forceCreateUser": "false"}))
	known := s.requestLink(t, testkit.NewClient(t), "alice@example.com")
	unknown := s.requestLink(t, testkit.NewClient(t), "nobody@example.com")
	if known.Status != unknown.Status || volatile.ReplaceAllString(known.Body, "X") != volatile.ReplaceAllString(unknown.Body, "X") {
		t.Fatalf("pages differ:\n%s\n---\n%s", known.Body, unknown.Body)
	}
	s.SMTP.WaitFor(t, "alice@example.com", 1, 10*time.Second)
	// Mail leaves only through the outbox, written before the page answers.
	if n := s.mailCount(t, "nobody@example.com"); n != 0 {
		t.Fatalf("%d mails queued for an unknown address", n)
	}
	if _, err := s.LK.Server.Store.UserByEmail(t.Context(), "nobody@example.com"); err == nil {
		t.Fatal("a user was created with forceCreateUser false")
	}
}

// signUpToProfile asks a link for a new address, confirms it, and returns
// the profile form the new account is shown (forceCreateUser and
// updateProfileOnCreate on), and the link.
func (s *setup) signUpToProfile(t *testing.T, c *testkit.Client, typed, stored string) (*testkit.Page, string) {
	t.Helper()
	s.requestLink(t, c, typed)
	link := s.SMTP.WaitFor(t, stored, 1, 10*time.Second)[0].Link()
	p := confirm(t, c, link)
	if !p.Has("Complete your profile") {
		t.Fatalf("no profile form after the link:\n%s", p.Body)
	}
	return p, link
}

func TestMagicLinkCreatesUserAndAsksForProfile(t *testing.T) {
	s := start(t, magic(map[string]string{"forceCreateUser": "true", "updateProfileOnCreate": "true"}))
	c := testkit.NewClient(t)
	p, _ := s.signUpToProfile(t, c, "Carol@Example.com", "carol@example.com")
	p = c.Submit(p, p.Form(t, "firstName"), map[string]string{"firstName": "<script>alert(1)</script>", "lastName": "Jones"})
	res := s.App.Last()
	if res.Err != "" {
		t.Fatalf("%s\n%s", res.Err, p.Body)
	}
	if res.Claims["given_name"] != "<script>alert(1)</script>" || res.Claims["family_name"] != "Jones" || res.Claims["email_verified"] != true {
		t.Fatalf("claims %v", res.Claims)
	}
}

func TestMagicLinkRateLimit(t *testing.T) {
	s := start(t, magic(nil))
	for i := 1; i <= 6; i++ {
		p := s.requestLink(t, testkit.NewClient(t), "alice@example.com")
		limited := p.Has("too many links") && p.Has("try again in")
		if limited != (i == 6) {
			t.Fatalf("request %d: limited=%v\n%s", i, limited, p.Body)
		}
	}
	if n := s.mailCount(t, "alice@example.com"); n != 5 {
		t.Fatalf("%d mails queued for 6 requests, want 5", n)
	}
	s.SMTP.WaitFor(t, "alice@example.com", 5, 10*time.Second)
}

func TestMagicLinkMailSurvivesSMTPOutageAndRestart(t *testing.T) {
	s := start(t, magic(nil))
	s.SMTP.Stop()
	p := s.requestLink(t, testkit.NewClient(t), "alice@example.com")
	if !p.Has("Check your email") {
		t.Fatalf("with SMTP down:\n%s", p.Body)
	}
	// At least one failed attempt is recorded before the restart.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(s.LK.Logs(), "event=mail_retry"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no failed delivery recorded while SMTP was down")
		}
	}
	s.LK.Restart()
	s.SMTP.Restart(t)
	s.SMTP.WaitFor(t, "alice@example.com", 1, 30*time.Second)
	outboxSettled(t, s.LK.Server.Store, 10*time.Second) // recorded as sent: never sent again
	if n := len(s.SMTP.Messages()); n != 1 {
		t.Fatalf("%d mails delivered, want exactly 1", n)
	}
	if !strings.Contains(s.LK.Logs(), "event=mail_retry") || !strings.Contains(s.LK.Logs(), "event=mail_delivered") {
		t.Error("mail_retry / mail_delivered events missing")
	}
}

func TestMagicLinkPermanentSMTPFailureGivesUp(t *testing.T) {
	s := start(t, magic(nil))
	s.SMTP.SetReject(550)
	s.requestLink(t, testkit.NewClient(t), "alice@example.com")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.LK.Logs(), "event=mail_failed") {
		if time.Now().After(deadline) {
			t.Fatal("no mail_failed event after a 550")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if strings.Contains(s.LK.Logs(), "event=mail_retry") {
		t.Error("a 5xx answer was retried")
	}
}

func TestMagicLinkUsesPublicURLAndKeepsTokenSecret(t *testing.T) {
	dsn := filepath.Join(t.TempDir(), "lk.db")
	o := magic(nil)
	o.dsn = dsn
	s := start(t, o)
	c := testkit.NewClient(t)
	p := c.Get(s.App.LoginURL(nil))
	f := p.Form(t, "email")
	action, _ := p.URL.Parse(f.Action)
	f.Fields.Set("email", "alice@example.com")
	req, _ := http.NewRequest(http.MethodPost, action.String(), strings.NewReader(f.Fields.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Host = "evil.example"
	// Go's client would pick cookies for the Host header's domain; send the browser's.
	for _, ck := range c.HTTP.Jar.Cookies(action) {
		req.AddCookie(ck)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "Check your email") {
		t.Fatalf("status %d:\n%s", resp.StatusCode, body)
	}
	link := s.SMTP.WaitFor(t, "alice@example.com", 1, 10*time.Second)[0].Link()
	if !strings.HasPrefix(link, s.LK.URL+"/realms/test/") {
		t.Fatalf("link %s is not built from the public URL %s", link, s.LK.URL)
	}
	confirm(t, c, link)
	u, _ := url.Parse(link)
	tok := u.Query().Get("token")
	if len(tok) < 43 {
		t.Fatalf("token %q is shorter than 256 bits", tok)
	}
	if strings.Contains(s.LK.Logs(), tok) {
		t.Fatal("the link token appears in the server log")
	}
	res := s.App.Last()
	if res.Err != "" || res.Code == "" || res.Token.RefreshToken == "" {
		t.Fatalf("login result %+v", res)
	}
	// Only hashes and signatures of secrets are stored: not the link token,
	// the authorization code, nor the access and refresh tokens.
	secrets := map[string]string{"link token": tok, "authorization code": res.Code,
		"access token": res.Token.AccessToken, "refresh token": res.Token.RefreshToken}
	s.LK.Stop()
	for _, f := range []string{dsn, dsn + "-wal"} {
		b, _ := os.ReadFile(f)
		for what, v := range secrets {
			if strings.Contains(string(b), v) {
				t.Fatalf("the raw %s is stored in %s", what, f)
			}
		}
	}
}

func TestNewerLinkRevokesOlder(t *testing.T) {
	s := start(t, magic(map[string]string{"resendCooldown": "1s"}))
	c := testkit.NewClient(t)
	p := s.requestLink(t, c, "alice@example.com")
	first := s.SMTP.WaitFor(t, "alice@example.com", 1, 10*time.Second)[0].Link()
	time.Sleep(1100 * time.Millisecond)
	p = c.Submit(p, p.FormWith(t, "action", "resend"), nil)
	if !p.Has("Check your email") || !p.Has("We sent a new link to alice@example.com. Use the newest email: earlier links no longer work.") {
		t.Fatalf("resend says nothing of what it did:\n%s", p.Body)
	}
	second := s.SMTP.WaitFor(t, "alice@example.com", 2, 10*time.Second)[1].Link()
	if old := c.Get(first); old.Status != http.StatusGone || !old.Has("replaced by a newer one") {
		t.Fatalf("first link after a second was sent: %d\n%s", old.Status, old.Body)
	}
	confirm(t, c, second)
	if res := s.App.Last(); res.Err != "" {
		t.Fatal(res.Err)
	}
}

func TestMagicLinkOpenedInAnotherBrowser(t *testing.T) {
	s := start(t, magic(nil))
	s.requestLink(t, testkit.NewClient(t), "alice@example.com")
	link := s.SMTP.WaitFor(t, "alice@example.com", 1, 10*time.Second)[0].Link()
	other := testkit.NewClient(t) // no cookies from the browser that asked
	p := confirm(t, other, link)
	if res := s.App.Last(); res.Err != "" || !p.Has("Logged in as alice@example.com") {
		t.Fatalf("other browser: %q\n%s", res.Err, p.Body)
	}
}

func TestFormsRequireCSRFToken(t *testing.T) {
	s := start(t, magic(nil))
	c := testkit.NewClient(t)
	p := c.Get(s.App.LoginURL(nil))
	f := p.Form(t, "email")
	p = c.Submit(p, f, map[string]string{"email": "alice@example.com", "csrf": "forged"})
	if p.Status != http.StatusForbidden {
		t.Fatalf("forged CSRF token: status %d", p.Status)
	}
	if n := s.mailCount(t, "alice@example.com"); n != 0 {
		t.Fatalf("a forged form queued %d mails", n)
	}
}
