package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"latchkey/authenticators/magiclink"
	"latchkey/flows"
	"latchkey/flows/flowstest"
	"latchkey/server/i18n"
	"latchkey/server/web"
)

// noLinks is a link store that knows no link (the methods the page
// renders do not reach are left to the embedded nil interface).
type noLinks struct{ magiclink.Store }

func (noLinks) CreateLink(context.Context, *magiclink.Link, *magiclink.Mail) error   { return nil }
func (noLinks) RehearseLink(context.Context, *magiclink.Link, *magiclink.Mail) error { return nil }
func (noLinks) LinkByHash(context.Context, string) (*magiclink.Link, error) {
	return nil, magiclink.ErrNotFound
}
func (noLinks) ConsumeLink(context.Context, string, magiclink.Owner, time.Time) (*magiclink.Link, error) {
	return nil, magiclink.ErrNotFound
}
func (noLinks) MarkLinkOpened(context.Context, string, time.Time) error { return nil }

type anyCount struct{}

func (anyCount) Hit(context.Context, string, time.Duration, time.Time) (int, time.Time, error) {
	return 1, time.Now(), nil
}

func (anyCount) HitAll(_ context.Context, keys []string, _ time.Duration, _ time.Time) ([]int, []time.Time, error) {
	counts, ends := make([]int, len(keys)), make([]time.Time, len(keys))
	for i := range keys {
		counts[i], ends[i] = 1, time.Now()
	}
	return counts, ends, nil
}

// stepRenderer is the real renderer with every step's templates, and the
// step registry, whose link service renders its mails with it.
func stepRenderer(tb testing.TB) (*web.Renderer, flows.Registry) {
	tb.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rnd, err := web.NewRenderer(web.Options{}, log, StepTemplates(Registry(Deps{}))...)
	if err != nil {
		tb.Fatal(err)
	}
	deps := Deps{Counter: anyCount{}, Log: log, Links: &magiclink.Service{Store: noLinks{}, Counter: anyCount{}, Mail: rnd, Log: log, Realm: "test"}}
	return rnd, Registry(deps)
}

// withDefaults is a step configured with its options' defaults.
func withDefaults(tb testing.TB, f flows.Factory) flows.Authenticator {
	tb.Helper()
	cfg := flows.Config{Values: map[string]any{}}
	for _, o := range f.Options() {
		cfg.Values[o.Name] = o.Default
	}
	a, err := f.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// TestEveryStepsPagesRender drives every registered authenticator, required
// action and entry point to its first page and renders it with the real
// renderer and templates: a page a step names but does not bring, a
// template that fails on the data the step gives it, or a message id no
// catalog has, fails here, not in front of a user.
func TestEveryStepsPagesRender(t *testing.T) {
	rnd, reg := stepRenderer(t)
	render := func(t *testing.T, what string, r flows.Result) {
		t.Helper()
		if r.Status == flows.Failed {
			for _, l := range i18n.Shipped {
				rnd.Text(l, r.Message) // the error page shows it
			}
		}
		if r.Status != flows.Challenge {
			return // decided at once: no page
		}
		if !rnd.Has(r.Page) {
			t.Fatalf("%s shows page %q, which no template provides", what, r.Page)
		}
		for _, l := range i18n.Shipped {
			w := httptest.NewRecorder()
			rnd.Page(w, http.StatusOK, r.Page, web.View{Title: "t", CSRF: "c", Action: "/a", Exec: "0", Data: r.Data, Locale: l, SwitchURL: "/p"})
			if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "</html>") || !strings.Contains(w.Body.String(), `<html lang="`+l+`">`) {
				t.Fatalf("%s: page %s in %s rendered %d:\n%s", what, r.Page, l, w.Code, w.Body.String())
			}
		}
	}
	newContext := func() *flows.Context {
		users := flowstest.NewUsers(flows.User{ID: "u1", Email: "u1@example.com"})
		u, _ := users.UserByID(context.Background(), "u1")
		return &flows.Context{Realm: "test", Session: &flows.Session{ID: "s", MaxAge: -1}, User: u, Users: users,
			Credentials: flowstest.NewCredentials(), Form: url.Values{}, Now: time.Now, SameBrowser: true}
	}
	for id, f := range reg {
		t.Run("authenticator "+id, func(t *testing.T) {
			a := withDefaults(t, f)
			if _, isCond := a.(flows.Condition); isCond {
				return
			}
			c := newContext()
			r, err := a.Authenticate(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			render(t, "Authenticate", r)
			if r, err = a.Action(context.Background(), c); err != nil {
				t.Fatal(err)
			}
			render(t, "Action with an empty form", r)
			if ep, ok := f.(flows.EntryPoint); ok {
				for _, method := range []string{http.MethodGet, http.MethodPost} {
					in := &flows.Entry{Method: method, Query: url.Values{"token": {"unknown"}}, Form: url.Values{"token": {"unknown"}}, Users: c.Users}
					e, err := ep.Enter(context.Background(), in, time.Now())
					if err != nil {
						t.Fatal(err)
					}
					if e.Answer != nil {
						render(t, "Enter ("+method+")", *e.Answer)
					}
				}
			}
		})
	}
	t.Cleanup(func() {
		if m := rnd.Missing(); len(m) > 0 {
			t.Errorf("message ids missing from every catalog, or from a shipped locale's: %v", m)
		}
	})
	for _, a := range RequiredActions(reg) {
		t.Run("required action "+a.ID(), func(t *testing.T) {
			c := newContext()
			r, err := a.Challenge(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			render(t, "Challenge", r)
			if r, err = a.Process(context.Background(), c); err != nil {
				t.Fatal(err)
			}
			render(t, "Process with an empty form", r)
		})
	}
}

// The magic link's pages in each state the code and cross-device approval
// give them, in every shipped locale, with every message they name.
func TestMagicLinkPagesRenderEveryState(t *testing.T) {
	rnd, err := web.NewRenderer(web.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)), StepTemplates(Registry(Deps{}))...)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	revoked := func(reason string) *magiclink.Link {
		return &magiclink.Link{RevokedAt: &now, RevokedReason: reason, ExpiresAt: now.Add(time.Hour)}
	}
	pages := []struct {
		page, want string
		data       any
	}{
		{magiclink.PageSent, `id="match-number">42<`, magiclink.SentPage{Email: "a@example.com", Lifetime: time.Minute, CodeLength: 6,
			CodeError: flows.M("code.wrong", "Count", 2), MatchNumber: 42, PollPath: "magic-link/status?session=s", Approvable: true}},
		{magiclink.PageSent, `autocomplete="one-time-code"`, magiclink.SentPage{Email: "a@example.com", CodeLength: 8, CodeError: flows.M("code.format", "Count", 8)}},
		{magiclink.PageSent, `role="alert"`, magiclink.SentPage{Email: "a@example.com", CodeLength: 6, Ended: magiclink.Explain(revoked(magiclink.RevokedCodeAttempts), now)}},
		{magiclink.PageSent, `role="alert"`, magiclink.SentPage{Email: "a@example.com", Approvable: true, Ended: magiclink.Explain(revoked(magiclink.RevokedWrongNumber), now)}},
		{magiclink.PageSent, `value="check"`, magiclink.SentPage{Email: "a@example.com", Approvable: true, Notice: flows.M("approve.notYet")}},
		{magiclink.PageConfirm, `id="approve"`, magiclink.ConfirmPage{Email: "a@example.com", Token: "t", OtherDevice: true}},
		{magiclink.PageApprove, `value="17"`, magiclink.ApprovePage{Email: "a@example.com", Token: "t", Choices: []int{17, 42, 88}}},
		{magiclink.PageInvalid, `role="alert"`, magiclink.InvalidPage{Message: magiclink.Explain(revoked(magiclink.RevokedDeclined), now)}},
		{magiclink.PageNotice, `<h1 id="notice">`, magiclink.NoticePage{Heading: flows.M("approve.doneHeading"), Message: flows.M("approve.done")}},
		{magiclink.PageNotice, `<h1 id="notice">`, magiclink.NoticePage{Heading: flows.M("approve.wrongHeading"), Message: flows.M("approve.wrong")}},
		{magiclink.PageNotice, `<h1 id="notice">`, magiclink.NoticePage{Heading: flows.M("decline.heading"), Message: flows.M("decline.done")}},
		{magiclink.PageNotice, `<h1 id="notice">`, magiclink.NoticePage{Heading: flows.M("approve.doneHeading"), Message: magiclink.Explain(&magiclink.Link{ApprovedAt: &now, ExpiresAt: now.Add(time.Hour)}, now)}},
	}
	for _, l := range i18n.Shipped {
		for _, p := range pages {
			w := httptest.NewRecorder()
			rnd.Page(w, http.StatusOK, p.page, web.View{Title: "t", CSRF: "c", Action: "/a", Exec: "0", Data: p.data, Locale: l})
			if body := w.Body.String(); w.Code != http.StatusOK || !strings.Contains(body, p.want) {
				t.Errorf("%s in %s (%T): %d, no %q:\n%s", p.page, l, p.data, w.Code, p.want, body)
			}
		}
		for _, id := range []string{"approve.declinedHere", "approve.notPossible", "code.used", "code.expired"} {
			rnd.Text(l, flows.M(id))
		}
		_, text, html, err := rnd.Mail(l, "mail-login", magiclink.MailData{Email: "a@example.com", URL: "https://x/l", Lifetime: time.Minute, Code: "012345", Locale: l})
		if err != nil || !strings.Contains(text, "012345") || !strings.Contains(html, "012345") {
			t.Errorf("mail in %s: %v\n%s", l, err, text)
		}
	}
	if m := rnd.Missing(); len(m) > 0 {
		t.Errorf("missing messages: %v", m)
	}
}

// The language menu, built outside the template, escapes the page's
// address and links only to this server's own pages.
func TestLanguageMenuEscapesThePageAddress(t *testing.T) {
	rnd, _ := stepRenderer(t)
	render := func(switchURL string) string {
		w := httptest.NewRecorder()
		rnd.Page(w, http.StatusOK, "info", web.View{Title: "t", Locale: "pt-BR", SwitchURL: switchURL})
		return w.Body.String()
	}
	page := render(`/realms/test/login?session=a+b%26c&x="><script>x</script>`)
	for _, want := range []string{
		`<nav class="locales" aria-label="Idioma"><ul>`,
		`<li><a href="/realms/test/login?session=a+b%26c&amp;x=%22%3E%3Cscript%3Ex%3C%2Fscript%3E&amp;kc_locale=de" lang="de" hreflang="de">Deutsch</a></li>`,
		`<li><span aria-current="true" lang="pt-BR">Português</span></li>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(page, "<script>") {
		t.Error("the page's address was not escaped")
	}
	for _, other := range []string{"https://evil.example/login", "//evil.example/login", "javascript:alert(1)"} {
		if page := render(other); strings.Contains(page, "<nav") {
			t.Errorf("a menu linking to %s", other)
		}
	}
}

// BenchmarkLoginPage renders the page a magic-link login opens on (the
// renderer's cost per page: templates, messages, the locale switcher).
func BenchmarkLoginPage(b *testing.B) {
	benchMagicLinkPage(b, magiclink.PageEmail, url.Values{}, flows.Authenticator.Authenticate)
}

// BenchmarkSentPage renders the "check your email" page a login shows once
// its link is on its way (four forms, messages with arguments).
func BenchmarkSentPage(b *testing.B) {
	benchMagicLinkPage(b, magiclink.PageSent, url.Values{"email": {"ann@example.com"}}, flows.Authenticator.Action)
}

// benchMagicLinkPage renders the page the magic-link step answers form with.
func benchMagicLinkPage(b *testing.B, page string, form url.Values, step func(flows.Authenticator, context.Context, *flows.Context) (flows.Result, error)) {
	rnd, reg := stepRenderer(b)
	c := &flows.Context{Realm: "test", Session: &flows.Session{ID: "s", MaxAge: -1}, Users: flowstest.NewUsers(),
		Credentials: flowstest.NewCredentials(), Form: form, Now: time.Now, SameBrowser: true}
	r, err := step(withDefaults(b, reg["magic-link"]), context.Background(), c)
	if err != nil || r.Page != page {
		b.Fatalf("%+v %v", r, err)
	}
	v := web.View{Title: "Sign in", CSRF: "c", Action: "/a", Exec: "0", Data: r.Data, Locale: "en", SwitchURL: "/realms/test/login?client_id=app"}
	for b.Loop() {
		rnd.Page(httptest.NewRecorder(), http.StatusOK, r.Page, v)
	}
}

// BenchmarkLoginMail renders the sign-in mail (subject, text and HTML), as
// every link a login sends does.
func BenchmarkLoginMail(b *testing.B) {
	rnd, _ := stepRenderer(b)
	d := magiclink.MailData{RealmName: "Test", Email: "ann@example.com", URL: "https://id.example.com/realms/test/login-actions/magic-link?token=" + strings.Repeat("x", 43),
		Lifetime: 15 * time.Minute, Locale: "en", Type: "login", Brand: map[string]string{"Name": "Test"}}
	for b.Loop() {
		if _, _, _, err := rnd.Mail("en", "mail-login", d); err != nil {
			b.Fatal(err)
		}
	}
}
