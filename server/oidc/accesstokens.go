package oidc

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
)

// recordedAccessTokens checks a JWT access token against the row it was
// stored with instead of verifying its signature again. fosite finds a
// token's row (by the token's signature) before it validates the token, and
// the row keeps the SHA-256 of the exact token issued: a token whose digest
// matches is byte for byte the one we signed, so a second signature
// verification (ECDSA or RSA, most of a userinfo request's CPU) would prove
// nothing more, and a token changed anywhere (payload, header, or an
// equivalent ECDSA signature) is refused. Its expiry is the row's, which is
// the token's exp. Rows written before the digest are verified as before.
type recordedAccessTokens struct {
	oauth2.CoreStrategy
}

func (s recordedAccessTokens) GenerateAccessToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	token, signature, err := s.CoreStrategy.GenerateAccessToken(ctx, r)
	if err != nil {
		return "", "", err
	}
	if sess, ok := r.GetSession().(*Session); ok {
		sum := sha256.Sum256([]byte(token))
		sess.AccessDigest = sum[:]
	}
	return token, signature, nil
}

// ValidateAccessToken is given the token's row (fosite's introspector reads
// it first; nothing else calls this).
func (s recordedAccessTokens) ValidateAccessToken(ctx context.Context, r fosite.Requester, token string) error {
	sess, ok := r.GetSession().(*Session)
	if !ok || len(sess.AccessDigest) == 0 {
		return s.CoreStrategy.ValidateAccessToken(ctx, r, token)
	}
	sum := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(sum[:], sess.AccessDigest) != 1 {
		return fosite.ErrTokenSignatureMismatch.WithHint("The access token is not the one issued.")
	}
	if exp := sess.GetExpiresAt(fosite.AccessToken); exp.IsZero() || !time.Now().Before(exp) {
		return fosite.ErrTokenExpired.WithHintf("The access token expired at %s.", exp.UTC().Format(time.RFC3339))
	}
	return nil
}
