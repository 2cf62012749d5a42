package flows

import (
	"context"
	"time"
)

// Credential is a secret a user set up for a step: a TOTP key today, a
// security key tomorrow. The store seals Secret at rest.
type Credential struct {
	ID        string
	UserID    string
	Type      string // the step's authenticator id, say "otp"
	Secret    []byte
	Label     string
	Confirmed bool  // set up completely (for TOTP: the first code was right)
	Counter   int64 // the last accepted counter (a TOTP time step): each is accepted once
	CreatedAt time.Time
}

// Credentials stores users' credentials for the steps that need them.
type Credentials interface {
	CredentialsOf(ctx context.Context, userID, typ string) ([]Credential, error)
	// SaveCredential inserts the credential (an empty ID is assigned) or
	// replaces the one with its ID.
	SaveCredential(ctx context.Context, cr *Credential) error
	// UseCounter moves a credential's counter up to n in one atomic step;
	// false when it already was at n or beyond: a replayed or raced code.
	UseCounter(ctx context.Context, id string, n int64) (bool, error)
	DeleteCredential(ctx context.Context, id string) error
}
