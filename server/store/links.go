package store

import (
	"context"
	"database/sql"
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
			if _, err := s.exec(ctx, revokeOlderLinks, now, l.AuthSessionID); err != nil {
				return fmt.Errorf("revoke older links: %w", err)
			}
		}
		_, err := s.exec(ctx, insertLink, l.ID, l.TokenHash, l.Type, l.UserID, l.Email, l.AuthSessionID, l.Execution,
			l.ClientID, l.RedirectURI, l.Locale, l.Settings, l.CreatedAt, l.ExpiresAt, nullTime(l.OpenedAt), nullTime(l.UsedAt),
			nullTime(l.RevokedAt), l.RevokedReason, l.CodeHash, l.CodeFailures, l.Approval, l.MatchNumber, l.MatchChoices,
			nullTime(l.ApprovedAt))
		if err != nil {
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

// A login creates its link, reads it, marks it opened and consumes it:
// plain SQL (plainsql.go). Columns added after the table's first release
// are NULL in older rows and read as zero values (linkColumns).
const linkColumns = `id, token_hash, COALESCE(type, ''), COALESCE(user_id, ''), COALESCE(email, ''),
COALESCE(auth_session_id, ''), COALESCE(execution, ''), COALESCE(client_id, ''), COALESCE(redirect_uri, ''),
COALESCE(locale, ''), COALESCE(settings, ''), created_at, expires_at, opened_at, used_at, revoked_at,
COALESCE(revoked_reason, ''), COALESCE(code_hash, ''), COALESCE(code_failures, 0), COALESCE(approval, ''),
COALESCE(match_number, 0), COALESCE(match_choices, ''), approved_at`

// columns are where a row of linkColumns is scanned to.
func (l *MagicLink) columns() []any {
	return []any{&l.ID, &l.TokenHash, &l.Type, &l.UserID, &l.Email, &l.AuthSessionID, &l.Execution, &l.ClientID,
		&l.RedirectURI, &l.Locale, &l.Settings, &l.CreatedAt, &l.ExpiresAt, &l.OpenedAt, &l.UsedAt, &l.RevokedAt,
		&l.RevokedReason, &l.CodeHash, &l.CodeFailures, &l.Approval, &l.MatchNumber, &l.MatchChoices, &l.ApprovedAt}
}

var (
	linkByHash = plain("SELECT " + linkColumns + " FROM magic_links WHERE token_hash = ?")
	linkByID   = plain("SELECT " + linkColumns + " FROM magic_links WHERE id = ?")
	insertLink = plain(`INSERT INTO magic_links (id, token_hash, type, user_id, email, auth_session_id, execution,
client_id, redirect_uri, locale, settings, created_at, expires_at, opened_at, used_at, revoked_at, revoked_reason,
code_hash, code_failures, approval, match_number, match_choices, approved_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	revokeOlderLinks = plain(`UPDATE magic_links SET revoked_at = ?, revoked_reason = 'replaced'
WHERE auth_session_id = ? AND used_at IS NULL AND revoked_at IS NULL`)
	markLinkOpened = plain("UPDATE magic_links SET opened_at = ? WHERE id = ? AND opened_at IS NULL")
)

// MagicLinkByHash returns the link with that token hash.
func (s *Store) MagicLinkByHash(ctx context.Context, hash string) (*MagicLink, error) {
	return s.linkWhere(ctx, linkByHash, hash)
}

// MagicLinkByID returns the link with that id.
func (s *Store) MagicLinkByID(ctx context.Context, id string) (*MagicLink, error) {
	return s.linkWhere(ctx, linkByID, id)
}

func (s *Store) linkWhere(ctx context.Context, q plainQuery, arg string) (*MagicLink, error) {
	row, err := s.queryRow(ctx, q, arg)
	if err != nil {
		return nil, err
	}
	var l MagicLink
	if err := row.Scan(l.columns()...); err != nil {
		return nil, notFound(err)
	}
	return &l, nil
}

// pendingLink is the condition of a link that may still be used: not used,
// revoked, approved (the approval is for the login's own browser) or
// expired.
const pendingLink = "used_at IS NULL AND revoked_at IS NULL AND approved_at IS NULL AND expires_at > ?"

// The statements that decide a link's state, each returning the link.
var (
	consumeLink = plain(`UPDATE magic_links SET used_at = ?
WHERE token_hash = ? AND auth_session_id = ? AND execution = ? AND type = ? AND ` + pendingLink + ` RETURNING ` + linkColumns)
	consumeLinkByID = plain(`UPDATE magic_links SET used_at = ? WHERE id = ? AND ` + pendingLink + ` RETURNING ` + linkColumns)
	failLinkCode    = plain(`UPDATE magic_links SET code_failures = code_failures + 1,
revoked_at = CASE WHEN code_failures + 1 >= ? THEN ? ELSE revoked_at END,
revoked_reason = CASE WHEN code_failures + 1 >= ? THEN 'code_attempts' ELSE revoked_reason END
WHERE id = ? AND ` + pendingLink + ` RETURNING ` + linkColumns)
	approveLink       = plain(`UPDATE magic_links SET approved_at = ? WHERE id = ? AND ` + pendingLink + ` RETURNING ` + linkColumns)
	claimApprovedLink = plain(`UPDATE magic_links SET used_at = ?
WHERE id = ? AND approved_at IS NOT NULL AND used_at IS NULL AND revoked_at IS NULL RETURNING ` + linkColumns)
)

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
	return s.updateLink(ctx, "consume magic link", consumeLink, now, hash, owner.AuthSessionID, owner.Execution, owner.Type, now)
}

// ConsumeMagicLinkByID is ConsumeMagicLink for a link found by its login
// (its code was typed): the same one statement decides.
func (s *Store) ConsumeMagicLinkByID(ctx context.Context, id string, now time.Time) (*MagicLink, error) {
	now = now.UTC()
	return s.updateLink(ctx, "consume magic link", consumeLinkByID, now, id, now)
}

// FailMagicLinkCode counts a wrong code against a pending link; the
// max-th wrong code revokes it (reason code_attempts) in the same
// statement, so concurrent guesses cannot overshoot.
func (s *Store) FailMagicLinkCode(ctx context.Context, id string, max int, now time.Time) (*MagicLink, error) {
	now = now.UTC()
	return s.updateLink(ctx, "count wrong code", failLinkCode, max, now, max, id, now)
}

// ApproveMagicLink records that another device approved the link's login;
// the login's own browser then claims it (ClaimApprovedMagicLink).
func (s *Store) ApproveMagicLink(ctx context.Context, id string, now time.Time) (*MagicLink, error) {
	now = now.UTC()
	return s.updateLink(ctx, "approve magic link", approveLink, now, id, now)
}

// ClaimApprovedMagicLink uses an approved link, once: its login's browser
// goes on. It may outlive the link's own lifetime (the approval came in
// time); the login session's lifetime bounds it.
func (s *Store) ClaimApprovedMagicLink(ctx context.Context, id string, now time.Time) (*MagicLink, error) {
	return s.updateLink(ctx, "claim approved magic link", claimApprovedLink, now.UTC(), id)
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

// updateLink runs an UPDATE ... RETURNING on one link; no row means the
// link was not in the state the statement asks for.
func (s *Store) updateLink(ctx context.Context, what string, q plainQuery, args ...any) (*MagicLink, error) {
	row, err := s.queryRowWrite(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	var l MagicLink
	if err := row.Scan(l.columns()...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrLinkUnavailable
		}
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return &l, nil
}

// MarkMagicLinkOpened records the first time the link's page was shown.
func (s *Store) MarkMagicLinkOpened(ctx context.Context, id string, now time.Time) error {
	if _, err := s.exec(ctx, markLinkOpened, now.UTC(), id); err != nil {
		return fmt.Errorf("mark magic link opened: %w", err)
	}
	return nil
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
