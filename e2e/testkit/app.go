package testkit

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// App is a relying party, as an unmodified app would be written: go-oidc
// verifies the ID token (signature, issuer, audience, expiry) and the app
// checks state and nonce, with PKCE S256.
type App struct {
	URL      string
	ClientID string
	Secret   string
	// NoPKCE sends authorization requests without a code challenge.
	NoPKCE bool

	t        testing.TB
	srv      *httptest.Server
	provider *oidc.Provider
	conf     oauth2.Config

	mu      sync.Mutex
	pending map[string]pending
	results []Result
}

type pending struct{ verifier, nonce string }

// Result is what the app saw at its callback.
type Result struct {
	Err      string // the error the provider redirected with, or the app's own
	Code     string
	IDToken  *oidc.IDToken
	Claims   map[string]any
	UserInfo map[string]any
	Token    *oauth2.Token
}

// StartApp starts the app's HTTP server; call Connect once Latchkey runs.
func StartApp(t testing.TB) *App {
	a := &App{t: t, pending: map[string]pending{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/login", a.login)
	mux.HandleFunc("/callback", a.callback)
	a.srv = httptest.NewServer(mux)
	a.URL = a.srv.URL
	t.Cleanup(a.srv.Close)
	return a
}

// RedirectURI is the app's registered callback.
func (a *App) RedirectURI() string { return a.URL + "/callback" }

// Connect discovers the provider at issuer.
func (a *App) Connect(issuer, clientID, secret string) {
	a.t.Helper()
	p, err := oidc.NewProvider(context.Background(), issuer)
	if err != nil {
		a.t.Fatalf("discovery: %v", err)
	}
	a.provider, a.ClientID, a.Secret = p, clientID, secret
	a.conf = oauth2.Config{ClientID: clientID, ClientSecret: secret, Endpoint: p.Endpoint(), RedirectURL: a.RedirectURI(),
		Scopes: []string{oidc.ScopeOpenID, "email", "profile", oidc.ScopeOfflineAccess}}
}

// Provider is the discovered provider.
func (a *App) Provider() *oidc.Provider { return a.provider }

// OAuth2 is the app's OAuth 2.0 configuration.
func (a *App) OAuth2() *oauth2.Config { return &a.conf }

// LoginURL is where a user starts signing in; extra adds authorization
// parameters (prompt, max_age, login_hint).
func (a *App) LoginURL(extra url.Values) string { return a.URL + "/login?" + extra.Encode() }

func random() string { return oauth2.GenerateVerifier()[:32] }

func (a *App) login(w http.ResponseWriter, r *http.Request) {
	state, nonce, verifier := random(), random(), oauth2.GenerateVerifier()
	a.mu.Lock()
	a.pending[state] = pending{verifier: verifier, nonce: nonce}
	a.mu.Unlock()
	opts := []oauth2.AuthCodeOption{oidc.Nonce(nonce)}
	if !a.NoPKCE {
		opts = append(opts, oauth2.S256ChallengeOption(verifier))
	}
	for k, v := range r.URL.Query() {
		opts = append(opts, oauth2.SetAuthURLParam(k, v[0]))
	}
	http.Redirect(w, r, a.conf.AuthCodeURL(state, opts...), http.StatusFound)
}

func (a *App) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	res := a.handle(r.Context(), q)
	a.mu.Lock()
	a.results = append(a.results, res)
	a.mu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if res.Err != "" {
		fmt.Fprintf(w, "<h1 id=result>error: %s</h1>", html.EscapeString(res.Err))
		return
	}
	fmt.Fprintf(w, "<h1 id=result>Logged in as %s</h1>", html.EscapeString(fmt.Sprint(res.Claims["email"])))
}

func (a *App) handle(ctx context.Context, q url.Values) Result {
	if e := q.Get("error"); e != "" {
		return Result{Err: e}
	}
	a.mu.Lock()
	p, ok := a.pending[q.Get("state")]
	delete(a.pending, q.Get("state"))
	a.mu.Unlock()
	if !ok {
		return Result{Err: "unknown state"}
	}
	res := Result{Code: q.Get("code")}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tok, err := a.conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(p.verifier))
	if err != nil {
		res.Err = "exchange: " + err.Error()
		return res
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := a.provider.Verifier(&oidc.Config{ClientID: a.ClientID}).Verify(ctx, raw)
	if err != nil {
		res.Err = "verify id token: " + err.Error()
		return res
	}
	if idt.Nonce != p.nonce {
		res.Err = "nonce mismatch"
		return res
	}
	res.IDToken, res.Token = idt, tok
	if err := idt.Claims(&res.Claims); err != nil {
		res.Err = "claims: " + err.Error()
		return res
	}
	ui, err := a.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		res.Err = "userinfo: " + err.Error()
		return res
	}
	if ui.Subject != idt.Subject {
		res.Err = "userinfo subject differs from the ID token's"
		return res
	}
	_ = ui.Claims(&res.UserInfo)
	return res
}

// Results returns what the callback saw so far.
func (a *App) Results() []Result {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Result(nil), a.results...)
}

// Last returns the newest result, failing the test if there is none.
func (a *App) Last() Result {
	a.t.Helper()
	r := a.Results()
	if len(r) == 0 {
		a.t.Fatal("the app's callback was never reached")
	}
	return r[len(r)-1]
}
