package login

import (
	"context"
	"time"

	"latchkey/flows"
	"latchkey/server/store"
)

// Store is what the hosted login needs from storage, declared here so that
// tests can hand it an in-memory one.
type Store interface {
	flows.Users
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
	// LazyTx: the first InTx begins a transaction that what follows joins,
	// until end (store.Store.LazyTx).
	LazyTx(ctx context.Context) (_ context.Context, end func(err error) error)
	AuthSessions
	SSOSessions
}

// AuthSessions keeps login attempts between requests.
type AuthSessions interface {
	SaveAuthSession(ctx context.Context, a *store.AuthSession) error
	AuthSessionByID(ctx context.Context, id string) (*store.AuthSession, error)
	DeleteAuthSession(ctx context.Context, id string) error
}

// SSOSessions keeps single sign-on sessions and the clients that got
// tokens in them.
type SSOSessions interface {
	CreateSSOSession(ctx context.Context, sso *store.SSOSession) error
	SSOSessionByID(ctx context.Context, id string, now time.Time) (*store.SSOSession, error)
	TouchSSOSession(ctx context.Context, id string, idleUntil time.Time) error
	DeleteSSOSession(ctx context.Context, id string) error
	AddSessionClient(ctx context.Context, ref, clientID string, expires time.Time) error
}

// LogoutStore is what logout needs: the SSO session (by the browser's id
// or a token's sid), its tokens, its clients, and the outbox for their
// back-channel logout tokens, in one transaction.
type LogoutStore interface {
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
	SSOSessionByID(ctx context.Context, id string, now time.Time) (*store.SSOSession, error)
	SSOSessionByRef(ctx context.Context, ref string) (*store.SSOSession, error)
	DeleteSSOSession(ctx context.Context, id string) error
	// RevokeSession revokes the tokens issued to a user (subject, the
	// user's id) in an SSO session (by its sid).
	RevokeSession(ctx context.Context, subject, ref string) error
	SessionClients(ctx context.Context, ref string) ([]string, error)
	EnqueueMail(ctx context.Context, m *store.OutboxMail) error
	// For ending all of a user's sessions (admin logout, disable, delete).
	SSOSessionsOf(ctx context.Context, userID string, now time.Time) ([]store.SSOSession, error)
	EndUserSessions(ctx context.Context, userID string) error
}
