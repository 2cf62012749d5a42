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

// AddSigningKey stores k as the active key of its algorithm and retires
// the others of that algorithm.
func (s *Store) AddSigningKey(ctx context.Context, k *SigningKey) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		now := time.Now().UTC()
		if err := s.db(ctx).Model(&SigningKey{}).Where("retired_at IS NULL AND algorithm = ?", k.Algorithm).Update("retired_at", now).Error; err != nil {
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

// RetireSigningKeysExcept retires the active keys of algorithms no longer
// used (they stay published until their tokens expire).
func (s *Store) RetireSigningKeysExcept(ctx context.Context, algorithms []string) error {
	err := s.db(ctx).Model(&SigningKey{}).Where("retired_at IS NULL AND algorithm NOT IN ?", algorithms).Update("retired_at", time.Now().UTC()).Error
	if err != nil {
		return fmt.Errorf("retire signing keys: %w", err)
	}
	return nil
}

// DeleteSigningKeysRetiredBefore drops keys no live token can refer to.
func (s *Store) DeleteSigningKeysRetiredBefore(ctx context.Context, t time.Time) error {
	return s.db(ctx).Where("retired_at IS NOT NULL AND retired_at < ?", t.UTC()).Delete(&SigningKey{}).Error
}
