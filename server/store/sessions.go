package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// AuthSession is one login attempt, stored server-side; the browser only
// holds a reference. Data is the server's JSON encoding of the flow state.
type AuthSession struct {
	ID        string `gorm:"primaryKey;size:64"`
	BrowserID string `gorm:"size:64"` // the browser this attempt is bound to
	Data      string
	ExpiresAt time.Time `gorm:"index"`
	CreatedAt time.Time
	UpdatedAt time.Time
}

// sqliteAuthSessionsTable is the auth_sessions table of a new SQLite
// database: WITHOUT ROWID, clustered on its id. A rowid table keyed by id
// keeps a second B-tree for the key, so each login wrote three B-trees
// where this writes two when its attempt starts and ends (the expiry index
// either way). The columns are those gorm declares, so AutoMigrate finds
// nothing to change; a database made before keeps its layout.
const sqliteAuthSessionsTable = "CREATE TABLE IF NOT EXISTS `auth_sessions` (`id` text,`browser_id` text,`data` text," +
	"`expires_at` datetime,`created_at` datetime,`updated_at` datetime,PRIMARY KEY (`id`)) WITHOUT ROWID"

// SaveAuthSession inserts or updates an authentication session. Its expiry
// is fixed when it is created (a login has so long from its start):
// saving it again keeps it, and so leaves the expiry index alone.
func (s *Store) SaveAuthSession(ctx context.Context, a *AuthSession) error {
	now := time.Now().UTC()
	if a.CreatedAt.IsZero() {
		a.CreatedAt = now
	}
	a.UpdatedAt = now
	_, err := s.exec(ctx, saveAuthSession, a.ID, a.BrowserID, a.Data, a.ExpiresAt.UTC(), a.CreatedAt.UTC(), a.UpdatedAt)
	if err != nil {
		return fmt.Errorf("save auth session: %w", err)
	}
	return nil
}

// AuthSessionByID returns the session, expired or not: callers tell the
// user which it was.
func (s *Store) AuthSessionByID(ctx context.Context, id string) (*AuthSession, error) {
	a := AuthSession{ID: id}
	row, err := s.queryRow(ctx, selectAuthSession, id)
	if err == nil {
		err = row.Scan(&a.BrowserID, &a.Data, &a.ExpiresAt, &a.CreatedAt, &a.UpdatedAt)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read auth session: %w", err)
	}
	return &a, nil
}

// DeleteAuthSession removes a finished login attempt.
func (s *Store) DeleteAuthSession(ctx context.Context, id string) error {
	if _, err := s.exec(ctx, deleteAuthSession, id); err != nil {
		return fmt.Errorf("delete auth session: %w", err)
	}
	return nil
}

// The login attempt's statements, run several times by every login (plain
// SQL: plainsql.go).
var (
	saveAuthSession = plain("INSERT INTO auth_sessions (id, browser_id, data, expires_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) " +
		"ON CONFLICT (id) DO UPDATE SET browser_id = excluded.browser_id, data = excluded.data, updated_at = excluded.updated_at")
	selectAuthSession = plain("SELECT browser_id, data, expires_at, created_at, updated_at FROM auth_sessions WHERE id = ?")
	deleteAuthSession = plain("DELETE FROM auth_sessions WHERE id = ?")
)

// SSOSession is a completed login remembered for single sign-on.
type SSOSession struct {
	ID     string `gorm:"primaryKey;size:64"`
	UserID string `gorm:"index;size:36"`
	// Ref is the session's public name, the sid of its tokens (a hash of
	// ID): logout by id_token_hint finds the session by it.
	Ref       string `gorm:"index;size:64"`
	AuthTime  time.Time
	Methods   string    // amr values, comma-separated
	ExpiresAt time.Time `gorm:"index"`
	// IdleExpiresAt ends the session early when it is not used; renewed by
	// each login it answers. NULL (rows from before it existed): no idle limit.
	IdleExpiresAt *time.Time
	CreatedAt     time.Time
}

// CreateSSOSession stores a new SSO session.
func (s *Store) CreateSSOSession(ctx context.Context, sso *SSOSession) error {
	if err := s.db(ctx).Create(sso).Error; err != nil {
		return fmt.Errorf("create sso session: %w", err)
	}
	return nil
}

// SSOSessionByID returns a live SSO session.
func (s *Store) SSOSessionByID(ctx context.Context, id string, now time.Time) (*SSOSession, error) {
	var sso SSOSession
	now = now.UTC()
	err := s.read(ctx).Where("id = ? AND expires_at > ? AND (idle_expires_at IS NULL OR idle_expires_at > ?)", id, now, now).Take(&sso).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sso session: %w", err)
	}
	return &sso, nil
}

// TouchSSOSession renews a session's idle deadline (it answered a login).
func (s *Store) TouchSSOSession(ctx context.Context, id string, idleUntil time.Time) error {
	if err := s.db(ctx).Model(&SSOSession{}).Where("id = ?", id).Update("idle_expires_at", idleUntil.UTC()).Error; err != nil {
		return fmt.Errorf("touch sso session: %w", err)
	}
	return nil
}

// DeleteSSOSession ends an SSO session (logout).
func (s *Store) DeleteSSOSession(ctx context.Context, id string) error {
	return s.db(ctx).Where("id = ?", id).Delete(&SSOSession{}).Error
}

// EndUserSessions ends every SSO session of a user and revokes their
// tokens (a disabled or deleted account), in one transaction.
func (s *Store) EndUserSessions(ctx context.Context, userID string) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		if err := s.db(ctx).Where("user_id = ?", userID).Delete(&SSOSession{}).Error; err != nil {
			return fmt.Errorf("end sso sessions: %w", err)
		}
		return s.RevokeSubject(ctx, userID)
	})
}

// SessionClient records that a client received tokens in an SSO session,
// so that ending the session can notify it (back-channel logout).
type SessionClient struct {
	Ref       string    `gorm:"primaryKey;size:64"` // the SSO session's sid
	ClientID  string    `gorm:"primaryKey;size:128"`
	ExpiresAt time.Time `gorm:"index"`
}

// AddSessionClient records clientID under the session ref (once).
func (s *Store) AddSessionClient(ctx context.Context, ref, clientID string, expires time.Time) error {
	err := s.db(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&SessionClient{Ref: ref, ClientID: clientID, ExpiresAt: expires.UTC()}).Error
	if err != nil {
		return fmt.Errorf("record session client: %w", err)
	}
	return nil
}

// SessionClients returns the clients that received tokens in a session.
func (s *Store) SessionClients(ctx context.Context, ref string) ([]string, error) {
	var ids []string
	if err := s.db(ctx).Model(&SessionClient{}).Where("ref = ?", ref).Order("client_id").Pluck("client_id", &ids).Error; err != nil {
		return nil, fmt.Errorf("session clients: %w", err)
	}
	return ids, nil
}

// SSOSessionByRef returns a live session by its sid.
func (s *Store) SSOSessionByRef(ctx context.Context, ref string) (*SSOSession, error) {
	var sso SSOSession
	err := s.db(ctx).Where("ref = ?", ref).Take(&sso).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sso session: %w", err)
	}
	return &sso, nil
}
