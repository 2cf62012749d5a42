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
// the database, cached briefly in memory. There is an active key for the
// realm's algorithm and, when that is not RS256, one for RS256 too:
// OpenID Connect Discovery says RS256 must be supported, for clients that
// ask for it (clients[].idTokenSignedResponseAlg).
type KeySet struct {
	store      KeyStore
	algorithm  string   // the realm's
	algorithms []string // the realm's first, then RS256 if different
	// publishFor is how long a retired key stays in JWKS: the longest life
	// of a token it may have signed.
	publishFor time.Duration
	// cacheTTL bounds how long a node signs with a key after another node
	// rotated it.
	cacheTTL time.Duration

	mu       sync.Mutex
	loadedAt time.Time
	signing  map[string]*jose.JSONWebKey // active key by algorithm
	public   jose.JSONWebKeySet
	// publicJSON is public, encoded once per load: JWKS is fetched far more
	// often than keys change.
	publicJSON []byte
}

// KeyStore keeps signing keys. AddSigningKey retires the active key of
// the new key's algorithm in the same transaction.
type KeyStore interface {
	SigningKeys(ctx context.Context) ([]store.SigningKey, error) // newest first
	AddSigningKey(ctx context.Context, k *store.SigningKey) error
	RetireSigningKeysExcept(ctx context.Context, algorithms []string) error
}

// NewKeySet returns a key set; call Ensure before use.
func NewKeySet(st KeyStore, algorithm string, publishFor, cacheTTL time.Duration) *KeySet {
	algs := []string{algorithm}
	if algorithm != "RS256" {
		algs = append(algs, "RS256")
	}
	return &KeySet{store: st, algorithm: algorithm, algorithms: algs, publishFor: publishFor, cacheTTL: cacheTTL}
}

// Algorithms are the algorithms tokens may be signed with, the realm's first.
func (k *KeySet) Algorithms() []string { return k.algorithms }

// Ensure creates a key for each algorithm that has none active (first
// start, or the algorithm was changed), and retires the keys of algorithms
// no longer used; retired keys stay published until their tokens expire.
func (k *KeySet) Ensure(ctx context.Context) error {
	if err := k.store.RetireSigningKeysExcept(ctx, k.algorithms); err != nil {
		return err
	}
	keys, err := k.store.SigningKeys(ctx)
	if err != nil {
		return err
	}
	for _, alg := range k.algorithms {
		active := false
		for _, key := range keys {
			active = active || (key.RetiredAt == nil && key.Algorithm == alg)
		}
		if !active {
			if _, err := k.rotate(ctx, alg); err != nil {
				return err
			}
		}
	}
	return nil
}

// Rotate adds a new signing key for the realm's algorithm (and for RS256
// beside it); the previous ones stay published until the tokens they signed
// have expired. It returns the kid of the realm algorithm's new key.
func (k *KeySet) Rotate(ctx context.Context) (string, error) {
	var first string
	for i, alg := range k.algorithms {
		kid, err := k.rotate(ctx, alg)
		if err != nil {
			return "", err
		}
		if i == 0 {
			first = kid
		}
	}
	return first, nil
}

func (k *KeySet) rotate(ctx context.Context, alg string) (string, error) {
	priv, err := generateKey(alg)
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
	row := &store.SigningKey{KID: kid, Algorithm: alg, PrivatePEM: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))}
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
	if time.Since(k.loadedAt) < k.cacheTTL && k.signing[k.algorithm] != nil {
		return nil
	}
	rows, err := k.store.SigningKeys(ctx)
	if err != nil {
		return err
	}
	signing := map[string]*jose.JSONWebKey{}
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
		if signing[r.Algorithm] == nil && r.RetiredAt == nil {
			signing[r.Algorithm] = &jose.JSONWebKey{Key: priv, KeyID: r.KID, Algorithm: r.Algorithm, Use: "sig"}
		}
		public.Keys = append(public.Keys, jose.JSONWebKey{Key: priv.(crypto.Signer).Public(), KeyID: r.KID, Algorithm: r.Algorithm, Use: "sig"})
	}
	if signing[k.algorithm] == nil {
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

// Signing returns the key new tokens are signed with (the realm's
// algorithm). fosite's signer takes the *jose.JSONWebKey, so its kid lands
// in every token header.
func (k *KeySet) Signing(ctx context.Context) (*jose.JSONWebKey, error) {
	return k.SigningFor(ctx, k.algorithm)
}

// SigningFor returns the active key of an algorithm of the realm's.
func (k *KeySet) SigningFor(ctx context.Context, alg string) (*jose.JSONWebKey, error) {
	if err := k.load(ctx); err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if key := k.signing[alg]; key != nil {
		return key, nil
	}
	return nil, fmt.Errorf("no active %s signing key", alg)
}

type idTokenAlgKey struct{}

// WithIDTokenAlg asks IDTokenKey for a client's ID token algorithm.
func WithIDTokenAlg(ctx context.Context, alg string) context.Context {
	return context.WithValue(ctx, idTokenAlgKey{}, alg)
}

// IDTokenKey is fosite's key getter for ID tokens: the algorithm the
// client asked for (clients[].idTokenSignedResponseAlg), else the realm's.
func (k *KeySet) IDTokenKey(ctx context.Context) (interface{}, error) {
	if alg, _ := ctx.Value(idTokenAlgKey{}).(string); alg != "" {
		return k.SigningFor(ctx, alg)
	}
	return k.Signing(ctx)
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
