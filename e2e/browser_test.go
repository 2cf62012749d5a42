package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"latchkey/e2e/testkit"
)

func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		body, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("body")))
		t.Fatalf("%v\nat %s:\n%s", err, loc, body)
	}
}

// text is the visible text (innerText) of the first element sel matches,
// once there is one. It reads through JavaScript, not DOM node ids: a node
// id chromedp holds can go stale when the document is swapped under it
// right after a form post ("No node with given id found").
// submitEmail asks for a link on the magic-link page and waits for the
// "check your email" page: only it has the resend form (the email page has
// an h1 too).
func submitEmail(t *testing.T, ctx context.Context, email string) {
	t.Helper()
	do(t, ctx,
		chromedp.SendKeys(chromedp.ID("email"), email),
		chromedp.Click(chromedp.CSS("button[type=submit]")),
		chromedp.WaitReady(chromedp.CSS(`input[name="action"][value="resend"]`)),
	)
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	q, _ := json.Marshal(sel)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](fmt.Sprintf("document.querySelector(%s) !== null", q), chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("no %s: %v", sel, err)
	}
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf("document.querySelector(%s).innerText", q)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func location(t *testing.T, ctx context.Context) string {
	t.Helper()
	l, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestBrowserMagicLinkLogin(t *testing.T) {
	ctx := testkit.Browser(t)
	s := start(t, magic(nil))
	do(t, ctx, chromedp.Navigate(s.App.LoginURL(nil)), chromedp.WaitVisible(chromedp.ID("email")))
	if n, _ := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSS("input[type=password]"), chromedp.AtLeast(0))); len(n) != 0 {
		t.Fatal("the magic-link page shows a password field")
	}
	submitEmail(t, ctx, "alice@example.com")
	if h := text(t, ctx, "h1"); h != "Check your email" {
		t.Fatalf("after the email form: %q", h)
	}
	link := s.SMTP.WaitFor(t, "alice@example.com", 1, 10*time.Second)[0].Link()
	do(t, ctx, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("confirm")))
	if b := text(t, ctx, "#confirm"); b != "Continue as alice@example.com" {
		t.Fatalf("confirm button reads %q", b)
	}
	do(t, ctx, chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.ID("result")))
	if r := text(t, ctx, "#result"); r != "Logged in as alice@example.com" {
		t.Fatalf("app shows %q", r)
	}
	res := s.App.Last()
	if res.Err != "" || res.Claims["email"] != "alice@example.com" || res.Claims["email_verified"] != true {
		t.Fatalf("result %q, claims %v", res.Err, res.Claims)
	}
}

func TestBrowserNewUserFillsProfile(t *testing.T) {
	ctx := testkit.Browser(t)
	s := start(t, magic(map[string]string{"forceCreateUser": "true", "updateProfileOnCreate": "true"}))
	do(t, ctx,
		chromedp.Navigate(s.App.LoginURL(url.Values{"login_hint": {"dana@example.com"}})),
		chromedp.WaitVisible(chromedp.ID("email")),
	)
	if v, _ := chromedp.Run(ctx, chromedp.Value(chromedp.ID("email"))); v != "dana@example.com" {
		t.Fatalf("login_hint did not pre-fill the email: %q", v)
	}
	do(t, ctx, chromedp.Click(chromedp.CSS("button[type=submit]")), chromedp.WaitReady(chromedp.CSS(`input[name="action"][value="resend"]`)))
	link := s.SMTP.WaitFor(t, "dana@example.com", 1, 10*time.Second)[0].Link()
	do(t, ctx,
		chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("confirm")),
		chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.ID("firstName")),
		chromedp.SendKeys(chromedp.ID("firstName"), "Dana"),
		chromedp.SendKeys(chromedp.ID("lastName"), "Scully"),
		chromedp.Click(chromedp.CSS("button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("result")),
	)
	res := s.App.Last()
	if res.Err != "" || res.Claims["name"] != "Dana Scully" || res.Claims["email_verified"] != true {
		t.Fatalf("result %q, claims %v", res.Err, res.Claims)
	}
}

func TestBrowserPasswordLoginSSOAndPromptLogin(t *testing.T) {
	ctx := testkit.Browser(t)
	s := start(t, opts{})
	login := func() {
		do(t, ctx,
			chromedp.WaitVisible(chromedp.ID("password")),
			chromedp.SendKeys(chromedp.ID("email"), "alice@example.com"),
			chromedp.SendKeys(chromedp.ID("password"), alicePassword),
			chromedp.Click(chromedp.CSS("button[type=submit]")),
			chromedp.WaitVisible(chromedp.ID("result")),
		)
	}
	do(t, ctx, chromedp.Navigate(s.App.LoginURL(nil)))
	login()
	if r := text(t, ctx, "#result"); r != "Logged in as alice@example.com" {
		t.Fatalf("app shows %q", r)
	}
	// A second authorization request is answered by the SSO cookie: no form.
	do(t, ctx, chromedp.Navigate(s.App.LoginURL(nil)), chromedp.WaitVisible(chromedp.ID("result")))
	if n := len(s.App.Results()); n != 2 || s.App.Last().Err != "" {
		t.Fatalf("%d results, last error %q", n, s.App.Last().Err)
	}
	if !strings.HasPrefix(location(t, ctx), s.App.URL) {
		t.Fatalf("SSO login ended at %s", location(t, ctx))
	}
	// prompt=login shows the form again.
	do(t, ctx, chromedp.Navigate(s.App.LoginURL(url.Values{"prompt": {"login"}})))
	login()
	first, last := s.App.Results()[0], s.App.Last()
	if last.Err != "" || last.IDToken.Subject != first.IDToken.Subject {
		t.Fatalf("prompt=login result %q", last.Err)
	}
}

func TestBindingSwitchChangesTheLoginPage(t *testing.T) {
	for binding, want := range map[string]string{"browser-password": "password", "browser-magic-link": "email-only"} {
		s := start(t, opts{binding: binding})
		p := testkit.NewClient(t).Get(s.App.LoginURL(nil))
		f := p.Form(t, "email")
		_, hasPassword := f.Fields["password"]
		got := "email-only"
		if hasPassword {
			got = "password"
		}
		if got != want {
			t.Errorf("binding %s shows the %s page, want %s", binding, got, want)
		}
	}
}

func TestRequiredProfileUpdateBeforeReturningToApp(t *testing.T) {
	s := start(t, opts{})
	c := testkit.NewClient(t)
	p := s.passwordLogin(t, c, nil, "newbie@example.com", alicePassword)
	if !p.Has("Complete your profile") || len(s.App.Results()) != 0 {
		t.Fatalf("no profile form before the app:\n%s", p.Body)
	}
	p = c.Submit(p, p.Form(t, "firstName"), map[string]string{"firstName": " ", "lastName": "X"})
	if !p.Has("Please enter your first and last name") {
		t.Fatalf("blank first name accepted:\n%s", p.Body)
	}
	p = c.Submit(p, p.Form(t, "firstName"), map[string]string{"firstName": "Nina", "lastName": "Newbie"})
	res := s.App.Last()
	if res.Err != "" || res.Claims["given_name"] != "Nina" || res.Claims["family_name"] != "Newbie" {
		t.Fatalf("result %q claims %v", res.Err, res.Claims)
	}
	// Done once: the next login goes straight back.
	s.passwordLogin(t, testkit.NewClient(t), url.Values{"prompt": {"login"}}, "newbie@example.com", alicePassword)
	if n := len(s.App.Results()); n != 2 || s.App.Last().Err != "" {
		t.Fatalf("second login: %d results", n)
	}
}

func TestTwoTabsLogInIndependently(t *testing.T) {
	s := start(t, opts{})
	c := testkit.NewClient(t)
	tab1 := c.Get(s.App.LoginURL(nil))
	tab2 := c.Get(s.App.LoginURL(nil))
	if tab1.URL.String() == tab2.URL.String() {
		t.Fatal("two tabs share one login attempt")
	}
	// The first tab's form still works after the second tab started its own login.
	p := c.Submit(tab1, tab1.Form(t, "password"), map[string]string{"email": "alice@example.com", "password": alicePassword})
	if !p.Has("Logged in as alice@example.com") {
		t.Fatalf("first tab:\n%s", p.Body)
	}
}

func TestWrongPasswordShowsFormAgainWithoutSayingWhich(t *testing.T) {
	s := start(t, opts{})
	for _, email := range []string{"alice@example.com", "nobody@example.com"} {
		p := s.passwordLogin(t, testkit.NewClient(t), nil, email, "wrong password!")
		if !p.Has("Invalid email or password.") {
			t.Fatalf("%s:\n%s", email, p.Body)
		}
	}
	if len(s.App.Results()) != 0 {
		t.Fatal("a wrong password reached the app")
	}
}
