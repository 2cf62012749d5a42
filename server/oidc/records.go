package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"
)

// What each stored record keeps. fosite hands its storage the whole request
// under every signature: the authorize request's form and a session holding
// the ID token's and the access token's claims, about 1.8 KB of JSON, five
// records a login (code, PKCE, OpenID Connect, access, refresh). Here a
// login writes three rows, each with only what its readers use, and a token
// row keeps no copy of the user's profile:
//
//   - code: the session (the tokens are made from it, and it carries the
//     nonce) and the form's redirect_uri (the token request must repeat it)
//     and PKCE challenge. The PKCE and OpenID Connect records fosite asks
//     for are read from it (see GetPKCERequestSession,
//     GetOpenIDConnectSession): two inserts and two deletes fewer a login.
//   - access: who (subject, username, sid) and until when. Userinfo and the
//     service-account check read the subject, introspection the subject,
//     username and expiry; the claims are in the token itself.
//   - refresh: the ID token's claims without the user's (refreshClaims
//     renews those from the user at every refresh, and the access claims with
//     them), keeping the sid they are renewed for.
type recordingStorage struct {
	Store
}

// recorded is a request as stored: its own form and session.
type recorded struct {
	fosite.Requester
	form    url.Values
	session fosite.Session
}

func (r recorded) GetRequestForm() url.Values { return r.form }
func (r recorded) GetSession() fosite.Session { return r.session }

// only is the part of form named by keys.
func only(form url.Values, keys ...string) url.Values {
	kept := url.Values{}
	for _, k := range keys {
		if v, ok := form[k]; ok {
			kept[k] = v
		}
	}
	return kept
}

func (s recordingStorage) CreateAuthorizeCodeSession(ctx context.Context, code string, r fosite.Requester) error {
	form := only(r.GetRequestForm(), "redirect_uri", "code_challenge", "code_challenge_method")
	return s.Store.CreateAuthorizeCodeSession(ctx, code, recorded{r, form, r.GetSession()})
}

// CreatePKCERequestSession stores nothing: the code's record keeps the
// challenge.
func (s recordingStorage) CreatePKCERequestSession(context.Context, string, fosite.Requester) error {
	return nil
}

// GetPKCERequestSession reads the challenge from the code's record. As
// fosite's own record would be, it is missing when the authorization request
// sent no challenge, and once the code is used.
func (s recordingStorage) GetPKCERequestSession(ctx context.Context, signature string, _ fosite.Session) (fosite.Requester, error) {
	// No session: only the form and the client are read.
	r, err := s.Store.GetAuthorizeCodeSession(ctx, signature, nil)
	if errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
		return nil, fosite.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if f := r.GetRequestForm(); f.Get("code_challenge") == "" && f.Get("code_challenge_method") == "" {
		return nil, fosite.ErrNotFound
	}
	return r, nil
}

// CreateOpenIDConnectSession stores nothing: the ID token is made from the
// code's session, which holds the nonce (Authorize puts it there), and the
// authorization request's prompt, max_age and id_token_hint were checked
// when the code was issued.
func (s recordingStorage) CreateOpenIDConnectSession(context.Context, string, fosite.Requester) error {
	return nil
}

// GetOpenIDConnectSession is the token request's own grant (its session is
// the code's) when the code was issued for openid. A code issued before
// codes carried their nonce (an upgrade in the code's minute of life) has
// fosite's own record, which is read then.
func (s recordingStorage) GetOpenIDConnectSession(ctx context.Context, code string, r fosite.Requester) (fosite.Requester, error) {
	sess, ok := r.GetSession().(*Session)
	if !ok || sess.Claims == nil || !r.GetGrantedScopes().Has("openid") {
		return nil, openid.ErrNoSessionFound
	}
	if sess.Claims.Nonce == "" {
		if old, err := s.Store.GetOpenIDConnectSession(ctx, code, r); !errors.Is(err, openid.ErrNoSessionFound) {
			return old, err
		}
	}
	return &fosite.Request{
		ID: r.GetID(), RequestedAt: r.GetRequestedAt(), Client: r.GetClient(),
		RequestedScope: r.GetRequestedScopes(), GrantedScope: r.GetGrantedScopes(),
		RequestedAudience: r.GetRequestedAudience(), GrantedAudience: r.GetGrantedAudience(),
		Form: url.Values{}, Session: sess,
	}, nil
}

// DeleteOpenIDConnectSession deletes nothing: there is no record, and one
// from before is purged when its code expires.
func (s recordingStorage) DeleteOpenIDConnectSession(context.Context, string) error { return nil }

func (s recordingStorage) CreateAccessTokenSession(ctx context.Context, signature string, r fosite.Requester) error {
	if sess, ok := r.GetSession().(*Session); ok {
		r = recorded{r, r.GetRequestForm(), accessRecord{sess}}
	}
	return s.Store.CreateAccessTokenSession(ctx, signature, r)
}

func (s recordingStorage) CreateRefreshTokenSession(ctx context.Context, signature, accessSignature string, r fosite.Requester) error {
	if sess, ok := r.GetSession().(*Session); ok && sess.Claims != nil {
		r = recorded{r, r.GetRequestForm(), refreshRecord{sess}}
	}
	return s.Store.CreateRefreshTokenSession(ctx, signature, accessSignature, r)
}

// accessRecord is an access token's session as stored: subject, username,
// sid and expiry, in the JSON of Session.
type accessRecord struct{ *Session }

func (s accessRecord) MarshalJSON() ([]byte, error) {
	type claims struct {
		Extra map[string]any `json:"ext"`
	}
	var c *claims
	if sid := s.SessionRef(); sid != "" {
		c = &claims{Extra: map[string]any{"sid": sid}}
	}
	var exp map[fosite.TokenType]time.Time
	if t := s.GetExpiresAt(fosite.AccessToken); !t.IsZero() {
		exp = map[fosite.TokenType]time.Time{fosite.AccessToken: t}
	}
	return json.Marshal(struct {
		Claims    *claims                        `json:"id_token_claims,omitempty"`
		ExpiresAt map[fosite.TokenType]time.Time `json:"expires_at,omitempty"`
		Username  string                         `json:"username,omitempty"`
		Subject   string                         `json:"subject"`
	}{c, exp, s.Username, s.Subject})
}

// refreshRecord is a refresh token's session as stored: of the ID token's
// claims those a refreshed ID token carries over (subject, request and
// authentication times, acr, amr) and the sid the user's claims are renewed
// for; the refresh token's expiry; no access token claims. It is the JSON of
// Session without the zero values, which a refresh sets again.
type refreshRecord struct{ *Session }

func (s refreshRecord) MarshalJSON() ([]byte, error) {
	type idClaims struct {
		Subject     string         `json:"sub,omitempty"`
		RequestedAt time.Time      `json:"rat,omitzero"`
		AuthTime    time.Time      `json:"auth_time,omitzero"`
		ACR         string         `json:"acr,omitempty"`
		AMR         []string       `json:"amr,omitempty"`
		Extra       map[string]any `json:"ext,omitempty"`
	}
	c := s.Claims
	claims := idClaims{Subject: c.Subject, RequestedAt: c.RequestedAt, AuthTime: c.AuthTime,
		ACR: c.AuthenticationContextClassReference, AMR: c.AuthenticationMethodsReferences}
	if sid := s.SessionRef(); sid != "" {
		claims.Extra = map[string]any{"sid": sid}
	}
	var headers *jwt.Headers
	if s.Headers != nil && len(s.Headers.Extra) > 0 {
		headers = s.Headers
	}
	var exp map[fosite.TokenType]time.Time
	if t := s.GetExpiresAt(fosite.RefreshToken); !t.IsZero() {
		exp = map[fosite.TokenType]time.Time{fosite.RefreshToken: t}
	}
	return json.Marshal(struct {
		Claims    idClaims                       `json:"id_token_claims"`
		Headers   *jwt.Headers                   `json:"headers,omitempty"`
		ExpiresAt map[fosite.TokenType]time.Time `json:"expires_at,omitempty"`
		Username  string                         `json:"username,omitempty"`
		Subject   string                         `json:"subject"`
	}{claims, headers, exp, s.Username, s.Subject})
}
