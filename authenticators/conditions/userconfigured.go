// Package conditions holds condition authenticators for CONDITIONAL sub-flows.
package conditions

import (
	"context"

	"latchkey/flows"
)

// UserConfigured is "condition-user-configured": true when the user is
// identified and every user-aware step of the sub-flow is set up for them.
type UserConfigured struct{}

var (
	_ flows.Factory   = UserConfigured{}
	_ flows.Condition = userConfigured{}
)

func (UserConfigured) ID() string                                    { return "condition-user-configured" }
func (UserConfigured) DisplayName() string                           { return "Condition - user configured" }
func (UserConfigured) Options() []flows.Option                       { return nil }
func (UserConfigured) New(flows.Config) (flows.Authenticator, error) { return userConfigured{}, nil }

type userConfigured struct{}

func (userConfigured) Matches(ctx context.Context, c *flows.Context) (bool, error) {
	return c.SubFlowConfiguredForUser(ctx)
}

// A condition is never run as a step; these satisfy the interface.
func (userConfigured) Authenticate(context.Context, *flows.Context) (flows.Result, error) {
	return flows.Skipped(), nil
}
func (userConfigured) Action(context.Context, *flows.Context) (flows.Result, error) {
	return flows.Skipped(), nil
}
