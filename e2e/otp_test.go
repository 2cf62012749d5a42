package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"latchkey/e2e/testkit"
)

// otpFlows adds the two shapes of a TOTP second factor to the test realm:
// Keycloak's "browser with conditional OTP" (asked only of users who set it
// up) and a flow where it is REQUIRED of everyone. The long period keeps a
// code valid for the whole test, so "already used" is what a replay meets.
const otpFlows = `  browser-conditional-otp:
    - authenticator: cookie
      requirement: ALTERNATIVE
    - flow: forms
      requirement: ALTERNATIVE
      executions:
        - authenticator: magic-link
        - flow: conditional-otp
          requirement: CONDITIONAL
          executions:
            - authenticator: condition-user-configured
            - authenticator: otp
              config: {period: 5m, maxAttempts: 3}
  browser-required-otp:
    - authenticator: cookie
      requirement: ALTERNATIVE
    - flow: forms
      requirement: ALTERNATIVE
      executions:
        - authenticator: magic-link
        - authenticator: otp
          config: {period: 5m, maxAttempts: 3}
bindings:`

func startOTP(t *testing.T, binding string) *setup {
	doc := strings.Replace(realm, "bindings:", otpFlows, 1)
	doc = strings.Replace(doc, "users:\n", `users:
  - email: bob@example.com
    emailVerified: true
  - email: carol@example.com
    emailVerified: true
    requiredActions: [CONFIGURE_TOTP]
`, 1)
	return startDoc(t, doc, opts{binding: binding})
}

// linkLogin signs in by magic link in a browser with no cookies, up to the
// first page after the link: the nth mail to email carries the link.
func linkLogin(t *testing.T, ctx context.Context, s *setup, email string, nth int, next string) {
	t.Helper()
	if _, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	do(t, ctx,
		chromedp.Navigate(s.App.LoginURL(nil)), chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), email),
		chromedp.Click(chromedp.CSS("button[type=submit]")),
		chromedp.WaitReady(chromedp.CSS(`input[name="action"][value="resend"]`)),
	)
	link := s.SMTP.WaitFor(t, email, nth, 10*time.Second)[nth-1].Link()
	do(t, ctx, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("confirm")),
		chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(next))
}

// codeAt is the code an authenticator app with this key shows at t.
func codeAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	code, err := totp.GenerateCodeCustom(strings.ReplaceAll(secret, " ", ""), at, totp.ValidateOpts{Period: 300, Digits: 6})
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// nextCode is a code of the next period: valid (lookAround 1) and never
// used before, whatever code the current period already spent.
func nextCode(t *testing.T, secret string) string {
	return codeAt(t, secret, time.Now().Add(5*time.Minute))
}

func submitCode(t *testing.T, ctx context.Context, code, button, next string) {
	t.Helper()
	do(t, ctx, chromedp.SendKeys(chromedp.ID("otp"), code),
		chromedp.Click(chromedp.ID(button)), chromedp.WaitVisible(next))
}

func loggedInAs(t *testing.T, ctx context.Context, s *setup, email string, amr string) {
	t.Helper()
	if r := text(t, ctx, "#result"); r != "Logged in as "+email {
		t.Fatalf("app shows %q", r)
	}
	res := s.App.Last()
	methods, _ := res.Claims["amr"].([]any)
	var got []string
	for _, m := range methods {
		got = append(got, m.(string))
	}
	if res.Err != "" || res.Claims["email"] != email || strings.Join(got, " ") != amr {
		t.Fatalf("result %q, claims %v", res.Err, res.Claims)
	}
}

// Conditional OTP: carol is made to set up an app (required action), then
// is asked for its code at every login; a replayed code and too many wrong
// codes are refused; bob, who has no app, is never asked.
func TestBrowserConditionalOTP(t *testing.T) {
	ctx := testkit.Browser(t)
	s := startOTP(t, "browser-conditional-otp")

	linkLogin(t, ctx, s, "bob@example.com", 1, "#result")
	loggedInAs(t, ctx, s, "bob@example.com", "email")

	// Set up: the QR code is rendered by the server, the key shown as text.
	linkLogin(t, ctx, s, "carol@example.com", 1, "#totp-secret")
	secret := text(t, ctx, "#totp-secret")
	if src, _ := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.ID("totp-qr"), "src")); !strings.HasPrefix(src.Value, "data:image/png;base64,") {
		t.Fatalf("QR code src %.40q", src.Value)
	}
	submitCode(t, ctx, "000000", "save-totp", "#otp-error")
	first := codeAt(t, secret, time.Now())
	submitCode(t, ctx, first, "save-totp", "#result")
	loggedInAs(t, ctx, s, "carol@example.com", "email otp")

	// Next login: magic link, then the app's code. The set-up code again is a replay.
	linkLogin(t, ctx, s, "carol@example.com", 2, "#verify-otp")
	submitCode(t, ctx, first, "verify-otp", `//p[@id="otp-error"][contains(., "already used")][contains(., "2 attempts left")]`)
	submitCode(t, ctx, nextCode(t, secret), "verify-otp", "#result")
	loggedInAs(t, ctx, s, "carol@example.com", "email otp")

	// maxAttempts (3) wrong codes end the attempt.
	linkLogin(t, ctx, s, "carol@example.com", 3, "#verify-otp")
	submitCode(t, ctx, "000000", "verify-otp", `//p[@id="otp-error"][contains(., "2 attempts left")]`)
	submitCode(t, ctx, "000001", "verify-otp", `//p[@id="otp-error"][contains(., "1 attempt left")]`)
	submitCode(t, ctx, "000002", "verify-otp", `//*[contains(., "Too many wrong codes")]`)
	if n, _ := chromedp.Run(ctx, chromedp.Nodes(chromedp.ID("otp"), chromedp.AtLeast(0))); len(n) != 0 {
		t.Fatal("the code form is still offered after maxAttempts wrong codes")
	}
	if got := len(s.App.Results()); got != 3 {
		t.Fatalf("%d logins reached the app, want 3", got)
	}
}

// REQUIRED OTP: a user without an app sets one up before the login
// completes.
func TestBrowserRequiredOTPMakesUsersSetItUp(t *testing.T) {
	ctx := testkit.Browser(t)
	s := startOTP(t, "browser-required-otp")
	linkLogin(t, ctx, s, "bob@example.com", 1, "#totp-secret")
	secret := text(t, ctx, "#totp-secret")
	// The app lists the account under the realm's display name.
	if alt, _ := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.ID("totp-qr"), "alt")); !strings.Contains(alt.Value, "bob@example.com at Test Realm") {
		t.Fatalf("QR code alt %q", alt.Value)
	}
	submitCode(t, ctx, codeAt(t, secret, time.Now()), "save-totp", "#result")
	loggedInAs(t, ctx, s, "bob@example.com", "email otp")

	// The key is stored sealed: the database row does not hold it.
	bob, err := s.LK.Server.Store.UserByEmail(t.Context(), "bob@example.com")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := s.LK.Server.Store.CredentialsOf(t.Context(), bob.ID, "otp")
	plain := strings.ReplaceAll(secret, " ", "")
	if err != nil || len(rows) != 1 || !rows[0].Confirmed || rows[0].Secret == "" || strings.Contains(rows[0].Secret, plain) {
		t.Fatalf("stored credential %+v, %v", rows, err)
	}

	linkLogin(t, ctx, s, "bob@example.com", 2, "#verify-otp")
	submitCode(t, ctx, nextCode(t, secret), "verify-otp", "#result")
	loggedInAs(t, ctx, s, "bob@example.com", "email otp")
}
