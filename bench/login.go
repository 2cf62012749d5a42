package main

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Steps of one complete login, in order.
// The Node peer's login has no mail: its password form is posted
// (password_post), its consent form shown and posted (consent_page,
// consent_post) and the authorization resumed (resume) instead.
var steps = []string{"authorize", "login_page", "email_post", "password_post", "consent_page", "consent_post", "mail", "link_get", "confirm_post", "resume", "token", "verify", "userinfo", "total"}

// loginError is a failed login, by kind (the step and what went wrong).
type loginError struct{ kind string }

func (e *loginError) Error() string { return e.kind }

func fail(step, format string, args ...any) error {
	return &loginError{kind: step + ": " + fmt.Sprintf(format, args...)}
}

// rp is the relying-party side shared by all virtual users.
type rp struct {
	issuer   string
	conf     oauth2.Config
	verifier *oidc.IDTokenVerifier
	provider *oidc.Provider
	mail     *mailSink
	http     *http.Transport
	jwksURL  string // from discovery
}

func newRP(ctx context.Context, issuer string, sink *mailSink, conns int) (*rp, error) {
	p, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	var meta struct {
		JWKSURL string `json:"jwks_uri"`
	}
	if err := p.Claims(&meta); err != nil || meta.JWKSURL == "" {
		return nil, fmt.Errorf("discovery: no jwks_uri (%v)", err)
	}
	tr := &http.Transport{MaxIdleConns: conns * 4, MaxIdleConnsPerHost: conns * 4, IdleConnTimeout: time.Minute}
	return &rp{
		issuer: issuer, provider: p, mail: sink, http: tr, jwksURL: meta.JWKSURL,
		conf: oauth2.Config{ClientID: "bench", Endpoint: p.Endpoint(), RedirectURL: "http://127.0.0.1:9/cb",
			Scopes: []string{oidc.ScopeOpenID, "email", "profile", oidc.ScopeOfflineAccess}},
		verifier: p.Verifier(&oidc.Config{ClientID: "bench"}),
	}, nil
}

var (
	csrfRe   = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	execRe   = regexp.MustCompile(`name="execution" value="([^"]+)"`)
	tokenRe  = regexp.MustCompile(`name="token" value="([^"]+)"`)
	actionRe = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
)

// login runs one complete login for email, as a browser and an app would,
// and records each step's latency.
func (r *rp) login(ctx context.Context, email string, rec func(step string, d time.Duration)) (*oauth2.Token, error) {
	v := r.visit(email, rec)
	c, lap, state := v.c, v.lap, v.state
	waiter := r.mail.expect(email)
	defer r.mail.forget(email)

	// 1. The app sends the browser to the authorization endpoint, which
	// answers with the login page (servers before this answer redirected
	// to it: step 2).
	authURL := v.authURL()
	resp, err := c.Get(authURL)
	if err != nil {
		return nil, fail("authorize", "transport")
	}
	loc, step := authURL, "authorize"
	var page string
	if resp.StatusCode == http.StatusSeeOther {
		l, _ := redirect(resp, http.StatusSeeOther)
		loc, step = resolve(authURL, l), "login_page"
		lap("authorize")
		// 2. The login page.
		if page, err = get(c, loc); err != nil {
			return nil, fail(step, "%v", err)
		}
	} else if page, err = body(resp); err != nil {
		return nil, fail(step, "%v", err)
	}
	csrf, exec, action := find(csrfRe, page), find(execRe, page), find(actionRe, page)
	if csrf == "" || exec == "" || action == "" {
		return nil, fail(step, "no email form")
	}
	lap(step)

	// 3. The email form.
	page, err = post(c, resolve(loc, html.UnescapeString(action)), url.Values{"csrf": {csrf}, "execution": {exec}, "email": {email}})
	if err != nil {
		return nil, fail("email_post", "%v", err)
	}
	if !strings.Contains(page, "Check your email") || strings.Contains(page, "too many links") {
		return nil, fail("email_post", "no 'check your email'")
	}
	lap("email_post")

	// 4. The mail, through SMTP.
	var link string
	select {
	case link = <-waiter:
	case <-time.After(20 * time.Second):
		return nil, fail("mail", "not received in 20s")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	lap("mail")

	// 5. The link's page (GET never consumes).
	page, err = get(c, link)
	if err != nil {
		return nil, fail("link_get", "%v", err)
	}
	csrf, tok := find(csrfRe, page), find(tokenRe, page)
	if csrf == "" || tok == "" {
		return nil, fail("link_get", "no confirm form")
	}
	lap("link_get")

	// 6. Confirm: the code comes back on the redirect.
	resp, err = c.PostForm(strings.SplitN(link, "?", 2)[0], url.Values{"csrf": {csrf}, "token": {html.UnescapeString(tok)}})
	if err != nil {
		return nil, fail("confirm_post", "transport")
	}
	loc, err = redirect(resp, http.StatusSeeOther)
	if err != nil {
		return nil, fail("confirm_post", "%v", err)
	}
	cb, _ := url.Parse(loc)
	if cb.Query().Get("state") != state || cb.Query().Get("code") == "" {
		return nil, fail("confirm_post", "no code or wrong state")
	}
	lap("confirm_post")

	// 7. Token exchange, 8. ID token verification, 9. userinfo.
	return v.finish(ctx, cb.Query().Get("code"))
}

// visit is one login by one virtual user: a browser with cookies of its
// own that does not follow redirects, the app's state, nonce and PKCE
// verifier, and the clock its steps are timed by.
type visit struct {
	r                      *rp
	c                      *http.Client
	email                  string
	state, nonce, verifier string
	start, mark            time.Time
	rec                    func(step string, d time.Duration)
}

func (r *rp) visit(email string, rec func(step string, d time.Duration)) *visit {
	jar, _ := cookiejar.New(nil)
	now := time.Now()
	return &visit{r: r, email: email, rec: rec, start: now, mark: now,
		c: &http.Client{Jar: jar, Transport: r.http, Timeout: 30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		state: oauth2.GenerateVerifier(), nonce: oauth2.GenerateVerifier(), verifier: oauth2.GenerateVerifier()}
}

// authURL is where the app sends the browser (with PKCE and a nonce).
func (v *visit) authURL() string {
	return v.r.conf.AuthCodeURL(v.state, oidc.Nonce(v.nonce), oauth2.S256ChallengeOption(v.verifier))
}

// lap records the time since the last step's end as step's.
func (v *visit) lap(step string) {
	now := time.Now()
	v.rec(step, now.Sub(v.mark))
	v.mark = now
}

// finish is what the app does with the code: the token exchange, the ID
// token's verification (signature, nonce, email claim) and userinfo.
func (v *visit) finish(ctx context.Context, code string) (*oauth2.Token, error) {
	r, lap := v.r, v.lap
	hc := context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Transport: r.http, Timeout: 30 * time.Second})
	t, err := r.conf.Exchange(hc, code, oauth2.VerifierOption(v.verifier))
	if err != nil {
		return nil, fail("token", "exchange failed")
	}
	if t.RefreshToken == "" {
		return nil, fail("token", "no refresh token")
	}
	lap("token")
	raw, _ := t.Extra("id_token").(string)
	idt, err := r.verifier.Verify(hc, raw)
	if err != nil || idt.Nonce != v.nonce {
		return nil, fail("verify", "ID token invalid")
	}
	var claims struct {
		Email string `json:"email"`
	}
	if err := idt.Claims(&claims); err != nil || claims.Email != v.email {
		return nil, fail("verify", "wrong email claim")
	}
	lap("verify")
	ui, err := r.provider.UserInfo(hc, oauth2.StaticTokenSource(t))
	if err != nil || ui.Subject != idt.Subject {
		return nil, fail("userinfo", "failed")
	}
	lap("userinfo")
	v.rec("total", time.Since(v.start))
	return t, nil
}

func redirect(resp *http.Response, want int) (string, error) {
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	return resp.Header.Get("Location"), nil
}

func get(c *http.Client, u string) (string, error) {
	resp, err := c.Get(u)
	if err != nil {
		return "", errors.New("transport")
	}
	return body(resp)
}

func post(c *http.Client, u string, form url.Values) (string, error) {
	resp, err := c.PostForm(u, form)
	if err != nil {
		return "", errors.New("transport")
	}
	return body(resp)
}

func body(resp *http.Response) (string, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", errors.New("read")
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(b), nil
}

func find(re *regexp.Regexp, s string) string {
	if m := re.FindStringSubmatch(s); m != nil {
		return m[1]
	}
	return ""
}

func resolve(base, ref string) string {
	b, err := url.Parse(base)
	if err != nil {
		return ref
	}
	r, err := b.Parse(ref)
	if err != nil {
		return ref
	}
	return r.String()
}
