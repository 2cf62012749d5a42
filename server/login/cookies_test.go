package login

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gorilla/sessions"
)

func testCookies() *Cookies {
	return NewCookies([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"), []byte("0123456789abcdef0123456789abcdef"), "/realms/test/", false, 3600)
}

// withCookies is a request carrying the cookies a response set.
func withCookies(w *httptest.ResponseRecorder) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/realms/test/login", nil)
	for _, c := range w.Result().Cookies() {
		r.AddCookie(c)
	}
	return r
}

func TestCookiesReadBackWhatTheyWrote(t *testing.T) {
	c := testCookies()
	w := httptest.NewRecorder()
	b := c.RotateBrowser(w, httptest.NewRequest(http.MethodGet, "/realms/test/login", nil))
	c.SetSSO(w, httptest.NewRequest(http.MethodGet, "/realms/test/login", nil), "sso-1")
	r := withCookies(w)
	if got := c.Browser(httptest.NewRecorder(), r); got != b {
		t.Fatalf("browser cookie read back as %+v, written %+v", got, b)
	}
	if got := c.SSOID(r); got != "sso-1" {
		t.Fatalf("SSO cookie read back as %q", got)
	}
}

// Cookies written by versions that used gorilla's gob serializer still
// work after an upgrade: a browser keeps its SSO session and the login it
// has under way.
func TestCookiesFromBeforeJSONAreStillRead(t *testing.T) {
	c := testCookies()
	old := sessions.NewCookieStore([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"), []byte("0123456789abcdef0123456789abcdef"))
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/realms/test/login", nil)
	for name, values := range map[string]map[any]any{browserCookie: {"id": "b-1", "csrf": "c-1"}, ssoCookie: {"sid": "sso-1"}} {
		s, _ := old.Get(r, name)
		s.Values = values
		if err := s.Save(r, w); err != nil {
			t.Fatal(err)
		}
	}
	r = withCookies(w)
	fresh := httptest.NewRecorder()
	if got := c.Browser(fresh, r); got.ID != "b-1" || got.CSRF != "c-1" || len(fresh.Result().Cookies()) != 0 {
		t.Fatalf("a gob browser cookie read as %+v (rewritten: %v)", got, fresh.Result().Cookies())
	}
	if got := c.SSOID(r); got != "sso-1" {
		t.Fatalf("a gob SSO cookie read as %q", got)
	}
}

func BenchmarkReadBrowserCookie(b *testing.B) {
	c := testCookies()
	w := httptest.NewRecorder()
	c.RotateBrowser(w, httptest.NewRequest(http.MethodGet, "/realms/test/login", nil))
	cookie := w.Result().Cookies()[0]
	for b.Loop() {
		r := &http.Request{Header: http.Header{"Cookie": {cookie.String()}}} // gorilla keeps a request's sessions
		c.Browser(nil, r)
	}
}
