package flows

import (
	"context"
	"net/url"
	"time"
)

// Entry is a request that reaches a step from outside its login page: an
// emailed link opened in any browser, a code typed on another device, an
// upstream identity provider's callback. The server routes it, checks a
// POST's CSRF token, and fills in what the step may use.
type Entry struct {
	Method    string     // GET or POST
	Path      string     // below the entry point's URL: "" or, say, "resend"
	Query     url.Values // the URL's query
	Form      url.Values // the posted form (POST only)
	ClientIP  string
	UserAgent string
	// InBrowserFlow reports whether the realm's browser flow has an enabled
	// step of the entry point's factory (a login it begins can run there).
	InBrowserFlow bool
	// WaitsAt reports whether the login session is still open and waiting
	// at execution, without loading it for the step.
	WaitsAt func(ctx context.Context, session, execution string) (bool, error)
	// HoldsLogin reports whether the browser of this request holds the
	// login session (the login started here), by the server's one rule of
	// who may continue a login.
	HoldsLogin func(ctx context.Context, session string) (bool, error)
	Users      Users
}

// Value returns a parameter of the request: from the form of a POST, from
// the query of a GET.
func (in *Entry) Value(name string) string {
	if in.Method == "POST" {
		return in.Form.Get(name)
	}
	return in.Query.Get(name)
}

// EntryPoint is implemented by the Factory of a step that is re-entered from
// outside its login page. The server serves the entry point at
// /realms/{realm}/login-actions/{EntryName} (and below it) and owns loading
// and saving the authentication session, CSRF, and the one rule of who may
// resume a session; the step owns everything else about its requests.
type EntryPoint interface {
	EntryName() string
	// Enter reads a request without resuming any login: it answers it at
	// once (a link's confirm page, why a link cannot be used), or names the
	// login and step that take it, or begins a new login.
	Enter(ctx context.Context, in *Entry, now time.Time) (Entered, error)
}

// Entered says where an entry request goes. Exactly one of Answer,
// Progress, Begin, or Session and Execution is set.
type Entered struct {
	// Answer is a page shown at once, outside any login.
	Answer *Result
	// Progress answers a login's own page that polls while the step waits
	// on something outside the browser (an approval on another device); the
	// server sends it as JSON, {"state": Progress}.
	Progress Progress
	// Session and Execution name the login the request continues and the
	// step, or required action, whose Resume takes it.
	Session   string
	Execution string
	// Begin starts a new login in which the entry point's step has already
	// succeeded (a link minted by the management API, consumed by Enter).
	Begin *Begin
	// Locale is the language the answer should be shown in when the step
	// knows it (the link's), unless the request names one (kc_locale).
	Locale string
	// ClientID and Settings dress the answer: the app it is about, and the
	// presentation settings its issuer attached (a minted link's branding).
	ClientID string
	Settings map[string]string
}

// Progress is what a polled step has come to.
type Progress string

const (
	// Waiting: nothing has changed; poll again.
	Waiting Progress = "waiting"
	// Changed: load the login's page again (approved, declined, or over).
	Changed Progress = "changed"
)

// Begin is a login started from an entry point.
type Begin struct {
	UserID   string
	ClientID string
	// Return is where the browser goes once signed in: a registered
	// redirect URI of the client, whose own login then completes.
	Return  string
	Methods []string // amr values of the step that succeeded
	// Secret is the id of the one-time secret Enter consumed: it lets the
	// browser that presented it into the new login.
	Secret string
	// Locale is the language the link was issued in (empty: the browser's).
	Locale string
	// Settings are presentation settings the issuer attached (branding),
	// kept for the rest of the login's pages.
	Settings map[string]string
}

// Resumable is implemented by authenticators and required actions whose
// step is re-entered at their factory's entry point. Resume runs in place
// of Action when the session waits at the step; a Result it marks Detached
// may be shown to a browser that does not own the login.
type Resumable interface {
	Resume(ctx context.Context, c *Context, in *Entry) (Result, error)
}

// EntryPoints returns the registry's entry points by name, with the id of
// the factory that serves each.
func (r Registry) EntryPoints() map[string]FactoryEntry {
	out := map[string]FactoryEntry{}
	for id, f := range r {
		if ep, ok := f.(EntryPoint); ok {
			out[ep.EntryName()] = FactoryEntry{Factory: id, EntryPoint: ep}
		}
	}
	return out
}

// FactoryEntry is an entry point and the factory it belongs to.
type FactoryEntry struct {
	Factory string
	EntryPoint
}
