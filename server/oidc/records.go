package oidc

import (
	"context"
	"encoding/json"
	"net/url"
	"time"

	"github.com/ory/fosite"
)

// What each stored record keeps. fosite hands its storage the whole request
// under every signature: the authorize request's form and a session holding
// the ID token's and the access token's claims, about 1.8 KB of JSON, five
// records a login. Each record keeps only what its readers use, so a login
// writes (and a token row keeps) a fraction of it, and a token row keeps no
// copy of the user's profile:
//
//   - code: the whole session (the tokens are made from it) and the
//     redirect_uri, which the token request must repeat.
//   - pkce: the code_challenge and its method, nothing of the session.
//   - oidc: the parameters the ID token is made from (nonce; max_age, prompt,
//     acr_values and id_token_hint, which fosite checks again), nothing of the
//     session: fosite reads the record into the session the code already
//     filled, and an empty session leaves it as it is.
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

// noClaims is a session stored as {}: its expiry still decides how long the
// record is kept, and reading it back changes nothing in the session it is
// read into.
type noClaims struct{ fosite.Session }

func (noClaims) MarshalJSON() ([]byte, error) { return []byte("{}"), nil }

func (s recordingStorage) CreateAuthorizeCodeSession(ctx context.Context, code string, r fosite.Requester) error {
	return s.Store.CreateAuthorizeCodeSession(ctx, code, recorded{r, only(r.GetRequestForm(), "redirect_uri"), r.GetSession()})
}

func (s recordingStorage) CreatePKCERequestSession(ctx context.Context, signature string, r fosite.Requester) error {
	form := only(r.GetRequestForm(), "code_challenge", "code_challenge_method")
	return s.Store.CreatePKCERequestSession(ctx, signature, recorded{r, form, noClaims{r.GetSession()}})
}

func (s recordingStorage) CreateOpenIDConnectSession(ctx context.Context, code string, r fosite.Requester) error {
	form := only(r.GetRequestForm(), "nonce", "max_age", "prompt", "acr_values", "id_token_hint")
	return s.Store.CreateOpenIDConnectSession(ctx, code, recorded{r, form, noClaims{r.GetSession()}})
}

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

// refreshRecord is a refresh token's session as stored: the ID token's
// claims with only the sid of the user's, and no access token claims.
type refreshRecord struct{ *Session }

func (s refreshRecord) MarshalJSON() ([]byte, error) {
	claims := *s.Claims
	claims.Extra = map[string]any{}
	if sid := s.SessionRef(); sid != "" {
		claims.Extra["sid"] = sid
	}
	kept := Session{DefaultSession: s.DefaultSession}
	kept.Claims = &claims
	return json.Marshal(&kept)
}
