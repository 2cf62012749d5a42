package store

import (
	"context"
	"fmt"
	"time"
)

// SigningKey is a token signing key. Retired keys stay published in JWKS
// until the tokens they signed have expired.
type SigningKey struct {
	KID        string `gorm:"primaryKey;size:64"`
	Algorithm  string `gorm:"size:16"`
	PrivatePEM string
	CreatedAt  time.Time
	RetiredAt  *time.Time
}

// SigningKeys returns all keys, newest first.
func (s *Store) SigningKeys(ctx context.Context) ([]SigningKey, error) {
	var keys []SigningKey
	if err := s.read(ctx).Order("created_at DESC").Find(&keys).Error; err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	return keys, nil
}

// AddSigningKey stores k as the active key and retires the others.
func (s *Store) AddSigningKey(ctx context.Context, k *SigningKey) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		now := time.Now().UTC()
		if err := s.db(ctx).Model(&SigningKey{}).Where("retired_at IS NULL").Update("retired_at", now).Error; err != nil {
			return fmt.Errorf("retire signing keys: %w", err)
		}
		if k.CreatedAt.IsZero() {
			k.CreatedAt = now
		}
		if err := s.db(ctx).Create(k).Error; err != nil {
			return fmt.Errorf("add signing key: %w", err)
		}
		return nil
	})
}

// DeleteSigningKeysRetiredBefore drops keys no live token can refer to.
func (s *Store) DeleteSigningKeysRetiredBefore(ctx context.Context, t time.Time) error {
	return s.db(ctx).Where("retired_at IS NOT NULL AND retired_at < ?", t.UTC()).Delete(&SigningKey{}).Error
}
