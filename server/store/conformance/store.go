package conformance

import (
	"context"
	"time"

	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/handler/pkce"
	fositestorage "github.com/ory/fosite/storage"

	"latchkey/flows"
	"latchkey/server/store"
)

// Store is everything a Latchkey storage implementation offers: what the
// suite checks. store.Store (gorm on SQLite and PostgreSQL) is one; another
// implementation passes Run to prove it can replace it.
type Store interface {
	flows.Users
	CountUsers(ctx context.Context) (int64, error)
	ImportUsers(ctx context.Context, users []*flows.User) error
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
	Rehearse(ctx context.Context, fn func(ctx context.Context) error) error
	LazyTx(ctx context.Context) (context.Context, func(err error) error)
	ListUsers(ctx context.Context, f store.UserFilter) ([]*flows.User, error)
	CountUsersMatching(ctx context.Context, f store.UserFilter) (int64, error)
	DeleteUser(ctx context.Context, id string) error
	SSOSessionsOf(ctx context.Context, userID string, now time.Time) ([]store.SSOSession, error)
	SettingOrCreate(ctx context.Context, key string, create func() (string, error)) (string, error)

	// OAuth 2.0 and OpenID Connect records, as fosite's handlers use them.
	SetClients(l store.ClientLookup)
	oauth2.CoreStorage
	oauth2.TokenRevocationStorage
	openid.OpenIDConnectRequestStorage
	pkce.PKCERequestStorage
	fositestorage.Transactional
	// RevokeSubject ends a user's tokens (a disabled account).
	RevokeSubject(ctx context.Context, subject string) error
	// RevokeSession ends the tokens a user got in an SSO session (logout).
	RevokeSession(ctx context.Context, subject, ref string) error
	SigningKeys(ctx context.Context) ([]store.SigningKey, error)
	AddSigningKey(ctx context.Context, k *store.SigningKey) error

	// Logins and single sign-on.
	SaveAuthSession(ctx context.Context, a *store.AuthSession) error
	AuthSessionByID(ctx context.Context, id string) (*store.AuthSession, error)
	DeleteAuthSession(ctx context.Context, id string) error
	CreateSSOSession(ctx context.Context, sso *store.SSOSession) error
	SSOSessionByID(ctx context.Context, id string, now time.Time) (*store.SSOSession, error)
	DeleteSSOSession(ctx context.Context, id string) error

	// Magic links.
	CreateMagicLink(ctx context.Context, l *store.MagicLink, m *store.OutboxMail) error
	MagicLinkByHash(ctx context.Context, hash string) (*store.MagicLink, error)
	MagicLinkByID(ctx context.Context, id string) (*store.MagicLink, error)
	ConsumeMagicLink(ctx context.Context, hash string, owner store.LinkOwner, now time.Time) (*store.MagicLink, error)
	ConsumeMagicLinkByID(ctx context.Context, id string, now time.Time) (*store.MagicLink, error)
	FailMagicLinkCode(ctx context.Context, id string, max int, now time.Time) (*store.MagicLink, error)
	ApproveMagicLink(ctx context.Context, id string, now time.Time) (*store.MagicLink, error)
	ClaimApprovedMagicLink(ctx context.Context, id string, now time.Time) (*store.MagicLink, error)
	MagicLinkForLogin(ctx context.Context, authSessionID string) (*store.MagicLink, error)
	MarkMagicLinkOpened(ctx context.Context, id string, now time.Time) error
	RevokeMagicLink(ctx context.Context, id, reason string, now time.Time) (bool, error)
	ListMagicLinks(ctx context.Context, f store.LinkFilter, now time.Time) ([]store.MagicLink, int64, error)

	// The outbox.
	EnqueueMail(ctx context.Context, m *store.OutboxMail) error
	ClaimMail(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]store.OutboxMail, error)
	RecordMail(ctx context.Context, owner string, outcomes []store.MailOutcome) (lost []uint64, err error)
	ReleaseMailLeases(ctx context.Context, owner string) error
	ReleaseMail(ctx context.Context, owner string, ids []uint64) error
	MailByRef(ctx context.Context, ref string) ([]store.OutboxMail, error)

	// The event log.
	RecordEvent(ctx context.Context, e *store.Event, deliveries []store.OutboxMail) error
	Events(ctx context.Context, f store.EventFilter) ([]store.Event, error)
	PurgeEvents(ctx context.Context, before time.Time) (int64, error)

	// Rate counters, step credentials, housekeeping.
	Hit(ctx context.Context, key string, window time.Duration, now time.Time) (int, time.Time, error)
	HitAll(ctx context.Context, keys []string, window time.Duration, now time.Time) ([]int, []time.Time, error)
	CredentialsOf(ctx context.Context, userID, typ string) ([]store.Credential, error)
	SaveCredential(ctx context.Context, c *store.Credential) error
	UseCounter(ctx context.Context, id string, n int64) (bool, error)
	DeleteCredential(ctx context.Context, id string) error
	Purge(ctx context.Context, now time.Time, grace time.Duration) (int64, error)
}

var _ Store = (*store.Store)(nil)
