package server

import (
	"context"
	"fmt"

	"latchkey/flows"
	"latchkey/server/mail"
	"latchkey/server/store"
)

// CredentialStore adapts the store to flows.Credentials: secrets are sealed
// (AES-GCM, the outbox's key) before they reach the database.
type CredentialStore struct {
	S      *store.Store
	Sealer *mail.Sealer
}

var _ flows.Credentials = CredentialStore{}

func (a CredentialStore) CredentialsOf(ctx context.Context, userID, typ string) ([]flows.Credential, error) {
	rows, err := a.S.CredentialsOf(ctx, userID, typ)
	if err != nil {
		return nil, err
	}
	out := make([]flows.Credential, 0, len(rows))
	for _, r := range rows {
		secret, err := a.Sealer.Open(r.Secret)
		if err != nil {
			return nil, fmt.Errorf("open credential %s: %w", r.ID, err)
		}
		out = append(out, flows.Credential{ID: r.ID, UserID: r.UserID, Type: r.Type, Secret: []byte(secret), Label: r.Label,
			Confirmed: r.Confirmed, Counter: r.Counter, CreatedAt: r.CreatedAt})
	}
	return out, nil
}

func (a CredentialStore) SaveCredential(ctx context.Context, c *flows.Credential) error {
	row := store.Credential{ID: c.ID, UserID: c.UserID, Type: c.Type, Secret: a.Sealer.Seal(string(c.Secret)), Label: c.Label,
		Confirmed: c.Confirmed, Counter: c.Counter, CreatedAt: c.CreatedAt}
	if err := a.S.SaveCredential(ctx, &row); err != nil {
		return err
	}
	c.ID, c.CreatedAt = row.ID, row.CreatedAt
	return nil
}

func (a CredentialStore) UseCounter(ctx context.Context, id string, n int64) (bool, error) {
	return a.S.UseCounter(ctx, id, n)
}

func (a CredentialStore) DeleteCredential(ctx context.Context, id string) error {
	return a.S.DeleteCredential(ctx, id)
}
