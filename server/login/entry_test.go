package login

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"latchkey/flows"
	"latchkey/flows/flowstest"
	"latchkey/server/clientip"
	"latchkey/server/config"
	"latchkey/server/store"
	"latchkey/server/web"
)

// memStore is an in-memory Store: users, authentication sessions, and
// nothing else (these tests never complete a login).
type memStore struct {
	*flowstest.Users
	mu   sync.Mutex
	auth map[string]store.AuthSession
}

func (m *memStore) InTx(ctx context.Context, fn func(context.Context) error) error { return fn(ctx) }
func (m *memStore) LazyTx(ctx context.Context) (context.Context, func(error) error) {
	return ctx, func(err error) error { return err }
}
func (m *memStore) SaveAuthSession(_ context.Context, a *store.AuthSession) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.auth[a.ID] = *a
	return nil
}
func (m *memStore) AuthSessionByID(_ context.Context, id string) (*store.AuthSession, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.auth[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	return &a, nil
}
func (m *memStore) DeleteAuthSession(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.auth, id)
	return nil
}
func (m *memStore) bound(id string) string {
	a, _ := m.AuthSessionByID(context.Background(), id)
	return a.BrowserID
}

var errUnused = errors.New("not used by these tests")

func (m *memStore) CreateSSOSession(context.Context, *store.SSOSession) error { return errUnused }
func (m *memStore) SSOSessionByID(context.Context, string, time.Time) (*store.SSOSession, error) {
	return nil, store.ErrNotFound
}
func (m *memStore) TouchSSOSession(context.Context, string, time.Time) error { return errUnused }
func (m *memStore) DeleteSSOSession(context.Context, string) error           { return errUnused }
func (m *memStore) AddSessionClient(context.Context, string, string, time.Time) error {
	return errUnused
}
func (noCounter) Hit(context.Context, string, time.Duration, time.Time) (int, time.Time, error) {
	return 1, time.Now(), nil
}

type noCounter struct{}

// callback is a step resumed from outside the page, the way an upstream
// identity provider's callback would be: the server must apply its rules
// to it without knowing what it is.
type callback struct{}

func (callback) ID() string                                    { return "callback" }
func (callback) DisplayName() string                           { return "Callback" }
func (callback) Options() []flows.Option                       { return nil }
func (callback) New(flows.Config) (flows.Authenticator, error) { return callbackStep{}, nil }
func (callback) EntryName() string                             { return "callback" }

// Enter: GET answers a page; POST state=S goes to login S; begin=1 begins one.
func (callback) Enter(_ context.Context, in *flows.Entry, _ time.Time) (flows.Entered, error) {
	switch {
	case in.Method == http.MethodGet:
		r := flows.Show("cb-answer", nil)
		return flows.Entered{Answer: &r}, nil
	case in.Form.Get("begin") != "":
		return flows.Entered{Begin: &flows.Begin{UserID: "alice", ClientID: "app", Return: "https://app.example/after", Methods: []string{"cb"}, Secret: "s"}}, nil
	}
	return flows.Entered{Session: in.Form.Get("state"), Execution: "0"}, nil
}

type callbackStep struct{}

func (callbackStep) Authenticate(context.Context, *flows.Context) (flows.Result, error) {
	return flows.Show("cb-wait", nil), nil
}
func (callbackStep) Action(context.Context, *flows.Context) (flows.Result, error) {
	return flows.Show("cb-wait", nil), nil
}

// Resume: consume=1 consumes the callback's one-time secret; detached=1
// answers a page that tells nothing of the login; anything else shows the
// login's own page.
func (callbackStep) Resume(ctx context.Context, c *flows.Context, in *flows.Entry) (flows.Result, error) {
	switch {
	case in.Form.Get("consume") != "":
		c.ConsumedSecret = "secret-1"
		u, err := c.Users.UserByID(ctx, "alice")
		if err != nil {
			return flows.Result{}, err
		}
		c.SetUser(u)
		return flows.Succeeded(), nil
	case in.Form.Get("detached") != "":
		r := flows.Show("cb-notice", nil)
		r.Detached = true
		return r, nil
	}
	return flows.Show("cb-wait", nil), nil
}

// next is a second REQUIRED step, so the tests stop before completion.
type next struct{}

func (next) ID() string                                    { return "next" }
func (next) DisplayName() string                           { return "Next" }
func (next) Options() []flows.Option                       { return nil }
func (next) New(flows.Config) (flows.Authenticator, error) { return next{}, nil }
func (next) Authenticate(context.Context, *flows.Context) (flows.Result, error) {
	return flows.Show("cb-next", nil), nil
}
func (next) Action(context.Context, *flows.Context) (flows.Result, error) {
	return flows.Show("cb-next", nil), nil
}

type harness struct {
	h   *Handler
	st  *memStore
	mux *http.ServeMux
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := flows.NewRegistry(callback{}, next{})
	engine, err := flows.NewEngine(map[string]*flows.Flow{"browser": {Executions: []*flows.Execution{
		{Authenticator: "callback", Requirement: flows.Required}, {Authenticator: "next", Requirement: flows.Required},
	}}}, map[string]string{"browser": "browser"}, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	page := func(s string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte(`{{define "content"}}<p id="page">` + s + `</p><i id="csrf">{{.CSRF}}</i>{{end}}`)}
	}
	rnd, err := web.NewRenderer(web.Options{}, log, fstest.MapFS{"cb-answer.html": page("answer"), "cb-wait.html": page("wait"),
		"cb-notice.html": page("notice"), "cb-next.html": page("next")})
	if err != nil {
		t.Fatal(err)
	}
	ips, _ := clientip.New(nil)
	st := &memStore{Users: flowstest.NewUsers(flows.User{ID: "alice", Email: "alice@example.com"}), auth: map[string]store.AuthSession{}}
	cfg := &config.Config{Realm: "test", Sessions: config.Sessions{AuthSessionTTL: config.Duration(time.Hour)}}
	h := &Handler{Site: Site{Cfg: cfg, Web: rnd, Log: log}, Store: st, Engine: engine, ClientIP: ips, Counter: noCounter{},
		Cookies: NewCookies(make([]byte, 64), make([]byte, 32), "/realms/test/", false, 3600), Entries: reg.EntryPoints()}
	mux := http.NewServeMux()
	h.Routes(mux)
	return &harness{h: h, st: st, mux: mux}
}

// agent is one browser: its cookies, its identity, its CSRF token.
type agent struct {
	t       *testing.T
	hs      *harness
	cookies map[string]*http.Cookie
	b       browser
}

func (hs *harness) agent(t *testing.T) *agent {
	a := &agent{t: t, hs: hs, cookies: map[string]*http.Cookie{}}
	w := httptest.NewRecorder()
	a.b = hs.h.Cookies.Browser(w, httptest.NewRequest(http.MethodGet, "/", nil))
	a.keep(w.Result().Cookies())
	return a
}

func (a *agent) keep(cs []*http.Cookie) {
	for _, c := range cs {
		a.cookies[c.Name] = c
	}
}

func (a *agent) do(method, path string, form url.Values) *httptest.ResponseRecorder {
	var body io.Reader
	if form != nil {
		form.Set("csrf", a.b.CSRF)
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, path, body)
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, c := range a.cookies {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	a.hs.mux.ServeHTTP(w, r)
	a.keep(w.Result().Cookies())
	return w
}

const entryURL = "/realms/test/login-actions/callback"

// waiting stores a login bound to a's browser, waiting at the callback.
func (hs *harness) waiting(t *testing.T, a *agent) string {
	t.Helper()
	st := &state{Flow: flows.Session{ID: "login-1", ClientID: "app", Flow: "browser", MaxAge: -1, Current: "0", RequestedAt: time.Now()}}
	if err := hs.h.save(context.Background(), st, a.b.ID); err != nil {
		t.Fatal(err)
	}
	return st.Flow.ID
}

func expect(t *testing.T, w *httptest.ResponseRecorder, code int, text string) {
	t.Helper()
	if w.Code != code || !strings.Contains(w.Body.String(), text) {
		t.Fatalf("%d, want %d with %q:\n%s", w.Code, code, text, w.Body.String())
	}
}

func TestEntryAnswersOutsideAnyLogin(t *testing.T) {
	hs := newHarness(t)
	expect(t, hs.agent(t).do(http.MethodGet, entryURL, nil), http.StatusOK, `<p id="page">answer</p>`)
}

func TestEntryPostNeedsCSRF(t *testing.T) {
	hs := newHarness(t)
	a := hs.agent(t)
	id := hs.waiting(t, a)
	a.b.CSRF = "forged"
	expect(t, a.do(http.MethodPost, entryURL, url.Values{"state": {id}, "consume": {"1"}}), http.StatusForbidden, "Form expired")
}

// Another browser that presents nothing it consumed sees nothing of the
// login, and the login stays bound to its own browser.
func TestEntryFromAnotherBrowserWithoutASecretSeesNothing(t *testing.T) {
	hs := newHarness(t)
	owner, other := hs.agent(t), hs.agent(t)
	id := hs.waiting(t, owner)
	w := other.do(http.MethodPost, entryURL, url.Values{"state": {id}})
	expect(t, w, http.StatusGone, "moved on")
	if strings.Contains(w.Body.String(), "wait") || hs.st.bound(id) != owner.b.ID {
		t.Fatalf("login shown or rebound: bound to owner %v\n%s", hs.st.bound(id) == owner.b.ID, w.Body.String())
	}
	// The owner still continues it.
	expect(t, owner.do(http.MethodPost, entryURL, url.Values{"state": {id}}), http.StatusOK, `<p id="page">wait</p>`)
}

func TestEntryDetachedPageIsShownWithoutRebinding(t *testing.T) {
	hs := newHarness(t)
	owner, other := hs.agent(t), hs.agent(t)
	id := hs.waiting(t, owner)
	expect(t, other.do(http.MethodPost, entryURL, url.Values{"state": {id}, "detached": {"1"}}), http.StatusOK, `<p id="page">notice</p>`)
	if hs.st.bound(id) != owner.b.ID {
		t.Fatal("a detached answer rebound the login to the other browser")
	}
}

// Consuming the login's one-time secret lets the other browser in, and
// from then on only that browser.
func TestEntryThatConsumesASecretMovesTheLogin(t *testing.T) {
	hs := newHarness(t)
	owner, other := hs.agent(t), hs.agent(t)
	id := hs.waiting(t, owner)
	w := other.do(http.MethodPost, entryURL, url.Values{"state": {id}, "consume": {"1"}})
	if w.Code != http.StatusSeeOther || !strings.Contains(w.Header().Get("Location"), "/login-actions/authenticate?session="+id) {
		t.Fatalf("%d %s", w.Code, w.Header().Get("Location"))
	}
	if hs.st.bound(id) != other.b.ID {
		t.Fatal("the login is not bound to the browser that consumed the secret")
	}
	expect(t, other.do(http.MethodGet, "/realms/test/login-actions/authenticate?session="+id, nil), http.StatusOK, `<p id="page">next</p>`)
	expect(t, owner.do(http.MethodGet, "/realms/test/login-actions/authenticate?session="+id, nil), http.StatusForbidden, "another browser")
}

func TestEntryForAnExpiredLogin(t *testing.T) {
	hs := newHarness(t)
	expect(t, hs.agent(t).do(http.MethodPost, entryURL, url.Values{"state": {"gone"}}), http.StatusGone, "Sign-in expired")
}

// Begin starts a login of its own with the step already done: the rest of
// the flow still runs.
func TestEntryBeginRunsTheRestOfTheFlow(t *testing.T) {
	hs := newHarness(t)
	a := hs.agent(t)
	expect(t, a.do(http.MethodPost, entryURL, url.Values{"begin": {"1"}}), http.StatusOK, `<p id="page">next</p>`)
	if len(hs.st.auth) != 1 {
		t.Fatalf("%d logins stored", len(hs.st.auth))
	}
	for _, row := range hs.st.auth {
		st, _, err := hs.h.load(context.Background(), row.ID)
		if err != nil || row.BrowserID != a.b.ID || st.Flow.UserID != "alice" || st.Flow.Status["0"] != flows.Success ||
			st.Return != "https://app.example/after" || !st.Flow.Prompted("login") || strings.Join(st.Flow.Methods, ",") != "cb" {
			t.Fatalf("begun login %+v (%v)", st, err)
		}
	}
}
