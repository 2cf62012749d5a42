// Package deny is the "deny-access" authenticator: it always fails, for
// flows that must refuse some users (behind a condition).
package deny

import (
	"context"

	"latchkey/flows"
)

// Factory builds the authenticator.
type Factory struct{}

var _ flows.Factory = Factory{}

func (Factory) ID() string          { return "deny-access" }
func (Factory) DisplayName() string { return "Deny access" }
func (Factory) Options() []flows.Option {
	return []flows.Option{{Name: "errorMessage", Type: flows.String, Default: "Access denied.", Help: "What the user is told."}}
}
func (Factory) New(cfg flows.Config) (flows.Authenticator, error) {
	return authenticator{msg: cfg.String("errorMessage")}, nil
}

type authenticator struct{ msg string }

func (a authenticator) Authenticate(context.Context, *flows.Context) (flows.Result, error) {
	return flows.Fail(flows.Literal(a.msg)), nil
}
func (a authenticator) Action(context.Context, *flows.Context) (flows.Result, error) {
	return flows.Fail(flows.Literal(a.msg)), nil
}
