// Package flows is Latchkey's authentication engine: flows of executions in
// Keycloak's model (REQUIRED, ALTERNATIVE, CONDITIONAL, DISABLED), the
// authenticator plug-in contract, and required actions.
//
// It knows nothing of HTTP routers, storage engines or mail: the server gives
// it a Context per request and persists the Session it mutates.
package flows

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"time"
)

// Status is what one authenticator decided.
type Status int

const (
	// Success: the step is satisfied and the flow moves on.
	Success Status = iota + 1
	// Challenge: show Result.Page; the answer comes back to Action.
	Challenge
	// Attempted: the step does not apply here (no cookie, no user); not a failure.
	Attempted
	// Failed: a bad, expired or reused credential. A normal outcome, not an error.
	Failed
	// Fork: abandon this flow and start the flow named in Result.Fork.
	Fork
)

func (s Status) String() string {
	switch s {
	case Success:
		return "success"
	case Challenge:
		return "challenge"
	case Attempted:
		return "attempted"
	case Failed:
		return "failed"
	case Fork:
		return "fork"
	}
	return fmt.Sprintf("status(%d)", int(s))
}

// Result is an authenticator's answer. The server renders Page with Data; an
// authenticator never writes the HTTP response itself.
type Result struct {
	Status  Status
	Page    string // template name, for Challenge
	Data    any    // template data, for Challenge
	Message Msg    // why, for Failed
	Fork    string // flow name, for Fork
	// Gone: the link or code the request presented can no longer be used.
	Gone bool
	// Detached: the page tells nothing of the login (only that a mail
	// went out), so it may be shown to a browser that does not own it.
	Detached bool
}

// Shorthands for authenticators.
func Succeeded() Result                 { return Result{Status: Success} }
func Skipped() Result                   { return Result{Status: Attempted} }
func Show(page string, data any) Result { return Result{Status: Challenge, Page: page, Data: data} }
func Fail(why Msg) Result               { return Result{Status: Failed, Message: why} }
func ForkTo(flow string) Result         { return Result{Status: Fork, Fork: flow} }
func (r Result) String() string         { return r.Status.String() }

// Authenticator is one login step. A non-nil error is an infrastructure
// fault (database, mail): the server answers 500 and logs it.
type Authenticator interface {
	// Authenticate runs when the flow reaches this step: challenge or decide.
	Authenticate(ctx context.Context, c *Context) (Result, error)
	// Action handles what the user posted in answer to a challenge.
	Action(ctx context.Context, c *Context) (Result, error)
}

// UserAware is implemented by authenticators that need an identified user
// (Keycloak's requiresUser/configuredFor/setRequiredActions).
type UserAware interface {
	// ConfiguredFor reports whether the user can use this step (has a password, ...).
	ConfiguredFor(ctx context.Context, c *Context, u *User) (bool, error)
	// RequiredActionsFor names the actions that would make the step usable,
	// set on the user when a REQUIRED step is not configured for them.
	RequiredActionsFor(u *User) []string
}

// Condition is implemented by condition authenticators, which decide whether
// their CONDITIONAL sub-flow runs.
type Condition interface {
	Matches(ctx context.Context, c *Context) (bool, error)
}

// Factory describes an authenticator and builds one instance per execution.
type Factory interface {
	ID() string
	DisplayName() string
	Options() []Option
	New(cfg Config) (Authenticator, error)
}

// OptionType is the type of one config option.
type OptionType string

const (
	Bool     OptionType = "bool"
	Int      OptionType = "int"
	String   OptionType = "string"
	Duration OptionType = "duration"
	List     OptionType = "list"
)

// Option is one entry of an authenticator's config schema.
type Option struct {
	Name    string
	Type    OptionType
	Default any // typed: bool, int, string, time.Duration, []string
	Help    string
	// Check validates a decoded value beyond its type (bounds, formats).
	Check func(v any) error
	// WithinAuthSession marks a Duration that may not exceed the realm's
	// sessions.authSessionTTL (say, a link must not outlive its login).
	WithinAuthSession bool
}

// Config is an execution's configuration, decoded and typed at load time.
type Config struct {
	Alias  string
	Values map[string]any
}

// Bool returns a bool option; the schema guarantees the type.
func (c Config) Bool(name string) bool { v, _ := c.Values[name].(bool); return v }

// Int returns an int option.
func (c Config) Int(name string) int { v, _ := c.Values[name].(int); return v }

// String returns a string option.
func (c Config) String(name string) string { v, _ := c.Values[name].(string); return v }

// Duration returns a duration option.
func (c Config) Duration(name string) time.Duration { v, _ := c.Values[name].(time.Duration); return v }

// Strings returns a list option.
func (c Config) Strings(name string) []string { v, _ := c.Values[name].([]string); return v }

// ActionProvider is implemented by factories whose steps come with
// required actions (a step's setup, like CONFIGURE_TOTP, or VERIFY_EMAIL):
// registering the factory registers them.
type ActionProvider interface {
	RequiredActions() []RequiredAction
}

// Registry maps authenticator ids to factories. It is filled once where the
// server is wired and read-only afterwards.
type Registry map[string]Factory

// NewRegistry keys factories by their ID.
func NewRegistry(factories ...Factory) Registry {
	r := Registry{}
	for _, f := range factories {
		r[f.ID()] = f
	}
	return r
}

// Lookup returns the factory for id.
func (r Registry) Lookup(id string) (Factory, bool) { f, ok := r[id]; return f, ok }

// RequiredActions returns base followed by the required actions of the
// registry's factories, in the order of their ids; an id is kept once.
func (r Registry) RequiredActions(base ...RequiredAction) []RequiredAction {
	out := slices.Clone(base)
	ids := slices.Sorted(maps.Keys(r))
	for _, id := range ids {
		if p, ok := r[id].(ActionProvider); ok {
			for _, a := range p.RequiredActions() {
				if !slices.ContainsFunc(out, func(b RequiredAction) bool { return b.ID() == a.ID() }) {
					out = append(out, a)
				}
			}
		}
	}
	return out
}

// Templated is implemented by factories and required actions that bring
// their own pages (NAME.html, rendered inside the layout) and mails
// (mail-NAME.txt with a "subject" block, and mail-NAME.html). The realm's
// theme folder overrides any of them by file name.
type Templated interface {
	Templates() fs.FS
}

// TemplateDir returns the "templates" directory of a package's embedded
// files, for Templated.
func TemplateDir(embedded fs.FS) fs.FS {
	sub, err := fs.Sub(embedded, "templates")
	if err != nil {
		panic(err) // only for a malformed name; "templates" is valid
	}
	return sub
}
