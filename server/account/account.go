// Package account is the realm's built-in account page: a relying party of
// the realm itself (client "latchkey-account", public, PKCE), so that a
// person can sign in with nothing else running, through exactly the flow
// any app gets.
package account

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/securecookie"
	"golang.org/x/oauth2"

	"latchkey/flows"
	"latchkey/server/config"
	"latchkey/server/web"
)

// ClientID is the account page's client.
const ClientID = "latchkey-account"

// Client returns the account page's client registration.
func Client(issuer string) config.Client {
	return config.Client{
		// No name: its pages and mails speak of the realm ("Sign in to Acme").
		ClientID:               ClientID,
		RedirectURIs:           []string{issuer + "/account/callback"},
		PostLogoutRedirectURIs: []string{issuer + "/account"},
		Scopes:                 []string{"openid", "email", "profile"},
	}
}

// Handler serves /account.
type Handler struct {
	Issuer   string
	Realm    string
	Name     string
	Brand    web.Brand // the realm's branding, with the account client's
	Web      *web.Renderer
	Log      *slog.Logger
	Provider http.Handler // the realm's own endpoints, called in-process
	Codec    *securecookie.SecureCookie
	Secure   bool
}

// Profile is what the account page shows.
type Profile struct {
	Subject, Email, Name string
	EmailVerified        bool
	Locale               string // the user's (the locale claim)
	IDToken              string
	LogoutURL            string
	CSRF                 string // the sign-out form's token
}

const (
	loginCookie   = "LATCHKEY_ACCOUNT_LOGIN"
	profileCookie = "LATCHKEY_ACCOUNT"
)

// Routes registers the account page.
func (h *Handler) Routes(mux *http.ServeMux) {
	p := "/realms/" + h.Realm + "/account"
	mux.HandleFunc("GET "+p, h.show)
	mux.HandleFunc("GET "+p+"/callback", h.callback)
	mux.HandleFunc("POST "+p+"/logout", h.logout)
}

func (h *Handler) oauth() *oauth2.Config {
	oc := h.Issuer + "/protocol/openid-connect"
	return &oauth2.Config{
		ClientID: ClientID, RedirectURL: h.Issuer + "/account/callback", Scopes: []string{"openid", "email", "profile"},
		Endpoint: oauth2.Endpoint{AuthURL: oc + "/auth", TokenURL: oc + "/token", AuthStyle: oauth2.AuthStyleInParams},
	}
}

// inProcess sends the account page's back-channel calls straight to the
// realm's handlers: the public URL may not be reachable from the server.
type inProcess struct{ h http.Handler }

func (t inProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

func (h *Handler) cookie(w http.ResponseWriter, name string, v any, maxAge int) {
	enc := ""
	if v != nil {
		var err error
		if enc, err = h.Codec.Encode(name, v); err != nil {
			h.Log.Error("account cookie", "err", err)
			return
		}
	}
	http.SetCookie(w, &http.Cookie{Name: name, Value: enc, Path: "/realms/" + h.Realm + "/account", MaxAge: maxAge,
		HttpOnly: true, Secure: h.Secure, SameSite: http.SameSiteLaxMode})
}

func (h *Handler) read(r *http.Request, name string, v any) bool {
	c, err := r.Cookie(name)
	return err == nil && h.Codec.Decode(name, c.Value, v) == nil
}

type pendingLogin struct{ State, Verifier string }

func (h *Handler) show(w http.ResponseWriter, r *http.Request) {
	// keycloak-js writes the scheme in lower case ("bearer ...").
	if scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " "); strings.EqualFold(scheme, "Bearer") {
		h.accountJSON(w, r)
		return
	}
	var p Profile
	if h.read(r, profileCookie, &p) {
		loc := h.locale(w, r, p.Locale)
		v := web.View{Title: h.Web.Text(loc, flows.M("account.title")), RealmName: h.Name, StaticURL: "/realms/" + h.Realm + "/static",
			Data: p, Locale: loc, SwitchURL: r.URL.RequestURI(), Brand: h.Brand}
		h.Web.Page(w, http.StatusOK, "account", v)
		return
	}
	pl := pendingLogin{State: oauth2.GenerateVerifier(), Verifier: oauth2.GenerateVerifier()}
	h.cookie(w, loginCookie, pl, 900)
	http.Redirect(w, r, h.oauth().AuthCodeURL(pl.State, oauth2.S256ChallengeOption(pl.Verifier)), http.StatusFound)
}

// locale is the page's language: kc_locale (its switcher), the switcher's
// cookie (shared with the login pages), the user's, Accept-Language, the
// default.
func (h *Handler) locale(w http.ResponseWriter, r *http.Request, user string) string {
	if l, ok := h.Web.Catalog().Chosen(w, r, "/realms/"+h.Realm+"/", h.Secure); ok {
		return l
	}
	return h.Web.Catalog().Preferred(r, user)
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, msg flows.Msg) {
	loc := h.locale(w, r, "")
	v := web.View{Title: h.Web.Text(loc, flows.M("login.cannotTitle")), RealmName: h.Name, StaticURL: "/realms/" + h.Realm + "/static",
		Message: h.Web.Text(loc, msg), RestartURL: "/realms/" + h.Realm + "/account", Locale: loc, Brand: h.Brand}
	h.Web.Page(w, http.StatusBadRequest, "error", v)
}

func (h *Handler) callback(w http.ResponseWriter, r *http.Request) {
	var pl pendingLogin
	q := r.URL.Query()
	if !h.read(r, loginCookie, &pl) || subtle.ConstantTimeCompare([]byte(pl.State), []byte(q.Get("state"))) != 1 {
		h.fail(w, r, flows.M("account.notStartedHere"))
		return
	}
	h.cookie(w, loginCookie, nil, -1)
	if e := q.Get("error"); e != "" {
		h.fail(w, r, flows.M("account.failed", "Error", e))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Transport: inProcess{h.Provider}})
	tok, err := h.oauth().Exchange(ctx, q.Get("code"), oauth2.VerifierOption(pl.Verifier))
	if err != nil {
		h.Log.WarnContext(ctx, "account: code exchange", "err", err)
		h.fail(w, r, flows.M("account.notCompleted"))
		return
	}
	p, err := h.userinfo(ctx, tok)
	if err != nil {
		h.Log.WarnContext(ctx, "account: userinfo", "err", err)
		h.fail(w, r, flows.M("account.notCompleted"))
		return
	}
	p.IDToken, _ = tok.Extra("id_token").(string)
	p.LogoutURL = "/realms/" + h.Realm + "/account/logout"
	p.CSRF = oauth2.GenerateVerifier() // 256 bits from crypto/rand
	h.cookie(w, profileCookie, p, 0)
	http.Redirect(w, r, h.Issuer+"/account", http.StatusFound)
}

func (h *Handler) userinfo(ctx context.Context, tok *oauth2.Token) (Profile, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.Issuer+"/protocol/openid-connect/userinfo", nil)
	tok.SetAuthHeader(req)
	resp, err := inProcess{h.Provider}.RoundTrip(req)
	if err != nil {
		return Profile{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Profile{}, fmt.Errorf("userinfo status %d", resp.StatusCode)
	}
	var c struct {
		Sub, Email, Name, Locale string
		Verified                 bool `json:"email_verified"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		return Profile{}, err
	}
	return Profile{Subject: c.Sub, Email: c.Email, Name: c.Name, EmailVerified: c.Verified, Locale: c.Locale}, nil
}

// accountJSON answers Keycloak's account representation for a bearer
// access token (keycloak-js loadUserProfile); browsers get the HTML page.
func (h *Handler) accountJSON(w http.ResponseWriter, r *http.Request) {
	req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, h.Issuer+"/protocol/openid-connect/userinfo", nil)
	req.Header.Set("Authorization", r.Header.Get("Authorization"))
	resp, err := inProcess{h.Provider}.RoundTrip(req)
	if err != nil {
		http.Error(w, `{"error":"server_error"}`, http.StatusInternalServerError)
		return
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if resp.StatusCode != http.StatusOK {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"invalid_token"}` + "\n"))
		return
	}
	var c struct {
		Sub, Email, Name string
		Username         string `json:"preferred_username"`
		Given            string `json:"given_name"`
		Family           string `json:"family_name"`
		Verified         bool   `json:"email_verified"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		http.Error(w, `{"error":"server_error"}`, http.StatusInternalServerError)
		return
	}
	if c.Username == "" {
		c.Username = c.Email
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id": c.Sub, "username": c.Username, "email": c.Email, "firstName": c.Given, "lastName": c.Family,
		"emailVerified": c.Verified, "attributes": map[string]any{},
	})
}

// logout (a POST from the account page's own form: a cross-site link
// cannot sign anyone out) forgets the account page's view and ends the SSO
// session through the realm's RP-initiated logout.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	var p Profile
	if !h.read(r, profileCookie, &p) || p.CSRF == "" || subtle.ConstantTimeCompare([]byte(p.CSRF), []byte(r.PostFormValue("csrf"))) != 1 {
		http.Redirect(w, r, h.Issuer+"/account", http.StatusSeeOther)
		return
	}
	h.cookie(w, profileCookie, nil, -1)
	q := url.Values{"post_logout_redirect_uri": {h.Issuer + "/account"}, "client_id": {ClientID}}
	if p.IDToken != "" {
		q.Set("id_token_hint", p.IDToken)
	}
	http.Redirect(w, r, h.Issuer+"/protocol/openid-connect/logout?"+q.Encode(), http.StatusSeeOther)
}
