package oidc

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"golang.org/x/oauth2"

	"latchkey/flows"
	"latchkey/server/config"
	"latchkey/server/events"
	"latchkey/server/store"
)

// onlyStore hides every method of the real store but those of Store, so
// fosite's compose sees exactly what the provider declares it needs.
type onlyStore struct{ Store }

// testProvider serves a provider over SQLite at an httptest URL, with a
// public client "app" and a confidential "backend" with a service account.
func testProvider(t *testing.T) (*Provider, *httptest.Server, *flows.User) {
	t.Helper()
	return testProviderOver(t, func(st *store.Store) Store { return onlyStore{st} })
}

// testProviderOver is testProvider over the Store over returns.
func testProviderOver(t *testing.T, over func(*store.Store) Store) (*Provider, *httptest.Server, *flows.User) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open("sqlite", filepath.Join(t.TempDir(), "oidc.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	u := &flows.User{Email: "ada@example.com", EmailVerified: true, FirstName: "Ada", LastName: "Lovelace"}
	if err := st.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	cfg := &config.Config{
		Realm:  "test",
		Server: config.Server{PublicURL: "http://" + srv.Listener.Addr().String()},
		Tokens: config.Tokens{AccessTokenTTL: config.Duration(5 * time.Minute), IDTokenTTL: config.Duration(5 * time.Minute),
			RefreshTokenTTL: config.Duration(time.Hour), AuthorizationCodeTTL: config.Duration(time.Minute),
			SigningAlgorithm: "RS256", AccessTokenFormat: "jwt", KeyCacheTTL: config.Duration(time.Second)},
		Clients: []config.Client{
			{ClientID: "app", RedirectURIs: []string{"http://127.0.0.1/cb"}, Scopes: []string{"email", "profile", "offline_access"}},
			{ClientID: "backend", Secret: "backend-secret-0123456789", ServiceAccountsEnabled: true, RedirectURIs: []string{"http://127.0.0.1/cb"}},
		},
	}
	keys := NewKeySet(st, "RS256", time.Hour, time.Second)
	if err := keys.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	p := New(cfg, over(st), keys, []byte(strings.Repeat("h", 32)), []byte(strings.Repeat("r", 32)), slog.New(slog.DiscardHandler))
	mux := http.NewServeMux()
	oc := "/realms/test/protocol/openid-connect"
	mux.HandleFunc("GET /realms/test/.well-known/openid-configuration", p.Discovery)
	mux.HandleFunc("POST "+oc+"/token", p.Token)
	mux.HandleFunc("GET "+oc+"/userinfo", p.Userinfo)
	mux.HandleFunc("GET "+oc+"/certs", p.Certs)
	mux.HandleFunc("POST "+oc+"/revoke", p.Revoke)
	mux.HandleFunc("POST "+oc+"/token/introspect", p.Introspect)
	srv.Config.Handler = mux
	srv.Start()
	t.Cleanup(srv.Close)
	return p, srv, u
}

// code runs the authorization endpoint's part in process: parse the
// request, authorize the user, and read the code from the redirect.
func code(t *testing.T, p *Provider, query url.Values, u *flows.User) string {
	t.Helper()
	ctx := context.Background()
	r := httptest.NewRequest(http.MethodGet, "/auth?"+query.Encode(), nil)
	ar, err := p.ParseAuthorize(ctx, r)
	if err != nil {
		t.Fatalf("authorize request refused: %v", err)
	}
	now := time.Now()
	resp, err := p.Authorize(ctx, ar, Identity{User: u, AuthTime: now, RequestedAt: now, Methods: []string{"email"}, SessionID: "sid-1"})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	p.WriteAuthorize(ctx, w, ar, resp)
	loc, err := url.Parse(w.Header().Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("no code in the redirect %q (status %d)", w.Header().Get("Location"), w.Code)
	}
	if loc.Query().Get("state") != query.Get("state") || loc.Query().Get("session_state") != "sid-1" || loc.Query().Get("iss") != p.cfg.Issuer() {
		t.Fatalf("redirect %s", loc)
	}
	return loc.Query().Get("code")
}

// appClient is the public client "app" as go-oidc and x/oauth2 see it,
// with a PKCE verifier and an authorization URL (state st-1, nonce n-1).
func appClient(t *testing.T, p *Provider) (*gooidc.Provider, oauth2.Config, string, *url.URL) {
	t.Helper()
	rp, err := gooidc.NewProvider(context.Background(), p.cfg.Issuer())
	if err != nil {
		t.Fatal(err)
	}
	conf := oauth2.Config{ClientID: "app", Endpoint: rp.Endpoint(), RedirectURL: "http://127.0.0.1/cb",
		Scopes: []string{"openid", "email", "profile", "offline_access"}}
	verifier := oauth2.GenerateVerifier()
	authURL, _ := url.Parse(conf.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", "n-1")))
	return rp, conf, verifier, authURL
}

// Every grant and endpoint the provider composes works over the narrow
// Store: a missing storage method would panic in New, a missing handler
// would refuse its grant. Tokens are checked by go-oidc, a real RP library.
func TestProviderServesEveryGrantOverItsStore(t *testing.T) {
	ctx := context.Background()
	p, srv, u := testProvider(t)
	rp, conf, verifier, authURL := appClient(t, p)

	c := code(t, p, authURL.Query(), u)
	if _, err := conf.Exchange(ctx, c); err == nil {
		t.Fatal("a code was exchanged without its PKCE verifier")
	}
	c = code(t, p, authURL.Query(), u)
	tok, err := conf.Exchange(ctx, c, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("authorization_code: %v", err)
	}
	idt, err := rp.Verifier(&gooidc.Config{ClientID: "app"}).Verify(ctx, tok.Extra("id_token").(string))
	if err != nil {
		t.Fatalf("ID token: %v", err)
	}
	var claims struct {
		Email string `json:"email"`
		Nonce string `json:"nonce"`
		Sid   string `json:"sid"`
	}
	if err := idt.Claims(&claims); err != nil || idt.Subject != u.ID || claims.Email != u.Email || claims.Nonce != "n-1" || claims.Sid != "sid-1" {
		t.Fatalf("ID token claims %+v (sub %s), %v", claims, idt.Subject, err)
	}
	info, err := rp.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil || info.Subject != u.ID || info.Email != u.Email {
		t.Fatalf("userinfo %+v, %v", info, err)
	}

	refreshed, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil || refreshed.AccessToken == tok.AccessToken {
		t.Fatalf("refresh_token: %v", err)
	}
	backend := func(path string, form url.Values) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/realms/test/protocol/openid-connect"+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("backend", "backend-secret-0123456789")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		out := map[string]any{"status": float64(res.StatusCode)}
		_ = json.Unmarshal(body, &out)
		return out
	}
	if got := backend("/token", url.Values{"grant_type": {"client_credentials"}}); got["access_token"] == nil {
		t.Fatalf("client_credentials: %v", got)
	}
	if got := backend("/token/introspect", url.Values{"token": {refreshed.AccessToken}}); got["active"] != true || got["sub"] != u.ID {
		t.Fatalf("introspection of a live token: %v", got)
	}
	// A rotated refresh token used again is refused and ends its family.
	if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
		t.Fatal("a rotated refresh token was accepted again")
	}
	if got := backend("/token/introspect", url.Values{"token": {refreshed.AccessToken}}); got["active"] != false {
		t.Fatalf("reuse of a rotated refresh token left its family alive: %v", got)
	}

	tok, err = conf.Exchange(ctx, code(t, p, authURL.Query(), u), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	revokeApp := url.Values{"token": {tok.RefreshToken}, "client_id": {"app"}}
	res, err := http.PostForm(srv.URL+"/realms/test/protocol/openid-connect/revoke", revokeApp)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %v %v", res, err)
	}
	res.Body.Close()
	if got := backend("/token/introspect", url.Values{"token": {tok.AccessToken}}); got["active"] != false {
		t.Fatalf("an access token outlived the revocation of its refresh token: %v", got)
	}

	// A code redeemed twice is refused, and what it first issued is
	// revoked (RFC 6749 §4.1.2).
	c = code(t, p, authURL.Query(), u)
	first, err := conf.Exchange(ctx, c, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conf.Exchange(ctx, c, oauth2.VerifierOption(verifier)); err == nil {
		t.Fatal("a code was redeemed twice")
	}
	if _, err := rp.UserInfo(ctx, oauth2.StaticTokenSource(first)); err == nil {
		t.Fatal("the tokens of a replayed code still work")
	}
}

// A token's row keeps who and until when, not a copy of the user's
// profile: access and refresh rows read back without the user's claims,
// and a refreshed ID token still carries them (renewed from the user).
func TestTokenRowsKeepNoCopyOfTheProfile(t *testing.T) {
	ctx := context.Background()
	p, _, u := testProvider(t)
	rp, conf, verifier, authURL := appClient(t, p)
	tok, err := conf.Exchange(ctx, code(t, p, authURL.Query(), u), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	signature := func(jwt string) string { return jwt[strings.LastIndexByte(jwt, '.')+1:] }
	st := p.store.(onlyStore).Store

	access := NewSession()
	if _, err := st.GetAccessTokenSession(ctx, signature(tok.AccessToken), access); err != nil {
		t.Fatal(err)
	}
	if access.Subject != u.ID || access.Username != u.Email || access.SessionRef() != "sid-1" ||
		access.GetExpiresAt(fosite.AccessToken).IsZero() || len(access.Claims.Extra) != 1 || access.Access != nil {
		t.Fatalf("access row keeps %+v, claims %+v, access claims %+v", access.DefaultSession, access.Claims, access.Access)
	}
	refresh := NewSession()
	if _, err := st.GetRefreshTokenSession(ctx, signature(tok.RefreshToken), refresh); err != nil {
		t.Fatal(err)
	}
	if refresh.Subject != u.ID || refresh.Claims.Subject != u.ID || refresh.SessionRef() != "sid-1" || len(refresh.Claims.Extra) != 1 ||
		refresh.Claims.AuthTime.IsZero() || refresh.Access != nil {
		t.Fatalf("refresh row keeps claims %+v, access claims %+v", refresh.Claims, refresh.Access)
	}
	// The subject and the sid are the rows' columns, given back on reading
	// (above), not repeated in their JSON.
	for kind, sess := range map[fosite.TokenType]*Session{fosite.AccessToken: access, fosite.RefreshToken: refresh} {
		data, err := json.Marshal(storedSession{sess, kind})
		if err != nil || strings.Contains(string(data), u.ID) || strings.Contains(string(data), "sid-1") {
			t.Errorf("a %s row's JSON: %s, %v", kind, data, err)
		}
	}

	refreshed, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatal(err)
	}
	idt, err := rp.Verifier(&gooidc.Config{ClientID: "app"}).Verify(ctx, refreshed.Extra("id_token").(string))
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Email string  `json:"email"`
		Name  string  `json:"name"`
		Sid   string  `json:"sid"`
		Nonce *string `json:"nonce"`
	}
	if err := idt.Claims(&claims); err != nil || claims.Email != u.Email || claims.Name != "Ada Lovelace" || claims.Sid != "sid-1" || claims.Nonce != nil {
		t.Fatalf("refreshed ID token claims %+v, %v", claims, err)
	}
}

// A JWT access token is accepted by the digest its row keeps, not by a
// second signature check: the token issued works at userinfo, the same
// token with its payload changed (same signature, so same row) is refused,
// and so is one whose row has expired. A row from before the digest is
// checked by the token's signature, as it was.
func TestAccessTokensAreCheckedAgainstTheirRow(t *testing.T) {
	ctx := context.Background()
	p, srv, u := testProvider(t)
	_, conf, verifier, authURL := appClient(t, p)
	st := p.store.(onlyStore).Store
	userinfo := func(token string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/realms/test/protocol/openid-connect/userinfo", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	tampered := func(token string) string {
		parts := strings.Split(token, ".")
		payload, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			t.Fatal(err)
		}
		payload = []byte(strings.Replace(string(payload), "{", `{"admin":true,`, 1))
		return parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
	}
	// rewrite stores the token's row again as edit leaves its session.
	rewrite := func(token string, edit func(*Session)) {
		t.Helper()
		sig := token[strings.LastIndexByte(token, '.')+1:]
		sess := NewSession()
		r, err := st.GetAccessTokenSession(ctx, sig, sess)
		if err != nil {
			t.Fatal(err)
		}
		edit(sess)
		if err := st.DeleteAccessTokenSession(ctx, sig); err != nil {
			t.Fatal(err)
		}
		if err := st.CreateAccessTokenSession(ctx, sig, r); err != nil {
			t.Fatal(err)
		}
	}
	issue := func() string {
		t.Helper()
		tok, err := conf.Exchange(ctx, code(t, p, authURL.Query(), u), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		return tok.AccessToken
	}

	token := issue()
	if got := userinfo(token); got != http.StatusOK {
		t.Fatalf("the token issued: %d", got)
	}
	if got := userinfo(tampered(token)); got != http.StatusUnauthorized {
		t.Fatalf("a token with a changed payload: %d", got)
	}
	rewrite(token, func(s *Session) { s.SetExpiresAt(fosite.AccessToken, time.Now().Add(-time.Second)) })
	if got := userinfo(token); got != http.StatusUnauthorized {
		t.Fatalf("a token whose row expired: %d", got)
	}

	old := issue()
	rewrite(old, func(s *Session) { s.AccessDigest = nil })
	if got := userinfo(old); got != http.StatusOK {
		t.Fatalf("a token whose row has no digest: %d", got)
	}
	if got := userinfo(tampered(old)); got != http.StatusUnauthorized {
		t.Fatalf("a changed token whose row has no digest: %d", got)
	}
}

// countingStore counts the reads of code records.
type countingStore struct {
	onlyStore
	codeReads atomic.Int32
}

func (s *countingStore) GetAuthorizeCodeSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	s.codeReads.Add(1)
	return s.onlyStore.GetAuthorizeCodeSession(ctx, signature, session)
}

// fosite reads a code's record three times in one exchange; the provider
// reads it once. Spending the code still decides: of two concurrent
// exchanges of one code exactly one gets tokens.
func TestACodeIsReadOncePerExchange(t *testing.T) {
	ctx := context.Background()
	var counted *countingStore
	p, _, u := testProviderOver(t, func(st *store.Store) Store {
		counted = &countingStore{onlyStore: onlyStore{st}}
		return counted
	})
	_, conf, verifier, authURL := appClient(t, p)
	c := code(t, p, authURL.Query(), u)
	if _, err := conf.Exchange(ctx, c, oauth2.VerifierOption(verifier)); err != nil {
		t.Fatal(err)
	}
	if n := counted.codeReads.Load(); n != 1 {
		t.Fatalf("the code's record was read %d times", n)
	}

	for range 5 {
		c := code(t, p, authURL.Query(), u)
		var wins atomic.Int32
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if _, err := conf.Exchange(ctx, c, oauth2.VerifierOption(verifier)); err == nil {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Fatalf("%d concurrent exchanges of one code got tokens", n)
		}
	}
}

// A code issued before codes carried their nonce has fosite's own OpenID
// Connect record (an upgrade within the code's minute of life): its nonce is
// read from there.
func TestCodeFromBeforeTheUpgradeKeepsItsNonce(t *testing.T) {
	ctx := context.Background()
	p, _, u := testProvider(t)
	st := p.store.(onlyStore).Store
	client, _ := p.GetClient(ctx, "app")
	old := &fosite.Request{ID: "grant-1", Client: client, GrantedScope: fosite.Arguments{"openid"},
		Form: url.Values{"nonce": {"old-nonce"}}, Session: NewSession()}
	if err := st.CreateOpenIDConnectSession(ctx, "the-code", old); err != nil {
		t.Fatal(err)
	}
	sess := p.session("app", fosite.Arguments{"openid"}, Identity{User: u, AuthTime: time.Now()})
	tokenRequest := &fosite.Request{ID: "grant-1", Client: client, GrantedScope: fosite.Arguments{"openid"}, Form: url.Values{}, Session: sess}
	got, err := recordingStorage{st}.GetOpenIDConnectSession(ctx, "the-code", tokenRequest)
	if err != nil || got.GetRequestForm().Get("nonce") != "old-nonce" {
		t.Fatalf("got %v, %v", got, err)
	}
	sess.Claims.Nonce = "new-nonce"
	got, err = recordingStorage{st}.GetOpenIDConnectSession(ctx, "the-code", tokenRequest)
	if err != nil || got.GetSession() != sess || len(got.GetRequestForm()) != 0 {
		t.Fatalf("a code carrying its nonce got %v, %v", got, err)
	}
	tokenRequest.GrantedScope = fosite.Arguments{"email"}
	if _, err := (recordingStorage{st}).GetOpenIDConnectSession(ctx, "the-code", tokenRequest); !errors.Is(err, openid.ErrNoSessionFound) {
		t.Fatalf("a code issued without openid: %v", err)
	}
}

// eventLog is an EventRecorder that remembers what it was given, or
// refuses to record (fail).
type eventLog struct {
	fail     error
	recorded []events.Event // by Record: in the grant's transaction
	tried    []events.Event // by Try: after the fact
}

func (l *eventLog) Record(_ context.Context, e events.Event) error {
	if l.fail != nil {
		return l.fail
	}
	l.recorded = append(l.recorded, e)
	return nil
}

func (l *eventLog) Try(_ context.Context, e events.Event) { l.tried = append(l.tried, e) }

// A code is spent and its tokens stored in one transaction, with its
// CODE_TO_TOKEN event: when the event cannot be stored the transaction is
// rolled back, no tokens are issued, and the code still works. A refresh
// rotates the same way.
func TestTokensAreIssuedWithTheirEventOrNotAtAll(t *testing.T) {
	ctx := context.Background()
	p, _, u := testProvider(t)
	_, conf, verifier, authURL := appClient(t, p)
	conf.Endpoint.AuthStyle = oauth2.AuthStyleInParams // one request per exchange (auto-detection retries a failure)
	c := code(t, p, authURL.Query(), u)

	broken := &eventLog{fail: errors.New("disk full")}
	p.Events = broken
	var rerr *oauth2.RetrieveError
	if _, err := conf.Exchange(ctx, c, oauth2.VerifierOption(verifier)); !errors.As(err, &rerr) || rerr.ErrorCode != "server_error" {
		t.Fatalf("exchange without its event: %v", err)
	}
	if len(broken.tried) != 1 || broken.tried[0].Type != "CODE_TO_TOKEN_ERROR" {
		t.Fatalf("the failure's event: %+v", broken.tried)
	}

	log := &eventLog{}
	p.Events = log
	tok, err := conf.Exchange(ctx, c, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("the code was spent by the exchange that was rolled back: %v", err)
	}
	if len(log.recorded) != 1 || log.recorded[0].Type != "CODE_TO_TOKEN" || log.recorded[0].UserID != u.ID ||
		log.recorded[0].SessionID != "sid-1" || log.recorded[0].ClientID != "app" || len(log.tried) != 0 {
		t.Fatalf("events: in the transaction %+v, after it %+v", log.recorded, log.tried)
	}

	p.Events = broken
	broken.tried = nil
	if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); !errors.As(err, &rerr) || rerr.ErrorCode != "server_error" {
		t.Fatalf("refresh without its event: %v", err)
	}
	p.Events = log
	if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err != nil {
		t.Fatalf("the refresh token was rotated by the refresh that was rolled back: %v", err)
	}
	if len(log.recorded) != 2 || log.recorded[1].Type != "REFRESH_TOKEN" {
		t.Fatalf("events: %+v", log.recorded)
	}
}
