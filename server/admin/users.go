package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"latchkey/flows"
	"latchkey/server/config"
	"latchkey/server/store"
)

// UserStore is what the users API needs of storage.
type UserStore interface {
	flows.Users
	ListUsers(ctx context.Context, f store.UserFilter) ([]*flows.User, error)
	CountUsersMatching(ctx context.Context, f store.UserFilter) (int64, error)
	SSOSessionsOf(ctx context.Context, userID string, now time.Time) ([]store.SSOSession, error)
	SessionClients(ctx context.Context, ref string) ([]string, error)
	EndUserSessions(ctx context.Context, userID string) error
	DeleteUser(ctx context.Context, id string) error
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
}

// Users is the user directory in Keycloak's admin REST shape: the email is
// the username (Keycloak's registrationEmailAsUsername).
type Users struct {
	Cfg   *config.Config
	Store UserStore
	// Links mints the execute-actions-email link, for AccountClient's
	// account page unless the request names a client.
	Links         *Service
	AccountClient string
	// HashPassword hashes a password credential (the password step's hash).
	HashPassword func(string) (string, error)
	// Actions are the required actions the realm knows, by id.
	Actions []string
	// Ender ends a user's sessions as logout does (back-channel logout
	// included); nil: the store's EndUserSessions (sessions and tokens only).
	Ender SessionEnder
}

// SessionEnder ends every SSO session of a user and revokes their tokens.
type SessionEnder interface {
	EndUserSessions(ctx context.Context, userID string) error
}

func (us *Users) endSessions(ctx context.Context, id string) error {
	if us.Ender != nil {
		return us.Ender.EndUserSessions(ctx, id)
	}
	return us.Store.EndUserSessions(ctx, id)
}

// UserRepresentation is Keycloak's, as Latchkey answers it.
type UserRepresentation struct {
	ID               string              `json:"id"`
	Username         string              `json:"username"`
	Email            string              `json:"email"`
	FirstName        string              `json:"firstName"`
	LastName         string              `json:"lastName"`
	EmailVerified    bool                `json:"emailVerified"`
	Enabled          bool                `json:"enabled"`
	RequiredActions  []string            `json:"requiredActions"`
	CreatedTimestamp int64               `json:"createdTimestamp"`
	Attributes       map[string][]string `json:"attributes,omitempty"`
	Totp             bool                `json:"totp"`
	NotBefore        int                 `json:"notBefore"`
	// Access is what the caller may do with the user (Keycloak's admin
	// console reads it); Latchkey's roles are all or nothing per realm.
	Access map[string]bool `json:"access"`
	// DisableableCredentialTypes is always empty here.
	DisableableCredentialTypes []string `json:"disableableCredentialTypes"`
}

// UserInput is a UserRepresentation in a POST or PUT: nil is "not sent",
// so a PUT changes only what it sends (Keycloak's partial update). The
// read-only fields a client echoes back from a GET are accepted and
// ignored; anything else unknown is an error, not silently dropped.
type UserInput struct {
	ID              *string             `json:"id"`
	Username        *string             `json:"username"`
	Email           *string             `json:"email"`
	FirstName       *string             `json:"firstName"`
	LastName        *string             `json:"lastName"`
	EmailVerified   *bool               `json:"emailVerified"`
	Enabled         *bool               `json:"enabled"`
	RequiredActions []string            `json:"requiredActions"`
	Attributes      map[string][]string `json:"attributes"`
	Credentials     []CredentialInput   `json:"credentials"`
	Groups          []string            `json:"groups"`
	RealmRoles      []string            `json:"realmRoles"`

	CreatedTimestamp           json.RawMessage `json:"createdTimestamp"`
	Totp                       json.RawMessage `json:"totp"`
	NotBefore                  json.RawMessage `json:"notBefore"`
	Access                     json.RawMessage `json:"access"`
	DisableableCredentialTypes json.RawMessage `json:"disableableCredentialTypes"`
	FederationLink             json.RawMessage `json:"federationLink"`
	Origin                     json.RawMessage `json:"origin"`
	Self                       json.RawMessage `json:"self"`
	ServiceAccountClientID     json.RawMessage `json:"serviceAccountClientId"`
	UserProfileMetadata        json.RawMessage `json:"userProfileMetadata"`
}

// CredentialInput is Keycloak's CredentialRepresentation, password only.
type CredentialInput struct {
	Type      string `json:"type"`
	Value     string `json:"value"`
	Temporary bool   `json:"temporary"`
}

// UserSession is Keycloak's UserSessionRepresentation. Id is the session's
// public name (the sid in its tokens), never the cookie's secret.
type UserSession struct {
	ID         string            `json:"id"`
	Username   string            `json:"username"`
	UserID     string            `json:"userId"`
	IPAddress  string            `json:"ipAddress"`
	Start      int64             `json:"start"`
	LastAccess int64             `json:"lastAccess"`
	RememberMe bool              `json:"rememberMe"`
	Clients    map[string]string `json:"clients"`
}

// ErrConflict is a create or an email change onto a taken address.
var ErrConflict = errors.New("User exists with same email")

// ErrNoUser is an unknown user id.
var ErrNoUser = errors.New("User not found")

// localeAttribute is the one attribute Latchkey stores (Keycloak's name).
const localeAttribute = "locale"

func (us *Users) represent(u *flows.User, canManage bool) UserRepresentation {
	r := UserRepresentation{
		ID: u.ID, Username: u.Email, Email: u.Email, FirstName: u.FirstName, LastName: u.LastName,
		EmailVerified: u.EmailVerified, Enabled: !u.Disabled, RequiredActions: nonNil(u.RequiredActions),
		CreatedTimestamp: u.CreatedAt.UnixMilli(), DisableableCredentialTypes: []string{},
		Access: map[string]bool{"view": true, "manage": canManage, "manageGroupMembership": false, "mapRoles": false, "impersonate": false},
	}
	if u.Locale != "" {
		r.Attributes = map[string][]string{localeAttribute: {u.Locale}}
	}
	return r
}

func nonNil(xs []string) []string {
	if xs == nil {
		return []string{}
	}
	return xs
}

// Get returns one user.
func (us *Users) Get(ctx context.Context, id string, canManage bool) (*UserRepresentation, error) {
	u, err := us.byID(ctx, id)
	if err != nil {
		return nil, err
	}
	r := us.represent(u, canManage)
	return &r, nil
}

func (us *Users) byID(ctx context.Context, id string) (*flows.User, error) {
	u, err := us.Store.UserByID(ctx, id)
	if errors.Is(err, flows.ErrUserNotFound) {
		return nil, ErrNoUser
	}
	return u, err
}

// MaxPage is the most users one list answers (Keycloak's default max is 100).
const MaxPage = 1000

// List answers GET /users.
func (us *Users) List(ctx context.Context, f store.UserFilter, canManage bool) ([]UserRepresentation, error) {
	if f.Max == 0 {
		f.Max = 100
	}
	if f.Max < 0 || f.Max > MaxPage {
		return nil, bad("max", "must be between 0 and %d", MaxPage)
	}
	if f.First < 0 {
		return nil, bad("first", "must not be negative")
	}
	users, err := us.Store.ListUsers(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]UserRepresentation, len(users))
	for i, u := range users {
		out[i] = us.represent(u, canManage)
	}
	return out, nil
}

// Count answers GET /users/count.
func (us *Users) Count(ctx context.Context, f store.UserFilter) (int64, error) {
	return us.Store.CountUsersMatching(ctx, f)
}

// Create answers POST /users and returns the new user's id.
func (us *Users) Create(ctx context.Context, in UserInput) (string, error) {
	if in.ID != nil && *in.ID != "" {
		return "", bad("id", "is assigned by the server")
	}
	u := &flows.User{}
	if in.Email == nil && in.Username == nil {
		return "", bad("email", "is required (the email is the username)")
	}
	if err := us.apply(u, in); err != nil {
		return "", err
	}
	if err := us.Store.CreateUser(ctx, u); errors.Is(err, flows.ErrUserExists) {
		return "", ErrConflict
	} else if err != nil {
		return "", err
	}
	return u.ID, nil
}

// Update answers PUT /users/{id}: only the fields sent change. Disabling
// ends the user's sessions and revokes their tokens in the same
// transaction.
func (us *Users) Update(ctx context.Context, id string, in UserInput) error {
	if in.ID != nil && *in.ID != "" && *in.ID != id {
		return bad("id", "does not match the user in the path")
	}
	return us.Store.InTx(ctx, func(ctx context.Context) error {
		u, err := us.byID(ctx, id)
		if err != nil {
			return err
		}
		wasDisabled := u.Disabled
		oldEmail := u.Email
		if err := us.apply(u, in); err != nil {
			return err
		}
		if u.Email != oldEmail {
			if _, err := us.Store.UserByEmail(ctx, u.Email); err == nil {
				return ErrConflict
			} else if !errors.Is(err, flows.ErrUserNotFound) {
				return err
			}
		}
		if err := us.Store.UpdateUser(ctx, u); err != nil {
			return err
		}
		if u.Disabled && !wasDisabled {
			return us.endSessions(ctx, u.ID)
		}
		return nil
	})
}

// SetEnabled enables or disables a user (the CLI's enable and disable).
func (us *Users) SetEnabled(ctx context.Context, id string, enabled bool) error {
	return us.Update(ctx, id, UserInput{Enabled: &enabled})
}

// Delete answers DELETE /users/{id}.
func (us *Users) Delete(ctx context.Context, id string) error {
	err := us.Store.InTx(ctx, func(ctx context.Context) error {
		if err := us.endSessions(ctx, id); err != nil {
			return err
		}
		return us.Store.DeleteUser(ctx, id)
	})
	if errors.Is(err, flows.ErrUserNotFound) {
		return ErrNoUser
	} else if err != nil {
		return err
	}
	return nil
}

// Logout answers POST /users/{id}/logout: every SSO session ends and every
// token of the user is revoked.
func (us *Users) Logout(ctx context.Context, id string) error {
	if _, err := us.byID(ctx, id); err != nil {
		return err
	}
	return us.endSessions(ctx, id)
}

// Sessions answers GET /users/{id}/sessions.
func (us *Users) Sessions(ctx context.Context, id string, now time.Time) ([]UserSession, error) {
	u, err := us.byID(ctx, id)
	if err != nil {
		return nil, err
	}
	rows, err := us.Store.SSOSessionsOf(ctx, id, now)
	if err != nil {
		return nil, err
	}
	out := make([]UserSession, 0, len(rows))
	for _, s := range rows {
		clients, err := us.Store.SessionClients(ctx, s.Ref)
		if err != nil {
			return nil, err
		}
		cs := map[string]string{}
		for _, c := range clients {
			cs[c] = c // Latchkey's clients have no UUID apart from their id
		}
		out = append(out, UserSession{ID: s.Ref, Username: u.Email, UserID: u.ID, Start: s.AuthTime.UnixMilli(),
			LastAccess: s.AuthTime.UnixMilli(), Clients: cs})
	}
	return out, nil
}

// SetPassword answers PUT /users/{id}/reset-password.
func (us *Users) SetPassword(ctx context.Context, id string, c CredentialInput) error {
	hash, err := us.passwordHash(c, "")
	if err != nil {
		return err
	}
	u, err := us.byID(ctx, id)
	if err != nil {
		return err
	}
	u.PasswordHash = hash
	return us.Store.UpdateUser(ctx, u)
}

func (us *Users) passwordHash(c CredentialInput, field string) (string, error) {
	if c.Type != "password" {
		return "", bad(field+"type", "only password credentials can be set")
	}
	if c.Temporary {
		return "", bad(field+"temporary", "temporary passwords are not supported: send a magic link with execute-actions-email instead")
	}
	if c.Value == "" || len(c.Value) > 1024 {
		return "", bad(field+"value", "must be 1 to 1024 bytes")
	}
	h, err := us.HashPassword(c.Value)
	if err != nil {
		return "", bad(field+"value", "%v", err)
	}
	return h, nil
}

// ExecuteActionsEmail adds required actions to the user and mails them a
// login link; logging in with it runs the actions. lifespan 0 is 12 hours.
func (us *Users) ExecuteActionsEmail(ctx context.Context, id string, actions []string, clientID, redirectURI string, lifespan time.Duration, now time.Time) error {
	for i, a := range actions {
		if !slices.Contains(us.Actions, a) {
			return bad(fmt.Sprintf("actions[%d]", i), "unknown required action %q (known: %s)", a, strings.Join(us.Actions, ", "))
		}
	}
	if lifespan == 0 {
		lifespan = 12 * time.Hour
	}
	u, err := us.byID(ctx, id)
	if err != nil {
		return err
	}
	if u.Disabled {
		return bad("", "the user is disabled")
	}
	if clientID == "" {
		if redirectURI != "" {
			return bad("client_id", "is required with redirect_uri")
		}
		clientID = us.AccountClient
	}
	if redirectURI == "" {
		if c, ok := us.Cfg.Client(clientID); ok && len(c.RedirectURIs) > 0 {
			redirectURI = c.RedirectURIs[0]
		}
	}
	for _, a := range actions {
		u.AddRequiredAction(a)
	}
	if err := us.Store.UpdateUser(ctx, u); err != nil {
		return err
	}
	_, err = us.Links.Create(ctx, CreateRequest{UserID: id, ClientID: clientID, RedirectURI: redirectURI, TTL: lifespan.String(), Send: true}, now)
	return err
}

// RoleMappings are the user's roles and groups as realm.yaml declares them.
func (us *Users) RoleMappings(ctx context.Context, id string) (config.RoleMapping, error) {
	u, err := us.byID(ctx, id)
	if err != nil {
		return config.RoleMapping{}, err
	}
	return us.Cfg.RolesOf(u.Email), nil
}

// apply writes the fields in sent onto u, validating each.
func (us *Users) apply(u *flows.User, in UserInput) error {
	if len(in.Groups) > 0 || len(in.RealmRoles) > 0 {
		return bad("groups", "roles and groups are declared in realm.yaml (users[].roles, users[].groups); change them there and reload")
	}
	email := in.Email
	if in.Username != nil {
		if email == nil {
			email = in.Username
		} else if !strings.EqualFold(strings.TrimSpace(*in.Username), strings.TrimSpace(*email)) {
			return bad("username", "must equal email: this realm uses the email as the username")
		}
	}
	if email != nil {
		e, err := flows.ParseEmail(*email)
		if err != nil {
			return bad("email", "is not a valid email address")
		}
		u.Email = e
	}
	for field, dst := range map[string]*string{"firstName": in.FirstName, "lastName": in.LastName} {
		if dst == nil {
			continue
		}
		v := strings.TrimSpace(*dst)
		if utf8.RuneCountInString(v) > 100 || strings.ContainsAny(v, "\r\n\x00") {
			return bad(field, "must be at most 100 characters on one line")
		}
		if field == "firstName" {
			u.FirstName = v
		} else {
			u.LastName = v
		}
	}
	if in.EmailVerified != nil {
		u.EmailVerified = *in.EmailVerified
	}
	if in.Enabled != nil {
		u.Disabled = !*in.Enabled
	}
	if in.RequiredActions != nil {
		for i, a := range in.RequiredActions {
			if !slices.Contains(us.Actions, a) {
				return bad(fmt.Sprintf("requiredActions[%d]", i), "unknown required action %q (known: %s)", a, strings.Join(us.Actions, ", "))
			}
		}
		u.RequiredActions = slices.Compact(slices.Clone(in.RequiredActions))
	}
	if in.Attributes != nil {
		locale := ""
		for k, v := range in.Attributes {
			if k != localeAttribute {
				return bad("attributes."+k, "is not stored: Latchkey keeps only the locale attribute")
			}
			if len(v) > 1 {
				return bad("attributes.locale", "takes one value")
			}
			if len(v) == 1 {
				l, ok := us.Cfg.SupportedLocale(v[0])
				if !ok {
					return bad("attributes.locale", "must be one of %s", strings.Join(us.Cfg.I18n.SupportedLocales, ", "))
				}
				locale = l
			}
		}
		u.Locale = locale
	}
	if len(in.Credentials) > 1 {
		return bad("credentials", "takes one password")
	}
	if len(in.Credentials) == 1 {
		hash, err := us.passwordHash(in.Credentials[0], "credentials[0].")
		if err != nil {
			return err
		}
		u.PasswordHash = hash
	}
	return nil
}
