package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"latchkey/e2e/testkit"
	"latchkey/server"
)

// Access tokens are JWTs (RFC 9068) signed like ID tokens, with Keycloak's
// claims, verified here by go-oidc against the published keys; they keep
// working across a key rotation, and revoking the grant ends them for
// userinfo and introspection although the JWT itself has not expired.
func TestJWTAccessTokens(t *testing.T) {
	s := start(t, opts{})
	s.App.Connect(s.LK.Issuer, "confidential", "s3cret-for-the-confidential-client")
	s.passwordLogin(t, testkit.NewClient(t), nil, "alice@example.com", alicePassword)
	tok := s.App.Last().Token
	ctx := context.Background()
	verifier := s.App.Provider().VerifierContext(ctx, &oidc.Config{ClientID: "confidential"})
	at, err := verifier.Verify(ctx, tok.AccessToken)
	if err != nil {
		t.Fatalf("access token does not verify as a JWT of the issuer for the client: %v", err)
	}
	var claims map[string]any
	if err := at.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"iss": s.LK.Issuer, "azp": "confidential", "client_id": "confidential", "typ": "Bearer",
		"preferred_username": "alice@example.com", "email": "alice@example.com", "email_verified": true,
		"given_name": "Alice", "family_name": "Example",
	} {
		if claims[k] != want {
			t.Errorf("claim %s = %v, want %v", k, claims[k], want)
		}
	}
	for _, k := range []string{"sub", "exp", "iat", "jti", "sid", "session_state"} {
		if claims[k] == nil || claims[k] == "" {
			t.Errorf("claim %s missing: %v", k, claims)
		}
	}
	if sc, _ := claims["scope"].(string); !strings.Contains(" "+sc+" ", " openid ") {
		t.Errorf("scope claim %v, want a space-separated string with openid", claims["scope"])
	}
	if claims["sid"] != claims["session_state"] {
		t.Errorf("sid %v and session_state %v differ", claims["sid"], claims["session_state"])
	}
	if h := decodeHeader(t, tok.AccessToken); !strings.Contains(h, `"typ":"at+jwt"`) || !strings.Contains(h, `"kid":`) {
		t.Errorf("header %s, want typ at+jwt and a kid", h)
	}

	// A key rotation does not end tokens signed with the old key.
	if _, err := s.LK.Server.Keys().Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.App.Provider().UserInfo(ctx, oauth2.StaticTokenSource(tok)); err != nil {
		t.Fatalf("userinfo with an access token signed by the previous key: %v", err)
	}

	// Revoking the grant ends the access token for the server, JWT or not.
	if st, _ := postForm(t, s.LK.Issuer+"/protocol/openid-connect/revoke", url.Values{"token": {tok.RefreshToken}, "client_id": {"confidential"},
		"client_secret": {"s3cret-for-the-confidential-client"}}, nil); st != http.StatusOK {
		t.Fatalf("revoke: %d", st)
	}
	if _, err := s.App.Provider().UserInfo(ctx, oauth2.StaticTokenSource(tok)); err == nil {
		t.Fatal("userinfo accepted the access token of a revoked grant")
	}
	_, out := postForm(t, s.LK.Issuer+"/protocol/openid-connect/token/introspect", url.Values{"token": {tok.AccessToken},
		"client_id": {"confidential"}, "client_secret": {"s3cret-for-the-confidential-client"}}, nil)
	if out["active"] != false {
		t.Fatalf("introspection of a revoked grant's access token: %v", out)
	}
}

// tokens.accessTokenFormat: opaque keeps fosite's opaque tokens.
func TestOpaqueAccessTokensOnRequest(t *testing.T) {
	doc := strings.Replace(realm, "branding:", "tokens:\n  accessTokenFormat: opaque\nbranding:", 1)
	s := startDoc(t, doc, opts{})
	s.passwordLogin(t, testkit.NewClient(t), nil, "alice@example.com", alicePassword)
	tok := s.App.Last().Token
	if strings.HasPrefix(tok.AccessToken, "ey") || !strings.HasPrefix(tok.AccessToken, "ory_at_") {
		t.Fatalf("access token is not opaque: %s", tok.AccessToken)
	}
	if _, err := s.App.Provider().UserInfo(context.Background(), oauth2.StaticTokenSource(tok)); err != nil {
		t.Fatal(err)
	}
}

// Keycloak apps' authorization requests: any non-empty nonce and state, no
// state at all, and the fragment response mode; the response carries what
// Keycloak's does (code, state, session_state, iss) and nothing else.
func TestKeycloakStyleAuthorizationRequests(t *testing.T) {
	s := start(t, opts{})
	c := testkit.NewClient(t)
	s.passwordLogin(t, c, nil, "alice@example.com", alicePassword)
	verifier := oauth2.GenerateVerifier()
	challenge := url.Values{"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "prompt": {"none"}}
	exchange := func(code string) map[string]any {
		st, out := postForm(t, s.LK.Issuer+"/protocol/openid-connect/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
			"client_id": {"app"}, "redirect_uri": {s.App.RedirectURI()}, "code_verifier": {verifier}}, nil)
		if st != http.StatusOK {
			t.Fatalf("exchange: %d %v", st, out)
		}
		return out
	}

	// Query mode, short nonce and state.
	q := url.Values{"nonce": {"n1"}, "state": {"s"}}
	for k, v := range challenge {
		q[k] = v
	}
	_, loc := s.authorizeRedirect(t, c, q)
	params := loc.Query()
	if params.Get("state") != "s" || params.Get("code") == "" || params.Get("session_state") == "" || params.Get("iss") != s.LK.Issuer || len(params) != 4 {
		t.Fatalf("query response %v, want exactly code, state, session_state, iss", params)
	}
	out := exchange(params.Get("code"))
	idt, _ := out["id_token"].(string)
	var claims map[string]any
	payload, _ := base64URL(strings.Split(idt, ".")[1])
	_ = json.Unmarshal(payload, &claims)
	if claims["nonce"] != "n1" || claims["sid"] != params.Get("session_state") {
		t.Fatalf("ID token nonce %v sid %v, session_state %s", claims["nonce"], claims["sid"], params.Get("session_state"))
	}

	// Fragment mode, no state at all.
	q = url.Values{"response_mode": {"fragment"}, "state": nil}
	for k, v := range challenge {
		q[k] = v
	}
	_, loc = s.authorizeRedirect(t, c, q)
	frag, _ := url.ParseQuery(loc.Fragment)
	if loc.RawQuery != "" || frag.Get("code") == "" || frag.Has("state") || frag.Get("iss") != s.LK.Issuer || frag.Has("scope") {
		t.Fatalf("fragment response without state: %s", loc)
	}
	exchange(frag.Get("code"))
}

// scope=openid alone gets the default scopes' claims (keycloak-js asks
// for no more) and a refresh token, as from Keycloak; an unknown scope is
// ignored, not an error.
func TestDefaultScopesAndUnknownScopes(t *testing.T) {
	s := start(t, opts{})
	c := testkit.NewClient(t)
	s.passwordLogin(t, c, nil, "alice@example.com", alicePassword)
	verifier := oauth2.GenerateVerifier()
	_, loc := s.authorizeRedirect(t, c, url.Values{"prompt": {"none"}, "scope": {"openid some-unknown-scope"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}})
	code := loc.Query().Get("code")
	if code == "" {
		t.Fatalf("unknown scope refused: %s", loc)
	}
	st, out := postForm(t, s.LK.Issuer+"/protocol/openid-connect/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"client_id": {"app"}, "redirect_uri": {s.App.RedirectURI()}, "code_verifier": {verifier}}, nil)
	if st != http.StatusOK || out["refresh_token"] == nil {
		t.Fatalf("exchange: %d %v (want a refresh token)", st, out)
	}
	payload, _ := base64URL(strings.Split(out["id_token"].(string), ".")[1])
	var claims map[string]any
	_ = json.Unmarshal(payload, &claims)
	if claims["email"] != "alice@example.com" || claims["given_name"] != "Alice" {
		t.Fatalf("ID token for scope=openid lacks the default scopes' claims: %v", claims)
	}
	if _, ok := claims["rat"]; ok {
		t.Fatalf("ID token carries the unrequested rat claim: %v", claims)
	}
	if sc, _ := out["scope"].(string); strings.Contains(sc, "some-unknown-scope") {
		t.Fatalf("granted an unknown scope: %q", sc)
	}
	if _, err := refresh(t, s, out["refresh_token"].(string)); err != nil {
		t.Fatalf("refresh without offline_access: %v", err)
	}
}

// Refresh tokens are JWT-shaped as Keycloak's (keycloak-js decodes them:
// typ Refresh, exp, sid), and rotation still works; a forged one is refused.
func TestRefreshTokensAreJWTShaped(t *testing.T) {
	s := start(t, opts{})
	s.passwordLogin(t, testkit.NewClient(t), nil, "alice@example.com", alicePassword)
	tok := s.App.Last().Token
	parts := strings.Split(tok.RefreshToken, ".")
	if len(parts) != 3 {
		t.Fatalf("refresh token %q is not a JWT", tok.RefreshToken)
	}
	payload, _ := base64URL(parts[1])
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	idt, _ := tok.Extra("id_token").(string)
	idPayload, _ := base64URL(strings.Split(idt, ".")[1])
	var idClaims map[string]any
	_ = json.Unmarshal(idPayload, &idClaims)
	if claims["typ"] != "Refresh" || claims["exp"] == nil || claims["sid"] == nil || claims["sid"] != idClaims["sid"] || claims["azp"] != "app" {
		t.Fatalf("refresh token claims %v (ID token sid %v)", claims, idClaims["sid"])
	}
	next, err := refresh(t, s, tok.RefreshToken)
	if err != nil || next.RefreshToken == tok.RefreshToken || strings.Count(next.RefreshToken, ".") != 2 {
		t.Fatalf("rotation: %v, %q", err, next.RefreshToken)
	}
	// The same payload with another signature is no refresh token of ours.
	forged := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	if _, err := refresh(t, s, forged); err == nil {
		t.Fatal("a refresh token with a forged signature was accepted")
	}
}

// Browsers may call the token and other endpoints from a client's web
// origins ("+": its redirect URIs' origins), preflight included; other
// origins get no CORS headers.
func TestCORSForWebOrigins(t *testing.T) {
	doc := strings.Replace(realm, "  - clientId: app\n", "  - clientId: app\n    webOrigins: [\"+\"]\n", 1)
	s := startDoc(t, doc, opts{})
	appOrigin := s.App.URL
	do := func(method, path, origin string) *http.Response {
		req, _ := http.NewRequest(method, s.LK.Issuer+path, nil)
		req.Header.Set("Origin", origin)
		if method == http.MethodOptions {
			req.Header.Set("Access-Control-Request-Method", "POST")
			req.Header.Set("Access-Control-Request-Headers", "authorization")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := do(http.MethodOptions, "/protocol/openid-connect/token", appOrigin)
	if resp.StatusCode >= 300 || resp.Header.Get("Access-Control-Allow-Origin") != appOrigin || resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("preflight from the app: %d %v", resp.StatusCode, resp.Header)
	}
	if resp := do(http.MethodGet, "/protocol/openid-connect/certs", appOrigin); resp.Header.Get("Access-Control-Allow-Origin") != appOrigin {
		t.Fatalf("JWKS from the app: %v", resp.Header)
	}
	if resp := do(http.MethodOptions, "/protocol/openid-connect/token", "https://evil.example"); resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight from another origin allowed: %v", resp.Header)
	}
}

const rolesDoc = `roles: [viewer, editor, auditor]
defaultRoles: [viewer]
groups:
  - name: team
    roles: [auditor]
    clientRoles: {reports: [reader]}
    subGroups: [{name: eng, roles: [editor]}]
users:
  - email: alice@example.com
    roles: [editor]
    clientRoles: {reports: [writer], realm-management: [view-users]}
    groups: [/team/eng]
`

// Roles and groups of realm.yaml reach tokens in Keycloak's manner: the
// roles scope (a default scope) gives realm_access and resource_access in
// the access token, group roles and parents' roles included; the groups
// scope gives a groups claim of paths.
func TestRolesAndGroupsInTokens(t *testing.T) {
	doc := strings.Replace(realm, "users:\n  - email: alice@example.com\n", rolesDoc, 1)
	doc = strings.Replace(doc, "  - clientId: confidential\n", "  - clientId: reports\n    roles: [reader, writer]\n    redirectUris: [https://reports.example/cb]\n  - clientId: confidential\n", 1)
	s := startDoc(t, doc, opts{})
	s.passwordLogin(t, testkit.NewClient(t), url.Values{"scope": {"openid groups"}}, "alice@example.com", alicePassword)
	res := s.App.Last()
	if res.Err != "" {
		t.Fatal(res.Err)
	}
	payload, _ := base64URL(strings.Split(res.Token.AccessToken, ".")[1])
	var at struct {
		RealmAccess    struct{ Roles []string }            `json:"realm_access"`
		ResourceAccess map[string]struct{ Roles []string } `json:"resource_access"`
		Groups         []string
	}
	if err := json.Unmarshal(payload, &at); err != nil {
		t.Fatal(err)
	}
	has := func(xs []string, want ...string) bool {
		for _, w := range want {
			if !slices.Contains(xs, w) {
				return false
			}
		}
		return true
	}
	if !has(at.RealmAccess.Roles, "viewer", "editor", "auditor") || !has(at.ResourceAccess["reports"].Roles, "reader", "writer") ||
		!has(at.ResourceAccess["realm-management"].Roles, "view-users") || !has(at.Groups, "/team/eng") {
		t.Fatalf("access token roles: %+v", at)
	}
	if g, _ := res.Claims["groups"].([]any); len(g) != 1 || g[0] != "/team/eng" {
		t.Fatalf("ID token groups: %v", res.Claims["groups"])
	}
}

// Unknown role, client and group names are load errors with their lines.
func TestUnknownRolesAreConfigErrors(t *testing.T) {
	for _, tc := range []struct{ edit, want string }{
		{"roles: [editor]", "roles: [editr]"},
		{"groups: [/team/eng]", "groups: [/team/qa]"},
		{"{reports: [writer], realm-management: [view-users]}", "{report: [writer]}"},
	} {
		doc := strings.Replace(realm, "users:\n  - email: alice@example.com\n", strings.Replace(rolesDoc, tc.edit, tc.want, 1), 1)
		doc = strings.Replace(doc, "  - clientId: confidential\n", "  - clientId: reports\n    roles: [reader, writer]\n    redirectUris: [https://reports.example/cb]\n  - clientId: confidential\n", 1)
		path := t.TempDir() + "/realm.yaml"
		doc = strings.NewReplacer("{{PUBLIC}}", "http://127.0.0.1:1", "{{LISTEN}}", "127.0.0.1:1", "{{DRIVER}}", "sqlite", "{{DSN}}", "x.db",
			"{{SMTP_HOST}}", "", "{{SMTP_PORT}}", "25", "{{DEV_MAILBOX}}", "true", "{{REDIRECT}}", "http://127.0.0.1:2/cb", "{{APPLOGIN}}", "http://127.0.0.1:2/login",
			"{{BINDING}}", "browser-password", "{{ML_OPTIONS}}", "", "{{HASH}}", "").Replace(doc)
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := server.LoadConfig(path)
		if err == nil || !strings.Contains(err.Error(), "realm.yaml:") || !strings.Contains(err.Error(), "unknown") {
			t.Errorf("%s: %v", tc.want, err)
		}
	}
}

// A confidential client with serviceAccountsEnabled gets, by
// client_credentials, a JWT access token for its own subject with its
// service account's roles; other clients may not use the grant.
func TestClientCredentialsForServiceAccounts(t *testing.T) {
	doc := strings.Replace(realm, "users:\n  - email: alice@example.com\n", rolesDoc, 1)
	doc = strings.Replace(doc, "  - clientId: confidential\n    secret: s3cret-for-the-confidential-client\n",
		"  - clientId: reports\n    roles: [reader, writer]\n    redirectUris: [https://reports.example/cb]\n"+
			"  - clientId: confidential\n    secret: s3cret-for-the-confidential-client\n    serviceAccountsEnabled: true\n"+
			"    serviceAccount:\n      roles: [editor]\n      clientRoles: {realm-management: [view-users, manage-users]}\n", 1)
	s := startDoc(t, doc, opts{})
	token := s.LK.Issuer + "/protocol/openid-connect/token"
	st, out := postForm(t, token, url.Values{"grant_type": {"client_credentials"}, "client_id": {"confidential"},
		"client_secret": {"s3cret-for-the-confidential-client"}}, nil)
	if st != http.StatusOK {
		t.Fatalf("client_credentials: %d %v", st, out)
	}
	ctx := context.Background()
	at, err := s.App.Provider().VerifierContext(ctx, &oidc.Config{ClientID: "confidential"}).Verify(ctx, out["access_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Sub, Azp          string
		PreferredUsername string                              `json:"preferred_username"`
		RealmAccess       struct{ Roles []string }            `json:"realm_access"`
		ResourceAccess    map[string]struct{ Roles []string } `json:"resource_access"`
	}
	_ = at.Claims(&claims)
	if claims.Azp != "confidential" || claims.PreferredUsername != "service-account-confidential" || len(claims.Sub) != 36 ||
		strings.Join(claims.RealmAccess.Roles, ",") != "viewer,editor" || strings.Join(claims.ResourceAccess["realm-management"].Roles, ",") != "view-users,manage-users" {
		t.Fatalf("service account token: %+v", claims)
	}
	if st, _ := postForm(t, token, url.Values{"grant_type": {"client_credentials"}, "client_id": {"app"}}, nil); st == http.StatusOK {
		t.Fatal("a public client got a client_credentials token")
	}
}

// Back-channel sign-out as oauth2-proxy does it: the server calls logout
// with the id_token_hint and no cookie; the session the hint names ends.
func TestLogoutByHintWithoutCookieEndsTheNamedSession(t *testing.T) {
	s := start(t, opts{})
	c := testkit.NewClient(t)
	s.passwordLogin(t, c, nil, "alice@example.com", alicePassword)
	hint, _ := s.App.Last().Token.Extra("id_token").(string)
	p := testkit.NewClient(t).Get(s.LK.Issuer + "/protocol/openid-connect/logout?id_token_hint=" + url.QueryEscape(hint))
	if p.Status != http.StatusOK || !p.Has("You are signed out") {
		t.Fatalf("logout without cookie: %d\n%s", p.Status, p.Body)
	}
	c.Get(s.App.LoginURL(url.Values{"prompt": {"none"}}))
	if res := s.App.Last(); res.Err != "login_required" {
		t.Fatalf("the browser's session survived: %+v", res)
	}
}

// Tokens issued in a session end with it: after a sign-out, an app (say
// in another tab) can neither refresh nor use its access token.
func TestLogoutEndsTheSessionsTokens(t *testing.T) {
	s := start(t, opts{})
	c := testkit.NewClient(t)
	s.passwordLogin(t, c, nil, "alice@example.com", alicePassword)
	tok := s.App.Last().Token
	other := testkit.NewClient(t) // another session of the same user keeps its tokens
	s.passwordLogin(t, other, nil, "alice@example.com", alicePassword)
	kept := s.App.Last().Token
	hint, _ := tok.Extra("id_token").(string)
	if p := c.Get(s.LK.Issuer + "/protocol/openid-connect/logout?id_token_hint=" + url.QueryEscape(hint)); !p.Has("You are signed out") {
		t.Fatalf("logout:\n%s", p.Body)
	}
	if _, err := refresh(t, s, tok.RefreshToken); err == nil {
		t.Fatal("the signed-out session's refresh token still works")
	}
	if _, err := s.App.Provider().UserInfo(context.Background(), oauth2.StaticTokenSource(tok)); err == nil {
		t.Fatal("the signed-out session's access token still works at userinfo")
	}
	if _, err := refresh(t, s, kept.RefreshToken); err != nil {
		t.Fatalf("another session's refresh token was revoked: %v", err)
	}
}

// A request object gets request_not_supported by redirect (OIDC Core 6).
func TestRequestObjectsAreNotSupported(t *testing.T) {
	s := start(t, opts{})
	_, loc := s.authorizeRedirect(t, testkit.NewClient(t), url.Values{"request": {"eyJhbGciOiJub25lIn0.e30."}})
	if loc.Query().Get("error") != "request_not_supported" || loc.Query().Get("state") != "state-0123456789" {
		t.Fatalf("request object: %s", loc)
	}
}

// A relying party with backchannelLogoutUrl gets a logout token it can
// verify (go-oidc) when the user signs out elsewhere; delivery goes through
// the durable outbox.
func TestBackchannelLogoutReachesTheRelyingParty(t *testing.T) {
	tokens := make(chan string, 4)
	rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/backchannel" && r.Method == http.MethodPost {
			tokens <- r.PostFormValue("logout_token")
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rp.Close)
	doc := strings.Replace(realm, "  - clientId: app\n", "  - clientId: app\n    backchannelLogoutUrl: "+rp.URL+"/backchannel\n", 1)
	s := startDoc(t, doc, opts{})
	c := testkit.NewClient(t)
	s.passwordLogin(t, c, nil, "alice@example.com", alicePassword)
	res := s.App.Last()
	hint, _ := res.Token.Extra("id_token").(string)
	if p := c.Get(s.LK.Issuer + "/protocol/openid-connect/logout?id_token_hint=" + url.QueryEscape(hint)); !p.Has("You are signed out") {
		t.Fatalf("logout:\n%s", p.Body)
	}
	var raw string
	select {
	case raw = <-tokens:
	case <-time.After(15 * time.Second):
		t.Fatal("no logout token reached the relying party")
	}
	ctx := context.Background()
	lt, err := s.App.Provider().VerifierContext(ctx, &oidc.Config{ClientID: "app"}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("logout token does not verify: %v", err)
	}
	var claims struct {
		Sid    string
		Events map[string]any
		Nonce  *string
	}
	_ = lt.Claims(&claims)
	if _, ok := claims.Events["http://schemas.openid.net/event/backchannel-logout"]; !ok || claims.Sid != res.Claims["sid"] || lt.Subject != res.IDToken.Subject || claims.Nonce != nil {
		t.Fatalf("logout token: sub %s, %+v (ID token sid %v)", lt.Subject, claims, res.Claims["sid"])
	}
	if h := decodeHeader(t, raw); !strings.Contains(h, `"typ":"logout+jwt"`) {
		t.Fatalf("logout token header %s", h)
	}
}

// A realm that signs with ES256 or EdDSA still offers RS256 (OpenID Connect
// Discovery says it must be supported): a client may ask for RS256 ID tokens
// (clients[].idTokenSignedResponseAlg), and JWKS and discovery list both.
func TestRS256BesideTheRealmAlgorithm(t *testing.T) {
	doc := strings.Replace(realm, "branding:", "tokens:\n  signingAlgorithm: ES256\nbranding:", 1)
	doc = strings.Replace(doc, "    secret: s3cret-for-the-confidential-client\n", "    secret: s3cret-for-the-confidential-client\n    idTokenSignedResponseAlg: RS256\n", 1)
	s := startDoc(t, doc, opts{})
	var disc struct {
		Algs []string `json:"id_token_signing_alg_values_supported"`
	}
	getJSON(t, s.LK.Issuer+"/.well-known/openid-configuration", &disc)
	if strings.Join(disc.Algs, ",") != "ES256,RS256" {
		t.Fatalf("discovery lists %v", disc.Algs)
	}
	s.passwordLogin(t, testkit.NewClient(t), nil, "alice@example.com", alicePassword)
	if raw, _ := s.App.Last().Token.Extra("id_token").(string); !strings.Contains(decodeHeader(t, raw), `"alg":"ES256"`) {
		t.Fatalf("default client's ID token: %s", decodeHeader(t, raw))
	}
	s.App.Connect(s.LK.Issuer, "confidential", "s3cret-for-the-confidential-client")
	s.passwordLogin(t, testkit.NewClient(t), nil, "alice@example.com", alicePassword)
	res := s.App.Last()
	if res.Err != "" {
		t.Fatal(res.Err) // go-oidc verified the RS256 ID token against JWKS
	}
	if raw, _ := res.Token.Extra("id_token").(string); !strings.Contains(decodeHeader(t, raw), `"alg":"RS256"`) {
		t.Fatalf("RS256 client's ID token: %s", decodeHeader(t, raw))
	}
}

// The token's scope lists what Keycloak lists: the default scopes roles,
// web-origins and acr act without appearing in it.
func TestTokenScopeListsWhatKeycloakLists(t *testing.T) {
	doc := strings.Replace(realm, "users:\n", "roles: [viewer]\ndefaultRoles: [viewer]\nusers:\n", 1)
	s := startDoc(t, doc, opts{})
	s.passwordLogin(t, testkit.NewClient(t), url.Values{"scope": {"openid"}}, "alice@example.com", alicePassword)
	tok := s.App.Last().Token
	scope, _ := tok.Extra("scope").(string)
	for _, hidden := range []string{"roles", "web-origins", "acr"} {
		if strings.Contains(" "+scope+" ", " "+hidden+" ") {
			t.Fatalf("token scope %q lists %s", scope, hidden)
		}
	}
	if !strings.Contains(scope, "email") || !strings.Contains(scope, "profile") {
		t.Fatalf("token scope %q, want openid profile email", scope)
	}
	payload, _ := base64URL(strings.Split(tok.AccessToken, ".")[1])
	if !strings.Contains(string(payload), `"realm_access":{"roles":["viewer"]}`) {
		t.Fatalf("the roles scope no longer acts: %s", payload)
	}
}
