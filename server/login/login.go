// Package login is the hosted login: it hands authorization requests to the
// realm's bound browser flow, serves the flow's pages and the steps' entry
// points, and completes the OIDC response once the flow succeeds.
package login

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"

	"latchkey/flows"
	"latchkey/server/clientip"
	"latchkey/server/events"
	"latchkey/server/oidc"
	"latchkey/server/store"
)

// Handler serves the hosted login of one realm: the authorization
// endpoint, the flow's pages and the steps' entry points.
type Handler struct {
	Site
	Store  Store
	Engine *flows.Engine
	OIDC   Authorizer
	// Cookies name the browser, its CSRF token and its SSO session.
	Cookies *Cookies
	// Entries are the registered steps' entry points, by name.
	Entries map[string]flows.FactoryEntry
	// ClientIP resolves the client's address (trusted proxies' X-Forwarded-For).
	ClientIP *clientip.Resolver
	// Counter bounds the login attempts one client address may start.
	Counter Counter
	// Credentials are users' step credentials, sealed at rest.
	Credentials flows.Credentials
	// Logins counts finished logins (metrics); nil: not counted.
	Logins LoginCounter
	// Events records login events; nil: none.
	Events EventRecorder
}

// EventRecorder records login events.
type EventRecorder interface {
	Record(ctx context.Context, e events.Event) error
	Try(ctx context.Context, e events.Event)
}

// loginError records a login the flow refused.
func (h *Handler) loginError(ctx context.Context, st *state, c *flows.Context) {
	if h.Events == nil {
		return
	}
	e := events.Event{Type: "LOGIN_ERROR", ClientID: st.Flow.ClientID, Error: "login_refused",
		Details: map[string]string{"auth_method": strings.Join(st.Flow.Methods, ",")}}
	if c != nil && c.User != nil {
		e.UserID = c.User.ID
	}
	h.Events.Try(ctx, e)
}

// loginEvent records a finished login, in the transaction that ends it.
func (h *Handler) loginEvent(ctx context.Context, st *state, userID, ssoID string, details map[string]string) error {
	if h.Events == nil {
		return nil
	}
	if details == nil {
		details = map[string]string{}
	}
	details["auth_method"] = strings.Join(st.Flow.Methods, ",")
	return h.Events.Record(ctx, events.Event{Type: "LOGIN", ClientID: st.Flow.ClientID, UserID: userID, SessionID: sessionRef(ssoID), Details: details})
}

// LoginCounter counts logins that ended: signed in, or refused.
type LoginCounter interface {
	Login(success bool, methods []string)
}

func (h *Handler) counted(success bool, methods []string) {
	if h.Logins != nil {
		h.Logins.Login(success, methods)
	}
}

// Authorizer is the OIDC provider's side of a login: it parses the app's
// request and answers it with a code (or an error) once the flow is done.
type Authorizer interface {
	ParseAuthorize(ctx context.Context, r *http.Request) (fosite.AuthorizeRequester, error)
	Authorize(ctx context.Context, ar fosite.AuthorizeRequester, id oidc.Identity) (fosite.AuthorizeResponder, error)
	WriteAuthorize(ctx context.Context, w http.ResponseWriter, ar fosite.AuthorizeRequester, resp fosite.AuthorizeResponder)
	WriteAuthorizeError(ctx context.Context, w http.ResponseWriter, ar fosite.AuthorizeRequester, err error)
}

// Counter counts events in a fixed window (rate limits).
type Counter interface {
	Hit(ctx context.Context, key string, window time.Duration, now time.Time) (int, time.Time, error)
}

// state is an authentication session as stored server-side.
type state struct {
	Flow  flows.Session `json:"flow"`
	Query string        `json:"query"` // the authorization request, replayed at completion
	// Return is where a login begun by a minted link ends: the SSO session
	// is established and the browser sent here (a registered URI of the
	// client), where the app's own login completes without a form.
	Return string `json:"return,omitempty"`
	// Locale is the login's language when the app (ui_locales, kc_locale)
	// or the user (the switcher: ChosenLocale) named one.
	Locale       string `json:"locale,omitempty"`
	ChosenLocale bool   `json:"chosenLocale,omitempty"`
	// Brand holds a minted link's branding settings for the login's pages.
	Brand map[string]string `json:"brand,omitempty"`

	stored  string // the JSON as loaded, to skip writing an unchanged session
	boundTo string // the browser it was bound to when loaded
}

// Routes registers the login endpoints on mux.
func (h *Handler) Routes(mux *http.ServeMux) {
	p := h.prefix()
	mux.HandleFunc("GET "+p+"/protocol/openid-connect/auth", h.authorize)
	mux.HandleFunc("POST "+p+"/protocol/openid-connect/auth", h.authorize)
	mux.HandleFunc("GET "+p+"/login-actions/authenticate", h.page)
	mux.HandleFunc("POST "+p+"/login-actions/authenticate", h.action)
	mux.HandleFunc("POST "+p+"/login-actions/select", h.selectAlternative)
	mux.HandleFunc("GET "+p+"/login-actions/restart", h.restart)
	h.entryRoutes(mux)
}

func (h *Handler) restartURL(id string) string {
	return h.prefix() + "/login-actions/restart?session=" + url.QueryEscape(id)
}

// authorize is the authorization endpoint: it validates the request and
// starts the realm's browser flow. It never shortcuts the flow.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ar, err := h.OIDC.ParseAuthorize(ctx, r)
	if err != nil {
		if oidc.CanRedirectError(ar) && !errors.Is(err, oidc.ErrUnregisteredRedirect) {
			h.OIDC.WriteAuthorizeError(ctx, w, ar, err)
			return
		}
		// The hint is fosite's, in English: it names the parameter at fault.
		msg := flows.M("login.badRequest", "Hint", fosite.ErrorToRFC6749Error(err).HintField)
		if errors.Is(err, oidc.ErrUnregisteredRedirect) {
			msg = flows.M("login.unregisteredRedirect")
		}
		h.Log.InfoContext(ctx, "authorization request refused", "event", "authorize_error", "client_id", r.Form.Get("client_id"), "err", err)
		h.fail(w, h.locale(w, r, nil, nil), http.StatusBadRequest, flows.M("login.cannotTitle"), msg, "")
		return
	}
	// fosite enforces PKCE only when it issues the code; refuse before the
	// user goes through the login for nothing.
	if ch, m := r.Form.Get("code_challenge"), r.Form.Get("code_challenge_method"); ch == "" && ar.GetClient().IsPublic() {
		h.OIDC.WriteAuthorizeError(ctx, w, ar, fosite.ErrInvalidRequest.WithHint("Clients without a secret must use PKCE (code_challenge with S256)."))
		return
	} else if ch != "" && m != "S256" {
		h.OIDC.WriteAuthorizeError(ctx, w, ar, fosite.ErrInvalidRequest.WithHint("Only the S256 code_challenge_method is supported."))
		return
	}
	flowName, err := h.Engine.FlowFor("browser")
	if err != nil {
		h.internal(w, r, h.locale(w, r, nil, nil), err)
		return
	}
	maxAge := -1
	if v := r.Form.Get("max_age"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			maxAge = n
		}
	}
	now := time.Now().UTC().Truncate(time.Second)
	st := &state{
		Flow: flows.Session{
			ID: randomString(), ClientID: ar.GetClient().GetID(), Flow: flowName,
			Prompt: r.Form.Get("prompt"), MaxAge: maxAge, LoginHint: r.Form.Get("login_hint"), RequestedAt: now,
		},
		Query: r.Form.Encode(),
	}
	b := h.Cookies.Browser(w, r)
	c, err := h.flowContext(w, r, st, nil)
	if err != nil {
		h.internal(w, r, h.locale(w, r, nil, nil), err)
		return
	}
	// The app's ui_locales comes before everything else (OIDC Core 3.1.2.1).
	if l, ok := h.Web.Catalog().Match(r.Form.Get("ui_locales")); ok {
		st.Locale, st.ChosenLocale, c.Locale = l, false, l
	}
	if slices.Contains(strings.Fields(r.Form.Get("prompt")), "none") {
		// No page may be shown: only a step that decides at once (the SSO cookie) can succeed.
		out, err := h.Engine.Run(ctx, c)
		if err != nil {
			h.internal(w, r, c.Locale, err)
			return
		}
		if !out.Done {
			h.OIDC.WriteAuthorizeError(ctx, w, ar, fosite.ErrLoginRequired)
			return
		}
		h.complete(w, r, st, c, ar)
		return
	}
	out, err := h.Engine.Run(ctx, c)
	if err != nil {
		h.internal(w, r, c.Locale, err)
		return
	}
	if out.Done {
		h.complete(w, r, st, c, ar)
		return
	}
	// Each attempt that needs a page is a stored row: bound how many one
	// address may start.
	if n, until, err := h.Counter.Hit(ctx, "auth-ip:"+c.ClientIP, time.Minute, time.Now()); err != nil {
		h.internal(w, r, c.Locale, err)
		return
	} else if n > h.Cfg.Sessions.AuthSessionsPerMinutePerIP {
		h.Log.WarnContext(ctx, "login attempts rate limited", "event", "auth_session_rate_limited", "client_ip", c.ClientIP)
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(time.Until(until).Seconds()+0.5))))
		h.fail(w, c.Locale, http.StatusTooManyRequests, flows.M("login.tooManyTitle"), flows.M("login.tooMany"), "")
		return
	}
	if err := h.save(ctx, st, b.ID); err != nil {
		h.internal(w, r, c.Locale, err)
		return
	}
	if out.Failed {
		h.counted(false, st.Flow.Methods)
		h.loginError(ctx, st, c)
		h.fail(w, c.Locale, http.StatusForbidden, flows.M("login.cannotTitle"), out.Message, h.restartURL(st.Flow.ID))
		return
	}
	// The first page is the answer to the authorization request, as in
	// Keycloak: no redirect to it, so a login takes one round trip (and
	// one HTTP request, loaded session and engine run) less. Its forms post
	// to, and its language links get, the login's own URL.
	h.show(w, st, c, b, out)
}

func (h *Handler) authenticateURL(id string) string {
	return h.prefix() + "/login-actions/authenticate?session=" + url.QueryEscape(id)
}

// flowContext is what the engine runs a request of the login with. The
// login's user, once known, is loaded here (the engine would load it
// anyway) so that the page and the mail a step sends use its locale.
func (h *Handler) flowContext(w http.ResponseWriter, r *http.Request, st *state, form url.Values) (*flows.Context, error) {
	c := &flows.Context{
		Realm: h.Cfg.Realm, RealmName: h.Cfg.DisplayName(), Session: &st.Flow, Form: form, ClientIP: h.ClientIP.Of(r), UserAgent: r.UserAgent(),
		ActionURL: h.authenticateURL(st.Flow.ID), Users: h.Store, Credentials: h.Credentials, Now: time.Now, SameBrowser: true,
	}
	if st.Flow.UserID != "" {
		u, err := h.Store.UserByID(r.Context(), st.Flow.UserID)
		if err != nil {
			return nil, fmt.Errorf("load user of session: %w", err)
		}
		c.User = u
	}
	c.Locale = h.locale(w, r, st, c.User)
	if id := h.Cookies.SSOID(r); id != "" {
		if sso, err := h.Store.SSOSessionByID(r.Context(), id, time.Now()); err == nil {
			var methods []string
			if sso.Methods != "" {
				methods = strings.Split(sso.Methods, ",")
			}
			c.SSO = &flows.SSO{UserID: sso.UserID, AuthTime: sso.AuthTime, Methods: methods}
		}
	}
	return c, nil
}

func (h *Handler) save(ctx context.Context, st *state, browserID string) error {
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode auth session: %w", err)
	}
	if string(data) == st.stored && st.boundTo == browserID {
		return nil // a page view that changed nothing: no write
	}
	st.stored, st.boundTo = string(data), browserID
	return h.Store.SaveAuthSession(ctx, &store.AuthSession{
		ID: st.Flow.ID, BrowserID: browserID, Data: string(data),
		ExpiresAt: st.Flow.RequestedAt.Add(h.Cfg.Sessions.AuthSessionTTL.D()),
	})
}

var errSessionGone = errors.New("auth session gone")

// load reads an authentication session. It reports errSessionGone for an
// unknown or expired one.
func (h *Handler) load(ctx context.Context, id string) (*state, *store.AuthSession, error) {
	if id == "" {
		return nil, nil, errSessionGone
	}
	row, err := h.Store.AuthSessionByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, errSessionGone
	}
	if err != nil {
		return nil, nil, err
	}
	var st state
	if err := json.Unmarshal([]byte(row.Data), &st); err != nil {
		return nil, nil, fmt.Errorf("decode auth session: %w", err)
	}
	st.stored, st.boundTo = row.Data, row.BrowserID
	if time.Now().After(row.ExpiresAt) {
		return &st, row, errSessionGone
	}
	return &st, row, nil
}

// loadBound loads the session named in the request and checks it belongs to
// this browser; it writes the error page itself and returns nil on failure.
func (h *Handler) loadBound(w http.ResponseWriter, r *http.Request, b browser) *state {
	id := r.URL.Query().Get("session")
	st, _, err := h.load(r.Context(), id)
	switch {
	case errors.Is(err, errSessionGone) && (st == nil || st.boundTo == b.ID) && h.signedInElsewhere(w, r):
		return nil
	case errors.Is(err, errSessionGone):
		restart := ""
		if st != nil {
			restart = h.restartURL(id)
		}
		h.fail(w, h.locale(w, r, st, nil), http.StatusGone, flows.M("login.expiredTitle"), flows.M("login.expired"), restart)
		return nil
	case err != nil:
		h.internal(w, r, h.locale(w, r, nil, nil), err)
		return nil
	case !mayContinue(st, b, nil):
		h.fail(w, h.locale(w, r, nil, nil), http.StatusForbidden, flows.M("login.notFoundTitle"), flows.M("login.otherBrowser"), h.restartURL(id))
		return nil
	}
	return st
}

// mayContinue is the one rule of who may continue an authentication
// session: the browser bound to it, or a request that consumed, once, a
// pending one-time secret (emailed link, code) issued for it (c may be nil
// before any step ran).
func mayContinue(st *state, b browser, c *flows.Context) bool {
	return st.boundTo == b.ID || (c != nil && c.ConsumedSecret != "")
}

func (h *Handler) page(w http.ResponseWriter, r *http.Request) {
	h.continueLogin(w, r, h.Cookies.Browser(w, r), nil, h.Engine.Run)
}

func (h *Handler) action(w http.ResponseWriter, r *http.Request) {
	b, ok := h.postedBrowser(w, r, flows.M("form.expired"))
	if !ok {
		return
	}
	h.continueLogin(w, r, b, r.PostForm, func(ctx context.Context, c *flows.Context) (flows.Outcome, error) {
		return h.Engine.Act(ctx, c, r.PostForm.Get("execution"))
	})
}

func (h *Handler) selectAlternative(w http.ResponseWriter, r *http.Request) {
	b, ok := h.postedBrowser(w, r, flows.M("form.expired"))
	if !ok {
		return
	}
	h.continueLogin(w, r, b, nil, func(ctx context.Context, c *flows.Context) (flows.Outcome, error) {
		return h.Engine.Select(ctx, c, r.PostForm.Get("execution"))
	})
}

// continueLogin runs one request of a login this browser owns.
func (h *Handler) continueLogin(w http.ResponseWriter, r *http.Request, b browser, form url.Values, run func(context.Context, *flows.Context) (flows.Outcome, error)) {
	st := h.loadBound(w, r, b)
	if st == nil {
		return
	}
	c, err := h.flowContext(w, r, st, form)
	if err != nil {
		h.internal(w, r, h.locale(w, r, st, nil), err)
		return
	}
	h.advance(w, r, st, c, b, run)
}

// advance runs the engine and records what it decided (the login saved,
// or ended), then shows it. A step's transaction (the email POST's link
// and outbox, a new user's row) stays open for that record and commits
// with it: one commit where there were two, and nothing of the step is
// kept for a login that could not be saved. A step that begins none (a
// page view, a refused form, the password step's bcrypt and its counters)
// holds nothing.
func (h *Handler) advance(w http.ResponseWriter, r *http.Request, st *state, c *flows.Context, b browser, run func(context.Context, *flows.Context) (flows.Outcome, error)) {
	ctx, end := h.Store.LazyTx(r.Context())
	defer func() { _ = end(errAbandoned) }() // a panic: roll back, never keep the writer
	out, err := run(ctx, c)
	var ans answer
	if err == nil {
		ans, err = h.record(ctx, r, st, c, b, out)
	}
	h.reply(w, r, c, ans, end(err))
}

// errAbandoned rolls back a request's transaction that did not end.
var errAbandoned = errors.New("request abandoned")

// postedBrowser returns the browser of a form POST, or shows the expired-form
// page when its CSRF token does not match (forged, or the page is stale).
func (h *Handler) postedBrowser(w http.ResponseWriter, r *http.Request, hint flows.Msg) (browser, bool) {
	b := h.Cookies.Browser(w, r)
	if !b.ValidCSRF(r) {
		if h.signedInElsewhere(w, r) {
			return b, false
		}
		h.fail(w, h.locale(w, r, nil, nil), http.StatusForbidden, flows.M("form.expiredTitle"), hint, "")
		return b, false
	}
	return b, true
}

// signedInElsewhere answers a stale page of a login this browser has since
// finished (in another tab, by its link): it is signed in, and says so,
// rather than showing an error. It reports whether it answered.
func (h *Handler) signedInElsewhere(w http.ResponseWriter, r *http.Request) bool {
	id := h.Cookies.SSOID(r)
	if id == "" {
		return false
	}
	if _, err := h.Store.SSOSessionByID(r.Context(), id, time.Now()); err != nil {
		return false
	}
	loc := h.locale(w, r, nil, nil)
	v := h.view(loc, flows.M("login.doneElsewhereTitle"))
	v.Message = h.text(loc, flows.M("login.doneElsewhere"))
	h.Web.Page(w, http.StatusOK, "info", v)
	return true
}

// answer writes what a request of a login shows, once what the request
// wrote has committed.
type answer func(w http.ResponseWriter, r *http.Request)

// record writes what the engine decided (the login's session, or its end)
// and returns what to show once that has committed. Its writes join the
// transaction in ctx, if any.
func (h *Handler) record(ctx context.Context, r *http.Request, st *state, c *flows.Context, b browser, out flows.Outcome) (answer, error) {
	if out.Done {
		return h.finish(ctx, r, st, c, nil)
	}
	if err := h.save(ctx, st, b.ID); err != nil {
		return nil, err
	}
	if out.Failed {
		return func(w http.ResponseWriter, r *http.Request) {
			h.counted(false, st.Flow.Methods)
			h.fail(w, c.Locale, http.StatusForbidden, flows.M("login.cannotTitle"), out.Message, h.restartURL(st.Flow.ID))
		}, nil
	}
	return func(w http.ResponseWriter, r *http.Request) { h.show(w, st, c, b, out) }, nil
}

// refusedAuthorize is the OIDC provider refusing to issue the code at the
// end of a login: nothing of the login's end is kept, and the app is told.
type refusedAuthorize struct {
	ar  fosite.AuthorizeRequester
	err error
}

func (e *refusedAuthorize) Error() string { return "authorization refused: " + e.err.Error() }
func (e *refusedAuthorize) Unwrap() error { return e.err }

// reply shows ans, or what went wrong instead.
func (h *Handler) reply(w http.ResponseWriter, r *http.Request, c *flows.Context, ans answer, err error) {
	var refused *refusedAuthorize
	switch {
	case errors.As(err, &refused):
		h.OIDC.WriteAuthorizeError(r.Context(), w, refused.ar, refused.err)
	case err != nil:
		h.internal(w, r, c.Locale, err)
	default:
		ans(w, r)
	}
}

// show renders the page the flow waits at.
func (h *Handler) show(w http.ResponseWriter, st *state, c *flows.Context, b browser, out flows.Outcome) {
	v := h.view(c.Locale, flows.M("login.title"))
	v.Brand = h.brand(st.Flow.ClientID, st.Brand)
	v.SwitchURL = h.authenticateURL(st.Flow.ID)
	v.CSRF, v.Action, v.Exec, v.Data = b.CSRF, h.authenticateURL(st.Flow.ID), out.Execution, out.Data
	v.Choices, v.SelectURL = out.Choices, h.prefix()+"/login-actions/select?session="+url.QueryEscape(st.Flow.ID)
	h.Web.Page(w, http.StatusOK, out.Page, v)
}

// complete ends a successful flow: a new SSO session (its id rotated at
// every login), then the authorization response to the client.
func (h *Handler) complete(w http.ResponseWriter, r *http.Request, st *state, c *flows.Context, ar fosite.AuthorizeRequester) {
	ans, err := h.finish(r.Context(), r, st, c, ar)
	h.reply(w, r, c, ans, err)
}

// finish records the end of a successful flow and returns its answer: the
// authorization response (ar, or the request the login began with, when
// nil), or the redirect of a login begun by a minted link. Its writes are
// one transaction, or join the one in ctx.
func (h *Handler) finish(ctx context.Context, r *http.Request, st *state, c *flows.Context, ar fosite.AuthorizeRequester) (answer, error) {
	if ar == nil && st.Query == "" && st.Return != "" {
		return h.finishMinted(ctx, r, st, c)
	}
	if ar == nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "/?"+st.Query, nil)
		if err != nil {
			return nil, err
		}
		if ar, err = h.OIDC.ParseAuthorize(ctx, req); err != nil {
			return func(w http.ResponseWriter, r *http.Request) {
				h.fail(w, c.Locale, http.StatusBadRequest, flows.M("login.cannotTitle"), flows.M("login.requestGone"), "")
			}, nil
		}
	}
	now := time.Now().UTC()
	authTime := st.Flow.AuthTime
	fresh := authTime.IsZero()
	if fresh {
		authTime = now.Truncate(time.Second)
	}
	// The SSO session, the end of the login attempt and fosite's code, PKCE
	// and OpenID Connect records are one transaction: one commit, and no
	// code is issued for a login whose session was not recorded.
	var resp fosite.AuthorizeResponder
	ssoID := h.Cookies.SSOID(r)
	err := h.Store.InTx(ctx, func(ctx context.Context) error {
		if fresh {
			var err error
			if ssoID, err = h.startSSO(ctx, r, c.User.ID, st.Flow.Methods, authTime); err != nil {
				return err
			}
		} else if err := h.Store.TouchSSOSession(ctx, ssoID, now.Add(h.Cfg.Sessions.SSOIdleTimeout.D())); err != nil {
			return err
		}
		if err := h.Store.DeleteAuthSession(ctx, st.Flow.ID); err != nil {
			return fmt.Errorf("delete finished auth session: %w", err)
		}
		if err := h.rememberLocale(ctx, st, c.User); err != nil {
			return err
		}
		// A client that wants back-channel logout is told when this
		// session ends: remember that it got tokens in it.
		if cl, ok := h.Cfg.Client(st.Flow.ClientID); ok && cl.BackchannelLogoutURL != "" {
			if err := h.Store.AddSessionClient(ctx, sessionRef(ssoID), cl.ClientID, now.Add(h.Cfg.Sessions.SSOSessionTTL.D())); err != nil {
				return err
			}
		}
		var err error
		if resp, err = h.OIDC.Authorize(ctx, ar, oidc.Identity{
			User: c.User, AuthTime: authTime, RequestedAt: st.Flow.RequestedAt, Methods: st.Flow.Methods,
			SessionID: sessionRef(ssoID),
		}); err != nil {
			return &refusedAuthorize{ar: ar, err: err}
		}
		return h.loginEvent(ctx, st, c.User.ID, ssoID, map[string]string{"sso_reused": strconv.FormatBool(!fresh)})
	})
	if err != nil {
		return nil, err
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if fresh {
			h.setSSOCookies(w, r, ssoID) // only once the session they name is committed
		}
		h.Log.InfoContext(r.Context(), "login succeeded", "event", "login", "user_id", c.User.ID, "client_id", st.Flow.ClientID,
			"methods", st.Flow.Methods, "sso_reused", !fresh)
		h.counted(true, st.Flow.Methods)
		h.OIDC.WriteAuthorize(r.Context(), w, ar, resp)
	}, nil
}

// rememberLocale keeps the language the user picked with the switcher
// during the login as the user's (Keycloak does the same): the next login
// and the ID token's locale claim follow it.
func (h *Handler) rememberLocale(ctx context.Context, st *state, u *flows.User) error {
	if !st.ChosenLocale || u == nil || u.Locale == st.Locale {
		return nil
	}
	u.Locale = st.Locale
	if err := h.Store.UpdateUser(ctx, u); err != nil {
		return fmt.Errorf("remember the user's locale: %w", err)
	}
	return nil
}

// sessionRef is the sid of tokens issued in an SSO session: it names the
// session without revealing its secret id.
func sessionRef(ssoID string) string {
	sum := sha256.Sum256([]byte(ssoID))
	return hex.EncodeToString(sum[:12])
}

// startSSO creates the SSO session for a fresh login (a new id every time:
// no fixation) and ends the browser's previous one. The caller sets the
// cookies once the transaction has committed (setSSOCookies).
func (h *Handler) startSSO(ctx context.Context, r *http.Request, userID string, methods []string, authTime time.Time) (string, error) {
	now := time.Now().UTC()
	if old := h.Cookies.SSOID(r); old != "" {
		_ = h.Store.DeleteSSOSession(ctx, old)
	}
	id := randomString()
	idle := now.Add(h.Cfg.Sessions.SSOIdleTimeout.D())
	if err := h.Store.CreateSSOSession(ctx, &store.SSOSession{
		ID: id, UserID: userID, Ref: sessionRef(id), AuthTime: authTime, Methods: strings.Join(methods, ","),
		ExpiresAt: now.Add(h.Cfg.Sessions.SSOSessionTTL.D()), IdleExpiresAt: &idle, CreatedAt: now,
	}); err != nil {
		return "", err
	}
	return id, nil
}

// setSSOCookies names the new SSO session and rotates the browser's id and
// CSRF token.
func (h *Handler) setSSOCookies(w http.ResponseWriter, r *http.Request, ssoID string) {
	h.Cookies.SetSSO(w, r, ssoID)
	h.Cookies.SetSessionStatus(w, sessionRef(ssoID))
	h.Cookies.RotateBrowser(w, r)
}

// finishMinted records the end of a login begun by a minted link.
func (h *Handler) finishMinted(ctx context.Context, r *http.Request, st *state, c *flows.Context) (answer, error) {
	var ssoID string
	err := h.Store.InTx(ctx, func(ctx context.Context) error {
		var err error
		if ssoID, err = h.startSSO(ctx, r, c.User.ID, st.Flow.Methods, time.Now().UTC().Truncate(time.Second)); err != nil {
			return err
		}
		if err := h.Store.DeleteAuthSession(ctx, st.Flow.ID); err != nil {
			return err
		}
		return h.loginEvent(ctx, st, c.User.ID, ssoID, map[string]string{"minted_link": "true"})
	})
	if err != nil {
		return nil, err
	}
	return func(w http.ResponseWriter, r *http.Request) {
		h.setSSOCookies(w, r, ssoID)
		h.Log.InfoContext(r.Context(), "login succeeded", "event", "login", "user_id", c.User.ID, "client_id", st.Flow.ClientID,
			"methods", st.Flow.Methods, "minted_link", true)
		h.counted(true, st.Flow.Methods)
		http.Redirect(w, r, st.Return, http.StatusSeeOther)
	}, nil
}

// restart begins the same authorization request again, in this browser.
func (h *Handler) restart(w http.ResponseWriter, r *http.Request) {
	st, _, err := h.load(r.Context(), r.URL.Query().Get("session"))
	if st == nil || st.Query == "" {
		if err != nil && !errors.Is(err, errSessionGone) {
			h.internal(w, r, h.locale(w, r, st, nil), err)
			return
		}
		h.fail(w, h.locale(w, r, st, nil), http.StatusGone, flows.M("login.expiredTitle"), flows.M("login.expiredGoBack"), "")
		return
	}
	http.Redirect(w, r, h.prefix()+"/protocol/openid-connect/auth?"+st.Query, http.StatusSeeOther)
}
