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
	RevokedReason string `gorm:"size:32"` // replaced | declined | wrong_number | code_attempts | admin
	CodeHash      string `gorm:"size:64"` // keyed hash of the one-time code mailed beside the link
	CodeFailures  int
	Approval      string `gorm:"size:16"` // how another device may approve the login: "" | approve | number
	MatchNumber   int    // the number the login's own page shows (number matching)
	MatchChoices  string `gorm:"size:16"` // the numbers the approving device offers, "17,42,88"
	ApprovedAt    *time.Time
}

// Status is pending, used, revoked, approved (by another device, for its
// login's own browser to go on) or expired.
func (l *MagicLink) Status(now time.Time) string {
	switch {
	case l.UsedAt != nil:
		return "used"
	case l.RevokedAt != nil:
		return "revoked"
	case l.ApprovedAt != nil:
		return "approved"
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
				Updates(map[string]any{"revoked_at": now, "revoked_reason": "replaced"}).Error
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

// pendingLink is the condition of a link that may still be used: not used,
// revoked, approved (the approval is for the login's own browser) or
// expired.
const pendingLink = "used_at IS NULL AND revoked_at IS NULL AND approved_at IS NULL AND expires_at > ?"

// LinkOwner is what a link must belong to for a login to consume it.
type LinkOwner struct {
	AuthSessionID, Execution, Type string
}

// Owner is the login, step and type l belongs to.
func (l *MagicLink) Owner() LinkOwner {
	return LinkOwner{AuthSessionID: l.AuthSessionID, Execution: l.Execution, Type: l.Type}
}

// ConsumeMagicLink marks the link used and returns it. One UPDATE decides,
// so of any number of concurrent attempts exactly one wins; the others get
// ErrLinkUnavailable. A link of another owner (login, step or type) is
// unavailable too: the login need not read the link before consuming it.
func (s *Store) ConsumeMagicLink(ctx context.Context, hash string, owner LinkOwner, now time.Time) (*MagicLink, error) {
	now = now.UTC()
	return s.updateLink(ctx, "consume magic link", `UPDATE magic_links SET used_at = ?
WHERE token_hash = ? AND auth_session_id = ? AND execution = ? AND type = ? AND `+pendingLink+` RETURNING *`,
		now, hash, owner.AuthSessionID, owner.Execution, owner.Type, now)
}

// ConsumeMagicLinkByID is ConsumeMagicLink for a link found by its login
// (its code was typed): the same one statement decides.
func (s *Store) ConsumeMagicLinkByID(ctx context.Context, id string, now time.Time) (*MagicLink, error) {
	now = now.UTC()
	return s.updateLink(ctx, "consume magic link", `UPDATE magic_links SET used_at = ?
WHERE id = ? AND `+pendingLink+` RETURNING *`, now, id, now)
}

// FailMagicLinkCode counts a wrong code against a pending link; the
// max-th wrong code revokes it (reason code_attempts) in the same
// statement, so concurrent guesses cannot overshoot.
func (s *Store) FailMagicLinkCode(ctx context.Context, id string, max int, now time.Time) (*MagicLink, error) {
	now = now.UTC()
	return s.updateLink(ctx, "count wrong code", `UPDATE magic_links SET code_failures = code_failures + 1,
revoked_at = CASE WHEN code_failures + 1 >= ? THEN ? ELSE revoked_at END,
revoked_reason = CASE WHEN code_failures + 1 >= ? THEN 'code_attempts' ELSE revoked_reason END
WHERE id = ? AND `+pendingLink+` RETURNING *`, max, now, max, id, now)
}

// ApproveMagicLink records that another device approved the link's login;
// the login's own browser then claims it (ClaimApprovedMagicLink).
func (s *Store) ApproveMagicLink(ctx context.Context, id string, now time.Time) (*MagicLink, error) {
	now = now.UTC()
	return s.updateLink(ctx, "approve magic link", `UPDATE magic_links SET approved_at = ?
WHERE id = ? AND `+pendingLink+` RETURNING *`, now, id, now)
}

// ClaimApprovedMagicLink uses an approved link, once: its login's browser
// goes on. It may outlive the link's own lifetime (the approval came in
// time); the login session's lifetime bounds it.
func (s *Store) ClaimApprovedMagicLink(ctx context.Context, id string, now time.Time) (*MagicLink, error) {
	return s.updateLink(ctx, "claim approved magic link", `UPDATE magic_links SET used_at = ?
WHERE id = ? AND approved_at IS NOT NULL AND used_at IS NULL AND revoked_at IS NULL RETURNING *`, now.UTC(), id)
}

// MagicLinkForLogin returns the newest link issued for a login attempt:
// one indexed read (a login's page polls it while another device decides).
func (s *Store) MagicLinkForLogin(ctx context.Context, authSessionID string) (*MagicLink, error) {
	var l MagicLink
	if err := s.read(ctx).Where("auth_session_id = ?", authSessionID).Order("created_at DESC").Take(&l).Error; err != nil {
		return nil, notFound(err)
	}
	return &l, nil
}

// updateLink runs an UPDATE ... RETURNING * on one link; no row means the
// link was not in the state the statement asks for.
func (s *Store) updateLink(ctx context.Context, what, sql string, args ...any) (*MagicLink, error) {
	var l MagicLink
	if err := s.db(ctx).Raw(sql, args...).Scan(&l).Error; err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
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

// RevokeMagicLink revokes a link not yet used (an approved one too: its
// login has not gone on); it reports whether one was.
func (s *Store) RevokeMagicLink(ctx context.Context, id, reason string, now time.Time) (bool, error) {
	res := s.db(ctx).Model(&MagicLink{}).Where("id = ? AND used_at IS NULL AND revoked_at IS NULL", id).
		Updates(map[string]any{"revoked_at": now.UTC(), "revoked_reason": reason})
	if res.Error != nil {
		return false, fmt.Errorf("revoke magic link: %w", res.Error)
	}
	return res.RowsAffected == 1, nil
}

// LinkFilter selects magic links; empty fields match everything.
type LinkFilter struct {
	UserID string
	Email  string
	Status string // pending | used | expired | revoked | approved
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
		q = q.Where(pendingLink, now)
	case "approved":
		q = q.Where("used_at IS NULL AND revoked_at IS NULL AND approved_at IS NOT NULL")
	case "used":
		q = q.Where("used_at IS NOT NULL")
	case "revoked":
		q = q.Where("used_at IS NULL AND revoked_at IS NOT NULL")
	case "expired":
		q = q.Where("used_at IS NULL AND revoked_at IS NULL AND approved_at IS NULL AND expires_at <= ?", now)
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
