package oidc

import (
	"context"
	"errors"
	"time"

	"github.com/mohae/deepcopy"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"
)

// Session is what fosite keeps of a grant: the ID token's claims
// (openid.DefaultSession, whose JSON it keeps, so grants stored before JWT
// access tokens still load) and the claims of JWT access tokens (RFC 9068,
// with Keycloak's claims so its adapters can read them).
type Session struct {
	openid.DefaultSession
	Access       *jwt.JWTClaims `json:"access_claims,omitempty"`
	AccessHeader *jwt.Headers   `json:"access_header,omitempty"`
	// AccessDigest is the SHA-256 of the JWT access token last issued with
	// this session; an access token's row keeps it (recordedAccessTokens).
	AccessDigest []byte `json:"access_sha256,omitempty"`
}

// NewSession returns an empty session for fosite to fill from storage.
func NewSession() *Session {
	return &Session{DefaultSession: openid.DefaultSession{Claims: &jwt.IDTokenClaims{}, Headers: &jwt.Headers{}}}
}

// SessionRef is the sid of the SSO session the grant belongs to (the
// store indexes tokens by it, so that ending the session ends them).
func (s *Session) SessionRef() string {
	if s.Claims == nil {
		return ""
	}
	sid, _ := s.Claims.Extra["sid"].(string)
	return sid
}

// RestoreKeys gives a session read from a token's row the subject and sid
// the row keeps in its columns, which storedSession leaves out of the JSON
// (store.KeyedSession). A session stored with them keeps its own.
func (s *Session) RestoreKeys(subject, sessionRef string) {
	if s.Subject == "" {
		s.Subject = subject
	}
	if s.Claims == nil {
		s.Claims = &jwt.IDTokenClaims{}
	}
	if s.Claims.Subject == "" {
		s.Claims.Subject = subject
	}
	if sessionRef != "" && s.SessionRef() == "" {
		if s.Claims.Extra == nil {
			s.Claims.Extra = map[string]any{}
		}
		s.Claims.Extra["sid"] = sessionRef
	}
}

// GetJWTClaims implements oauth2.JWTSessionContainer.
func (s *Session) GetJWTClaims() jwt.JWTClaimsContainer {
	if s.Access == nil {
		s.Access = &jwt.JWTClaims{}
	}
	return s.Access
}

// GetJWTHeader implements oauth2.JWTSessionContainer.
func (s *Session) GetJWTHeader() *jwt.Headers {
	if s.AccessHeader == nil {
		s.AccessHeader = &jwt.Headers{}
	}
	return s.AccessHeader
}

// Clone implements fosite.Session (the embedded one would clone only itself).
func (s *Session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	return deepcopy.Copy(s).(*Session)
}

// accessTokenSigner signs JWT access tokens with the realm's current key
// (fosite's DefaultSigner) and verifies them with any published key, chosen
// by kid: fosite's own Decode knows only the current private key, so tokens
// would die at a key rotation, and EdDSA would not verify at all.
type accessTokenSigner struct {
	*jwt.DefaultSigner
	keys *KeySet
}

func (s accessTokenSigner) Decode(ctx context.Context, token string) (*jwt.Token, error) {
	return jwt.Parse(token, s.keys.verificationKey(ctx))
}

func (s accessTokenSigner) Validate(ctx context.Context, token string) (string, error) {
	if _, err := s.Decode(ctx, token); err != nil {
		return "", err
	}
	return s.GetSignature(ctx, token)
}

// verificationKey finds the published key a token names by kid.
func (k *KeySet) verificationKey(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (interface{}, error) {
		set, err := k.Public(ctx)
		if err != nil {
			return nil, err
		}
		kid, _ := t.Header["kid"].(string)
		if keys := set.Key(kid); len(keys) > 0 {
			// The JSON Web Key itself, not its Key: fosite's parser turns a
			// key value into a pointer, which go-jose refuses for Ed25519.
			return &keys[0], nil
		}
		return nil, errors.New("unknown kid")
	}
}

// idTokens wraps fosite's ID token strategy so that ID tokens carry no rat
// (request time) claim, which nobody asked for (OIDC Core lists no such
// claim). fosite writes rat whenever it knows the request time, and needs it
// for its own max_age and prompt checks; the login flow has already enforced
// both (the cookie step skips an SSO session older than max_age or under
// prompt=login, and prompt=none shows no page), so those checks are handed
// a request without max_age and prompt, and without a request time.
type idTokens struct {
	openid.OpenIDConnectTokenStrategy
}

func (s idTokens) GenerateIDToken(ctx context.Context, lifespan time.Duration, r fosite.Requester) (string, error) {
	sess, ok := r.GetSession().(*Session)
	if !ok || sess.Claims == nil {
		return s.OpenIDConnectTokenStrategy.GenerateIDToken(ctx, lifespan, r)
	}
	form := r.GetRequestForm()
	requestedAt, maxAge, prompt := sess.Claims.RequestedAt, form["max_age"], form["prompt"]
	sess.Claims.RequestedAt = time.Time{}
	delete(form, "max_age")
	delete(form, "prompt")
	defer func() {
		sess.Claims.RequestedAt = requestedAt
		if maxAge != nil {
			form["max_age"] = maxAge
		}
		if prompt != nil {
			form["prompt"] = prompt
		}
	}()
	return s.OpenIDConnectTokenStrategy.GenerateIDToken(ctx, lifespan, r)
}
