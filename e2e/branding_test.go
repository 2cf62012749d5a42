package e2e

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"latchkey/e2e/testkit"
)

// brandedTheme writes a theme folder with a logo and a stylesheet.
func brandedTheme(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "static"), 0o755); err != nil {
		t.Fatal(err)
	}
	img := image.NewRGBA(image.Rect(0, 0, 64, 32))
	for x := range 64 {
		for y := range 32 {
			img.Set(x, y, color.RGBA{200, 30, 30, 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"acme-logo.png": buf.Bytes(), "acme.css": []byte("h1 { letter-spacing: 1px; }\n")} {
		if err := os.WriteFile(filepath.Join(dir, "static", name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func brandedRealm(theme string) string {
	doc := strings.Replace(realm, "branding:\n  displayName: Test Realm\n", `branding:
  displayName: Acme
  themeDir: `+theme+`
  logoUrl: acme-logo.png
  primaryColor: "#aa1122"
  backgroundColor: "#fafaf0"
  textColor: "#101820"
  fontFamily: Georgia, serif
  customCss: acme.css
  description: One link, no password.
  helperLinks:
    - label: Need an account?
      url: https://acme.example/signup
  supportEmail: help@acme.example
  privacyUrl: https://acme.example/privacy
  termsUrl: https://acme.example/terms
`, 1)
	doc = strings.Replace(doc, "  - clientId: app\n", "  - clientId: app\n    name: Acme Reports\n    baseUrl: https://reports.acme.example/\n    branding:\n      primaryColor: \"#0b6e4f\"\n", 1)
	return strings.Replace(doc, "  - clientId: confidential\n", "  - clientId: confidential\n    branding:\n      title: Welcome back to Acme\n", 1)
}

func computed(t *testing.T, ctx context.Context, sel, prop string) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector(`+jsString(sel)+`)).`+prop))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func jsString(s string) string { return "'" + strings.ReplaceAll(s, "'", `\'`) + "'" }

// A realm with full branding shows its logo, colours, texts, helper links
// and the client's name; the client's branding overrides the realm's.
func TestBrowserBrandedLoginPage(t *testing.T) {
	ctx := testkit.Browser(t)
	s := startDoc(t, brandedRealm(brandedTheme(t)), magic(nil))
	do(t, ctx, chromedp.Navigate(s.App.LoginURL(nil)), chromedp.WaitVisible(chromedp.ID("email")))
	if h, d := text(t, ctx, "h1"), text(t, ctx, "main p.muted"); h != "Sign in to Acme Reports" || d != "One link, no password." {
		t.Fatalf("heading %q, description %q", h, d)
	}
	if n := text(t, ctx, "header span"); n != "Acme" {
		t.Fatalf("header names %q", n)
	}
	// Wait for the image itself, not the page (which is already there).
	logoWidth, err := chromedp.Run(ctx, chromedp.Evaluate[int](`new Promise(ok => { const i = document.querySelector('header img');
		const w = () => ok(i.src.endsWith('/static/acme-logo.png') ? i.naturalWidth : -1);
		if (i.complete) w(); else { i.onload = w; i.onerror = () => ok(-2) } })`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if logoWidth != 64 {
		t.Fatalf("the logo did not load (natural width %d)", logoWidth)
	}
	for _, c := range []struct{ sel, prop, want string }{
		{"button[type=submit]", "backgroundColor", "rgb(11, 110, 79)"}, // the client's primaryColor
		{"body", "backgroundColor", "rgb(250, 250, 240)"},
		{"body", "color", "rgb(16, 24, 32)"},
		{"body", "fontFamily", "Georgia, serif"},
		{"h1", "letterSpacing", "1px"}, // customCss
	} {
		if got := computed(t, ctx, c.sel, c.prop); got != c.want {
			t.Errorf("%s %s = %q, want %q", c.sel, c.prop, got, c.want)
		}
	}
	if l := text(t, ctx, ".helper-links a"); l != "Need an account?" {
		t.Fatalf("helper link %q", l)
	}
	for _, sel := range []string{`footer a[href="mailto:help@acme.example"]`, `footer a[href="https://acme.example/privacy"]`, `footer a[href="https://acme.example/terms"]`, `link[rel=icon]`} {
		if n, _ := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSS(sel), chromedp.AtLeast(0))); len(n) != 1 {
			t.Errorf("no %s", sel)
		}
	}
	// Another client: its own title, the realm's colour.
	s.App.Connect(s.LK.Issuer, "confidential", "s3cret-for-the-confidential-client")
	// The page before was a login page too: wait for what only this one has.
	do(t, ctx, chromedp.Navigate(s.App.LoginURL(nil)), chromedp.WaitVisible(chromedp.Search(`//h1[not(contains(., "Acme Reports"))]`)))
	if h := text(t, ctx, "h1"); h != "Welcome back to Acme" {
		t.Fatalf("the confidential client's title: %q", h)
	}
	if got := computed(t, ctx, "button[type=submit]", "backgroundColor"); got != "rgb(170, 17, 34)" {
		t.Fatalf("the realm's primary colour: %q", got)
	}
}

// A minted link's settings brand its page and its mail.
func TestBrowserMintedLinkSettingsBrandPageAndMail(t *testing.T) {
	ctx := testkit.Browser(t)
	s := startDoc(t, brandedRealm(brandedTheme(t)), magic(nil))
	mint(t, s, map[string]any{"email": "alice@example.com", "send": true, "settings": map[string]any{
		"companyName": "Globex", "companyLogo": "https://cdn.globex.example/logo.png", "primaryColor": "#5500aa",
		"backgroundColor": "#eeeeff", "headerImage": "https://cdn.globex.example/header.jpg",
	}})
	m := s.SMTP.WaitFor(t, "alice@example.com", 1, 10*time.Second)[0]
	for _, want := range []string{"Globex", `src="https://cdn.globex.example/logo.png"`, "background:#5500aa", `src="https://cdn.globex.example/header.jpg"`} {
		if !strings.Contains(m.HTML, want) {
			t.Errorf("the mail's HTML lacks %s", want)
		}
	}
	if !strings.Contains(m.Text, m.Link()) || m.Link() == "" {
		t.Fatal("the text part lacks the link")
	}
	do(t, ctx, chromedp.Navigate(m.Link()), chromedp.WaitVisible(chromedp.ID("confirm")))
	if n := text(t, ctx, "header span"); n != "Globex" {
		t.Fatalf("the link page names %q", n)
	}
	if got := computed(t, ctx, "#confirm", "backgroundColor"); got != "rgb(85, 0, 170)" {
		t.Fatalf("the link page's button: %q", got)
	}
	src, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('header img').getAttribute('src')`))
	if err != nil {
		t.Fatal(err)
	}
	if src != "https://cdn.globex.example/logo.png" {
		t.Fatalf("logo %q", src)
	}

	// Bad settings are refused, field by field.
	code, out := api(t, s, http.MethodPost, "/magic-links", apiKey, map[string]any{"email": "alice@example.com", "clientId": "app",
		"redirectUri": s.App.URL + "/login", "settings": map[string]any{"primaryColor": "red; background:url(x)"}})
	if code != http.StatusBadRequest || out["field"] != "settings.primaryColor" {
		t.Fatalf("a bad colour: %d %v", code, out)
	}
}
