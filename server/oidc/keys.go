package oidc

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v3"

	"latchkey/server/store"
)

// KeySet holds the realm's signing keys: generated on first start, kept in
// the database, cached briefly in memory.
type KeySet struct {
	store     *store.Store
	algorithm string
	// publishFor is how long a retired key stays in JWKS: the longest life
	// of a token it may have signed.
	publishFor time.Duration
	// cacheTTL bounds how long a node signs with a key after another node
	// rotated it.
	cacheTTL time.Duration

	mu       sync.Mutex
	loadedAt time.Time
	signing  *jose.JSONWebKey
	public   jose.JSONWebKeySet
	// publicJSON is public, encoded once per load: JWKS is fetched far more
	// often than keys change.
	publicJSON []byte
}

// NewKeySet returns a key set; call Ensure before use.
func NewKeySet(st *store.Store, algorithm string, publishFor, cacheTTL time.Duration) *KeySet {
	return &KeySet{store: st, algorithm: algorithm, publishFor: publishFor, cacheTTL: cacheTTL}
}

// Ensure creates the first key when the database has none.
func (k *KeySet) Ensure(ctx context.Context) error {
	keys, err := k.store.SigningKeys(ctx)
	if err != nil {
		return err
	}
	for _, key := range keys {
		if key.RetiredAt == nil && key.Algorithm == k.algorithm {
			return nil
		}
	}
	// None active for the configured algorithm (first start, or the
	// algorithm was changed): add one; older keys stay published.
	_, err = k.Rotate(ctx)
	return err
}

// Rotate adds a new signing key; the previous one stays published until the
// tokens it signed have expired.
func (k *KeySet) Rotate(ctx context.Context) (string, error) {
	priv, err := generateKey(k.algorithm)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", fmt.Errorf("encode signing key: %w", err)
	}
	jwk := jose.JSONWebKey{Key: priv.(crypto.Signer).Public()}
	thumb, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("key thumbprint: %w", err)
	}
	kid := base64.RawURLEncoding.EncodeToString(thumb)[:16]
	row := &store.SigningKey{KID: kid, Algorithm: k.algorithm, PrivatePEM: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))}
	if err := k.store.AddSigningKey(ctx, row); err != nil {
		return "", err
	}
	k.mu.Lock()
	k.loadedAt = time.Time{}
	k.mu.Unlock()
	return kid, nil
}

func generateKey(alg string) (crypto.PrivateKey, error) {
	switch alg {
	case "RS256":
		return rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	}
	return nil, fmt.Errorf("unsupported signing algorithm %q", alg)
}

func (k *KeySet) load(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if time.Since(k.loadedAt) < k.cacheTTL && k.signing != nil {
		return nil
	}
	rows, err := k.store.SigningKeys(ctx)
	if err != nil {
		return err
	}
	var signing *jose.JSONWebKey
	var public jose.JSONWebKeySet
	now := time.Now()
	for _, r := range rows { // newest first
		block, _ := pem.Decode([]byte(r.PrivatePEM))
		if block == nil {
			return fmt.Errorf("signing key %s: bad PEM", r.KID)
		}
		priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return fmt.Errorf("signing key %s: %w", r.KID, err)
		}
		if r.RetiredAt != nil && now.Sub(*r.RetiredAt) > k.publishFor {
			continue
		}
		if signing == nil && r.RetiredAt == nil {
			signing = &jose.JSONWebKey{Key: priv, KeyID: r.KID, Algorithm: r.Algorithm, Use: "sig"}
		}
		public.Keys = append(public.Keys, jose.JSONWebKey{Key: priv.(crypto.Signer).Public(), KeyID: r.KID, Algorithm: r.Algorithm, Use: "sig"})
	}
	if signing == nil {
		return errors.New("no active signing key (run the server once, or `latchkey keys rotate`)")
	}
	publicJSON, err := json.Marshal(public)
	if err != nil {
		return fmt.Errorf("encode JWKS: %w", err)
	}
	k.signing, k.public, k.publicJSON, k.loadedAt = signing, public, append(publicJSON, '\n'), time.Now()
	return nil
}

// PublicJSON returns the published keys encoded as a JWKS document.
func (k *KeySet) PublicJSON(ctx context.Context) ([]byte, error) {
	if err := k.load(ctx); err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.publicJSON, nil
}

// Signing returns the key new tokens are signed with. fosite's signer takes
// the *jose.JSONWebKey, so its kid lands in every token header.
func (k *KeySet) Signing(ctx context.Context) (*jose.JSONWebKey, error) {
	if err := k.load(ctx); err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.signing, nil
}

// PrivateKey adapts Signing to fosite's key getter.
func (k *KeySet) PrivateKey(ctx context.Context) (interface{}, error) { return k.Signing(ctx) }

// Public returns the published keys (JWKS).
func (k *KeySet) Public(ctx context.Context) (jose.JSONWebKeySet, error) {
	if err := k.load(ctx); err != nil {
		return jose.JSONWebKeySet{}, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.public, nil
}
