package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"latchkey/e2e/testkit"
)

func TestAuthorizationCodeFlowWithPKCE(t *testing.T) {
	s := start(t, opts{})
	c := testkit.NewClient(t)
	p := s.passwordLogin(t, c, nil, "Alice@Example.com", alicePassword)
	if !p.Has("Logged in as alice@example.com") {
		t.Fatalf("app page: %s", p.Body)
	}
	res := s.App.Last()
	if res.Err != "" {
		t.Fatal(res.Err)
	}
	// go-oidc verified signature (JWKS), issuer, audience and expiry; the app checked nonce and state.
	if res.IDToken.Issuer != s.LK.Issuer || len(res.IDToken.Audience) != 1 || res.IDToken.Audience[0] != "app" {
		t.Errorf("iss=%s aud=%v", res.IDToken.Issuer, res.IDToken.Audience)
	}
	for k, want := range map[string]any{"email": "alice@example.com", "email_verified": true, "name": "Alice Example", "given_name": "Alice"} {
		if res.Claims[k] != want {
			t.Errorf("claim %s = %v, want %v", k, res.Claims[k], want)
		}
	}
	if at, ok := res.Claims["auth_time"].(float64); !ok || time.Since(time.Unix(int64(at), 0)) > time.Minute {
		t.Errorf("auth_time = %v", res.Claims["auth_time"])
	}
	if amr, _ := res.Claims["amr"].([]any); len(amr) != 1 || amr[0] != "pwd" {
		t.Errorf("amr = %v, want [pwd]", res.Claims["amr"])
	}
	if res.UserInfo["email"] != "alice@example.com" || res.UserInfo["sub"] != res.IDToken.Subject {
		t.Errorf("userinfo = %v", res.UserInfo)
	}
	if res.Token.RefreshToken == "" {
		t.Error("no refresh token for offline_access")
	}
}

func TestAuthorizationCodeIsSingleUse(t *testing.T) {
	s := start(t, opts{})
	s.passwordLogin(t, testkit.NewClient(t), nil, "alice@example.com", alicePassword)
	res := s.App.Last()
	if res.Err != "" {
		t.Fatal(res.Err)
	}
	_, err := s.App.OAuth2().Exchange(context.Background(), res.Code, oauth2.VerifierOption("whatever-verifier-0123456789-0123456789"))
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Fatalf("second exchange: %v, want invalid_grant", err)
	}
	// The tokens issued from the first exchange are revoked.
	if _, err := s.App.Provider().UserInfo(context.Background(), oauth2.StaticTokenSource(res.Token)); err == nil {
		t.Fatal("userinfo still accepts the access token issued from a reused code")
	}
	_, err = s.App.OAuth2().TokenSource(context.Background(), &oauth2.Token{RefreshToken: res.Token.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token()
	if err == nil {
		t.Fatal("refresh token issued from a reused code still works")
	}
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func TestUnregisteredRedirectURIGetsErrorPage(t *testing.T) {
	s := start(t, opts{})
	hc := &http.Client{CheckRedirect: noRedirect}
	for _, ru := range []string{"https://evil.example/cb", s.App.RedirectURI() + "/extra", strings.Replace(s.App.RedirectURI(), "127.0.0.1:", "127.0.0.1:1", 1)} {
		q := url.Values{"client_id": {"app"}, "redirect_uri": {ru}, "response_type": {"code"}, "scope": {"openid"},
			"state": {"state-0123456789"}, "code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}
		resp, err := hc.Get(s.LK.Issuer + "/protocol/openid-connect/auth?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Errorf("redirect_uri %s: status %d, Location %q; want 400 and no redirect", ru, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}

func TestPublicClientWithoutPKCEIsRefused(t *testing.T) {
	s := start(t, opts{})
	s.App.NoPKCE = true
	p := testkit.NewClient(t).Get(s.App.LoginURL(nil))
	if res := s.App.Last(); res.Err != "invalid_request" {
		t.Fatalf("callback error = %q, want invalid_request (page: %s)", res.Err, p.Body)
	}
}

func refresh(t *testing.T, s *setup, rt string) (*oauth2.Token, error) {
	t.Helper()
	return s.App.OAuth2().TokenSource(context.Background(), &oauth2.Token{RefreshToken: rt, Expiry: time.Now().Add(-time.Hour)}).Token()
}

func TestRefreshTokenRotationAndReuseDetection(t *testing.T) {
	s := start(t, opts{})
	s.passwordLogin(t, testkit.NewClient(t), nil, "alice@example.com", alicePassword)
	first := s.App.Last().Token
	second, err := refresh(t, s, first.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if second.RefreshToken == first.RefreshToken || second.Extra("id_token") == nil {
		t.Fatal("refresh did not rotate the refresh token or omitted the ID token")
	}
	// Replaying the first refresh token is reuse: the whole family is revoked.
	if _, err := refresh(t, s, first.RefreshToken); err == nil {
		t.Fatal("a used refresh token was accepted")
	}
	if _, err := refresh(t, s, second.RefreshToken); err == nil {
		t.Fatal("the family's newest refresh token survived the reuse")
	}
	if _, err := s.App.Provider().UserInfo(context.Background(), oauth2.StaticTokenSource(second)); err == nil {
		t.Fatal("the family's access token survived the reuse")
	}
}

func TestPromptNone(t *testing.T) {
	s := start(t, opts{})
	c := testkit.NewClient(t)
	c.Get(s.App.LoginURL(url.Values{"prompt": {"none"}}))
	if res := s.App.Last(); res.Err != "login_required" {
		t.Fatalf("prompt=none without a session: %q, want login_required", res.Err)
	}
	s.passwordLogin(t, c, nil, "alice@example.com", alicePassword)
	p := c.Get(s.App.LoginURL(url.Values{"prompt": {"none"}}))
	if res := s.App.Last(); res.Err != "" || !p.Has("Logged in as alice@example.com") {
		t.Fatalf("prompt=none with a session: %q", res.Err)
	}
}

func TestConfidentialClientAuthentication(t *testing.T) {
	s := start(t, opts{})
	s.App.Connect(s.LK.Issuer, "confidential", "s3cret-for-the-confidential-client")
	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
		s.App.OAuth2().Endpoint.AuthStyle = style
		s.passwordLogin(t, testkit.NewClient(t), nil, "alice@example.com", alicePassword)
		if res := s.App.Last(); res.Err != "" {
			t.Fatalf("auth style %d: %s", style, res.Err)
		}
	}
	s.App.OAuth2().ClientSecret = "wrong"
	s.passwordLogin(t, testkit.NewClient(t), nil, "alice@example.com", alicePassword)
	if res := s.App.Last(); !strings.Contains(res.Err, "invalid_client") {
		t.Fatalf("wrong secret: %q, want invalid_client", res.Err)
	}
}

func TestDiscoveryJWKSAndKeyRotation(t *testing.T) {
	s := start(t, opts{})
	var disc map[string]any
	getJSON(t, s.LK.Issuer+"/.well-known/openid-configuration", &disc)
	for k, want := range map[string]string{
		"issuer":                 s.LK.Issuer,
		"authorization_endpoint": s.LK.Issuer + "/protocol/openid-connect/auth",
		"token_endpoint":         s.LK.Issuer + "/protocol/openid-connect/token",
		"jwks_uri":               s.LK.Issuer + "/protocol/openid-connect/certs",
		"end_session_endpoint":   s.LK.Issuer + "/protocol/openid-connect/logout",
	} {
		if disc[k] != want {
			t.Errorf("%s = %v, want %s", k, disc[k], want)
		}
	}
	kids := func() []string {
		var set struct{ Keys []struct{ Kid, Alg string } }
		getJSON(t, s.LK.Issuer+"/protocol/openid-connect/certs", &set)
		var out []string
		for _, k := range set.Keys {
			out = append(out, k.Kid)
		}
		return out
	}
	before := kids()
	kid, err := s.LK.Server.Keys().Rotate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	after := kids()
	if len(before) != 1 || len(after) != 2 || after[0] != kid || after[1] != before[0] {
		t.Fatalf("JWKS before %v after %v (new %s): the old key must stay published", before, after, kid)
	}
	s.passwordLogin(t, testkit.NewClient(t), nil, "alice@example.com", alicePassword)
	res := s.App.Last()
	if res.Err != "" {
		t.Fatal(res.Err)
	}
	raw, _ := res.Token.Extra("id_token").(string)
	if !strings.Contains(decodeHeader(t, raw), `"kid":"`+kid+`"`) {
		t.Fatalf("new ID token not signed with the new key %s: header %s", kid, decodeHeader(t, raw))
	}
}

func TestRPInitiatedLogout(t *testing.T) {
	s := start(t, opts{})
	c := testkit.NewClient(t)
	s.passwordLogin(t, c, nil, "alice@example.com", alicePassword)
	raw, _ := s.App.Last().Token.Extra("id_token").(string)
	hc := &http.Client{Jar: c.HTTP.Jar, CheckRedirect: noRedirect}
	q := url.Values{"id_token_hint": {raw}, "post_logout_redirect_uri": {"https://evil.example/"}}
	resp, err := hc.Get(s.LK.Issuer + "/protocol/openid-connect/logout?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("unregistered post-logout URI: status %d", resp.StatusCode)
	}
	q.Set("post_logout_redirect_uri", s.App.RedirectURI()+"/bye")
	q.Set("state", "st-123")
	resp, err = hc.Get(s.LK.Issuer + "/protocol/openid-connect/logout?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); loc != s.App.RedirectURI()+"/bye?state=st-123" {
		t.Fatalf("logout redirect = %q", loc)
	}
	c.Get(s.App.LoginURL(url.Values{"prompt": {"none"}}))
	if res := s.App.Last(); res.Err != "login_required" {
		t.Fatalf("after logout, prompt=none: %q, want login_required", res.Err)
	}
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func decodeHeader(t *testing.T, jwt string) string {
	t.Helper()
	h, _, _ := strings.Cut(jwt, ".")
	b, err := base64URL(h)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
