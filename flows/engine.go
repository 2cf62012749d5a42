package flows

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// requiredActionPrefix marks Session.Current when a required action's page is shown.
const requiredActionPrefix = "ra:"

// maxForks bounds fork chains so a misconfigured pair of flows cannot loop.
const maxForks = 4

// Choice is an alternative the user may switch to ("try another way").
type Choice struct {
	Execution string
	Name      string
}

// Outcome is what the server must do after the engine ran.
type Outcome struct {
	// Done: the user is authenticated and every required action is finished.
	Done bool
	// A page to show: the challenge of Execution (or of a required action).
	Page      string
	Data      any
	Execution string
	Choices   []Choice // other alternatives at the challenging level
	// Failed: the login cannot go on; Message says why.
	Failed  bool
	Message Msg
	// Gone and Detached are the step's Result flags (see Result).
	Gone     bool
	Detached bool
}

// Engine runs flows. It is built once at start and safe for concurrent use.
type Engine struct {
	flows    map[string]*Flow
	bindings map[string]string
	actions  []RequiredAction
}

// NewEngine instantiates every execution's authenticator with its config,
// so that configuration errors surface at start, not at the first login.
func NewEngine(defs map[string]*Flow, bindings map[string]string, reg Registry, actions []RequiredAction) (*Engine, error) {
	for name, f := range defs {
		f.Name = name
		if err := build(f, "", reg); err != nil {
			return nil, fmt.Errorf("flow %s: %w", name, err)
		}
	}
	for purpose, name := range bindings {
		if _, ok := defs[name]; !ok {
			return nil, fmt.Errorf("binding %s: unknown flow %q", purpose, name)
		}
	}
	return &Engine{flows: defs, bindings: bindings, actions: actions}, nil
}

func build(f *Flow, prefix string, reg Registry) error {
	for i, e := range f.Executions {
		e.ID = prefix + strconv.Itoa(i)
		if e.Flow != nil {
			e.name = e.Flow.Name
			if err := build(e.Flow, e.ID+".", reg); err != nil {
				return err
			}
			continue
		}
		fac, ok := reg.Lookup(e.Authenticator)
		if !ok {
			return fmt.Errorf("execution %s: unknown authenticator %q", e.ID, e.Authenticator)
		}
		impl, err := fac.New(e.Config)
		if err != nil {
			return fmt.Errorf("execution %s (%s): %w", e.ID, e.Authenticator, err)
		}
		e.impl, e.name = impl, fac.DisplayName()
	}
	return nil
}

// FlowFor returns the flow bound to purpose ("browser", ...).
func (e *Engine) FlowFor(purpose string) (string, error) {
	name, ok := e.bindings[purpose]
	if !ok {
		return "", fmt.Errorf("no flow is bound to %q", purpose)
	}
	return name, nil
}

// Run walks the session's flow from the top: finished steps are skipped, the
// first step that needs the user challenges. Used for GET requests.
func (e *Engine) Run(ctx context.Context, c *Context) (Outcome, error) {
	return e.run(ctx, c, "", nil)
}

// Act delivers the posted form to the execution whose challenge is shown.
// A post for any other execution (a stale tab, a forged target) is ignored
// and the current challenge is shown again.
func (e *Engine) Act(ctx context.Context, c *Context, execution string) (Outcome, error) {
	if execution == "" || execution != c.Session.Current {
		return e.run(ctx, c, "", nil)
	}
	return e.run(ctx, c, execution, nil)
}

// Resume delivers a request that came through an entry point to the step,
// or required action, named by execution: its Resume runs in place of
// Action. Like Act, it reaches the step only while the session waits
// there; otherwise the flow simply runs again.
func (e *Engine) Resume(ctx context.Context, c *Context, execution string, in *Entry) (Outcome, error) {
	if execution == "" || execution != c.Session.Current {
		return e.run(ctx, c, "", nil)
	}
	return e.run(ctx, c, execution, in)
}

// Select records the user's choice of another alternative and reruns.
func (e *Engine) Select(ctx context.Context, c *Context, execution string) (Outcome, error) {
	if i := strings.LastIndexByte(execution, '.'); i >= 0 {
		c.Session.setSelected(execution[:i], execution)
	} else {
		c.Session.setSelected("", execution)
	}
	c.Session.Current = ""
	return e.run(ctx, c, "", nil)
}

func (s *Session) setSelected(level, execution string) {
	if s.Selected == nil {
		s.Selected = map[string]string{}
	}
	s.Selected[level] = execution
}

func (e *Engine) run(ctx context.Context, c *Context, target string, in *Entry) (Outcome, error) {
	if c.Session.Status == nil {
		c.Session.Status = map[string]Status{}
	}
	if c.User == nil && c.Session.UserID != "" {
		u, err := c.Users.UserByID(ctx, c.Session.UserID)
		if err != nil {
			return Outcome{}, fmt.Errorf("load user of session: %w", err)
		}
		c.User = u
	}
	for range maxForks {
		f, ok := e.flows[c.Session.Flow]
		if !ok {
			return Outcome{}, fmt.Errorf("session names unknown flow %q", c.Session.Flow)
		}
		w := &walker{c: c, target: target, entry: in}
		r, err := w.flow(ctx, f, "")
		if err != nil {
			return Outcome{}, err
		}
		switch r.Status {
		case Challenge:
			c.Session.Current = w.challenger
			return Outcome{Page: r.Page, Data: r.Data, Execution: w.challenger, Choices: w.choices, Gone: r.Gone, Detached: r.Detached}, nil
		case Failed:
			c.Session.Current = ""
			return Outcome{Failed: true, Message: r.Message, Gone: r.Gone}, nil
		case Attempted:
			c.Session.Current = ""
			return Outcome{Failed: true, Message: M("flow.noMethodApplies")}, nil
		case Fork:
			if _, ok := e.flows[r.Fork]; !ok {
				return Outcome{}, fmt.Errorf("fork to unknown flow %q", r.Fork)
			}
			c.Session.Flow, c.Session.Status, c.Session.Current, c.Session.Selected = r.Fork, map[string]Status{}, "", nil
			target, in = "", nil
			continue
		}
		return e.afterFlow(ctx, c, target, in)
	}
	return Outcome{}, errors.New("too many forks between flows")
}

// afterFlow checks the identified user and runs pending required actions.
func (e *Engine) afterFlow(ctx context.Context, c *Context, target string, in *Entry) (Outcome, error) {
	if c.User == nil {
		return Outcome{}, errors.New("flow succeeded without identifying a user: the flow needs an identifying authenticator")
	}
	if c.User.Disabled {
		return Outcome{Failed: true, Message: M("flow.accountDisabled")}, nil
	}
	for _, a := range e.actions {
		if !c.User.HasRequiredAction(a.ID()) {
			continue
		}
		id := requiredActionPrefix + a.ID()
		c.Execution, c.Config = id, Config{}
		var r Result
		var err error
		switch res, ok := a.(Resumable); {
		case target == id && in != nil && ok:
			r, err = res.Resume(ctx, c, in)
		case target == id && in == nil:
			r, err = a.Process(ctx, c)
		default:
			r, err = a.Challenge(ctx, c)
		}
		if err != nil {
			return Outcome{}, fmt.Errorf("required action %s: %w", a.ID(), err)
		}
		switch r.Status {
		case Success:
			c.User.RemoveRequiredAction(a.ID())
			if err := c.Users.UpdateUser(ctx, c.User); err != nil {
				return Outcome{}, fmt.Errorf("clear required action %s: %w", a.ID(), err)
			}
		case Challenge:
			c.Session.Current = id
			return Outcome{Page: r.Page, Data: r.Data, Execution: id, Gone: r.Gone, Detached: r.Detached}, nil
		default:
			c.Session.Current = ""
			return Outcome{Failed: true, Message: r.Message, Gone: r.Gone}, nil
		}
	}
	c.Session.Current = ""
	return Outcome{Done: true}, nil
}

// walker is one pass over a flow tree.
type walker struct {
	c          *Context
	target     string // execution whose Action receives the form
	entry      *Entry // set when the target is resumed from an entry point
	challenger string
	choices    []Choice
}

func (w *walker) flow(ctx context.Context, f *Flow, level string) (Result, error) {
	var required, alternative []*Execution
	for _, e := range f.Executions {
		if _, isCond := e.impl.(Condition); isCond {
			continue // conditions are evaluated by their sub-flow, never run as steps
		}
		switch e.Requirement {
		case Required, Conditional:
			required = append(required, e)
		case Alternative:
			alternative = append(alternative, e)
		}
	}
	// A level with REQUIRED or CONDITIONAL elements ignores its ALTERNATIVEs.
	if len(required) > 0 {
		for _, e := range required {
			if e.Requirement == Conditional {
				ok, err := w.conditionsMatch(ctx, e)
				if err != nil {
					return Result{}, err
				}
				if !ok {
					continue
				}
			}
			r, err := w.execution(ctx, e)
			if err != nil || r.Status != Success {
				return r, err
			}
		}
		return Succeeded(), nil
	}
	if len(alternative) == 0 {
		return Succeeded(), nil
	}
	// Only alternatives: the first to succeed satisfies the level (one that
	// succeeded outside the walk, say a minted link, already has). The
	// user's explicit choice goes first.
	for _, e := range alternative {
		if w.c.Session.Status[e.ID] == Success {
			return Succeeded(), nil
		}
	}
	if sel := w.c.Session.Selected[level]; sel != "" {
		for i, e := range alternative {
			if e.ID == sel {
				alternative = append([]*Execution{e}, append(alternative[:i:i], alternative[i+1:]...)...)
				break
			}
		}
	}
	for _, e := range alternative {
		r, err := w.execution(ctx, e)
		if err != nil {
			return r, err
		}
		switch r.Status {
		case Attempted:
			continue
		case Challenge:
			if w.choices == nil {
				for _, o := range alternative {
					if o != e && w.c.Session.Status[o.ID] != Attempted {
						w.choices = append(w.choices, Choice{Execution: o.ID, Name: o.name})
					}
				}
			}
			return r, nil
		default:
			return r, nil
		}
	}
	return Skipped(), nil
}

// conditionsMatch evaluates a CONDITIONAL sub-flow's conditions: all must
// hold. A conditional sub-flow without conditions never runs (Keycloak
// treats it as disabled).
func (w *walker) conditionsMatch(ctx context.Context, e *Execution) (bool, error) {
	if e.Flow == nil {
		return false, nil
	}
	found := false
	w.c.subFlow = e.Flow
	defer func() { w.c.subFlow = nil }()
	for _, x := range e.Flow.Executions {
		cond, ok := x.impl.(Condition)
		if !ok || x.Requirement == Disabled {
			continue
		}
		found = true
		w.c.Config, w.c.Execution = x.Config, x.ID
		m, err := cond.Matches(ctx, w.c)
		if err != nil {
			return false, fmt.Errorf("condition %s: %w", x.Authenticator, err)
		}
		if !m {
			return false, nil
		}
	}
	return found, nil
}

func (w *walker) execution(ctx context.Context, e *Execution) (Result, error) {
	s := w.c.Session
	if s.Status[e.ID] == Success {
		return Succeeded(), nil
	}
	if e.Flow != nil {
		r, err := w.flow(ctx, e.Flow, e.ID)
		if err == nil && r.Status == Success {
			s.Status[e.ID] = Success
		}
		return r, err
	}
	if ua, ok := e.impl.(UserAware); ok {
		if w.c.User == nil {
			return Fail(M("flow.needsUser")), nil
		}
		configured, err := ua.ConfiguredFor(ctx, w.c, w.c.User)
		if err != nil {
			return Result{}, fmt.Errorf("%s: configured for user: %w", e.Authenticator, err)
		}
		if !configured {
			if e.Requirement != Required {
				return Skipped(), nil
			}
			actions := ua.RequiredActionsFor(w.c.User)
			if len(actions) == 0 {
				return Fail(M("flow.notSetUp")), nil
			}
			for _, a := range actions {
				w.c.User.AddRequiredAction(a)
			}
			if err := w.c.Users.UpdateUser(ctx, w.c.User); err != nil {
				return Result{}, fmt.Errorf("set required actions: %w", err)
			}
			s.Status[e.ID] = Success
			return Succeeded(), nil
		}
	}
	w.c.Config, w.c.Execution = e.Config, e.ID
	var r Result
	var err error
	if w.target == e.ID {
		w.target = ""
		if w.entry == nil {
			r, err = e.impl.Action(ctx, w.c)
		} else if res, ok := e.impl.(Resumable); ok {
			r, err = res.Resume(ctx, w.c, w.entry)
		} else {
			r = Fail(M("flow.notResumable"))
		}
	} else {
		r, err = e.impl.Authenticate(ctx, w.c)
	}
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", e.Authenticator, err)
	}
	switch r.Status {
	case Success:
		s.Status[e.ID] = Success
	case Attempted:
		s.Status[e.ID] = Attempted
	case Challenge:
		w.challenger = e.ID
	}
	return r, nil
}

// MarkSucceeded records that execution succeeded outside the walk (an
// emailed link confirmed in another request), so the next Run moves on.
func (s *Session) MarkSucceeded(execution string) {
	if s.Status == nil {
		s.Status = map[string]Status{}
	}
	s.Status[execution] = Success
}

// FindAuthenticator returns the first enabled execution of authenticator in
// the named flow (sub-flows included), with its config.
func (e *Engine) FindAuthenticator(flow, authenticator string) (id string, cfg Config, ok bool) {
	f, found := e.flows[flow]
	if !found {
		return "", Config{}, false
	}
	var walk func(*Flow) bool
	walk = func(f *Flow) bool {
		for _, x := range f.Executions {
			if x.Requirement == Disabled {
				continue
			}
			if x.Flow != nil && walk(x.Flow) {
				return true
			}
			if x.Authenticator == authenticator {
				id, cfg = x.ID, x.Config
				return true
			}
		}
		return false
	}
	ok = walk(f)
	return id, cfg, ok
}
