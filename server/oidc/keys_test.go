package oidc

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"latchkey/server/store"
)

// memKeys is an in-memory KeyStore.
type memKeys struct {
	mu   sync.Mutex
	keys []store.SigningKey // newest first
}

func (m *memKeys) SigningKeys(context.Context) ([]store.SigningKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.keys), nil
}

func (m *memKeys) AddSigningKey(_ context.Context, k *store.SigningKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	for i := range m.keys {
		if m.keys[i].Algorithm == k.Algorithm && m.keys[i].RetiredAt == nil {
			m.keys[i].RetiredAt = &now
		}
	}
	k.CreatedAt = now
	m.keys = append([]store.SigningKey{*k}, m.keys...)
	return nil
}

func (m *memKeys) RetireSigningKeysExcept(_ context.Context, algs []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	for i := range m.keys {
		if m.keys[i].RetiredAt == nil && !slices.Contains(algs, m.keys[i].Algorithm) {
			m.keys[i].RetiredAt = &now
		}
	}
	return nil
}

func published(t *testing.T, k *KeySet) map[string]string {
	t.Helper()
	raw, err := k.PublicJSON(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, key := range set.Keys {
		if !key.IsPublic() {
			t.Fatalf("JWKS publishes a private key (%s)", key.KeyID)
		}
		out[key.KeyID] = key.Algorithm
	}
	return out
}

func TestKeySetKeepsRS256BesideTheRealmsAlgorithm(t *testing.T) {
	ctx := context.Background()
	st := &memKeys{}
	k := NewKeySet(st, "ES256", time.Hour, 0)
	if err := k.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if err := k.Ensure(ctx); err != nil || len(st.keys) != 2 {
		t.Fatalf("a second Ensure: %v, %d keys (want 2, no new ones)", err, len(st.keys))
	}
	es, err := k.Signing(ctx)
	if err != nil || es.Algorithm != "ES256" {
		t.Fatalf("signing key %v, %v", es, err)
	}
	rs, err := k.SigningFor(ctx, "RS256")
	if err != nil || rs.Algorithm != "RS256" {
		t.Fatalf("RS256 key %v, %v", rs, err)
	}
	if _, err := k.SigningFor(ctx, "HS256"); err == nil {
		t.Fatal("a key for an algorithm the realm does not use")
	}
	if got := published(t, k); len(got) != 2 || got[es.KeyID] != "ES256" || got[rs.KeyID] != "RS256" {
		t.Fatalf("published %v", got)
	}
}

// After a rotation the old key stays published (tokens it signed are still
// live) until publishFor has passed; new tokens use the new key.
func TestRotationKeepsTheOldKeyPublishedForItsTokens(t *testing.T) {
	ctx := context.Background()
	st := &memKeys{}
	k := NewKeySet(st, "RS256", time.Hour, 0)
	if err := k.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	old, _ := k.Signing(ctx)
	kid, err := k.Rotate(ctx)
	if err != nil || kid == old.KeyID {
		t.Fatalf("rotate: %q, %v", kid, err)
	}
	if cur, _ := k.Signing(ctx); cur.KeyID != kid {
		t.Fatalf("signing with %s after rotating to %s", cur.KeyID, kid)
	}
	if got := published(t, k); len(got) != 2 || got[old.KeyID] == "" {
		t.Fatalf("published after rotation: %v", got)
	}
	long := time.Now().Add(-2 * time.Hour)
	st.keys[1].RetiredAt = &long
	k.loadedAt = time.Time{}
	if got := published(t, k); len(got) != 1 || got[kid] == "" {
		t.Fatalf("published after publishFor: %v", got)
	}
}

// Changing the realm's algorithm retires the previous algorithm's key.
func TestChangingTheAlgorithmRetiresTheOldOne(t *testing.T) {
	ctx := context.Background()
	st := &memKeys{}
	if err := NewKeySet(st, "EdDSA", time.Hour, 0).Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	k := NewKeySet(st, "RS256", time.Hour, 0)
	if err := k.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	active := 0
	for _, key := range st.keys {
		if key.RetiredAt == nil {
			active++
			if key.Algorithm != "RS256" {
				t.Fatalf("%s key still active", key.Algorithm)
			}
		}
	}
	if active != 1 {
		t.Fatalf("%d active keys, want 1", active)
	}
}
