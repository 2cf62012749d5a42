// Package password is the "username-password-form" authenticator: email and
// password, bcrypt-hashed, with per-account and per-IP attempt limits.
package password

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/bcrypt"

	"latchkey/flows"
)

// Counter counts events in fixed windows (the rate counters): one event for
// each key, returning each key's count so far and the end of its window.
type Counter interface {
	HitAll(ctx context.Context, keys []string, window time.Duration, now time.Time) (counts []int, ends []time.Time, err error)
}

// Factory builds the authenticator.
type Factory struct{ Counter Counter }

var _ flows.Factory = Factory{}

func (Factory) ID() string          { return "username-password-form" }
func (Factory) DisplayName() string { return "Password" }
func (Factory) Options() []flows.Option {
	return []flows.Option{
		{Name: "maxAttempts", Type: flows.Int, Default: 10, Help: "Sign-in attempts allowed per account (and 5x per IP) in attemptWindow.",
			Check: func(v any) error {
				if v.(int) < 1 {
					return errors.New("must be at least 1")
				}
				return nil
			}},
		{Name: "attemptWindow", Type: flows.Duration, Default: 15 * time.Minute, Help: "Window of the attempt limit.",
			Check: func(v any) error {
				if v.(time.Duration) <= 0 {
					return errors.New("must be a positive duration")
				}
				return nil
			}},
	}
}

func (f Factory) New(cfg flows.Config) (flows.Authenticator, error) {
	a := &authenticator{counter: f.Counter}
	if err := cfg.Decode(&a.opt); err != nil {
		return nil, err
	}
	return a, nil
}

// Page is the template the form is rendered with.
const Page = "login-password"

// FormData is what the page shows.
type FormData struct {
	Email string
	Error flows.Msg
}

type authenticator struct {
	counter Counter
	opt     struct {
		MaxAttempts   int           `option:"maxAttempts"`
		AttemptWindow time.Duration `option:"attemptWindow"`
	}
}

// Hash returns a bcrypt hash of pw.
func Hash(pw string) (string, error) {
	if len(pw) < 8 {
		return "", errors.New("a password needs at least 8 characters")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// dummyHash keeps the work the same for unknown accounts (no enumeration by timing).
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("latchkey-timing-equaliser"), bcrypt.DefaultCost)

func (a *authenticator) Authenticate(_ context.Context, c *flows.Context) (flows.Result, error) {
	return flows.Show(Page, FormData{Email: c.Session.LoginHint}), nil
}

func (a *authenticator) Action(ctx context.Context, c *flows.Context) (flows.Result, error) {
	typed := c.Form.Get("email")
	email, err := flows.ParseEmail(typed)
	if err != nil {
		return flows.Show(Page, FormData{Email: typed, Error: flows.EmailMsg(err)}), nil
	}
	now := c.Time()
	keys := []string{"pw:" + email, "pw-ip:" + c.ClientIP}
	counts, ends, err := a.counter.HitAll(ctx, keys, a.opt.AttemptWindow, now)
	if err != nil {
		return flows.Result{}, err
	}
	for i, max := range []int{a.opt.MaxAttempts, a.opt.MaxAttempts * 5} {
		if counts[i] > max {
			return flows.Show(Page, FormData{Email: email, Error: flows.M("password.tooMany", "Wait", ends[i].Sub(now).Round(time.Second))}), nil
		}
	}
	u, err := c.Users.UserByEmail(ctx, email)
	if err != nil && !errors.Is(err, flows.ErrUserNotFound) {
		return flows.Result{}, err
	}
	hash := dummyHash
	if u != nil && u.PasswordHash != "" {
		hash = []byte(u.PasswordHash)
	}
	match := bcrypt.CompareHashAndPassword(hash, []byte(c.Form.Get("password"))) == nil
	if u == nil || u.PasswordHash == "" || !match || u.Disabled {
		return flows.Show(Page, FormData{Email: email, Error: flows.M("password.invalid")}), nil
	}
	c.SetUser(u)
	c.Session.AddMethod("pwd")
	return flows.Succeeded(), nil
}
