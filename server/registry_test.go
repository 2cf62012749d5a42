package server

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"latchkey/authenticators/magiclink"
	"latchkey/flows"
	"latchkey/server/config"
)

// TestAuthenticatorContract is what every registered authenticator must
// satisfy: its id is its registry key, it has a display name, every option
// has a name, a help text and a default of its declared type that passes
// its own check, and it can be built from its defaults.
func TestAuthenticatorContract(t *testing.T) {
	svc := &magiclink.Service{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for id, f := range Registry(Deps{Links: svc}) {
		t.Run(id, func(t *testing.T) {
			if f.ID() != id || f.DisplayName() == "" {
				t.Fatalf("ID %q, display name %q", f.ID(), f.DisplayName())
			}
			cfg := flows.Config{Values: map[string]any{}}
			for _, o := range f.Options() {
				if o.Name == "" || o.Help == "" {
					t.Errorf("option %+v lacks a name or help", o)
				}
				ok := false
				switch o.Type {
				case flows.Bool:
					_, ok = o.Default.(bool)
				case flows.Int:
					_, ok = o.Default.(int)
				case flows.String:
					_, ok = o.Default.(string)
				case flows.Duration:
					_, ok = o.Default.(time.Duration)
				case flows.List:
					_, ok = o.Default.([]string)
				}
				if !ok {
					t.Errorf("option %s: default %#v is not a %s", o.Name, o.Default, o.Type)
				}
				if o.Check != nil {
					if err := o.Check(o.Default); err != nil {
						t.Errorf("option %s: default fails its own check: %v", o.Name, err)
					}
				}
				cfg.Values[o.Name] = o.Default
			}
			a, err := f.New(cfg)
			if err != nil || a == nil {
				t.Fatalf("New with defaults: %v", err)
			}
			if _, isCond := a.(flows.Condition); !isCond {
				// A step must answer a first visit without panicking on an empty session.
				c := &flows.Context{Session: &flows.Session{MaxAge: -1}, Now: time.Now}
				if _, err := a.Authenticate(context.Background(), c); err != nil {
					t.Fatalf("Authenticate on an empty session: %v", err)
				}
			}
		})
	}
}

// Registering a step registers the required actions it brings, after
// UPDATE_PROFILE, and realm.yaml accepts exactly those.
func TestRequiredActionsComeFromTheRegistry(t *testing.T) {
	reg := Registry(Deps{})
	want := []string{"UPDATE_PROFILE"}
	for _, id := range slices.Sorted(maps.Keys(reg)) {
		if p, ok := reg[id].(flows.ActionProvider); ok {
			for _, a := range p.RequiredActions() {
				want = append(want, a.ID())
			}
		}
	}
	schema := config.FromRegistry(reg, RequiredActions(reg))
	if got := strings.Join(schema.RequiredActions, ","); got != strings.Join(want, ",") || !slices.Contains(want, "VERIFY_EMAIL") {
		t.Fatalf("required actions %s, want %s", got, strings.Join(want, ","))
	}
}
