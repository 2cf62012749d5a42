package oidc

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v3"
	josejwt "github.com/go-jose/go-jose/v3/jwt"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
)

// refreshJWT issues refresh tokens shaped as Keycloak's: JWTs (HS256 with a
// key of the realm's own; no one else verifies them) carrying typ Refresh,
// exp, sid and session_state, which keycloak-js decodes. As with fosite's
// opaque ones, the token's signature keys its row, so rotation, reuse
// detection and revocation work unchanged; refresh tokens issued before
// (ory_rt_...) are still read by the wrapped strategy.
type refreshJWT struct {
	oauth2.CoreStrategy
	key    []byte
	issuer string
}

const opaqueRefreshPrefix = "ory_rt_"

func (s refreshJWT) RefreshTokenSignature(ctx context.Context, token string) string {
	if strings.HasPrefix(token, opaqueRefreshPrefix) {
		return s.CoreStrategy.RefreshTokenSignature(ctx, token)
	}
	if i := strings.LastIndexByte(token, '.'); i > 0 && strings.Count(token, ".") == 2 {
		return token[i+1:]
	}
	return ""
}

func (s refreshJWT) GenerateRefreshToken(_ context.Context, r fosite.Requester) (string, string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: s.key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", "", fmt.Errorf("refresh token signer: %w", err)
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", "", fmt.Errorf("refresh token id: %w", err)
	}
	now := time.Now().UTC()
	claims := map[string]any{
		"iss": s.issuer, "aud": s.issuer, "sub": r.GetSession().GetSubject(), "typ": "Refresh",
		"azp": r.GetClient().GetID(), "iat": now.Unix(), "jti": base64.RawURLEncoding.EncodeToString(jti[:]),
		"scope": strings.Join(r.GetGrantedScopes(), " "),
	}
	if exp := r.GetSession().GetExpiresAt(fosite.RefreshToken); !exp.IsZero() {
		claims["exp"] = exp.Unix()
	}
	if sess, ok := r.GetSession().(*Session); ok && sess.Claims != nil {
		if sid, _ := sess.Claims.Extra["sid"].(string); sid != "" {
			claims["sid"], claims["session_state"] = sid, sid
		}
	}
	token, err := josejwt.Signed(signer).Claims(claims).CompactSerialize()
	if err != nil {
		return "", "", fmt.Errorf("sign refresh token: %w", err)
	}
	return token, token[strings.LastIndexByte(token, '.')+1:], nil
}

func (s refreshJWT) ValidateRefreshToken(ctx context.Context, r fosite.Requester, token string) error {
	if strings.HasPrefix(token, opaqueRefreshPrefix) {
		return s.CoreStrategy.ValidateRefreshToken(ctx, r, token)
	}
	parsed, err := josejwt.ParseSigned(token)
	if err != nil {
		return fosite.ErrInvalidTokenFormat.WithWrap(err)
	}
	var claims struct {
		Typ string `json:"typ"`
		Exp int64  `json:"exp"`
	}
	if err := parsed.Claims(s.key, &claims); err != nil || claims.Typ != "Refresh" {
		return fosite.ErrTokenSignatureMismatch.WithWrap(errors.Join(err, errors.New("not a refresh token of this realm")))
	}
	exp := r.GetSession().GetExpiresAt(fosite.RefreshToken)
	if (claims.Exp != 0 && time.Now().Unix() >= claims.Exp) || (!exp.IsZero() && exp.Before(time.Now().UTC())) {
		return fosite.ErrTokenExpired.WithHint("The refresh token expired.")
	}
	return nil
}
