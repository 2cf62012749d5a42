package admin

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"latchkey/authenticators/magiclink"
	"latchkey/flows"
	"latchkey/flows/flowstest"
	"latchkey/server/config"
	"latchkey/server/store"
)

// fakeStore keeps users and links in memory; it is both the service's
// Store and the link service's.
type fakeStore struct {
	*flowstest.Users
	magiclink.Store // the link methods the admin API never calls: nil
	mu              sync.Mutex
	links           []store.MagicLink
	mails           []magiclink.Mail
}

func (f *fakeStore) CreateLink(_ context.Context, l *magiclink.Link, m *magiclink.Mail) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	l.ID = store.NewID()
	f.links = append(f.links, store.MagicLink(*l))
	if m != nil {
		f.mails = append(f.mails, *m)
	}
	return nil
}
func (f *fakeStore) RehearseLink(context.Context, *magiclink.Link, *magiclink.Mail) error { return nil }
func (f *fakeStore) LinkByHash(context.Context, string) (*magiclink.Link, error) {
	return nil, magiclink.ErrNotFound
}
func (f *fakeStore) ConsumeLink(context.Context, string, magiclink.Owner, time.Time) (*magiclink.Link, error) {
	return nil, magiclink.ErrNotFound
}
func (f *fakeStore) MarkLinkOpened(context.Context, string, time.Time) error { return nil }

func (f *fakeStore) MagicLinkByID(_ context.Context, id string) (*store.MagicLink, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range f.links {
		if l.ID == id {
			return &l, nil
		}
	}
	return nil, store.ErrNotFound
}

func (f *fakeStore) ListMagicLinks(_ context.Context, lf store.LinkFilter, now time.Time) ([]store.MagicLink, int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []store.MagicLink
	for _, l := range f.links {
		if (lf.UserID == "" || l.UserID == lf.UserID) && (lf.Email == "" || l.Email == lf.Email) && (lf.Status == "" || l.Status(now) == lf.Status) {
			out = append(out, l)
		}
	}
	total := int64(len(out))
	out = out[min(lf.Offset, len(out)):]
	return out[:min(lf.Limit, len(out))], total, nil
}

func (f *fakeStore) RevokeMagicLink(_ context.Context, id, _ string, now time.Time) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, l := range f.links {
		if l.ID == id && l.Status(now) == "pending" {
			f.links[i].RevokedAt = &now
			return true, nil
		}
	}
	return false, nil
}

// fakeFlows is a browser flow with (or without) a magic-link step.
type fakeFlows struct {
	hasStep bool
	ttl     time.Duration
}

func (f fakeFlows) FlowFor(string) (string, error) { return "browser", nil }
func (f fakeFlows) FindAuthenticator(_, id string) (string, flows.Config, bool) {
	if !f.hasStep || id != magiclink.ID {
		return "", flows.Config{}, false
	}
	return "1.0", flows.Config{Values: map[string]any{"linkTTL": f.ttl}}, true
}

type renderer struct{}

func (renderer) Mail(_, name string, data any) (string, string, string, error) {
	return "Sign in", "link: " + data.(magiclink.MailData).URL, "", nil
}

func newService(t *testing.T, fl fakeFlows) (*Service, *fakeStore) {
	t.Helper()
	fs := &fakeStore{Users: flowstest.NewUsers(
		flows.User{ID: "alice", Email: "alice@example.com", EmailVerified: true},
		flows.User{ID: "off", Email: "off@example.com", Disabled: true},
	)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := &config.Config{Realm: "test", Clients: []config.Client{{ClientID: "app", RedirectURIs: []string{"https://app.example/cb"}}}}
	links := &magiclink.Service{Store: fs, Mail: renderer{}, Log: log, PublicURL: "https://id.example", Realm: "test"}
	return &Service{Cfg: cfg, Store: fs, Links: links, Engine: fl}, fs
}

func TestCreateRefusesBadRequestsBeforeWritingAnything(t *testing.T) {
	svc, fs := newService(t, fakeFlows{hasStep: true, ttl: 10 * time.Minute})
	ok := CreateRequest{Email: "alice@example.com", ClientID: "app", RedirectURI: "https://app.example/cb"}
	cases := []struct {
		name  string
		edit  func(r *CreateRequest)
		field string
	}{
		{"neither email nor user", func(r *CreateRequest) { r.Email = "" }, "email"},
		{"both email and user", func(r *CreateRequest) { r.UserID = "alice" }, "email"},
		{"no client", func(r *CreateRequest) { r.ClientID = "" }, "clientId"},
		{"unknown client", func(r *CreateRequest) { r.ClientID = "other" }, "clientId"},
		{"no redirect", func(r *CreateRequest) { r.RedirectURI = "" }, "redirectUri"},
		{"unregistered redirect", func(r *CreateRequest) { r.RedirectURI = "https://evil.example/cb" }, "redirectUri"},
		{"unknown type", func(r *CreateRequest) { r.Type = "reset" }, "type"},
		{"bad ttl", func(r *CreateRequest) { r.TTL = "soon" }, "ttl"},
		{"ttl too long", func(r *CreateRequest) { r.TTL = "31d" }, "ttl"},
		{"name with a newline", func(r *CreateRequest) { r.Profile = &Profile{FirstName: "A\nB"} }, "profile.firstName"},
		{"unknown address without forceCreate", func(r *CreateRequest) { r.Email = "new@example.com" }, "email"},
		{"invalid address", func(r *CreateRequest) { r.Email = "not-an-address" }, "email"},
		{"unknown user id", func(r *CreateRequest) { r.Email, r.UserID = "", "nobody" }, "userId"},
		{"disabled user", func(r *CreateRequest) { r.Email = "off@example.com" }, "email"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := ok
			tc.edit(&req)
			_, err := svc.Create(context.Background(), req, time.Now())
			fe, isField := err.(*FieldError)
			if !isField || fe.Field != tc.field {
				t.Fatalf("error %v, want a field error on %s", err, tc.field)
			}
		})
	}
	if len(fs.links) != 0 {
		t.Fatalf("%d links written by refused requests", len(fs.links))
	}
}

func TestCreateUsesTheFlowsLinkLifetimeAndMailsTheStoredAddress(t *testing.T) {
	svc, fs := newService(t, fakeFlows{hasStep: true, ttl: 10 * time.Minute})
	now := time.Now()
	res, err := svc.Create(context.Background(), CreateRequest{Email: "ALICE@example.com", ClientID: "app", RedirectURI: "https://app.example/cb", Send: true}, now)
	if err != nil {
		t.Fatal(err)
	}
	if d := res.ExpiresAt.Sub(now.UTC()); d < 9*time.Minute || d > 10*time.Minute {
		t.Fatalf("expires in %s, want the flow's 10m", d)
	}
	if !strings.HasPrefix(res.URL, "https://id.example/realms/test/login-actions/magic-link?token=") || res.UserID != "alice" {
		t.Fatalf("created %+v", res)
	}
	if len(fs.mails) != 1 || fs.mails[0].To != "alice@example.com" || !strings.Contains(fs.mails[0].Text, res.URL) {
		t.Fatalf("mails %+v", fs.mails)
	}
}

func TestLoginLinksNeedAMagicLinkStepVerifyLinksDoNot(t *testing.T) {
	svc, _ := newService(t, fakeFlows{})
	req := CreateRequest{Email: "alice@example.com", ClientID: "app", RedirectURI: "https://app.example/cb"}
	if _, err := svc.Create(context.Background(), req, time.Now()); err == nil || err.(*FieldError).Field != "type" {
		t.Fatalf("login link without a magic-link step: %v", err)
	}
	req.Type = magiclink.TypeVerifyEmail
	res, err := svc.Create(context.Background(), req, time.Now())
	if err != nil || time.Until(res.ExpiresAt) < 14*time.Minute {
		t.Fatalf("verify link: %v, %+v (want the 15m default)", err, res)
	}
}

func TestForceCreateMakesTheUserWithProfileAndAction(t *testing.T) {
	svc, fs := newService(t, fakeFlows{hasStep: true, ttl: 10 * time.Minute})
	res, err := svc.Create(context.Background(), CreateRequest{Email: "new@example.com", ClientID: "app", RedirectURI: "https://app.example/cb",
		ForceCreate: true, UpdateProfile: true, Profile: &Profile{FirstName: " Nia ", LastName: "New"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	u, err := fs.UserByID(context.Background(), res.UserID)
	if err != nil || u.FirstName != "Nia" || u.LastName != "New" || !u.HasRequiredAction("UPDATE_PROFILE") || u.EmailVerified {
		t.Fatalf("user %+v, %v", u, err)
	}
}

func TestListGetRevoke(t *testing.T) {
	svc, _ := newService(t, fakeFlows{hasStep: true, ttl: 10 * time.Minute})
	ctx := context.Background()
	var ids []string
	for range 3 {
		res, err := svc.Create(ctx, CreateRequest{Email: "alice@example.com", ClientID: "app", RedirectURI: "https://app.example/cb"}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.ID)
	}
	page, err := svc.List(ctx, ListRequest{Email: "Alice@Example.com", Limit: 2}, time.Now())
	if err != nil || len(page.Items) != 2 || page.Total != 3 || page.NextOffset == nil || *page.NextOffset != 2 {
		t.Fatalf("page %+v, %v", page, err)
	}
	for _, bad := range []ListRequest{{Status: "done"}, {Limit: 500}, {Offset: -1}, {Email: "nope"}} {
		if _, err := svc.List(ctx, bad, time.Now()); err == nil {
			t.Errorf("list %+v accepted", bad)
		}
	}
	if err := svc.Revoke(ctx, ids[0], time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := svc.Revoke(ctx, ids[0], time.Now()); err != ErrNotPending {
		t.Fatalf("second revoke: %v", err)
	}
	if err := svc.Revoke(ctx, "nope", time.Now()); err != ErrNotFound {
		t.Fatalf("revoke unknown: %v", err)
	}
	l, err := svc.Get(ctx, ids[0], time.Now())
	if err != nil || l.Status != "revoked" || !l.Minted {
		t.Fatalf("get %+v, %v", l, err)
	}
}

func TestAPIKeysAndOperations(t *testing.T) {
	svc, _ := newService(t, fakeFlows{hasStep: true, ttl: 10 * time.Minute})
	api := NewAPI(svc, []config.APIKey{
		{Name: "backend", Key: "backend-key-0123456789-0123456789-abcdef", Operations: []string{"magic-links:create", "magic-links:read"}},
		{Name: "reader", Key: "reader-key-0123456789-0123456789-abcdefg", Operations: []string{"magic-links:read"}},
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	mux := http.NewServeMux()
	api.Routes(mux, "test")
	call := func(method, key, body string) (int, map[string]any) {
		r := httptest.NewRequest(method, "/realms/test/magic-links", strings.NewReader(body))
		if key != "" {
			r.Header.Set("Authorization", "Bearer "+key)
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		var out map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &out)
		return w.Code, out
	}
	good := `{"email":"alice@example.com","clientId":"app","redirectUri":"https://app.example/cb"}`
	cases := []struct {
		name, method, key, body string
		code                    int
		field                   string
	}{
		{"no key", "POST", "", good, http.StatusUnauthorized, ""},
		{"wrong key", "POST", "backend-key-0123456789-0123456789-abcdeX", good, http.StatusUnauthorized, ""},
		{"key without the operation", "POST", "reader-key-0123456789-0123456789-abcdefg", good, http.StatusForbidden, ""},
		{"unknown field", "POST", "backend-key-0123456789-0123456789-abcdef", `{"emial":"a@b.c"}`, http.StatusBadRequest, "emial"},
		{"wrong type", "POST", "backend-key-0123456789-0123456789-abcdef", `{"email":1}`, http.StatusBadRequest, "email"},
		{"two objects", "POST", "backend-key-0123456789-0123456789-abcdef", good + good, http.StatusBadRequest, ""},
		{"created", "POST", "backend-key-0123456789-0123456789-abcdef", good, http.StatusCreated, ""},
		{"read", "GET", "reader-key-0123456789-0123456789-abcdefg", "", http.StatusOK, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out := call(tc.method, tc.key, tc.body)
			if code != tc.code || (tc.field != "" && out["field"] != tc.field) {
				t.Fatalf("%d %v, want %d (field %q)", code, out, tc.code, tc.field)
			}
		})
	}
}
