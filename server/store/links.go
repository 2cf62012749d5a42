package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// MagicLink is an emailed or minted one-time link. Only the SHA-256 of its
// secret is stored.
type MagicLink struct {
	ID            string `gorm:"primaryKey;size:36"`
	TokenHash     string `gorm:"uniqueIndex;size:64"`
	Type          string `gorm:"size:16"` // login | verify-email
	UserID        string `gorm:"index;size:36"`
	Email         string `gorm:"size:254"`
	AuthSessionID string `gorm:"index;size:64"`
	Execution     string `gorm:"size:32"`
	ClientID      string `gorm:"size:128"`
	RedirectURI   string
	Locale        string `gorm:"size:35"`   // the mail's and pages' language, when the issuer named one
	Settings      string `gorm:"size:2000"` // JSON: presentation settings (a minted link's branding)
	CreatedAt     time.Time
	ExpiresAt     time.Time `gorm:"index"`
	OpenedAt      *time.Time
	UsedAt        *time.Time
	RevokedAt     *time.Time
}

// Status is pending, used, revoked or expired.
func (l *MagicLink) Status(now time.Time) string {
	switch {
	case l.UsedAt != nil:
		return "used"
	case l.RevokedAt != nil:
		return "revoked"
	case !now.Before(l.ExpiresAt):
		return "expired"
	}
	return "pending"
}

// ErrLinkUnavailable is returned when a link cannot be consumed (used,
// expired, revoked or unknown); read it again to tell which.
var ErrLinkUnavailable = errors.New("link unavailable")

// CreateMagicLink stores l and queues m in one transaction; older pending
// links of the same login attempt are revoked, so only the newest works.
func (s *Store) CreateMagicLink(ctx context.Context, l *MagicLink, m *OutboxMail) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		now := time.Now().UTC()
		if l.ID == "" {
			l.ID = NewID()
		}
		if l.CreatedAt.IsZero() {
			l.CreatedAt = now
		}
		if l.AuthSessionID != "" {
			err := s.db(ctx).Model(&MagicLink{}).
				Where("auth_session_id = ? AND used_at IS NULL AND revoked_at IS NULL", l.AuthSessionID).
				Update("revoked_at", now).Error
			if err != nil {
				return fmt.Errorf("revoke older links: %w", err)
			}
		}
		if err := s.db(ctx).Create(l).Error; err != nil {
			return fmt.Errorf("store magic link: %w", err)
		}
		if m != nil {
			m.Ref = l.ID
			if err := s.enqueue(ctx, m); err != nil {
				return err
			}
		}
		return nil
	})
}

// MagicLinkByHash returns the link with that token hash.
func (s *Store) MagicLinkByHash(ctx context.Context, hash string) (*MagicLink, error) {
	var l MagicLink
	if err := s.read(ctx).Where("token_hash = ?", hash).Take(&l).Error; err != nil {
		return nil, notFound(err)
	}
	return &l, nil
}

// MagicLinkByID returns the link with that id.
func (s *Store) MagicLinkByID(ctx context.Context, id string) (*MagicLink, error) {
	var l MagicLink
	if err := s.read(ctx).Where("id = ?", id).Take(&l).Error; err != nil {
		return nil, notFound(err)
	}
	return &l, nil
}

// ConsumeMagicLink marks the link used and returns it. One UPDATE decides,
// so of any number of concurrent attempts exactly one wins; the others get
// ErrLinkUnavailable.
func (s *Store) ConsumeMagicLink(ctx context.Context, hash string, now time.Time) (*MagicLink, error) {
	now = now.UTC()
	var l MagicLink
	err := s.db(ctx).Raw(`UPDATE magic_links SET used_at = ?
WHERE token_hash = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?
RETURNING *`, now, hash, now).Scan(&l).Error
	if err != nil {
		return nil, fmt.Errorf("consume magic link: %w", err)
	}
	if l.ID == "" {
		return nil, ErrLinkUnavailable
	}
	return &l, nil
}

// MarkMagicLinkOpened records the first time the link's page was shown.
func (s *Store) MarkMagicLinkOpened(ctx context.Context, id string, now time.Time) error {
	return s.db(ctx).Model(&MagicLink{}).Where("id = ? AND opened_at IS NULL", id).Update("opened_at", now.UTC()).Error
}

// RevokeMagicLink revokes a pending link; it reports whether one was.
func (s *Store) RevokeMagicLink(ctx context.Context, id string, now time.Time) (bool, error) {
	res := s.db(ctx).Model(&MagicLink{}).Where("id = ? AND used_at IS NULL AND revoked_at IS NULL", id).Update("revoked_at", now.UTC())
	if res.Error != nil {
		return false, fmt.Errorf("revoke magic link: %w", res.Error)
	}
	return res.RowsAffected == 1, nil
}

// LinkFilter selects magic links; empty fields match everything.
type LinkFilter struct {
	UserID string
	Email  string
	Status string // pending | used | expired | revoked
	Limit  int
	Offset int
}

// ListMagicLinks returns links, newest first, and how many match in all.
func (s *Store) ListMagicLinks(ctx context.Context, f LinkFilter, now time.Time) ([]MagicLink, int64, error) {
	now = now.UTC()
	q := s.read(ctx).Model(&MagicLink{})
	if f.UserID != "" {
		q = q.Where("user_id = ?", f.UserID)
	}
	if f.Email != "" {
		q = q.Where("email = ?", f.Email)
	}
	switch f.Status {
	case "":
	case "pending":
		q = q.Where("used_at IS NULL AND revoked_at IS NULL AND expires_at > ?", now)
	case "used":
		q = q.Where("used_at IS NOT NULL")
	case "revoked":
		q = q.Where("used_at IS NULL AND revoked_at IS NOT NULL")
	case "expired":
		q = q.Where("used_at IS NULL AND revoked_at IS NULL AND expires_at <= ?", now)
	default:
		return nil, 0, fmt.Errorf("unknown status %q", f.Status)
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, fmt.Errorf("count magic links: %w", err)
	}
	var out []MagicLink
	if err := q.Order("created_at DESC, id").Limit(f.Limit).Offset(f.Offset).Find(&out).Error; err != nil {
		return nil, 0, fmt.Errorf("list magic links: %w", err)
	}
	return out, total, nil
}
