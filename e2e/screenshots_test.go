package e2e

import (
	"context"
	"flag"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"latchkey/e2e/testkit"
)

var updateScreenshots = flag.Bool("update", false, "write docs/screenshots/ (go test ./e2e -run TestScreenshots -update)")

// TestScreenshots renders the main pages, desktop and phone (390x844), in
// English and German, into docs/screenshots/, shown in the README. It runs
// only with -update: the pictures are documentation, not assertions.
func TestScreenshots(t *testing.T) {
	if !*updateScreenshots {
		t.Skip("documentation: run with -update to write docs/screenshots/")
	}
	dir := filepath.Join("..", "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := testkit.Browser(t)
	s := startDoc(t, brandedRealm(brandedTheme(t)), magic(map[string]string{"forceCreateUser": "true", "updateProfileOnCreate": "true"}))
	shot := func(ctx context.Context, name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sent := 0
	for _, size := range []struct {
		name string
		w, h int64
	}{{"desktop", 1280, 800}, {"phone", 390, 844}} {
		for _, locale := range []string{"en", "de"} {
			if _, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
				t.Fatal(err)
			}
			do(t, ctx, chromedp.EmulateViewport(size.w, size.h))
			do(t, ctx, chromedp.Navigate(s.App.LoginURL(url.Values{"ui_locales": {locale}})), chromedp.WaitVisible(chromedp.ID("email")))
			shot(ctx, "email-"+locale+"-"+size.name)
			do(t, ctx, chromedp.SendKeys(chromedp.ID("email"), "alice@example.com"), chromedp.Submit(chromedp.ID("email")),
				chromedp.WaitReady(chromedp.CSS(`input[name="action"][value="resend"]`)))
			shot(ctx, "sent-"+locale+"-"+size.name)
			sent++
			link := s.SMTP.WaitFor(t, "alice@example.com", sent, 10*time.Second)[sent-1].Link()
			do(t, ctx, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("confirm")))
			shot(ctx, "confirm-"+locale+"-"+size.name)
			do(t, ctx, chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.ID("result")),
				chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("p.error")))
			shot(ctx, "used-link-"+locale+"-"+size.name)
			// The account page, reached through the browser's session.
			do(t, ctx, chromedp.Navigate(s.LK.Issuer+"/account"), chromedp.WaitVisible(chromedp.CSS(`form[action$="/account/logout"]`)))
			if locale != "en" { // the browser speaks English: the person picks German on the switcher
				do(t, ctx, chromedp.Click(chromedp.CSS(`nav.locales a[hreflang="`+locale+`"]`)),
					chromedp.WaitVisible(chromedp.CSS(`html[lang="`+locale+`"] form[action$="/account/logout"]`)))
			}
			shot(ctx, "account-"+locale+"-"+size.name)

			// A new person fills in the profile.
			if _, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
				t.Fatal(err)
			}
			dana := "dana-" + locale + "-" + size.name + "@example.com"
			do(t, ctx, chromedp.Navigate(s.App.LoginURL(url.Values{"ui_locales": {locale}, "login_hint": {dana}})), chromedp.WaitVisible(chromedp.ID("email")),
				chromedp.Submit(chromedp.ID("email")), chromedp.WaitReady(chromedp.CSS(`input[name="action"][value="resend"]`)))
			link = s.SMTP.WaitFor(t, dana, 1, 10*time.Second)[0].Link()
			do(t, ctx, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("confirm")),
				chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.ID("firstName")))
			shot(ctx, "profile-"+locale+"-"+size.name)

			// The link opened on a phone that did not start the login.
			if size.name != "phone" {
				continue
			}
			phone := testkit.Browser(t)
			do(t, phone, chromedp.EmulateViewport(size.w, size.h))
			erin := "erin-" + locale + "@example.com"
			do(t, ctx, chromedp.Navigate(s.App.LoginURL(url.Values{"ui_locales": {locale}, "login_hint": {erin}})), chromedp.WaitVisible(chromedp.ID("email")),
				chromedp.Submit(chromedp.ID("email")), chromedp.WaitVisible(chromedp.ID("code")))
			link = s.SMTP.WaitFor(t, erin, 1, 10*time.Second)[0].Link()
			do(t, phone, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("approve")))
			shot(phone, "other-device-"+locale+"-phone")
			do(t, phone, chromedp.Click(chromedp.ID("approve")), chromedp.WaitVisible(chromedp.CSS("button[name=number]")))
			shot(phone, "numbers-"+locale+"-phone")
		}
	}
}
