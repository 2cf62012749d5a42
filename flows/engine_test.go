package flows

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// fake is an authenticator scripted by its config: "auth" and "action" name
// the status it returns; "id" names it in the call log.
type fake struct {
	cfg Config
	log *[]string
}

func status(s string) Result {
	switch s {
	case "success":
		return Succeeded()
	case "challenge":
		return Show("page", nil)
	case "failed":
		return Fail(Literal("nope"))
	case "fork":
		return ForkTo("other")
	}
	return Skipped()
}

func (f *fake) Authenticate(_ context.Context, c *Context) (Result, error) {
	*f.log = append(*f.log, f.cfg.String("id"))
	if f.cfg.Bool("identifies") {
		c.SetUser(&User{ID: "u1", Email: "a@example.com"})
	}
	return status(f.cfg.String("auth")), nil
}

func (f *fake) Action(_ context.Context, c *Context) (Result, error) {
	*f.log = append(*f.log, f.cfg.String("id")+"!")
	if f.cfg.Bool("identifies") {
		c.SetUser(&User{ID: "u1", Email: "a@example.com"})
	}
	return status(f.cfg.String("action")), nil
}

type fakeCond struct{ fake }

func (f *fakeCond) Matches(context.Context, *Context) (bool, error) {
	*f.log = append(*f.log, f.cfg.String("id")+"?")
	return f.cfg.Bool("match"), nil
}

type fakeUserAware struct{ fake }

func (f *fakeUserAware) ConfiguredFor(context.Context, *Context, *User) (bool, error) {
	return f.cfg.Bool("configured"), nil
}
func (f *fakeUserAware) RequiredActionsFor(*User) []string { return f.cfg.Strings("actions") }

type fakeFactory struct {
	id  string
	log *[]string
}

func (f fakeFactory) ID() string          { return f.id }
func (f fakeFactory) DisplayName() string { return f.id }
func (f fakeFactory) Options() []Option   { return nil }
func (f fakeFactory) New(cfg Config) (Authenticator, error) {
	switch f.id {
	case "cond":
		return &fakeCond{fake{cfg, f.log}}, nil
	case "useraware":
		return &fakeUserAware{fake{cfg, f.log}}, nil
	}
	return &fake{cfg, f.log}, nil
}

type memUsers struct{ updated int }

func (m *memUsers) UserByID(context.Context, string) (*User, error) {
	return &User{ID: "u1", Email: "a@example.com"}, nil
}
func (m *memUsers) UserByEmail(context.Context, string) (*User, error) { return nil, ErrUserNotFound }
func (m *memUsers) CreateUser(context.Context, *User) error            { return nil }
func (m *memUsers) UpdateUser(context.Context, *User) error            { m.updated++; return nil }

// step builds an authenticator execution: "id:auth/action" with extra options.
func step(req Requirement, spec string, extra ...any) *Execution {
	id, behaviour, _ := strings.Cut(spec, ":")
	auth, action, _ := strings.Cut(behaviour, "/")
	vals := map[string]any{"id": id, "auth": auth, "action": action, "identifies": true}
	for i := 0; i+1 < len(extra); i += 2 {
		vals[extra[i].(string)] = extra[i+1]
	}
	kind := "fake"
	if k, ok := vals["kind"].(string); ok {
		kind = k
	}
	return &Execution{Authenticator: kind, Requirement: req, Config: Config{Values: vals}}
}

func sub(req Requirement, name string, execs ...*Execution) *Execution {
	return &Execution{Flow: &Flow{Name: name, Executions: execs}, Requirement: req}
}

func TestRequirementRules(t *testing.T) {
	cases := []struct {
		rule  string
		flow  []*Execution
		other []*Execution // the "other" flow, for forks
		// act posts to the challenged execution after the first run.
		act     bool
		want    string // done | challenge:<exec> | failed
		wantLog []string
	}{
		{
			rule:    "all REQUIRED elements must succeed, in order",
			flow:    []*Execution{step(Required, "a:success"), step(Required, "b:success")},
			want:    "done",
			wantLog: []string{"a", "b"},
		},
		{
			rule:    "a REQUIRED challenge stops the flow there",
			flow:    []*Execution{step(Required, "a:challenge"), step(Required, "b:success")},
			want:    "challenge:0",
			wantLog: []string{"a"},
		},
		{
			rule:    "a REQUIRED failure fails the flow",
			flow:    []*Execution{step(Required, "a:failed"), step(Required, "b:success")},
			want:    "failed",
			wantLog: []string{"a"},
		},
		{
			rule:    "a REQUIRED element that does not apply makes its level unsuccessful",
			flow:    []*Execution{step(Required, "a:attempted")},
			want:    "failed",
			wantLog: []string{"a"},
		},
		{
			rule:    "with REQUIRED elements, ALTERNATIVE elements are not executed",
			flow:    []*Execution{step(Alternative, "alt:success"), step(Required, "req:success")},
			want:    "done",
			wantLog: []string{"req"},
		},
		{
			rule: "with CONDITIONAL elements, ALTERNATIVE elements are not executed",
			flow: []*Execution{
				step(Alternative, "alt:success"),
				sub(Conditional, "c", step(Required, "cond:", "kind", "cond", "match", true), step(Required, "x:success")),
			},
			want:    "done",
			wantLog: []string{"cond?", "x"},
		},
		{
			rule:    "only ALTERNATIVEs: the first success satisfies the level",
			flow:    []*Execution{step(Alternative, "a:success"), step(Alternative, "b:success")},
			want:    "done",
			wantLog: []string{"a"},
		},
		{
			rule:    "only ALTERNATIVEs: one that does not apply passes to the next",
			flow:    []*Execution{step(Alternative, "a:attempted"), step(Alternative, "b:challenge"), step(Alternative, "c:challenge")},
			want:    "challenge:1",
			wantLog: []string{"a", "b"},
		},
		{
			rule:    "only ALTERNATIVEs: none succeeding fails the level",
			flow:    []*Execution{step(Alternative, "a:attempted"), step(Alternative, "b:attempted")},
			want:    "failed",
			wantLog: []string{"a", "b"},
		},
		{
			rule: "a CONDITIONAL sub-flow runs when its conditions hold",
			flow: []*Execution{
				step(Required, "id:success"),
				sub(Conditional, "otp", step(Required, "cond:", "kind", "cond", "match", true), step(Required, "otp:challenge")),
			},
			want:    "challenge:1.1",
			wantLog: []string{"id", "cond?", "otp"},
		},
		{
			rule: "a CONDITIONAL sub-flow is skipped when a condition is false",
			flow: []*Execution{
				step(Required, "id:success"),
				sub(Conditional, "otp", step(Required, "c1:", "kind", "cond", "match", true), step(Required, "c2:", "kind", "cond", "match", false), step(Required, "otp:challenge")),
			},
			want:    "done",
			wantLog: []string{"id", "c1?", "c2?"},
		},
		{
			rule:    "a CONDITIONAL sub-flow without conditions never runs",
			flow:    []*Execution{step(Required, "id:success"), sub(Conditional, "empty", step(Required, "otp:challenge"))},
			want:    "done",
			wantLog: []string{"id"},
		},
		{
			rule:    "DISABLED elements are skipped",
			flow:    []*Execution{step(Disabled, "off:failed"), step(Required, "on:success")},
			want:    "done",
			wantLog: []string{"on"},
		},
		{
			rule: "nested sub-flows: an ALTERNATIVE sub-flow runs its REQUIRED steps after an ALTERNATIVE that did not apply",
			flow: []*Execution{
				step(Alternative, "cookie:attempted"),
				sub(Alternative, "forms", step(Required, "user:success"), sub(Required, "second", step(Required, "otp:challenge"))),
			},
			want:    "challenge:1.1.0",
			wantLog: []string{"cookie", "user", "otp"},
		},
		{
			rule: "nested sub-flows: an ALTERNATIVE success skips the sibling sub-flow",
			flow: []*Execution{
				step(Alternative, "cookie:success"),
				sub(Alternative, "forms", step(Required, "user:challenge")),
			},
			want:    "done",
			wantLog: []string{"cookie"},
		},
		{
			rule:    "the posted form reaches the challenged execution's Action, then the flow moves on",
			flow:    []*Execution{step(Required, "a:challenge/success"), step(Required, "b:challenge")},
			act:     true,
			want:    "challenge:1",
			wantLog: []string{"a", "a!", "b"},
		},
		{
			rule:    "a step that succeeded is not run again on the next request",
			flow:    []*Execution{step(Required, "a:challenge/success")},
			act:     true,
			want:    "done",
			wantLog: []string{"a", "a!"},
		},
		{
			rule:    "fork abandons the flow and starts the named one",
			flow:    []*Execution{step(Required, "a:fork"), step(Required, "never:success")},
			other:   []*Execution{step(Required, "o:success")},
			want:    "done",
			wantLog: []string{"a", "o"},
		},
		{
			rule:    "a REQUIRED user-aware step not configured for the user sets its required actions",
			flow:    []*Execution{step(Required, "id:success"), step(Required, "pw:challenge", "kind", "useraware", "configured", false, "actions", []string{"UPDATE_PROFILE"})},
			want:    "challenge:ra:UPDATE_PROFILE",
			wantLog: []string{"id"},
		},
		{
			rule:    "an ALTERNATIVE user-aware step not configured for the user is skipped",
			flow:    []*Execution{step(Required, "id:success"), sub(Required, "f", step(Alternative, "pw:challenge", "kind", "useraware", "configured", false), step(Alternative, "otp:success"))},
			want:    "done",
			wantLog: []string{"id", "otp"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.rule, func(t *testing.T) {
			var log []string
			reg := Registry{}
			for _, id := range []string{"fake", "cond", "useraware"} {
				reg[id] = fakeFactory{id: id, log: &log}
			}
			defs := map[string]*Flow{"main": {Executions: tc.flow}}
			if tc.other != nil {
				defs["other"] = &Flow{Executions: tc.other}
			}
			eng, err := NewEngine(defs, map[string]string{"browser": "main"}, reg, []RequiredAction{profileAction{}})
			if err != nil {
				t.Fatal(err)
			}
			c := &Context{Session: &Session{Flow: "main"}, Users: &memUsers{}}
			out, err := eng.Run(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			if tc.act {
				out, err = eng.Act(context.Background(), c, out.Execution)
				if err != nil {
					t.Fatal(err)
				}
			}
			if got := describe(out); got != tc.want {
				t.Errorf("outcome = %s, want %s", got, tc.want)
			}
			if !slices.Equal(log, tc.wantLog) {
				t.Errorf("ran %v, want %v", log, tc.wantLog)
			}
		})
	}
}

func describe(o Outcome) string {
	switch {
	case o.Done:
		return "done"
	case o.Failed:
		return "failed"
	}
	return "challenge:" + o.Execution
}

type profileAction struct{}

func (profileAction) ID() string { return "UPDATE_PROFILE" }
func (profileAction) Challenge(context.Context, *Context) (Result, error) {
	return Show("profile", nil), nil
}
func (profileAction) Process(context.Context, *Context) (Result, error) { return Succeeded(), nil }

func TestActIgnoresPostsToOtherExecutions(t *testing.T) {
	var log []string
	reg := Registry{"fake": fakeFactory{id: "fake", log: &log}}
	eng, err := NewEngine(map[string]*Flow{"main": {Executions: []*Execution{
		step(Required, "a:challenge/success"), step(Required, "b:challenge/success"),
	}}}, map[string]string{"browser": "main"}, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &Context{Session: &Session{Flow: "main"}, Users: &memUsers{}}
	if _, err := eng.Run(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	// A forged post for step b must not let the user skip step a.
	out, err := eng.Act(context.Background(), c, "1")
	if err != nil {
		t.Fatal(err)
	}
	if describe(out) != "challenge:0" {
		t.Fatalf("outcome = %s, want challenge:0", describe(out))
	}
	if slices.Contains(log, "b!") {
		t.Fatalf("step b's Action ran: %v", log)
	}
}

func TestSelectAlternative(t *testing.T) {
	var log []string
	reg := Registry{"fake": fakeFactory{id: "fake", log: &log}}
	eng, err := NewEngine(map[string]*Flow{"main": {Executions: []*Execution{
		step(Alternative, "pw:challenge"), step(Alternative, "link:challenge"),
	}}}, map[string]string{"browser": "main"}, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &Context{Session: &Session{Flow: "main"}, Users: &memUsers{}}
	out, _ := eng.Run(context.Background(), c)
	if len(out.Choices) != 1 || out.Choices[0].Execution != "1" {
		t.Fatalf("choices = %+v, want the other alternative", out.Choices)
	}
	out, err = eng.Select(context.Background(), c, "1")
	if err != nil || out.Execution != "1" {
		t.Fatalf("after select: %+v %v, want challenge of 1", out, err)
	}
}

func TestRequiredActionsRunAfterFlow(t *testing.T) {
	var log []string
	users := &memUsers{}
	reg := Registry{"fake": fakeFactory{id: "fake", log: &log}}
	eng, err := NewEngine(map[string]*Flow{"main": {Executions: []*Execution{step(Required, "a:success", "identifies", false)}}},
		map[string]string{"browser": "main"}, reg, []RequiredAction{profileAction{}})
	if err != nil {
		t.Fatal(err)
	}
	c := &Context{Session: &Session{Flow: "main"}, Users: users}
	c.SetUser(&User{ID: "u1", RequiredActions: []string{"UPDATE_PROFILE"}})
	out, _ := eng.Run(context.Background(), c)
	if out.Execution != "ra:UPDATE_PROFILE" {
		t.Fatalf("outcome %+v, want the profile page", out)
	}
	out, err = eng.Act(context.Background(), c, out.Execution)
	if err != nil || !out.Done {
		t.Fatalf("after profile: %+v %v, want done", out, err)
	}
	if c.User.HasRequiredAction("UPDATE_PROFILE") || users.updated != 1 {
		t.Fatalf("required action not cleared and saved: %+v, %d updates", c.User, users.updated)
	}
}

func TestUnknownAuthenticatorFailsAtBuild(t *testing.T) {
	_, err := NewEngine(map[string]*Flow{"main": {Executions: []*Execution{{Authenticator: "nope", Requirement: Required}}}},
		map[string]string{"browser": "main"}, Registry{}, nil)
	if err == nil || !strings.Contains(err.Error(), `unknown authenticator "nope"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestParseEmail(t *testing.T) {
	for in, want := range map[string]string{
		"  Alice@Example.COM ": "alice@example.com",
		"bob@example.org":      "bob@example.org",
		"José@Müller.de":       "josé@müller.de",
		"ivan@пример.рф":       "ivan@пример.рф",
		"taro@日本.jp":           "taro@日本.jp",
		"用户@例子.中国":             "用户@例子.中国",
	} {
		if got, err := ParseEmail(in); err != nil || got != want {
			t.Errorf("ParseEmail(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "victim@example.com\r\nBcc: x@evil.example", "Alice <a@example.com>", "no-at-sign", "a@localhost", "a b@example.com", "a@example.com\x00",
		"alice@ex\u0430mple.com",  // Cyrillic a in a Latin label
		"\u0430lice@example.com",  // Cyrillic a in a Latin local part
		"ali\u200bce@example.com", // zero-width space
		"alice@example.com\u202e", // bidi override
		"\uff41lice@example.com",  // fullwidth a
		"a@[127.0.0.1]",           // domain literal
		"a@exa_mple.com",          // not a host name
		"a\u2665b@example.com",    // a symbol
	} {
		if got, err := ParseEmail(in); err == nil {
			t.Errorf("ParseEmail(%q) = %q, want an error", in, got)
		}
	}
}

func FuzzParseEmail(f *testing.F) {
	f.Add("alice@example.com")
	f.Add("x@y.z\r\nBcc: e@evil")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseEmail(s)
		if err != nil {
			return
		}
		if strings.ContainsAny(got, "\r\n\x00 ") || got != strings.ToLower(got) {
			t.Fatalf("ParseEmail(%q) = %q", s, got)
		}
		if again, err := ParseEmail(got); err != nil || again != got {
			t.Fatalf("not idempotent: %q -> %q (%v)", got, again, err)
		}
	})
}
