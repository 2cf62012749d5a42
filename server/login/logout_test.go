package login

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"latchkey/server/config"
	"latchkey/server/mail"
	"latchkey/server/oidc"
	"latchkey/server/store"
	"latchkey/server/web"
)

// ssoStore keeps SSO sessions, revoked "user sid" pairs and queued entries in memory.
type ssoStore struct {
	mu      sync.Mutex
	sso     map[string]store.SSOSession
	clients map[string][]string // sid -> clients that got tokens
	revoked []string
	queued  []store.OutboxMail
}

func (m *ssoStore) InTx(ctx context.Context, fn func(context.Context) error) error { return fn(ctx) }
func (m *ssoStore) SSOSessionByID(_ context.Context, id string, _ time.Time) (*store.SSOSession, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.sso[id]; ok {
		return &s, nil
	}
	return nil, store.ErrNotFound
}
func (m *ssoStore) SSOSessionByRef(_ context.Context, ref string) (*store.SSOSession, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.sso {
		if s.Ref == ref {
			return &s, nil
		}
	}
	return nil, store.ErrNotFound
}
func (m *ssoStore) DeleteSSOSession(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sso, id)
	return nil
}
func (m *ssoStore) RevokeSession(_ context.Context, subject, ref string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.revoked = append(m.revoked, subject+" "+ref)
	return nil
}
func (m *ssoStore) SessionClients(_ context.Context, ref string) ([]string, error) {
	return m.clients[ref], nil
}
func (m *ssoStore) EnqueueMail(_ context.Context, e *store.OutboxMail) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.queued = append(m.queued, *e)
	return nil
}
func (m *ssoStore) SSOSessionsOf(_ context.Context, userID string, _ time.Time) ([]store.SSOSession, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.SSOSession
	for _, s := range m.sso {
		if s.UserID == userID {
			out = append(out, s)
		}
	}
	return out, nil
}
func (m *ssoStore) EndUserSessions(context.Context, string) error { return nil }

// hints reads an id_token_hint written as "client sub sid" and issues
// logout tokens as "logout-token sub sid".
type hints struct{}

func (hints) IDTokenHint(_ context.Context, raw string) (oidc.Hint, error) {
	f := strings.Fields(raw)
	if len(f) != 3 {
		return oidc.Hint{}, errors.New("bad hint")
	}
	return oidc.Hint{ClientID: f[0], Subject: f[1], SessionID: f[2]}, nil
}
func (hints) PostLogoutAllowed(clientID, uri string) bool {
	return clientID == "app" && uri == "https://app.example/bye"
}
func (hints) LogoutToken(_ context.Context, _, subject, sid string) (string, error) {
	return "logout-token " + subject + " " + sid, nil
}

type logoutHarness struct {
	st    *ssoStore
	h     *Logout
	mux   *http.ServeMux
	woken int
}

func newLogoutHarness(t *testing.T) *logoutHarness {
	log := slog.New(slog.DiscardHandler)
	rnd, err := web.NewRenderer(web.Options{}, log)
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := mail.NewSealer(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Realm: "test", Clients: []config.Client{
		{ClientID: "app", BackchannelLogoutURL: "https://app.example/backchannel"},
		{ClientID: "quiet"},
	}}
	hs := &logoutHarness{st: &ssoStore{sso: map[string]store.SSOSession{}, clients: map[string][]string{}}}
	hs.h = &Logout{Site: Site{Cfg: cfg, Web: rnd, Log: log}, Store: hs.st, OIDC: hints{}, Sealer: sealer,
		Cookies: NewCookies(make([]byte, 64), make([]byte, 32), "/realms/test/", false, 3600), Wake: func() { hs.woken++ }}
	hs.mux = http.NewServeMux()
	hs.h.Routes(hs.mux)
	return hs
}

// signedIn gives a browser (its cookies) an SSO session of user, in which
// the clients got tokens; it returns the cookies and the session's sid.
func (hs *logoutHarness) signedIn(t *testing.T, id, user string, clients ...string) ([]*http.Cookie, string) {
	ref := sessionRef(id)
	hs.st.sso[id] = store.SSOSession{ID: id, UserID: user, Ref: ref, ExpiresAt: time.Now().Add(time.Hour)}
	hs.st.clients[ref] = clients
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	hs.h.Cookies.SetSSO(w, r, id)
	hs.h.Cookies.Browser(w, r)
	return w.Result().Cookies(), ref
}

func (hs *logoutHarness) get(query url.Values, cookies []*http.Cookie) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, "/realms/test/protocol/openid-connect/logout?"+query.Encode(), nil)
	for _, c := range cookies {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	hs.mux.ServeHTTP(w, r)
	return w
}

func TestLogoutByTheSessionsOwnHintEndsItAndTellsItsClients(t *testing.T) {
	hs := newLogoutHarness(t)
	cookies, ref := hs.signedIn(t, "sso-1", "alice", "app", "quiet")
	w := hs.get(url.Values{"id_token_hint": {"app alice " + ref}, "post_logout_redirect_uri": {"https://app.example/bye"}, "state": {"s1"}}, cookies)
	if w.Code != http.StatusFound || w.Header().Get("Location") != "https://app.example/bye?state=s1" {
		t.Fatalf("status %d, location %q", w.Code, w.Header().Get("Location"))
	}
	if _, ok := hs.st.sso["sso-1"]; ok || !slices.Equal(hs.st.revoked, []string{"alice " + ref}) {
		t.Fatalf("session left %v, revoked %v", hs.st.sso, hs.st.revoked)
	}
	// Only the client that asked for back-channel logout is told, with a
	// sealed token, and the sender is woken.
	if len(hs.st.queued) != 1 || hs.st.queued[0].To != "https://app.example/backchannel" || hs.woken != 1 {
		t.Fatalf("queued %+v, woken %d", hs.st.queued, hs.woken)
	}
	if hs.st.queued[0].Text == "logout-token alice "+ref {
		t.Fatal("the logout token is queued in the clear")
	}
	if tok, err := hs.h.Sealer.Open(hs.st.queued[0].Text); err != nil || tok != "logout-token alice "+ref {
		t.Fatalf("queued token %q, %v", tok, err)
	}
	if !cleared(w, ssoCookie) {
		t.Fatal("the SSO cookie was not cleared")
	}
}

func TestLogoutAsksBeforeEndingWhatTheRequestDoesNotProve(t *testing.T) {
	hs := newLogoutHarness(t)
	cookies, _ := hs.signedIn(t, "sso-1", "alice", "app")
	_, bobRef := hs.signedIn(t, "sso-2", "bob", "app")
	for name, q := range map[string]url.Values{
		"no hint":                  {"client_id": {"app"}},
		"someone else's hint":      {"id_token_hint": {"app bob " + bobRef}},
		"the user's other session": {"id_token_hint": {"app alice other-sid"}},
	} {
		w := hs.get(q, cookies)
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `<form method="post" action="/realms/test/protocol/openid-connect/logout">`) {
			t.Fatalf("%s: status %d, %s", name, w.Code, w.Body)
		}
	}
	if len(hs.st.sso) != 2 || len(hs.st.revoked) != 0 || len(hs.st.queued) != 0 {
		t.Fatalf("something ended before the user confirmed: %v %v %v", hs.st.sso, hs.st.revoked, hs.st.queued)
	}
}

func TestLogoutRefusesWhatItCannotHonour(t *testing.T) {
	hs := newLogoutHarness(t)
	cookies, ref := hs.signedIn(t, "sso-1", "alice", "app")
	for name, q := range map[string]url.Values{
		"unregistered return":  {"id_token_hint": {"app alice " + ref}, "post_logout_redirect_uri": {"https://evil.example/"}},
		"two clients":          {"id_token_hint": {"app alice " + ref}, "client_id": {"quiet"}},
		"a hint it never gave": {"id_token_hint": {"garbage"}},
	} {
		if w := hs.get(q, cookies); w.Code != http.StatusBadRequest {
			t.Fatalf("%s: status %d", name, w.Code)
		}
	}
	if len(hs.st.sso) != 1 || len(hs.st.revoked) != 0 {
		t.Fatal("a refused logout ended the session")
	}
}

// A server calling without the browser's cookie (oauth2-proxy) ends the
// session its hint names, and only if the hint's user owns it.
func TestLogoutWithoutCookieEndsTheHintsSession(t *testing.T) {
	hs := newLogoutHarness(t)
	_, ref := hs.signedIn(t, "sso-1", "alice", "app")
	if w := hs.get(url.Values{"id_token_hint": {"app mallory " + ref}}, nil); w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	if len(hs.st.sso) != 1 {
		t.Fatal("a hint naming someone else's session ended it")
	}
	if w := hs.get(url.Values{"id_token_hint": {"app alice " + ref}}, nil); w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	if len(hs.st.sso) != 0 || !slices.Equal(hs.st.revoked, []string{"alice " + ref}) {
		t.Fatalf("the hint's session lives on: %v", hs.st.sso)
	}
}

func cleared(w *httptest.ResponseRecorder, name string) bool {
	for _, c := range w.Result().Cookies() {
		if c.Name == name && c.MaxAge < 0 {
			return true
		}
	}
	return false
}

// An admin ending a user's sessions (logout, disable, delete) tells each
// session's clients by back-channel logout, as a user's own logout does,
// and leaves other users' sessions alone.
func TestEndUserSessionsTellsEachSessionsClients(t *testing.T) {
	hs := newLogoutHarness(t)
	_, sid1 := hs.signedIn(t, "sso-1", "alice", "app")
	_, sid2 := hs.signedIn(t, "sso-2", "alice", "app", "quiet")
	hs.signedIn(t, "sso-3", "bob", "app")
	if err := hs.h.EndUserSessions(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	if _, ok := hs.st.sso["sso-3"]; !ok || len(hs.st.sso) != 1 {
		t.Fatalf("sessions left: %v (want only bob's)", hs.st.sso)
	}
	var tokens []string
	for _, m := range hs.st.queued {
		tok, err := hs.h.Sealer.Open(m.Text)
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, m.To+" "+tok)
	}
	slices.Sort(tokens)
	want := []string{"https://app.example/backchannel logout-token alice " + sid1, "https://app.example/backchannel logout-token alice " + sid2}
	slices.Sort(want)
	if !slices.Equal(tokens, want) {
		t.Errorf("queued %v, want %v", tokens, want)
	}
}
