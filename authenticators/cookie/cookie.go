// Package cookie is the "cookie" authenticator: single sign-on from the
// browser's SSO session, unless the client asked for a fresh login.
package cookie

import (
	"context"
	"errors"
	"time"

	"latchkey/flows"
)

// Factory builds the authenticator.
type Factory struct{}

var _ flows.Factory = Factory{}

func (Factory) ID() string                                    { return "cookie" }
func (Factory) DisplayName() string                           { return "Existing session" }
func (Factory) Options() []flows.Option                       { return nil }
func (Factory) New(flows.Config) (flows.Authenticator, error) { return authenticator{}, nil }

type authenticator struct{}

// Authenticate succeeds with the SSO session's user, or does not apply when
// there is none, prompt=login was asked, or it is older than max_age.
func (authenticator) Authenticate(ctx context.Context, c *flows.Context) (flows.Result, error) {
	sso := c.SSO
	if sso == nil || c.Session.Prompted("login") {
		return flows.Skipped(), nil
	}
	if c.Session.MaxAge >= 0 && c.Time().Sub(sso.AuthTime) > time.Duration(c.Session.MaxAge)*time.Second {
		return flows.Skipped(), nil
	}
	u, err := c.Users.UserByID(ctx, sso.UserID)
	if errors.Is(err, flows.ErrUserNotFound) {
		return flows.Skipped(), nil
	}
	if err != nil {
		return flows.Result{}, err
	}
	if u.Disabled {
		return flows.Skipped(), nil
	}
	c.SetUser(u)
	c.Session.AuthTime = sso.AuthTime
	for _, m := range sso.Methods {
		c.Session.AddMethod(m)
	}
	return flows.Succeeded(), nil
}

func (a authenticator) Action(ctx context.Context, c *flows.Context) (flows.Result, error) {
	return a.Authenticate(ctx, c)
}
