package login

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
)

// Cookie names. The browser cookie binds login attempts to a browser and
// carries the CSRF token; the SSO cookie references the server-side SSO
// session. Both are signed and encrypted, HttpOnly, SameSite=Lax, scoped to
// the realm's path, and Secure when the public URL is https.
const (
	browserCookie = "LATCHKEY_BROWSER"
	ssoCookie     = "LATCHKEY_SSO"
)

// Cookies reads and writes Latchkey's cookies.
type Cookies struct {
	store  *sessions.CookieStore
	path   string
	secure bool
	ssoTTL int // seconds
}

// NewCookies builds the cookie codec from a 64-byte hash key and a 32-byte
// encryption key (derived from the realm's cookie secret).
func NewCookies(hashKey, blockKey []byte, path string, secure bool, ssoTTLSeconds int) *Cookies {
	cs := sessions.NewCookieStore(hashKey, blockKey)
	cs.MaxAge(ssoTTLSeconds)
	for _, codec := range cs.Codecs {
		if sc, ok := codec.(*securecookie.SecureCookie); ok {
			sc.SetSerializer(stringValues{})
		}
	}
	return &Cookies{store: cs, path: path, secure: secure, ssoTTL: ssoTTLSeconds}
}

func (c *Cookies) options(maxAge int) *sessions.Options {
	return &sessions.Options{Path: c.path, MaxAge: maxAge, HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteLaxMode}
}

// stringValues serializes a cookie's values, strings by string keys, as
// JSON. gob, gorilla's default, builds a decoder for every cookie it reads
// (each cookie is a new gob stream, type description included): ~3% of a
// login's CPU. Cookies written before (gob) are still read: an upgrade
// keeps browsers' SSO sessions and logins under way.
type stringValues struct{}

func (stringValues) Serialize(src any) ([]byte, error) {
	values, ok := src.(map[any]any)
	if !ok {
		return nil, fmt.Errorf("cookie values are %T, not a session's", src)
	}
	out := make(map[string]string, len(values))
	for k, v := range values {
		key, kok := k.(string)
		val, vok := v.(string)
		if !kok || !vok {
			return nil, fmt.Errorf("cookie value %v: only strings by string keys", k)
		}
		out[key] = val
	}
	return json.Marshal(out)
}

func (stringValues) Deserialize(src []byte, dst any) error {
	values, ok := dst.(*map[any]any)
	if !ok {
		return fmt.Errorf("cookie values into %T, not a session's", dst)
	}
	var in map[string]string
	if err := json.Unmarshal(src, &in); err != nil {
		return securecookie.GobEncoder{}.Deserialize(src, dst) // written before JSON
	}
	if *values == nil {
		*values = make(map[any]any, len(in))
	}
	for k, v := range in {
		(*values)[k] = v
	}
	return nil
}

// browser is this browser's identity for binding login attempts, and its CSRF token.
type browser struct {
	ID   string
	CSRF string
}

func randomString() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Browser returns the browser cookie, creating it when missing or invalid.
func (c *Cookies) Browser(w http.ResponseWriter, r *http.Request) browser {
	s, _ := c.store.Get(r, browserCookie)
	id, _ := s.Values["id"].(string)
	csrf, _ := s.Values["csrf"].(string)
	if id != "" && csrf != "" {
		return browser{ID: id, CSRF: csrf}
	}
	return c.RotateBrowser(w, r)
}

// RotateBrowser issues a new browser id and CSRF token (at login and logout:
// no session fixation).
func (c *Cookies) RotateBrowser(w http.ResponseWriter, r *http.Request) browser {
	s, _ := c.store.Get(r, browserCookie)
	b := browser{ID: randomString(), CSRF: randomString()}
	s.Values["id"], s.Values["csrf"] = b.ID, b.CSRF
	s.Options = c.options(0)
	_ = s.Save(r, w)
	return b
}

// ValidCSRF compares the posted token with the browser's in constant time.
func (b browser) ValidCSRF(r *http.Request) bool {
	got := r.PostFormValue("csrf")
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(b.CSRF)) == 1
}

// SSOID returns the SSO session id from the cookie, if any.
func (c *Cookies) SSOID(r *http.Request) string {
	s, _ := c.store.Get(r, ssoCookie)
	id, _ := s.Values["sid"].(string)
	return id
}

// SetSSO stores a new SSO session id.
func (c *Cookies) SetSSO(w http.ResponseWriter, r *http.Request, id string) {
	s, _ := c.store.Get(r, ssoCookie)
	s.Values = map[any]any{"sid": id}
	s.Options = c.options(c.ssoTTL)
	_ = s.Save(r, w)
}

// ClearSSO removes the SSO cookie and the session status cookie.
func (c *Cookies) ClearSSO(w http.ResponseWriter, r *http.Request) {
	s, _ := c.store.Get(r, ssoCookie)
	s.Values = map[any]any{}
	s.Options = c.options(-1)
	_ = s.Save(r, w)
	http.SetCookie(w, c.crossSite(sessionCookie, "", -1))
}

// SetSessionStatus writes the sid of the browser's SSO session where the
// keycloak-js status iframe can read it. The sid is in every token of the
// session anyway; the session's own id stays in the HttpOnly SSO cookie.
func (c *Cookies) SetSessionStatus(w http.ResponseWriter, sid string) {
	http.SetCookie(w, c.crossSite(sessionCookie, sid, c.ssoTTL))
}

// crossSite is a cookie readable inside the realm's frames on an app's
// page: SameSite=None (with Secure) behind https; Lax on a plain-http
// development URL, where browsers refuse SameSite=None.
func (c *Cookies) crossSite(name, value string, maxAge int) *http.Cookie {
	ck := &http.Cookie{Name: name, Value: value, Path: c.path, MaxAge: maxAge, Secure: c.secure, SameSite: http.SameSiteLaxMode}
	if c.secure {
		ck.SameSite = http.SameSiteNoneMode
	}
	return ck
}
