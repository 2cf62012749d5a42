package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"latchkey/e2e/testkit"
	"latchkey/server/testenv"
)

// oauth2Proxy returns the oauth2-proxy binary .ci/run builds from the Go
// module proxy (LATCHKEY_OAUTH2_PROXY, or e2e/bin/oauth2-proxy).
func oauth2Proxy(t *testing.T) string {
	t.Helper()
	p := os.Getenv("LATCHKEY_OAUTH2_PROXY")
	if p == "" {
		p, _ = filepath.Abs(filepath.Join("bin", "oauth2-proxy"))
	}
	if _, err := os.Stat(p); err != nil {
		testenv.Unavailable(t, "oauth2-proxy", p+" is not built (see .ci/run)")
	}
	return p
}

// The real oauth2-proxy v7 in Keycloak mode (--provider=keycloak-oidc) in
// front of an app: a user holding the allowed realm role gets through, one
// without it is refused, the session refreshes, and its back-channel
// sign-out (--backend-logout-url, called from oauth2-proxy's server with the
// id_token and no cookie) ends the Latchkey session.
func TestOAuth2ProxyKeycloakMode(t *testing.T) {
	bin := oauth2Proxy(t)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.Header.Get("X-Forwarded-Email"))
	}))
	t.Cleanup(upstream.Close)
	addr := testkit.FreePort(t)
	proxyURL := "http://" + addr
	doc := strings.Replace(realm, "  - clientId: confidential\n", "  - clientId: proxy\n    secret: proxy-secret-0123456789-0123456789\n"+
		"    redirectUris: ["+proxyURL+"/oauth2/callback]\n  - clientId: confidential\n", 1)
	doc = strings.Replace(doc, "users:\n", "roles: [editor]\nusers:\n  - email: bob@example.com\n    emailVerified: true\n    passwordHash: \"{{HASH}}\"\n", 1)
	doc = strings.Replace(doc, "    emailVerified: true\n    passwordHash: \"{{HASH}}\"\n  - email: newbie", "    emailVerified: true\n    passwordHash: \"{{HASH}}\"\n    roles: [editor]\n  - email: newbie", 1)
	s := startDoc(t, doc, opts{})

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin,
		"--provider=keycloak-oidc", "--oidc-issuer-url="+s.LK.Issuer, "--client-id=proxy",
		"--client-secret=proxy-secret-0123456789-0123456789", "--redirect-url="+proxyURL+"/oauth2/callback",
		"--upstream="+upstream.URL, "--http-address="+addr, "--email-domain=*", "--allowed-role=editor",
		"--cookie-secret=0123456789abcdef0123456789abcdef", "--cookie-secure=false", "--cookie-refresh=1s",
		"--skip-provider-button=true", "--code-challenge-method=S256",
		"--backend-logout-url="+s.LK.Issuer+"/protocol/openid-connect/logout?id_token_hint={id_token}")
	logs := &testkit.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		// Only oauth2-proxy answers 200 there: anything else on the port is
		// not it.
		if resp, err := http.Get(proxyURL + "/ping"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("oauth2-proxy did not start:\n%s", logs)
		}
	}
	signIn := func(email string) (*testkit.Client, *testkit.Page) {
		c := testkit.NewClient(t)
		p := c.Get(proxyURL + "/")
		p = c.Submit(p, p.Form(t, "password"), map[string]string{"email": email, "password": alicePassword})
		return c, p
	}

	alice, p := signIn("alice@example.com")
	if p.Status != http.StatusOK || p.Body != "hello alice@example.com" {
		t.Fatalf("alice (editor) through the proxy: %d %q\n%s", p.Status, p.Body, logs)
	}
	if _, p := signIn("bob@example.com"); p.Status != http.StatusForbidden {
		t.Fatalf("bob (no role) through the proxy: %d %q", p.Status, p.Body)
	}

	// Past --cookie-refresh, the proxy refreshes the session with the
	// refresh token. (oauth2-proxy measures a session's age in whole
	// seconds: two of them make it older than 1s for certain.)
	time.Sleep(2100 * time.Millisecond)
	if p := alice.Get(proxyURL + "/"); p.Body != "hello alice@example.com" {
		t.Fatalf("after the refresh window: %d %q\n%s", p.Status, p.Body, logs)
	}
	if !strings.Contains(logs.String(), "Refreshing session") || strings.Contains(logs.String(), "Unable to refresh session") {
		t.Fatalf("oauth2-proxy did not refresh:\n%s", logs)
	}

	// Sign out through the proxy: its server calls Latchkey's logout with
	// the id_token and no cookie; the browser's Latchkey session ends.
	resp, err := alice.HTTP.Get(proxyURL + "/oauth2/sign_out")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	alice.Get(s.App.LoginURL(url.Values{"prompt": {"none"}}))
	if res := s.App.Last(); res.Err != "login_required" {
		t.Fatalf("the Latchkey session survived oauth2-proxy's sign-out: %+v\n%s", res, logs)
	}
}
