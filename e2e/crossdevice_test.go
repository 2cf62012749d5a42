package e2e

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"latchkey/e2e/testkit"
)

// The device gap: a login started in one browser, its mail read in
// another. Each test runs two browsers (separate Chromium processes, no
// shared cookies): "laptop" started the login, "phone" holds the mail.

// startOnLaptop asks for a link for email in ctx and waits for the "check
// your email" page (its code field).
func startOnLaptop(t *testing.T, ctx context.Context, s *setup, email string) testkit.Message {
	t.Helper()
	do(t, ctx,
		chromedp.Navigate(s.App.LoginURL(nil)), chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), email), chromedp.Click(chromedp.CSS("button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("code")),
	)
	return s.SMTP.WaitFor(t, email, 1, 10*time.Second)[0]
}

// waitText waits (across page loads) for an element of the XPath el whose
// text contains want: "//h1", or errorP for the page's error.
func waitText(t *testing.T, ctx context.Context, el, want string) {
	t.Helper()
	do(t, ctx, chromedp.WaitVisible(chromedp.Search(el+`[contains(., "`+want+`")]`)))
}

const errorP = `//p[contains(concat(" ", @class, " "), " error ")]`

// matchNumber is the number the laptop's page shows.
func matchNumber(t *testing.T, ctx context.Context) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(text(t, ctx, "#match-number")))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// openToNumbers opens link in a browser that did not start its login and
// chooses "Approve": the page of three numbers.
func openToNumbers(t *testing.T, ctx context.Context, link string) {
	t.Helper()
	do(t, ctx, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("approve")),
		chromedp.Click(chromedp.ID("approve")), chromedp.WaitVisible(chromedp.CSS("button[name=number]")))
}

// wrongChoice is a number the phone offers that is not right.
func wrongChoice(t *testing.T, ctx context.Context, right int) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('button[name=number]')].map(b => b.value)`))
	if err != nil || len(v) != 3 {
		t.Fatalf("choices %v: %v", v, err)
	}
	for _, c := range v {
		if c != strconv.Itoa(right) {
			return c
		}
	}
	t.Fatalf("every choice is %d", right)
	return ""
}

// (1) The code from the mail, typed where the login started, finishes it
// there; a wrong code first says how many tries are left.
func TestBrowserCodeFinishesTheLogin(t *testing.T) {
	laptop := testkit.Browser(t)
	s := start(t, magic(nil))
	m := startOnLaptop(t, laptop, s, "alice@example.com")
	code := m.Code()
	if len(code) != 6 || !strings.Contains(m.HTML, code) {
		t.Fatalf("no 6-digit code in the mail: %q\n%s", code, m.Text)
	}
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	do(t, laptop, chromedp.SendKeys(chromedp.ID("code"), wrong), chromedp.Submit(chromedp.ID("code")),
		chromedp.WaitVisible(chromedp.ID("code-error")))
	if e := text(t, laptop, "#code-error"); e != "That code is not right. 4 tries left." {
		t.Fatalf("wrong code: %q", e)
	}
	do(t, laptop, chromedp.SendKeys(chromedp.ID("code"), code[:3]+" "+code[3:]), chromedp.Submit(chromedp.ID("code")),
		chromedp.WaitVisible(chromedp.ID("result")))
	if res := s.App.Last(); res.Err != "" || res.Claims["email"] != "alice@example.com" {
		t.Fatalf("after the code: %q %v", res.Err, res.Claims)
	}
	// The code consumed the link too.
	phone := testkit.Browser(t)
	do(t, phone, chromedp.Navigate(m.Link()), chromedp.WaitVisible(chromedp.CSS("p.error")))
	if e := text(t, phone, "p.error"); !strings.Contains(e, "already used") {
		t.Fatalf("the link after its code: %q", e)
	}
}

// (2) The phone approves with the right number: the laptop goes on to the
// app by itself, and the phone is signed in nowhere.
func TestBrowserApprovalWithTheRightNumber(t *testing.T) {
	laptop, phone := testkit.Browser(t), testkit.Browser(t)
	s := start(t, magic(nil))
	m := startOnLaptop(t, laptop, s, "alice@example.com")
	n := matchNumber(t, laptop)
	do(t, phone, chromedp.Navigate(m.Link()), chromedp.WaitVisible(chromedp.ID("approve")))
	if h := text(t, phone, "h1"); h != "Where do you want to sign in?" {
		t.Fatalf("the phone's page: %q", h)
	}
	do(t, phone, chromedp.Click(chromedp.ID("approve")), chromedp.WaitVisible(chromedp.CSS("button[name=number]")),
		chromedp.Click(chromedp.CSS(`button[name=number][value="`+strconv.Itoa(n)+`"]`)))
	waitText(t, phone, "//h1", "Sign-in approved")
	do(t, laptop, chromedp.WaitVisible(chromedp.ID("result")))
	res := s.App.Last()
	if res.Err != "" || res.Claims["email"] != "alice@example.com" {
		t.Fatalf("the laptop after approval: %q %v", res.Err, res.Claims)
	}
	// The phone has no session: prompt=none there is login_required.
	do(t, phone, chromedp.Navigate(s.App.LoginURL(url.Values{"prompt": {"none"}})), chromedp.WaitVisible(chromedp.ID("result")))
	if res := s.App.Last(); res.Err != "login_required" {
		t.Fatalf("the phone is signed in: %q %v", res.Err, res.Claims)
	}
}

// (3) A wrong number kills the link at once, and the laptop is told.
func TestBrowserWrongNumberKillsTheLink(t *testing.T) {
	laptop, phone := testkit.Browser(t), testkit.Browser(t)
	s := start(t, magic(nil))
	m := startOnLaptop(t, laptop, s, "alice@example.com")
	n := matchNumber(t, laptop)
	openToNumbers(t, phone, m.Link())
	do(t, phone, chromedp.Click(chromedp.CSS(`button[name=number][value="`+wrongChoice(t, phone, n)+`"]`)))
	waitText(t, phone, "//h1", "Wrong number")
	waitText(t, laptop, errorP, "A wrong number was picked")
	// The dead link's code field is gone with it.
	if gone, err := chromedp.Run(laptop, chromedp.Evaluate[bool](`document.getElementById('code') === null`)); err != nil || !gone {
		t.Fatalf("the code field is still offered (%v)", err)
	}
	// The link is dead for everyone, and offers no new mail from the phone.
	do(t, phone, chromedp.Navigate(m.Link()), chromedp.WaitVisible(chromedp.CSS("p.error")))
	if e := text(t, phone, "p.error"); !strings.Contains(e, "wrong number") {
		t.Fatalf("the link after a wrong number: %q", e)
	}
	if len(s.App.Results()) != 0 {
		t.Fatalf("someone signed in: %+v", s.App.Results())
	}
}

// (4) "This wasn't me" declines: the laptop says so, and the link's state
// and the log record it.
func TestBrowserThisWasntMeDeclines(t *testing.T) {
	laptop, phone := testkit.Browser(t), testkit.Browser(t)
	s := start(t, magic(nil))
	m := startOnLaptop(t, laptop, s, "alice@example.com")
	do(t, phone, chromedp.Navigate(m.Link()), chromedp.WaitVisible(chromedp.ID("decline")), chromedp.Click(chromedp.ID("decline")))
	waitText(t, phone, "//h1", "Sign-in declined")
	waitText(t, laptop, errorP, "This sign-in was declined from the email")
	code, list := api(t, s, http.MethodGet, "/magic-links?email=alice@example.com", apiKey, nil)
	links, _ := list["items"].([]any)
	if code != http.StatusOK || len(links) != 1 || links[0].(map[string]any)["revokedReason"] != "declined" {
		t.Fatalf("links: %d %v", code, list)
	}
	if !strings.Contains(s.LK.Logs(), "event=link_declined") {
		t.Fatal("no link_declined event in the log")
	}
	if len(s.App.Results()) != 0 {
		t.Fatalf("someone signed in: %+v", s.App.Results())
	}
}

// (5) An attacker who starts a login with the victim's address cannot get
// it approved blindly: the number is only on the attacker's screen; the
// victim, who has only the mail, must guess one of three, and a miss kills
// the link; the right number after a miss changes nothing.
func TestBrowserAttackerStartedLoginCannotBeApprovedBlindly(t *testing.T) {
	attacker, victim := testkit.Browser(t), testkit.Browser(t)
	s := start(t, magic(nil))
	m := startOnLaptop(t, attacker, s, "alice@example.com")
	n := matchNumber(t, attacker)
	if strings.Contains(m.Text, "pick") || strings.Contains(m.HTML, `id="match-number"`) {
		t.Fatalf("the mail tells the number:\n%s", m.Text)
	}
	// "Approve" alone approves nothing: it asks for the number.
	openToNumbers(t, victim, m.Link())
	do(t, attacker, chromedp.Click(chromedp.ID("check")), chromedp.WaitVisible(chromedp.CSS(`p.notice[role="status"]`)))
	if msg := text(t, attacker, "p.notice"); !strings.HasPrefix(msg, "Nothing was approved yet") {
		t.Fatalf("the attacker's continue: %q", msg)
	}
	// The victim guesses wrong: the link dies.
	do(t, victim, chromedp.Click(chromedp.CSS(`button[name=number][value="`+wrongChoice(t, victim, n)+`"]`)))
	waitText(t, victim, "//h1", "Wrong number")
	// The right number afterwards (a replayed form, as an attacker's helper
	// would post it) is refused.
	c := testkit.NewClient(t)
	p := c.Get(m.Link())
	if p.Status != http.StatusGone {
		t.Fatalf("the dead link's page: %d\n%s", p.Status, p.Body)
	}
	p = c.Post(s.LK.Issuer+"/login-actions/magic-link/approve", url.Values{"token": {linkToken(t, m.Link())}, "number": {strconv.Itoa(n)},
		"csrf": {csrfOf(t, s, c)}})
	if p.Status != http.StatusGone || !p.Has("wrong number") {
		t.Fatalf("the right number after a miss: %d\n%s", p.Status, p.Body)
	}
	waitText(t, attacker, errorP, "A wrong number was picked")
	if len(s.App.Results()) != 0 {
		t.Fatalf("the attacker signed in: %+v", s.App.Results())
	}
}

// (6) Ten concurrent POSTs of the right code: exactly one login.
func TestMagicLinkCodeConcurrentPostsLogInOnce(t *testing.T) {
	s := start(t, magic(nil))
	c := testkit.NewClient(t)
	p := s.requestLink(t, c, "alice@example.com")
	code := s.SMTP.WaitFor(t, "alice@example.com", 1, 10*time.Second)[0].Code()
	f := p.FormWith(t, "action", "code")
	f.Fields.Set("code", code)
	target := p.URL.ResolveReference(mustURL(t, f.Action)).String()
	if n := concurrentLogins(t, c, target, f.Fields); n != 1 {
		t.Fatalf("%d logins from 10 concurrent POSTs of one code", n)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// pollURL is the status URL the "check your email" page polls.
func pollURL(t testing.TB, p *testkit.Page) string {
	t.Helper()
	m := regexp.MustCompile(`data-poll="([^"]+)"`).FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("the page polls nothing:\n%s", p.Body)
	}
	u, err := url.Parse(html.UnescapeString(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	return p.URL.ResolveReference(u).String()
}

// countStatements counts the statements the server runs from now on,
// except those of its background jobs (the mail sender's claims of the
// outbox, the rate counters' periodic save), which run on their own clock.
func countStatements(t testing.TB, s *setup) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	err := s.LK.Server.Store.OnStatement(func(sql string) {
		if !strings.Contains(sql, "outbox_mails") && !strings.Contains(sql, "rate_counters") {
			n.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return &n
}

// The page that waits for another device polls: each poll is one
// statement (the login's newest link, by an indexed column; the plan is
// checked in the store's tests), and says only "waiting" or "changed".
func TestApprovalPollIsOneRead(t *testing.T) {
	s := start(t, magic(nil))
	c := testkit.NewClient(t)
	poll := pollURL(t, s.requestLink(t, c, "alice@example.com"))
	n := countStatements(t, s)
	p := c.Get(poll)
	if p.Status != http.StatusOK || p.Body != "{\"state\":\"waiting\"}\n" || p.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("poll: %d %q %v", p.Status, p.Body, p.Header)
	}
	if got := n.Load(); got != 1 {
		t.Fatalf("one poll ran %d statements", got)
	}
	// A login that sent nothing (no account) looks the same.
	c2 := testkit.NewClient(t)
	if p := c2.Get(pollURL(t, s.requestLink(t, c2, "nobody@example.com"))); p.Body != "{\"state\":\"waiting\"}\n" {
		t.Fatalf("poll for an unknown address: %q", p.Body)
	}
}

// BenchmarkApprovalPoll: one poll over HTTP, through the whole server, on
// SQLite (go test ./e2e -run '^$' -bench ApprovalPoll).
func BenchmarkApprovalPoll(b *testing.B) {
	s := start(b, magic(nil))
	c := testkit.NewClient(b)
	poll := pollURL(b, s.requestLink(b, c, "alice@example.com"))
	n := countStatements(b, s)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.HTTP.Get(poll)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	b.ReportMetric(float64(n.Load())/float64(b.N), "statements/op")
}

// enterCode posts a code from the "check your email" page p.
func enterCode(c *testkit.Client, t testing.TB, p *testkit.Page, code string) *testkit.Page {
	t.Helper()
	return c.Submit(p, p.FormWith(t, "action", "code"), map[string]string{"code": code})
}

// codeAttempts (default 5) wrong codes kill the link and its code; a
// login for an address without an account answers the same way, page for
// page.
func TestWrongCodesKillTheLinkAndTellNothing(t *testing.T) {
	s := start(t, magic(nil))
	known, unknown := testkit.NewClient(t), testkit.NewClient(t)
	pk := s.requestLink(t, known, "alice@example.com")
	pu := s.requestLink(t, unknown, "nobody@example.com")
	m := s.SMTP.WaitFor(t, "alice@example.com", 1, 10*time.Second)[0]
	wrong := "000000"
	if m.Code() == wrong {
		wrong = "111111"
	}
	for i, want := range []string{"4 tries left", "3 tries left", "2 tries left", "1 try left", "Too many wrong codes"} {
		pk, pu = enterCode(known, t, pk, wrong), enterCode(unknown, t, pu, wrong)
		if !pk.Has(want) {
			t.Fatalf("wrong code %d: no %q:\n%s", i+1, want, pk.Body)
		}
		if pk.Status != pu.Status || volatile.ReplaceAllString(pk.Body, "X") != volatile.ReplaceAllString(pu.Body, "X") {
			t.Fatalf("wrong code %d: the pages for a known and an unknown address differ:\n%s\n---\n%s", i+1, pk.Body, pu.Body)
		}
	}
	if pk.Has(`id="code"`) {
		t.Fatalf("the code field is still offered:\n%s", pk.Body)
	}
	// Reloading the page says the same, for both.
	rk, ru := known.Get(pk.URL.String()), unknown.Get(pu.URL.String())
	if !rk.Has("Too many wrong codes") || volatile.ReplaceAllString(rk.Body, "X") != volatile.ReplaceAllString(ru.Body, "X") {
		t.Fatalf("reloaded pages differ:\n%s\n---\n%s", rk.Body, ru.Body)
	}
	// The right code, posted anyway, and the link are dead.
	f := pk.FormWith(t, "action", "resend")
	f.Fields.Set("action", "code")
	f.Fields.Set("code", m.Code())
	if p := known.Submit(pk, f, nil); !p.Has("Too many wrong codes") || len(s.App.Results()) != 0 {
		t.Fatalf("the right code after too many wrong ones:\n%s", p.Body)
	}
	if p := testkit.NewClient(t).Get(m.Link()); p.Status != http.StatusGone {
		t.Fatalf("the link after too many wrong codes: %d", p.Status)
	}
}

// With crossDevice off, a link opened elsewhere signs in there, as before
// (one click); with numberMatching off, "Approve" approves at once.
func TestCrossDeviceOptions(t *testing.T) {
	t.Run("crossDevice false", func(t *testing.T) {
		s := start(t, magic(map[string]string{"crossDevice": "false"}))
		p := s.requestLink(t, testkit.NewClient(t), "alice@example.com")
		if p.Has("data-poll") || p.Has("match-number") {
			t.Fatalf("the sent page waits for another device:\n%s", p.Body)
		}
		link := s.SMTP.WaitFor(t, "alice@example.com", 1, 10*time.Second)[0].Link()
		phone := testkit.NewClient(t)
		if p := phone.Get(link); p.Has(`id="approve"`) || !p.Has("Continue as alice@example.com") {
			t.Fatalf("link page elsewhere:\n%s", p.Body)
		}
		confirm(t, phone, link)
		if res := s.App.Last(); res.Err != "" || res.Claims["email"] != "alice@example.com" {
			t.Fatalf("sign-in on the phone: %q", res.Err)
		}
	})
	t.Run("numberMatching false", func(t *testing.T) {
		s := start(t, magic(map[string]string{"numberMatching": "false"}))
		laptop := testkit.NewClient(t)
		p := s.requestLink(t, laptop, "alice@example.com")
		if p.Has("match-number") || !p.Has("data-poll") {
			t.Fatalf("the sent page:\n%s", p.Body)
		}
		link := s.SMTP.WaitFor(t, "alice@example.com", 1, 10*time.Second)[0].Link()
		phone := testkit.NewClient(t)
		lp := phone.Get(link)
		if ap := phone.Submit(lp, lp.FormTo(t, "/magic-link/approve"), nil); !ap.Has("Sign-in approved") {
			t.Fatalf("approve without a number:\n%s", ap.Body)
		}
		// The laptop's "continue" (no JavaScript) goes on to the app.
		laptop.Submit(p, p.FormWith(t, "action", "check"), nil)
		if res := s.App.Last(); res.Err != "" || res.Claims["email"] != "alice@example.com" {
			t.Fatalf("the laptop after approval: %q", res.Err)
		}
	})
}
