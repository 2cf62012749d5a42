package otp

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"latchkey/flows"
	"latchkey/flows/flowstest"
)

var ctx = context.Background()

// world is a user, a credential store and a clock.
type world struct {
	c   *flows.Context
	now time.Time
}

func newWorld(t *testing.T) *world {
	t.Helper()
	users := flowstest.NewUsers(flows.User{ID: "u1", Email: "u1@example.com"})
	u, _ := users.UserByID(ctx, "u1")
	w := &world{now: time.Date(2026, 11, 23, 12, 0, 10, 0, time.UTC)}
	w.c = &flows.Context{Realm: "test", Session: &flows.Session{ID: "s"}, User: u, Users: users,
		Credentials: flowstest.NewCredentials(), Now: func() time.Time { return w.now }}
	return w
}

func step(t *testing.T, values map[string]any) *Authenticator {
	t.Helper()
	cfg := flows.Config{Values: map[string]any{}}
	for _, o := range (Factory{}).Options() {
		cfg.Values[o.Name] = o.Default
	}
	for k, v := range values {
		cfg.Values[k] = v
	}
	a, err := Factory{}.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a.(*Authenticator)
}

// setUp runs CONFIGURE_TOTP to the end and returns the key's secret.
func (w *world) setUp(t *testing.T) string {
	t.Helper()
	r, err := Configure{}.Challenge(ctx, w.c)
	if err != nil || r.Page != ConfigurePage {
		t.Fatalf("challenge: %v %v", r, err)
	}
	secret := r.Data.(ConfigureData).Secret
	again, _ := Configure{}.Challenge(ctx, w.c)
	if again.Data.(ConfigureData).Secret != secret {
		t.Fatal("reloading the set-up page made a new key")
	}
	w.c.Form = url.Values{"otp": {"000000"}}
	if r, _ := (Configure{}).Process(ctx, w.c); r.Status != flows.Challenge || r.Data.(ConfigureData).Error.IsZero() {
		t.Fatalf("wrong set-up code accepted: %v", r)
	}
	w.c.Form = url.Values{"otp": {w.code(t, secret, 0)}}
	if r, err := (Configure{}).Process(ctx, w.c); err != nil || r.Status != flows.Success {
		t.Fatalf("right set-up code: %v %v", r, err)
	}
	return secret
}

func (w *world) code(t *testing.T, secret string, periods int) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secretOnly(secret), w.now.Add(time.Duration(periods)*30*time.Second), totp.ValidateOpts{Period: 30, Digits: 6})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func secretOnly(grouped string) string {
	out := []rune{}
	for _, r := range grouped {
		if r != ' ' {
			out = append(out, r)
		}
	}
	return string(out)
}

// wrongCodes are n codes that none of the periods lookAround accepts.
func (w *world) wrongCodes(t *testing.T, secret string, n int) []string {
	t.Helper()
	right := map[string]bool{}
	for p := -1; p <= 1; p++ {
		right[w.code(t, secret, p)] = true
	}
	var wrong []string
	for c := 100000; len(wrong) < n; c++ {
		if s := fmt.Sprint(c); !right[s] {
			wrong = append(wrong, s)
		}
	}
	return wrong
}

func (w *world) try(t *testing.T, a *Authenticator, code string) flows.Result {
	t.Helper()
	w.c.Form = url.Values{"otp": {code}}
	r, err := a.Action(ctx, w.c)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestConfiguredOnlyOnceConfirmed(t *testing.T) {
	w, a := newWorld(t), step(t, nil)
	if ok, _ := a.ConfiguredFor(ctx, w.c, w.c.User); ok {
		t.Fatal("configured without a key")
	}
	if _, err := (Configure{}).Challenge(ctx, w.c); err != nil {
		t.Fatal(err)
	}
	if ok, _ := a.ConfiguredFor(ctx, w.c, w.c.User); ok {
		t.Fatal("an unconfirmed key counts as configured")
	}
	w.setUp(t)
	if ok, _ := a.ConfiguredFor(ctx, w.c, w.c.User); !ok {
		t.Fatal("not configured after set-up")
	}
	if len(w.c.Session.Methods) != 1 || w.c.Session.Methods[0] != "otp" {
		t.Fatalf("set-up code did not count as otp: %v", w.c.Session.Methods)
	}
}

func TestACodeIsAcceptedOnce(t *testing.T) {
	w, a := newWorld(t), step(t, nil)
	secret := w.setUp(t)
	// The set-up code itself, and an older one, are spent.
	if r := w.try(t, a, w.code(t, secret, 0)); r.Status != flows.Challenge {
		t.Fatalf("set-up code replayed: %v", r)
	}
	w.now = w.now.Add(30 * time.Second)
	if r := w.try(t, a, w.code(t, secret, 0)); r.Status != flows.Success {
		t.Fatalf("fresh code: %v", r)
	}
	if r := w.try(t, a, w.code(t, secret, 0)); r.Status != flows.Challenge || r.Data.(FormData).Error.IsZero() {
		t.Fatalf("the same code twice: %v", r)
	}
}

func TestLookAroundBoundsClockDrift(t *testing.T) {
	w, a := newWorld(t), step(t, map[string]any{"maxAttempts": 10})
	secret := w.setUp(t)
	w.now = w.now.Add(10 * time.Minute)
	if r := w.try(t, a, w.code(t, secret, -2)); r.Status == flows.Success {
		t.Fatal("a code two periods old accepted with lookAround 1")
	}
	if r := w.try(t, a, w.code(t, secret, 1)); r.Status != flows.Success {
		t.Fatalf("a code one period ahead: %v", r)
	}
}

func TestMaxAttemptsEndTheAttempt(t *testing.T) {
	w, a := newWorld(t), step(t, map[string]any{"maxAttempts": 3})
	secret := w.setUp(t)
	w.now = w.now.Add(time.Minute)
	wrong := w.wrongCodes(t, secret, 3)
	for i, want := range []flows.Status{flows.Challenge, flows.Challenge, flows.Failed} {
		if r := w.try(t, a, wrong[i]); r.Status != want {
			t.Fatalf("wrong code %d: %v, want %v", i+1, r, want)
		}
	}
}

// countHits is a rate counter that counts every hit in one window.
type countHits map[string]int

func (c countHits) Hit(_ context.Context, key string, _ time.Duration, now time.Time) (int, time.Time, error) {
	c[key]++
	return c[key], now.Add(15 * time.Minute), nil
}

// Past maxPerUser wrong codes for the account, across attempts, the next
// wrong code ends the attempt at once.
func TestMaxPerUserBoundsGuessesAcrossAttempts(t *testing.T) {
	w := newWorld(t)
	counter := countHits{}
	cfg := flows.Config{Values: map[string]any{}}
	for _, o := range (Factory{}).Options() {
		cfg.Values[o.Name] = o.Default
	}
	cfg.Values["maxAttempts"], cfg.Values["maxPerUser"] = 3, 4
	built, err := Factory{Counter: counter}.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := built.(*Authenticator)
	secret := w.setUp(t)
	w.now = w.now.Add(time.Minute)
	wrong := w.wrongCodes(t, secret, 5)
	// Attempt 1: three wrong codes, the third ends it (3 counted).
	want := []flows.Status{flows.Challenge, flows.Challenge, flows.Failed}
	for i, st := range want {
		if r := w.try(t, a, wrong[i]); r.Status != st {
			t.Fatalf("attempt 1, code %d: %v", i+1, r)
		}
	}
	// Attempt 2: the 4th wrong code for the account is still a normal miss,
	// the 5th ends the attempt with the account's lock-out.
	w.c.Session = &flows.Session{ID: "s2"}
	if r := w.try(t, a, wrong[3]); r.Status != flows.Challenge {
		t.Fatalf("4th wrong code: %v", r)
	}
	if r := w.try(t, a, wrong[4]); r.Status != flows.Failed || r.Message.ID != "otp.lockedOut" {
		t.Fatalf("5th wrong code: %v", r)
	}
	if counter["otp-fail:u1"] != 5 {
		t.Fatalf("%d wrong codes counted, want 5", counter["otp-fail:u1"])
	}
}
