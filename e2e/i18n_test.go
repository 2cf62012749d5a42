package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"latchkey/e2e/testkit"
)

// lang is the page's <html lang>.
func lang(t *testing.T, ctx context.Context) string { return attr(t, ctx, "html", "lang") }

// attr is an attribute of the first element sel matches.
func attr(t *testing.T, ctx context.Context, sel, name string) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(sel), name))
	if err != nil {
		t.Fatal(err)
	}
	return v.Value
}

// The app's ui_locales gives a German login page and a German mail; the
// app's kc_locale a French one.
func TestBrowserLoginAndMailFollowUILocales(t *testing.T) {
	ctx := testkit.Browser(t)
	s := start(t, magic(nil))
	do(t, ctx, chromedp.Navigate(s.App.LoginURL(url.Values{"ui_locales": {"de-CH en"}})), chromedp.WaitVisible(chromedp.ID("email")))
	if l, h := lang(t, ctx), text(t, ctx, "h1"); l != "de" || h != "Mit Ihrer E-Mail anmelden" {
		t.Fatalf("ui_locales=de-CH: lang %q, heading %q", l, h)
	}
	submitEmail(t, ctx, "alice@example.com")
	if h := text(t, ctx, "h1"); h != "Prüfen Sie Ihre E-Mails" {
		t.Fatalf("sent page: %q", h)
	}
	m := s.SMTP.WaitFor(t, "alice@example.com", 1, 10*time.Second)[0]
	if m.Subject != "Ihr Anmeldelink für Test Realm" || !strings.Contains(m.Text, "Hallo,") || !strings.Contains(m.Text, "15 Minuten") ||
		!strings.Contains(m.HTML, `lang="de"`) {
		t.Fatalf("the mail is not German: %q\n%s", m.Subject, m.Text)
	}
	// The link page, opened in the same browser, speaks the login's language.
	do(t, ctx, chromedp.Navigate(m.Link()), chromedp.WaitVisible(chromedp.ID("confirm")))
	if b := text(t, ctx, "#confirm"); b != "Weiter als alice@example.com" {
		t.Fatalf("confirm button: %q", b)
	}

	if _, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	do(t, ctx, chromedp.Navigate(s.App.LoginURL(url.Values{"kc_locale": {"fr"}})), chromedp.WaitVisible(chromedp.ID("email")))
	if l, h := lang(t, ctx), text(t, ctx, "h1"); l != "fr" || h != "Se connecter avec votre e-mail" {
		t.Fatalf("kc_locale=fr: lang %q, heading %q", l, h)
	}
}

// A browser set to Brazilian Portuguese, with nothing else to go by, gets
// Portuguese pages and a Portuguese mail; a choice on the switcher wins
// over the browser's language.
func TestBrowserFollowsTheBrowsersLanguage(t *testing.T) {
	ctx := testkit.Browser(t, chromedp.Flag("accept-lang", "pt-BR,pt,en"))
	s := start(t, magic(nil))
	do(t, ctx, chromedp.Navigate(s.App.LoginURL(nil)), chromedp.WaitVisible(chromedp.ID("email")))
	if l, h := lang(t, ctx), text(t, ctx, "h1"); l != "pt-BR" || h != "Entre com seu e-mail" {
		t.Fatalf("Accept-Language pt-BR: lang %q, heading %q", l, h)
	}
	submitEmail(t, ctx, "alice@example.com")
	if m := s.SMTP.WaitFor(t, "alice@example.com", 1, 10*time.Second)[0]; !strings.Contains(m.HTML, `lang="pt-BR"`) {
		t.Fatalf("the mail is not Portuguese: %q\n%s", m.Subject, m.Text)
	}
	// The resend cooldown counts down in Portuguese.
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](
		`document.getElementById('resend-wait').textContent === 'Você poderá pedir um novo link em 29 segundos.'`)); err != nil {
		t.Fatalf("the countdown did not count: %v", err)
	}
	do(t, ctx,
		chromedp.Click(chromedp.CSS(`nav.locales a[hreflang="de"]`)),
		chromedp.WaitReady(chromedp.CSS(`html[lang="de"] input[name="action"][value="resend"]`)),
	)
	if one := attr(t, ctx, "#resend-wait", "data-singular"); one != "Sie können in 1 Sekunde einen neuen Link anfordern." {
		t.Fatalf("the countdown's one-second sentence: %q", one)
	}
}

// The switcher changes the language, the choice sticks for the next login
// in this browser, and it is kept on the user: the ID token says so.
func TestBrowserLanguageSwitcherSticks(t *testing.T) {
	ctx := testkit.Browser(t)
	s := start(t, opts{})
	do(t, ctx, chromedp.Navigate(s.App.LoginURL(nil)), chromedp.WaitVisible(chromedp.ID("password")))
	if l := lang(t, ctx); l != "en" {
		t.Fatalf("default page lang %q", l)
	}
	do(t, ctx,
		chromedp.Click(chromedp.CSS(`nav.locales a[hreflang="es"]`)),
		chromedp.WaitVisible(chromedp.CSS(`html[lang="es"] #password`)),
	)
	if h, cur := text(t, ctx, "h1"), text(t, ctx, `nav.locales [aria-current="true"]`); h != "Iniciar sesión" || cur != "Español" {
		t.Fatalf("after choosing Español: heading %q, current %q", h, cur)
	}
	do(t, ctx,
		chromedp.SendKeys(chromedp.ID("email"), "alice@example.com"),
		chromedp.SendKeys(chromedp.ID("password"), alicePassword),
		chromedp.Click(chromedp.CSS("button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("result")),
	)
	if res := s.App.Last(); res.Err != "" || res.Claims["locale"] != "es" || res.UserInfo["locale"] != "es" {
		t.Fatalf("the chosen locale is not the user's: %q, claims %v, userinfo %v", res.Err, res.Claims, res.UserInfo)
	}
	// A new login in this browser (prompt=login: the form again) keeps it.
	do(t, ctx, chromedp.Navigate(s.App.LoginURL(url.Values{"prompt": {"login"}})), chromedp.WaitVisible(chromedp.ID("password")))
	if l := lang(t, ctx); l != "es" {
		t.Fatalf("the choice did not stick: lang %q", l)
	}
}

// Discovery names the locales; a minted link's locale is that of its mail.
func TestLocalesInDiscoveryAndMintedLinks(t *testing.T) {
	s := start(t, magic(nil))
	resp, err := http.Get(s.LK.Issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Locales []string `json:"ui_locales_supported"`
		Claims  []string `json:"claims_supported"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if !slices.Equal(doc.Locales, []string{"en", "de", "fr", "es", "pt-BR"}) || !slices.Contains(doc.Claims, "locale") {
		t.Fatalf("discovery: %v, %v", doc.Locales, doc.Claims)
	}
	c := testkit.NewClient(t)
	out := mint(t, s, map[string]any{"email": "alice@example.com", "clientId": "app", "redirectUri": s.App.RedirectURI(), "send": true, "locale": "pt-BR"})
	m := s.SMTP.WaitFor(t, "alice@example.com", 1, 10*time.Second)[0]
	if m.Subject != "Seu link de login para Test Realm" {
		t.Fatalf("minted link mail: %q (%v)", m.Subject, out)
	}
	if p := c.Get(m.Link()); !p.Has("Continuar como alice@example.com") || !p.Has(`<html lang="pt-BR">`) {
		t.Fatalf("minted link page:\n%s", p.Body)
	}
	code, bad := api(t, s, http.MethodPost, "/magic-links", apiKey, map[string]any{"email": "alice@example.com", "clientId": "app", "redirectUri": s.App.RedirectURI(), "locale": "tlh"})
	if code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(bad), "locale") {
		t.Fatalf("an unsupported locale: %d %v", code, bad)
	}
}
