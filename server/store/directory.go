package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"latchkey/flows"
)

// UserFilter selects accounts for the admin API; empty fields match all.
type UserFilter struct {
	// Search is Keycloak's search string over email, first and last name:
	// a prefix by default, "*" is a wildcard, "\"x\"" is an exact value.
	Search string
	// Email, FirstName and LastName match as substrings, or whole values
	// with Exact; case is ignored.
	Email, FirstName, LastName string
	Exact                      bool
	Enabled, EmailVerified     *bool
	First, Max                 int
}

// likeEscaper makes user input literal inside a LIKE pattern (ESCAPE '\').
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

func (f UserFilter) apply(q *gorm.DB) *gorm.DB {
	if s := strings.TrimSpace(f.Search); s != "" && s != "*" {
		var pattern string
		if len(s) > 1 && strings.HasPrefix(s, `"`) && strings.HasSuffix(s, `"`) {
			pattern = likeEscaper.Replace(s[1 : len(s)-1])
		} else {
			pattern = strings.ReplaceAll(likeEscaper.Replace(s), "*", "%")
			if !strings.HasSuffix(pattern, "%") {
				pattern += "%"
			}
		}
		pattern = strings.ToLower(pattern)
		q = q.Where(`LOWER(email) LIKE ? ESCAPE '\' OR LOWER(first_name) LIKE ? ESCAPE '\' OR LOWER(last_name) LIKE ? ESCAPE '\'`, pattern, pattern, pattern)
	}
	for col, v := range map[string]string{"email": f.Email, "first_name": f.FirstName, "last_name": f.LastName} {
		if v == "" {
			continue
		}
		pattern := likeEscaper.Replace(strings.ToLower(v))
		if !f.Exact {
			pattern = "%" + pattern + "%"
		}
		q = q.Where("LOWER("+col+`) LIKE ? ESCAPE '\'`, pattern)
	}
	if f.Enabled != nil {
		q = q.Where("disabled = ?", !*f.Enabled)
	}
	if f.EmailVerified != nil {
		q = q.Where("email_verified = ?", *f.EmailVerified)
	}
	return q
}

// ListUsers returns the accounts f selects, by email (Keycloak sorts by
// username, which is the email here), from First, at most Max.
func (s *Store) ListUsers(ctx context.Context, f UserFilter) ([]*flows.User, error) {
	var rows []User
	q := f.apply(s.read(ctx).Model(&User{})).Order("email").Offset(f.First)
	if f.Max > 0 {
		q = q.Limit(f.Max)
	}
	if err := q.Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	out := make([]*flows.User, len(rows))
	for i := range rows {
		out[i] = rows[i].toFlows()
	}
	return out, nil
}

// CountUsersMatching counts the accounts f selects (First and Max unused).
func (s *Store) CountUsersMatching(ctx context.Context, f UserFilter) (int64, error) {
	var n int64
	if err := f.apply(s.read(ctx).Model(&User{})).Count(&n).Error; err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}

// SSOSessionsOf returns a user's live SSO sessions, newest first.
func (s *Store) SSOSessionsOf(ctx context.Context, userID string, now time.Time) ([]SSOSession, error) {
	var out []SSOSession
	now = now.UTC()
	err := s.read(ctx).Where("user_id = ? AND expires_at > ? AND (idle_expires_at IS NULL OR idle_expires_at > ?)", userID, now, now).
		Order("auth_time DESC").Find(&out).Error
	if err != nil {
		return nil, fmt.Errorf("sessions of %s: %w", userID, err)
	}
	return out, nil
}

// DeleteUser removes an account and everything that names it: SSO
// sessions, tokens, credentials, magic links and the mail (sent or not)
// that carried them, in one transaction. Events are not touched: they are
// the audit trail and expire with events.expiration.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		db := s.db(ctx)
		links := db.Model(&MagicLink{}).Select("id").Where("user_id = ?", id)
		steps := []struct {
			what string
			run  func() *gorm.DB
		}{
			{"mail", func() *gorm.DB { return db.Where("ref IN (?)", links).Delete(&OutboxMail{}) }},
			{"magic links", func() *gorm.DB { return db.Where("user_id = ?", id).Delete(&MagicLink{}) }},
			{"credentials", func() *gorm.DB { return db.Where("user_id = ?", id).Delete(&Credential{}) }},
			{"sso sessions", func() *gorm.DB { return db.Where("user_id = ?", id).Delete(&SSOSession{}) }},
			{"tokens", func() *gorm.DB { return db.Where("subject = ?", id).Delete(&OAuthRecord{}) }},
			{"codes", func() *gorm.DB { return db.Where("subject = ?", id).Delete(&OAuthCode{}) }},
		}
		for _, st := range steps {
			if err := st.run().Error; err != nil {
				return fmt.Errorf("delete user %s: %s: %w", id, st.what, err)
			}
		}
		res := s.db(ctx).Where("id = ?", id).Delete(&User{})
		if res.Error != nil {
			return fmt.Errorf("delete user %s: %w", id, res.Error)
		}
		if res.RowsAffected == 0 {
			return flows.ErrUserNotFound
		}
		return nil
	})
}
