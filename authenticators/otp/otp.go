// Package otp is the TOTP second factor (RFC 6238): the "otp" step, which
// asks for the code of the user's authenticator app, and the CONFIGURE_TOTP
// required action, which sets one up. Codes are made and compared by
// github.com/pquerna/otp; secrets are stored through flows.Credentials,
// which seals them at rest; a code is accepted at most once.
package otp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/pquerna/otp"

	"latchkey/flows"
)

// ID is the step's id in realm.yaml and the type of its credentials.
const ID = "otp"

// Page is the code form.
const Page = "login-otp"

const noteFailures = "otp.failures"

// Counter counts failed codes per user in a fixed window.
type Counter interface {
	Hit(ctx context.Context, key string, window time.Duration, now time.Time) (int, time.Time, error)
}

// Factory builds otp steps.
type Factory struct {
	Counter Counter // nil: no per-user bound beyond maxAttempts
	Log     *slog.Logger
}

var (
	_ flows.Factory        = Factory{}
	_ flows.ActionProvider = Factory{}
)

func (Factory) ID() string          { return ID }
func (Factory) DisplayName() string { return "Authenticator app code" }

func (Factory) Options() []flows.Option {
	atLeast := func(n int) func(any) error {
		return func(v any) error {
			if v.(int) < n {
				return fmt.Errorf("must be at least %d", n)
			}
			return nil
		}
	}
	return []flows.Option{
		{Name: "digits", Type: flows.Int, Default: 6, Help: "Code length for new authenticator apps: 6 or 8.", Check: func(v any) error {
			return checkParams(params{Digits: v.(int), Period: defaults.Period, Algorithm: defaults.Algorithm})
		}},
		{Name: "period", Type: flows.Duration, Default: 30 * time.Second, Help: "How long each code lasts, for new authenticator apps (15s to 5m).", Check: func(v any) error {
			return checkParams(params{Digits: defaults.Digits, Period: v.(time.Duration), Algorithm: defaults.Algorithm})
		}},
		{Name: "algorithm", Type: flows.String, Default: "SHA1", Help: "HMAC of new authenticator apps: SHA1 (what every app supports), SHA256 or SHA512.", Check: func(v any) error {
			return checkParams(params{Digits: defaults.Digits, Period: defaults.Period, Algorithm: v.(string)})
		}},
		{Name: "lookAround", Type: flows.Int, Default: 1, Help: "Codes of this many periods before and after now are accepted too (clock drift).", Check: func(v any) error {
			if n := v.(int); n < 0 || n > 3 {
				return errors.New("must be between 0 and 3")
			}
			return nil
		}},
		{Name: "maxAttempts", Type: flows.Int, Default: 5, Help: "Wrong codes that end the login attempt.", Check: atLeast(1)},
		{Name: "maxPerUser", Type: flows.Int, Default: 15, Help: "Wrong codes one account may get per rateWindow, across all login attempts; beyond it, every wrong code ends the login attempt at once (each new attempt needs the first factor again).", Check: atLeast(1)},
		{Name: "rateWindow", Type: flows.Duration, Default: 15 * time.Minute, Help: "Window of maxPerUser.", Check: func(v any) error {
			if v.(time.Duration) <= 0 {
				return errors.New("must be a positive duration")
			}
			return nil
		}},
	}
}

// options are the step's options, decoded once.
type options struct {
	Digits      int           `option:"digits"`
	Period      time.Duration `option:"period"`
	Algorithm   string        `option:"algorithm"`
	LookAround  int           `option:"lookAround"`
	MaxAttempts int           `option:"maxAttempts"`
	MaxPerUser  int           `option:"maxPerUser"`
	RateWindow  time.Duration `option:"rateWindow"`
}

func (f Factory) New(cfg flows.Config) (flows.Authenticator, error) {
	a := &Authenticator{f: f}
	if err := cfg.Decode(&a.opt); err != nil {
		return nil, err
	}
	return a, nil
}

// RequiredActions: CONFIGURE_TOTP sets up the authenticator app.
func (f Factory) RequiredActions() []flows.RequiredAction { return []flows.RequiredAction{Configure{}} }

// Authenticator is the "otp" step.
type Authenticator struct {
	f   Factory
	opt options
}

var (
	_ flows.Authenticator = (*Authenticator)(nil)
	_ flows.UserAware     = (*Authenticator)(nil)
)

// FormData is the data of the code page.
type FormData struct {
	Digits int
	Error  flows.Msg
}

// ConfiguredFor reports whether the user has a confirmed authenticator app.
// When not, it notes the params CONFIGURE_TOTP should give a new one.
func (a *Authenticator) ConfiguredFor(ctx context.Context, c *flows.Context, u *flows.User) (bool, error) {
	keys, err := confirmedKeys(ctx, c, u.ID)
	if err != nil {
		return false, err
	}
	if len(keys) == 0 {
		c.Session.SetNote(noteParams, params{Digits: a.opt.Digits, Period: a.opt.Period, Algorithm: a.opt.Algorithm}.String())
	}
	return len(keys) > 0, nil
}

// RequiredActionsFor: a REQUIRED step the user has not set up makes them
// configure it.
func (a *Authenticator) RequiredActionsFor(*flows.User) []string { return []string{ConfigureID} }

func (a *Authenticator) Authenticate(_ context.Context, c *flows.Context) (flows.Result, error) {
	return flows.Show(Page, FormData{Digits: a.opt.Digits}), nil
}

// Action checks the code against each of the user's authenticator apps.
func (a *Authenticator) Action(ctx context.Context, c *flows.Context) (flows.Result, error) {
	if c.User == nil {
		return flows.Fail(flows.M("flow.needsUser")), nil
	}
	now := c.Time()
	keys, err := confirmedKeys(ctx, c, c.User.ID)
	if err != nil {
		return flows.Result{}, err
	}
	code := c.Form.Get("otp")
	for _, k := range keys {
		step, ok := match(k.key, code, now, a.opt.LookAround)
		if !ok {
			continue
		}
		fresh, err := c.Credentials.UseCounter(ctx, k.cred.ID, step)
		if err != nil {
			return flows.Result{}, err
		}
		if !fresh {
			a.log().Info("otp code replayed", "event", "otp_rejected", "reason", "replayed", "user_id", c.User.ID)
			return a.wrong(ctx, c, "otp.replayed")
		}
		c.Session.AddMethod("otp")
		c.Session.SetNote(noteFailures, "")
		return flows.Succeeded(), nil
	}
	a.log().Info("otp code wrong", "event", "otp_rejected", "reason", "wrong", "user_id", c.User.ID)
	return a.wrong(ctx, c, "otp.wrong")
}

// wrong counts a refused code against the attempt and the account.
func (a *Authenticator) wrong(ctx context.Context, c *flows.Context, msgID string) (flows.Result, error) {
	// Every wrong code counts against the account, the last one of an
	// attempt included.
	if a.f.Counter != nil {
		hits, until, err := a.f.Counter.Hit(ctx, "otp-fail:"+c.User.ID, a.opt.RateWindow, c.Time())
		if err != nil {
			return flows.Result{}, err
		}
		if hits > a.opt.MaxPerUser {
			a.log().Warn("otp failures rate limited", "event", "otp_rate_limited", "user_id", c.User.ID)
			return flows.Fail(flows.M("otp.lockedOut", "Wait", until.Sub(c.Time()).Round(time.Second))), nil
		}
	}
	n, _ := strconv.Atoi(c.Session.Note(noteFailures))
	n++
	c.Session.SetNote(noteFailures, strconv.Itoa(n))
	if n >= a.opt.MaxAttempts {
		return flows.Fail(flows.M("otp.tooMany")), nil
	}
	// Count picks the plural form: "1 attempt left", "2 attempts left".
	return flows.Show(Page, FormData{Digits: a.opt.Digits, Error: flows.M(msgID, "Count", a.opt.MaxAttempts-n)}), nil
}

func (a *Authenticator) log() *slog.Logger {
	if a.f.Log != nil {
		return a.f.Log
	}
	return slog.Default()
}

// key is a stored credential with its parsed otpauth:// key.
type key struct {
	cred flows.Credential
	key  *otp.Key
}

func keysOf(ctx context.Context, c *flows.Context, userID string, confirmed bool) ([]key, error) {
	if c.Credentials == nil {
		return nil, errors.New("otp: no credential store")
	}
	creds, err := c.Credentials.CredentialsOf(ctx, userID, ID)
	if err != nil {
		return nil, err
	}
	var out []key
	for _, cr := range creds {
		if cr.Confirmed != confirmed {
			continue
		}
		k, err := otp.NewKeyFromURL(string(cr.Secret))
		if err != nil {
			return nil, fmt.Errorf("otp credential %s: %w", cr.ID, err)
		}
		out = append(out, key{cred: cr, key: k})
	}
	return out, nil
}

func confirmedKeys(ctx context.Context, c *flows.Context, userID string) ([]key, error) {
	return keysOf(ctx, c, userID, true)
}
