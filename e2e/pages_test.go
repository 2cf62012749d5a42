package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"latchkey/e2e/testkit"
)

// Addresses nothing serves get a page in the visitor's language, not Go's
// plain text.
func TestUnknownAddressesGetAPage(t *testing.T) {
	s := start(t, opts{})
	base := strings.TrimSuffix(s.LK.Issuer, "/realms/test")
	for _, path := range []string{"/", "/realms/nope/account", "/realms/test/nothing-here"} {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("Accept-Language", "fr-FR,fr;q=0.9")
		p := testkit.NewClient(t).Do(req)
		if p.Status != http.StatusNotFound || !p.Has(`<html lang="fr">`) || !p.Has("<h1>Page introuvable</h1>") {
			t.Fatalf("%s: %d\n%s", path, p.Status, p.Body)
		}
	}
}

// A field's error is tied to the field, and a resend during the cooldown
// says that nothing was sent.
func TestErrorsAreTiedToTheirFieldsAndResendsSayWhatHappened(t *testing.T) {
	s := start(t, magic(nil))
	c := testkit.NewClient(t)
	p := s.requestLink(t, c, "not an address")
	if !p.Has(`aria-invalid="true" aria-describedby="email-error"`) || !p.Has(`id="email-error"`) {
		t.Fatalf("the email error is not tied to the field:\n%s", p.Body)
	}
	p = c.Submit(p, p.Form(t, "email"), map[string]string{"email": "alice@example.com"})
	s.SMTP.WaitFor(t, "alice@example.com", 1, 10*time.Second)
	p = c.Submit(p, p.FormWith(t, "action", "resend"), nil)
	if !p.Has("A link was sent moments ago. No new email was sent") || !p.Has(`role="status"`) || !p.Has(`data-countdown="`) {
		t.Fatalf("a resend in the cooldown:\n%s", p.Body)
	}
	if n := s.mailCount(t, "alice@example.com"); n != 1 {
		t.Fatalf("%d mails queued", n)
	}
}

// A used link is no dead end when its app has a home page.
func TestUsedLinkOffersTheWayBackToTheApp(t *testing.T) {
	s := startDoc(t, brandedRealm(brandedTheme(t)), magic(nil))
	c := testkit.NewClient(t)
	s.requestLink(t, c, "alice@example.com")
	link := s.SMTP.WaitFor(t, "alice@example.com", 1, 10*time.Second)[0].Link()
	if p := confirm(t, c, link); s.App.Last().Err != "" {
		t.Fatalf("login: %s\n%s", s.App.Last().Err, p.Body)
	}
	p := testkit.NewClient(t).Get(link)
	if p.Status != http.StatusGone || !p.Has(`<a class="button" href="https://reports.acme.example/">Back to Acme Reports</a>`) {
		t.Fatalf("used link page: %d\n%s", p.Status, p.Body)
	}
}

// A link nobody issued (mistyped, or cut short by a mail client) names no
// app, so its page offers to sign in again at the realm's account page.
func TestUnknownLinkOffersToSignInAgain(t *testing.T) {
	s := start(t, magic(nil))
	p := testkit.NewClient(t).Get(s.LK.URL + "/realms/test/login-actions/magic-link?token=" + strings.Repeat("A", 43))
	if p.Status != http.StatusGone && p.Status != http.StatusNotFound || !p.Has(`<a class="button" href="/realms/test/account">Sign in again</a>`) {
		t.Fatalf("unknown link page: %d\n%s", p.Status, p.Body)
	}
}
