package e2e

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"latchkey/e2e/testkit"
	"latchkey/server/testenv"
)

// spaPage is an app written as keycloak-js's documentation shows: default
// init options (check-login iframe on, PKCE, fragment response mode).
const spaPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>SPA</title></head>
<body><p id="state">loading</p><pre id="result"></pre>
<script type="module">
import Keycloak from "/keycloak.js";
const cfg = await (await fetch("/config.json")).json();
const kc = new Keycloak({ url: cfg.url, realm: cfg.realm, clientId: "spa" });
window.kc = kc;
const show = (state, result) => {
  document.getElementById("result").textContent = JSON.stringify(result || {});
  document.getElementById("state").textContent = state;
};
kc.onAuthLogout = () => show("logged-out");
try {
  const checkSSO = location.search.includes("check-sso");
  const authenticated = await kc.init(checkSSO
    ? { onLoad: "check-sso", silentCheckSsoRedirectUri: location.origin + "/silent-check-sso.html" }
    : { onLoad: "login-required" });
  if (!authenticated) {
    show("ready", { authenticated });
    throw null;
  }
  show("ready", { authenticated, email: kc.tokenParsed.email, sid: kc.sessionId, refreshTyp: kc.refreshTokenParsed.typ, viewer: kc.hasRealmRole("viewer") });
} catch (e) {
  if (e !== null) show("error: " + (e && e.message ? e.message : e));
}
</script></body></html>`

// silentCheckSSO is the page keycloak-js's documentation asks apps to serve
// for check-sso: it hands the authorization response to the parent page.
const silentCheckSSO = `<!doctype html><html><body><script>parent.postMessage(location.href, location.origin);</script></body></html>`

// spaServer serves the app: its page, keycloak-js, the silent check-sso
// page and its configuration (the issuer, known once Latchkey runs).
func spaServer(t *testing.T, lib string, issuer *atomic.Value) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(spaPage))
	})
	mux.HandleFunc("GET /silent-check-sso.html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(silentCheckSSO))
	})
	mux.HandleFunc("GET /keycloak.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		http.ServeFile(w, r, lib)
	})
	mux.HandleFunc("GET /config.json", func(w http.ResponseWriter, r *http.Request) {
		iss := issuer.Load().(string)
		base, realm, _ := strings.Cut(iss, "/realms/")
		_ = json.NewEncoder(w).Encode(map[string]string{"url": base, "realm": realm})
	})
	spa := httptest.NewServer(mux)
	t.Cleanup(spa.Close)
	return spa
}

// spaRealm is the test realm with the keycloak-js app as client spa.
func spaRealm(spa *httptest.Server) string {
	client := "  - clientId: spa\n    redirectUris: [\"" + spa.URL + "/\", \"" + spa.URL + "/?check-sso\", \"" + spa.URL + "/silent-check-sso.html\"]\n" +
		"    postLogoutRedirectUris: [" + spa.URL + "/]\n    webOrigins: [\"+\"]\n"
	doc := strings.Replace(realm, "  - clientId: confidential\n", client+"  - clientId: confidential\n", 1)
	return strings.Replace(doc, "users:\n", "roles: [viewer]\ndefaultRoles: [viewer]\nusers:\n", 1)
}

// The real keycloak-js (npm keycloak-js 26.x, installed by .ci/run) logs in
// through the magic link with default init options, decodes the tokens,
// refreshes, loads the user profile and logs out.
func TestKeycloakJSLogsInThroughTheMagicLink(t *testing.T) {
	lib := testenv.NPMPackageFile(t, "keycloak-js", "keycloakjs", "keycloak-js/lib/keycloak.js")
	ctx := testkit.Browser(t)
	var issuer atomic.Value
	spa := spaServer(t, lib, &issuer)
	doc := spaRealm(spa)
	s := startDoc(t, doc, magic(nil))
	issuer.Store(s.LK.Issuer)

	// login signs in through the n-th magic link mailed to alice and waits
	// for keycloak-js's verdict on the app's page.
	login := func(n int) {
		t.Helper()
		do(t, ctx, chromedp.WaitVisible(chromedp.ID("email")))
		do(t, ctx, chromedp.SendKeys(chromedp.ID("email"), "alice@example.com"), chromedp.Click(chromedp.CSS("button[type=submit]")))
		link := s.SMTP.WaitFor(t, "alice@example.com", n, 10*time.Second)[n-1].Link()
		do(t, ctx, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("confirm")), chromedp.Click(chromedp.ID("confirm")))
		// The app's own page (only it has #state), then keycloak-js's verdict.
		do(t, ctx, chromedp.WaitVisible(chromedp.ID("state")))
		do(t, ctx, chromedp.Poll[chromedp.Void](`document.getElementById("state").textContent !== "loading"`))
		if st := text(t, ctx, "#state"); st != "ready" {
			t.Fatalf("keycloak-js init: %s", st)
		}
	}
	do(t, ctx, chromedp.Navigate(spa.URL+"/"))
	login(1)
	var res struct {
		Authenticated bool
		Email, Sid    string
		RefreshTyp    string
		Viewer        bool
	}
	if err := json.Unmarshal([]byte(text(t, ctx, "#result")), &res); err != nil {
		t.Fatal(err)
	}
	if !res.Authenticated || res.Email != "alice@example.com" || res.Sid == "" || res.RefreshTyp != "Refresh" || !res.Viewer {
		t.Fatalf("after init: %+v", res)
	}

	// updateToken(-1) refreshes now (after asking the status iframe);
	// loadUserProfile reads the account JSON with the bearer token.
	refreshed, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`kc.updateToken(-1)`, chromedp.EvalAwaitPromise))
	if err != nil || !refreshed {
		t.Fatalf("updateToken(-1): %v %v", refreshed, err)
	}
	email, err := chromedp.Run(ctx, chromedp.Evaluate[string](`kc.loadUserProfile().then(p => p.email)`, chromedp.EvalAwaitPromise))
	if err != nil || email != "alice@example.com" {
		t.Fatalf("loadUserProfile: %q %v", email, err)
	}

	// logout() ends the Latchkey session: back at the app, login-required
	// lands on Latchkey's email page again.
	do(t, ctx, chromedp.Evaluate[chromedp.Void](`kc.logout()`))
	do(t, ctx, chromedp.WaitVisible(chromedp.ID("email")))
	if loc := location(t, ctx); !strings.HasPrefix(loc, s.LK.Issuer) {
		t.Fatalf("after logout, at %s, want Latchkey's login page", loc)
	}

	// Signed in again, the session status iframe notices a sign-out in
	// another tab.
	login(2)
	idToken, err := chromedp.Run(ctx, chromedp.Evaluate[string](`kc.idToken`))
	if err != nil {
		t.Fatal(err)
	}
	other := testkit.NewTab(t, ctx)
	do(t, other, chromedp.Navigate(s.LK.Issuer+"/protocol/openid-connect/logout?id_token_hint="+url.QueryEscape(idToken)),
		chromedp.WaitVisible(chromedp.CSS("main")))
	if h := text(t, other, "h1"); h != "Signed out" {
		t.Fatalf("sign-out in the other tab: %q", h)
	}
	// keycloak-js clears its tokens (onAuthLogout) and, the app being
	// login-required, sends the tab straight to Latchkey's login page: the
	// state only that outcome has (the app's own "logged-out" flashes too
	// briefly to wait for).
	do(t, ctx, chromedp.WaitVisible(chromedp.ID("email")))
	if loc := location(t, ctx); !strings.HasPrefix(loc, s.LK.Issuer) {
		t.Fatalf("after the sign-out in another tab, at %s, want Latchkey's login page", loc)
	}
}

// check-sso with silentCheckSsoRedirectUri: without a session the app
// stays signed out (no page of Latchkey shown); once signed in, a fresh
// load of the app is signed in silently, in a hidden iframe.
func TestKeycloakJSCheckSSO(t *testing.T) {
	lib := testenv.NPMPackageFile(t, "keycloak-js", "keycloakjs", "keycloak-js/lib/keycloak.js")
	ctx := testkit.Browser(t)
	var issuer atomic.Value
	spa := spaServer(t, lib, &issuer)
	s := startDoc(t, spaRealm(spa), magic(nil))
	issuer.Store(s.LK.Issuer)
	verdict := func() string {
		t.Helper()
		do(t, ctx, chromedp.WaitVisible(chromedp.ID("state")))
		do(t, ctx, chromedp.Poll[chromedp.Void](`document.getElementById("state").textContent !== "loading"`))
		return text(t, ctx, "#state") + " " + text(t, ctx, "#result")
	}
	do(t, ctx, chromedp.Navigate(spa.URL+"/?check-sso"))
	if v := verdict(); v != `ready {"authenticated":false}` {
		t.Fatalf("check-sso without a session: %s", v)
	}
	// Sign in (login-required), then load the app again in check-sso mode.
	do(t, ctx, chromedp.Navigate(spa.URL+"/"), chromedp.WaitVisible(chromedp.ID("email")))
	do(t, ctx, chromedp.SendKeys(chromedp.ID("email"), "alice@example.com"), chromedp.Click(chromedp.CSS("button[type=submit]")))
	link := s.SMTP.WaitFor(t, "alice@example.com", 1, 10*time.Second)[0].Link()
	do(t, ctx, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("confirm")), chromedp.Click(chromedp.ID("confirm")))
	if v := verdict(); !strings.HasPrefix(v, `ready {"authenticated":true`) {
		t.Fatalf("login-required: %s", v)
	}
	do(t, ctx, chromedp.Navigate(spa.URL+"/?check-sso"))
	if v := verdict(); !strings.HasPrefix(v, `ready {"authenticated":true,"email":"alice@example.com"`) {
		t.Fatalf("check-sso with a session: %s", v)
	}
	if loc := location(t, ctx); !strings.HasPrefix(loc, spa.URL+"/?check-sso") {
		t.Fatalf("check-sso left the app's page: %s", loc)
	}
}
