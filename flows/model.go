package flows

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Requirement says how an execution counts towards its flow.
type Requirement string

const (
	Required    Requirement = "REQUIRED"
	Alternative Requirement = "ALTERNATIVE"
	Conditional Requirement = "CONDITIONAL" // sub-flows only
	Disabled    Requirement = "DISABLED"
)

// Valid reports whether r is one of the four requirements.
func (r Requirement) Valid() bool {
	switch r {
	case Required, Alternative, Conditional, Disabled:
		return true
	}
	return false
}

// Execution is one element of a flow: an authenticator or a sub-flow.
type Execution struct {
	// ID is the execution's stable position ("1", "1.0"); it keys the
	// per-execution status kept in the Session.
	ID            string
	Authenticator string // factory id; empty for a sub-flow
	Flow          *Flow  // sub-flow; nil for an authenticator
	Requirement   Requirement
	Config        Config

	impl Authenticator
	name string // display name, for "try another way"
}

// Flow is an ordered list of executions.
type Flow struct {
	Name       string
	Executions []*Execution
}

// User is the account an authentication session identifies.
type User struct {
	ID              string
	Email           string // canonical form (see CanonicalEmail)
	FirstName       string
	LastName        string
	EmailVerified   bool
	Disabled        bool
	PasswordHash    string
	RequiredActions []string
	// Locale is the language the user chose (Keycloak's locale attribute):
	// the ID token's locale claim, and the pages' language when no request
	// says otherwise.
	Locale    string
	CreatedAt time.Time
}

// Name is the display name: "First Last", or the email when no name is set.
func (u *User) Name() string {
	n := strings.TrimSpace(u.FirstName + " " + u.LastName)
	if n == "" {
		return u.Email
	}
	return n
}

// HasRequiredAction reports whether action is pending.
func (u *User) HasRequiredAction(action string) bool {
	return slices.Contains(u.RequiredActions, action)
}

// AddRequiredAction adds action once.
func (u *User) AddRequiredAction(action string) {
	if !u.HasRequiredAction(action) {
		u.RequiredActions = append(u.RequiredActions, action)
	}
}

// RemoveRequiredAction removes action.
func (u *User) RemoveRequiredAction(action string) {
	u.RequiredActions = slices.DeleteFunc(u.RequiredActions, func(a string) bool { return a == action })
}

// ErrUserNotFound is returned by Users when no account matches.
var ErrUserNotFound = errors.New("user not found")

// ErrUserExists is returned by CreateUser when the email is taken.
var ErrUserExists = errors.New("user already exists")

// Users is the user directory the engine and authenticators need.
type Users interface {
	UserByID(ctx context.Context, id string) (*User, error)
	UserByEmail(ctx context.Context, canonicalEmail string) (*User, error)
	CreateUser(ctx context.Context, u *User) error
	UpdateUser(ctx context.Context, u *User) error
}

// Session is the authentication session: where one login attempt stands.
// The server persists it between requests; the engine only mutates it.
type Session struct {
	ID          string
	ClientID    string
	Flow        string            // the flow being run
	UserID      string            // set once a step identified the user
	Status      map[string]Status // finished executions, by Execution.ID
	Current     string            // the execution (or "ra:ACTION") whose challenge is shown
	Selected    map[string]string // alternative chosen by the user, by level
	Notes       map[string]string // authenticators' notes; survive redirects
	Methods     []string          // how the user authenticated (amr)
	Prompt      string            // OIDC prompt: a space-separated list (login, none, consent, ...)
	MaxAge      int               // OIDC max_age in seconds; -1 when absent
	LoginHint   string
	RequestedAt time.Time
	AuthTime    time.Time // when the user authenticated; set by the SSO cookie or at completion
}

// Note returns a note.
func (s *Session) Note(k string) string { return s.Notes[k] }

// Prompted reports whether the OIDC prompt list contains value.
func (s *Session) Prompted(value string) bool {
	return slices.Contains(strings.Fields(s.Prompt), value)
}

// SetNote stores a note that survives redirects.
func (s *Session) SetNote(k, v string) {
	if s.Notes == nil {
		s.Notes = map[string]string{}
	}
	s.Notes[k] = v
}

// AddMethod records an authentication method reference (RFC 8176 amr).
func (s *Session) AddMethod(m string) {
	if !slices.Contains(s.Methods, m) {
		s.Methods = append(s.Methods, m)
	}
}

// SSO is the single sign-on session found in the browser's cookie.
type SSO struct {
	UserID   string
	AuthTime time.Time
	Methods  []string
}

// Context is everything an authenticator may use in one request.
type Context struct {
	Realm     string
	RealmName string // the realm's display name (branding.displayName)
	// Locale is the login's language (a supported BCP 47 tag): mail a step
	// sends goes out in it.
	Locale    string
	Session   *Session
	User      *User      // once identified
	Form      url.Values // the posted form, for Action
	ClientIP  string
	UserAgent string
	SSO       *SSO   // the browser's SSO session, if any
	ActionURL string // where the challenge's form must post
	Users     Users
	// Credentials holds users' step credentials (TOTP keys, ...).
	Credentials Credentials
	Now         func() time.Time
	// ConsumedSecret is set by a step that consumed, in this request, a
	// one-time secret issued for this session (an emailed link, a code).
	// The server lets a browser that is not bound to the session continue
	// it only when this is set: whoever holds a used link must not.
	ConsumedSecret string
	// SameBrowser: the request comes from the browser the session is bound
	// to (always, except at an entry point).
	SameBrowser bool

	// Set per execution by the engine.
	Config    Config
	Execution string
	subFlow   *Flow // the sub-flow whose conditions are being evaluated
}

// SubFlowConfiguredForUser reports whether the user is identified and every
// user-aware step of the sub-flow being evaluated is set up for them (the
// condition behind Keycloak's "Condition - user configured").
func (c *Context) SubFlowConfiguredForUser(ctx context.Context) (bool, error) {
	if c.User == nil || c.subFlow == nil {
		return false, nil
	}
	for _, e := range c.subFlow.Executions {
		ua, ok := e.impl.(UserAware)
		if !ok || e.Requirement == Disabled {
			continue
		}
		ok, err := ua.ConfiguredFor(ctx, c, c.User)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// SetUser identifies the user for the rest of the flow.
func (c *Context) SetUser(u *User) {
	c.User = u
	c.Session.UserID = u.ID
}

// Time is the current time.
func (c *Context) Time() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// RequiredAction runs after the flow succeeds and before the login
// completes, for every action pending on the user (UPDATE_PROFILE, ...).
type RequiredAction interface {
	ID() string
	// Challenge shows the action's page, or returns Success when there is nothing to do.
	Challenge(ctx context.Context, c *Context) (Result, error)
	// Process handles the posted form; Success clears the action from the user.
	Process(ctx context.Context, c *Context) (Result, error)
}

// CanonicalEmail is the form emails are stored and looked up in.
func CanonicalEmail(email string) string { return canonicalEmail(email) }
