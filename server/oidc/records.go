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
//     nonce) and, of the form, what fosite's sanitation whitelist lets
//     through (see New): the redirect_uri the token request must repeat and
//     the PKCE challenge. The PKCE and OpenID Connect records fosite asks
//     for are read from it (see GetPKCERequestSession,
//     GetOpenIDConnectSession): two inserts and two deletes fewer a login.
//   - access: who (subject and sid: the row's columns; username), until
//     when, and the token's digest (recordedAccessTokens checks a token by
//     it). Userinfo and the service-account check read the subject,
//     introspection the subject, username and expiry; the claims are in
//     the token itself.
//   - refresh: the ID token's claims without the user's (refreshClaims
//     renews those from the user at every refresh, and the access claims with
//     them), keeping the sid they are renewed for.
type recordingStorage struct {
	Store
}

// withSession is a request stored with another session.
type withSession struct {
	fosite.Requester
	session fosite.Session
}

func (r withSession) GetSession() fosite.Session { return r.session }

// CreatePKCERequestSession stores nothing: the code's record keeps the
// challenge.
func (s recordingStorage) CreatePKCERequestSession(context.Context, string, fosite.Requester) error {
	return nil
}

// GetPKCERequestSession reads the challenge from the code's record. As
// fosite's own record would be, it is missing when the authorization request
// sent no challenge, and once the code is used.
func (s recordingStorage) GetPKCERequestSession(ctx context.Context, signature string, _ fosite.Session) (fosite.Requester, error) {
	r, ok := codeReadOf(ctx, signature)
	if !ok {
		// No session: only the form and the client are read.
		var err error
		r, err = s.Store.GetAuthorizeCodeSession(ctx, signature, nil)
		if errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
			return nil, fosite.ErrNotFound
		}
		if err != nil {
			return nil, err
		}
	}
	if f := r.GetRequestForm(); f.Get("code_challenge") == "" && f.Get("code_challenge_method") == "" {
		return nil, fosite.ErrNotFound
	}
	return r, nil
}

// GetAuthorizeCodeSession reads a code's record once per token request.
// fosite reads it three times in one exchange: to check the grant, for
// PKCE, and again before issuing, into the same session. The later two get
// the first read's request: nothing changes the record in between but the
// code being spent, which InvalidateAuthorizeCodeSession decides in the
// issuing transaction (one statement: a concurrent redemption loses there).
func (s recordingStorage) GetAuthorizeCodeSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	if r, ok := codeReadOf(ctx, signature); ok && r.GetSession() == session {
		return r, nil
	}
	r, err := s.Store.GetAuthorizeCodeSession(ctx, signature, session)
	if m, ok := ctx.Value(codeReadKey{}).(*codeRead); ok && err == nil && session != nil {
		m.signature, m.request = signature, r
	}
	return r, err
}

// codeRead is a token request's read of its code's live record
// (withCodeRead).
type codeRead struct {
	signature string
	request   fosite.Requester
}

type codeReadKey struct{}

// withCodeRead lets one token request reuse its code's record.
func withCodeRead(ctx context.Context) context.Context {
	return context.WithValue(ctx, codeReadKey{}, &codeRead{})
}

func codeReadOf(ctx context.Context, signature string) (fosite.Requester, bool) {
	m, ok := ctx.Value(codeReadKey{}).(*codeRead)
	if !ok || m.request == nil || m.signature != signature {
		return nil, false
	}
	return m.request, true
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
		r = withSession{r, storedSession{sess, fosite.AccessToken}}
	}
	return s.Store.CreateAccessTokenSession(ctx, signature, r)
}

func (s recordingStorage) CreateRefreshTokenSession(ctx context.Context, signature, accessSignature string, r fosite.Requester) error {
	if sess, ok := r.GetSession().(*Session); ok {
		r = withSession{r, storedSession{sess, fosite.RefreshToken}}
	}
	return s.Store.CreateRefreshTokenSession(ctx, signature, accessSignature, r)
}

// storedSession is a token's session as stored, in the JSON of Session
// without the zero values: the username and the token's own expiry; for a
// refresh token also the ID token's claims a refreshed ID token carries
// over (request and authentication times, acr, amr). No access token
// claims, none of the user's. The subject and the sid are the row's columns
// (store.KeyedSession gives them back); rows written before hold them too.
type storedSession struct {
	*Session
	token fosite.TokenType
}

func (s storedSession) MarshalJSON() ([]byte, error) {
	type idClaims struct {
		RequestedAt time.Time `json:"rat,omitzero"`
		AuthTime    time.Time `json:"auth_time,omitzero"`
		ACR         string    `json:"acr,omitempty"`
		AMR         []string  `json:"amr,omitempty"`
	}
	var claims idClaims
	if c := s.Claims; c != nil && s.token == fosite.RefreshToken {
		claims = idClaims{RequestedAt: c.RequestedAt, AuthTime: c.AuthTime,
			ACR: c.AuthenticationContextClassReference, AMR: c.AuthenticationMethodsReferences}
	}
	var headers *jwt.Headers
	if s.Headers != nil && len(s.Headers.Extra) > 0 {
		headers = s.Headers
	}
	var exp map[fosite.TokenType]time.Time
	if t := s.GetExpiresAt(s.token); !t.IsZero() {
		exp = map[fosite.TokenType]time.Time{s.token: t}
	}
	var digest []byte
	if s.token == fosite.AccessToken {
		digest = s.AccessDigest
	}
	return json.Marshal(struct {
		Claims    idClaims                       `json:"id_token_claims,omitzero"`
		Headers   *jwt.Headers                   `json:"headers,omitempty"`
		ExpiresAt map[fosite.TokenType]time.Time `json:"expires_at,omitempty"`
		Username  string                         `json:"username,omitempty"`
		Digest    []byte                         `json:"access_sha256,omitempty"`
	}{claims, headers, exp, s.Username, digest})
}
