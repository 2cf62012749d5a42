package oidc

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	josejwt "github.com/go-jose/go-jose/v3/jwt"
	"github.com/ory/fosite"
	"github.com/ory/fosite/token/jwt"
)

func refreshRequest(exp time.Time) *fosite.Request {
	s := NewSession()
	s.Subject = "user-1"
	s.Claims = &jwt.IDTokenClaims{Extra: map[string]any{"sid": "sid-1"}}
	s.SetExpiresAt(fosite.RefreshToken, exp)
	r := fosite.NewRequest()
	r.Client = &fosite.DefaultClient{ID: "app"}
	r.Session = s
	r.GrantedScope = fosite.Arguments{"openid", "offline_access"}
	return r
}

// Refresh tokens look like Keycloak's (keycloak-js decodes them) and are
// checked by their own signature and expiry.
func TestRefreshTokensAreKeycloakShapedJWTs(t *testing.T) {
	ctx := context.Background()
	s := refreshJWT{key: []byte("0123456789abcdef0123456789abcdef"), issuer: "https://id.example/realms/test"}
	r := refreshRequest(time.Now().Add(time.Hour))
	token, sig, err := s.GenerateRefreshToken(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if s.RefreshTokenSignature(ctx, token) != sig || !strings.HasSuffix(token, "."+sig) {
		t.Fatal("the signature that keys the row is not the token's")
	}
	parsed, err := josejwt.ParseSigned(token)
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := parsed.UnsafeClaimsWithoutVerification(&claims); err != nil {
		t.Fatal(err)
	}
	if claims["typ"] != "Refresh" || claims["sid"] != "sid-1" || claims["session_state"] != "sid-1" || claims["sub"] != "user-1" || claims["azp"] != "app" {
		t.Fatalf("claims %v", claims)
	}
	if err := s.ValidateRefreshToken(ctx, r, token); err != nil {
		t.Fatalf("valid token refused: %v", err)
	}
	other := refreshJWT{key: []byte("another-realm-key-0123456789abcd"), issuer: s.issuer}
	if err := other.ValidateRefreshToken(ctx, r, token); !errors.Is(err, fosite.ErrTokenSignatureMismatch) {
		t.Fatalf("another key's token: %v", err)
	}
	if err := s.ValidateRefreshToken(ctx, r, token[:len(token)-2]+"xx"); err == nil {
		t.Fatal("a tampered token accepted")
	}
	expired := refreshRequest(time.Now().Add(-time.Minute))
	old, _, _ := s.GenerateRefreshToken(ctx, expired)
	if err := s.ValidateRefreshToken(ctx, expired, old); !errors.Is(err, fosite.ErrTokenExpired) {
		t.Fatalf("expired token: %v", err)
	}
}
