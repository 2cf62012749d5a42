package e2e

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"latchkey/e2e/testkit"
	"latchkey/server/testenv"
)

// axe runs axe-core (npm, installed by .ci/run) on the page the browser
// shows and fails on any WCAG 2.1 A or AA violation.
func axe(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	src, err := os.ReadFile(testenv.NPMPackageFile(t, "axe", "axe", "axe-core/axe.min.js"))
	if err != nil {
		t.Fatal(err)
	}
	// Evaluated through the DevTools protocol: the page's CSP (no inline
	// script) does not apply to it.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](string(src))); err != nil {
		t.Fatalf("%s: load axe: %v", page, err)
	}
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](`axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})
		.then(r => JSON.stringify(r.violations.map(v => ({id: v.id, help: v.help, nodes: v.nodes.map(n => n.html)}))))`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: axe: %v", page, err)
	}
	var violations []struct {
		ID, Help string
		Nodes    []string
	}
	if err := json.Unmarshal([]byte(out), &violations); err != nil {
		t.Fatal(err)
	}
	for _, v := range violations {
		t.Errorf("%s: %s (%s): %s", page, v.ID, v.Help, strings.Join(v.Nodes, " | "))
	}
}

// Every page of the login, link, profile, error, logout and account flows
// passes axe-core's WCAG 2.1 AA rules, in English and in German.
func TestBrowserPagesPassAxe(t *testing.T) {
	for _, locale := range []string{"en", "de"} {
		t.Run(locale, func(t *testing.T) {
			ctx := testkit.Browser(t)
			s := start(t, magic(map[string]string{"forceCreateUser": "true", "updateProfileOnCreate": "true"}))
			q := url.Values{"ui_locales": {locale}}
			do(t, ctx, chromedp.Navigate(s.App.LoginURL(q)), chromedp.WaitVisible(chromedp.ID("email")))
			axe(t, ctx, "email form")
			do(t, ctx, chromedp.SendKeys(chromedp.ID("email"), "no-at-sign"), chromedp.Submit(chromedp.ID("email")),
				chromedp.WaitVisible(chromedp.ID("email-error")))
			axe(t, ctx, "email form with an error")
			do(t, ctx, chromedp.SetValue(chromedp.ID("email"), "erin@example.com"), chromedp.Submit(chromedp.ID("email")),
				chromedp.WaitReady(chromedp.CSS(`input[name="action"][value="resend"]`)))
			axe(t, ctx, "check your email")
			link := s.SMTP.WaitFor(t, "erin@example.com", 1, 10*time.Second)[0].Link()
			do(t, ctx, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("confirm")))
			axe(t, ctx, "link confirm")
			do(t, ctx, chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.ID("firstName")))
			axe(t, ctx, "profile")
			do(t, ctx, chromedp.SendKeys(chromedp.ID("firstName"), "Erin"), chromedp.SendKeys(chromedp.ID("lastName"), "Lee"),
				chromedp.Submit(chromedp.ID("firstName")), chromedp.WaitVisible(chromedp.ID("result")))
			do(t, ctx, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("p.error")))
			axe(t, ctx, "used link")
			do(t, ctx, chromedp.Navigate(s.LK.Issuer+"/protocol/openid-connect/logout?kc_locale="+locale), chromedp.WaitVisible(chromedp.CSS(`form[action$="/logout"] button`)))
			axe(t, ctx, "logout confirm")
			do(t, ctx, chromedp.Navigate(s.LK.Issuer+"/nothing-here"), chromedp.WaitVisible(chromedp.CSS("p.error")))
			axe(t, ctx, "not found")
			if _, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
				t.Fatal(err)
			}
			do(t, ctx, chromedp.Navigate(s.LK.Issuer+"/account?kc_locale="+locale), chromedp.WaitVisible(chromedp.ID("email")),
				chromedp.SendKeys(chromedp.ID("email"), "erin@example.com"), chromedp.Submit(chromedp.ID("email")),
				chromedp.WaitReady(chromedp.CSS(`input[name="action"][value="resend"]`)))
			link = s.SMTP.WaitFor(t, "erin@example.com", 2, 10*time.Second)[1].Link()
			do(t, ctx, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("confirm")),
				chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.CSS(`form[action$="/account/logout"]`)))
			axe(t, ctx, "account")
		})
	}
}

// The pages of the device gap (code errors, the choice on another device,
// the numbers, approved, wrong number, declined) pass axe too, in English
// and German.
func TestBrowserDeviceGapPagesPassAxe(t *testing.T) {
	for _, locale := range []string{"en", "de"} {
		t.Run(locale, func(t *testing.T) {
			laptop, phone := testkit.Browser(t), testkit.Browser(t)
			s := start(t, magic(nil))
			login := func(n int) (testkit.Message, int) {
				q := url.Values{"ui_locales": {locale}, "prompt": {"login"}}
				do(t, laptop, chromedp.Navigate(s.App.LoginURL(q)), chromedp.WaitVisible(chromedp.ID("email")),
					chromedp.SetValue(chromedp.ID("email"), "alice@example.com"), chromedp.Submit(chromedp.ID("email")),
					chromedp.WaitVisible(chromedp.ID("code")))
				return s.SMTP.WaitFor(t, "alice@example.com", n, 10*time.Second)[n-1], matchNumber(t, laptop)
			}
			m, n := login(1)
			axe(t, laptop, "check your email, with code and number")
			do(t, laptop, chromedp.SendKeys(chromedp.ID("code"), "12"), chromedp.Submit(chromedp.ID("code")), chromedp.WaitVisible(chromedp.ID("code-error")))
			axe(t, laptop, "code error")
			do(t, phone, chromedp.Navigate(m.Link()), chromedp.WaitVisible(chromedp.ID("approve")))
			axe(t, phone, "sign in here or approve")
			do(t, phone, chromedp.Click(chromedp.ID("approve")), chromedp.WaitVisible(chromedp.CSS("button[name=number]")))
			axe(t, phone, "pick the number")
			do(t, phone, chromedp.Click(chromedp.CSS(`button[name=number][value="`+strconv.Itoa(n)+`"]`)), chromedp.WaitVisible(chromedp.ID("notice")))
			axe(t, phone, "approved")
			do(t, laptop, chromedp.WaitVisible(chromedp.ID("result")))

			m, n = login(2)
			openToNumbers(t, phone, m.Link())
			do(t, phone, chromedp.Click(chromedp.CSS(`button[name=number][value="`+wrongChoice(t, phone, n)+`"]`)), chromedp.WaitVisible(chromedp.ID("notice")))
			axe(t, phone, "wrong number")
			do(t, laptop, chromedp.WaitVisible(chromedp.CSS(`p.error[role="alert"]`)))
			axe(t, laptop, "the link ended by a wrong number")

			m, _ = login(3)
			do(t, phone, chromedp.Navigate(m.Link()), chromedp.WaitVisible(chromedp.ID("decline")), chromedp.Click(chromedp.ID("decline")),
				chromedp.WaitVisible(chromedp.ID("notice")))
			axe(t, phone, "declined")
			do(t, laptop, chromedp.WaitVisible(chromedp.CSS(`p.error[role="alert"]`)))
			axe(t, laptop, "declined on the other device")
		})
	}
}
