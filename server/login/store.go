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
	AuthSessions
	SSOSessions
	// RevokeSession revokes the tokens issued in an SSO session (by its sid).
	RevokeSession(ctx context.Context, ref string) error
	// EnqueueMail queues an outbox entry (back-channel logout tokens).
	EnqueueMail(ctx context.Context, m *store.OutboxMail) error
	// RecentMail is the development mailbox.
	RecentMail(ctx context.Context, limit int) ([]store.OutboxMail, error)
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
	SSOSessionByRef(ctx context.Context, ref string) (*store.SSOSession, error)
	TouchSSOSession(ctx context.Context, id string, idleUntil time.Time) error
	DeleteSSOSession(ctx context.Context, id string) error
	AddSessionClient(ctx context.Context, ref, clientID string, expires time.Time) error
	SessionClients(ctx context.Context, ref string) ([]string, error)
}
