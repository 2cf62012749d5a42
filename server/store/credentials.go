package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Credential is a user's credential for a step. Secret is sealed by the
// caller (the server's adapter); the store never sees it in the clear.
type Credential struct {
	ID        string `gorm:"primaryKey;size:36"`
	UserID    string `gorm:"size:36;index:idx_credentials_user_type"`
	Type      string `gorm:"size:64;index:idx_credentials_user_type"`
	Secret    string
	Label     string `gorm:"size:200"`
	Confirmed bool
	Counter   int64
	CreatedAt time.Time
}

// CredentialsOf returns a user's credentials of one type, oldest first.
func (s *Store) CredentialsOf(ctx context.Context, userID, typ string) ([]Credential, error) {
	var out []Credential
	err := s.db(ctx).Where("user_id = ? AND type = ?", userID, typ).Order("created_at, id").Find(&out).Error
	if err != nil {
		return nil, fmt.Errorf("credentials of %s: %w", userID, err)
	}
	return out, nil
}

// SaveCredential inserts a credential, or replaces the one with its ID.
func (s *Store) SaveCredential(ctx context.Context, c *Credential) error {
	if c.ID == "" {
		c.ID = NewID()
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = time.Now().UTC()
	}
	if err := s.db(ctx).Save(c).Error; err != nil {
		return fmt.Errorf("save credential: %w", err)
	}
	return nil
}

// UseCounter moves the counter up to n if it is below n, in one statement:
// of two requests presenting the same code, exactly one wins.
func (s *Store) UseCounter(ctx context.Context, id string, n int64) (bool, error) {
	res := s.db(ctx).Model(&Credential{}).Where("id = ? AND counter < ?", id, n).Update("counter", n)
	if res.Error != nil {
		return false, fmt.Errorf("use credential counter: %w", res.Error)
	}
	return res.RowsAffected == 1, nil
}

// DeleteCredential removes a credential; an unknown id is not an error.
func (s *Store) DeleteCredential(ctx context.Context, id string) error {
	if err := s.db(ctx).Delete(&Credential{}, "id = ?", id).Error; err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("delete credential: %w", err)
	}
	return nil
}
