package login

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"latchkey/flows"
)

// entryRoutes serves every registered entry point at
// /realms/{realm}/login-actions/{name} and below: where steps resumed from
// outside the login page (an emailed link, a callback) come back in.
func (h *Handler) entryRoutes(mux *http.ServeMux) {
	for name, ep := range h.Entries {
		base := h.prefix() + "/login-actions/" + name
		serve := h.entry(ep, base)
		for _, m := range []string{"GET ", "POST "} {
			mux.HandleFunc(m+base, serve)
			mux.HandleFunc(m+base+"/{path}", serve)
		}
	}
}

// entry hands a request to its entry point and does what it answers. The
// step reads the request; the server loads and saves the login, checks
// CSRF, and decides with mayContinue who may go on with it.
func (h *Handler) entry(ep flows.FactoryEntry, base string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		b := h.Cookies.Browser(w, r)
		loc := h.locale(w, r, nil, nil)
		in := &flows.Entry{
			Method: r.Method, Path: r.PathValue("path"), Query: r.URL.Query(),
			ClientIP: h.ClientIP.Of(r), UserAgent: r.UserAgent(), Users: h.Store, WaitsAt: h.waitsAt,
			HoldsLogin: func(ctx context.Context, session string) (bool, error) { return h.holds(ctx, session, b) },
		}
		if r.Method == http.MethodPost {
			if !b.ValidCSRF(r) {
				h.fail(w, loc, http.StatusForbidden, flows.M("form.expiredTitle"), flows.M("form.expiredLink"), "")
				return
			}
			in.Form = r.PostForm
		}
		flowName, err := h.Engine.FlowFor("browser")
		if err != nil {
			h.internal(w, r, loc, err)
			return
		}
		_, _, in.InBrowserFlow = h.Engine.FindAuthenticator(flowName, ep.Factory)
		entered, err := ep.Enter(ctx, in, time.Now())
		if entered.Locale != "" && r.URL.Query().Get("kc_locale") == "" {
			loc = h.Web.Catalog().Locale(entered.Locale)
		}
		switch {
		case err != nil:
			h.internal(w, r, loc, err)
		case entered.Answer != nil:
			h.answer(w, r, loc, b, base, entered)
		case entered.Progress != "":
			progress(w, entered.Progress)
		case entered.Begin != nil:
			h.begin(w, r, b, ep.Factory, flowName, entered.Begin)
		default:
			h.resume(w, r, b, entered, in)
		}
	}
}

// answer shows a page an entry point answered with, outside any login.
func (h *Handler) answer(w http.ResponseWriter, r *http.Request, loc string, b browser, action string, entered flows.Entered) {
	res := *entered.Answer
	code := http.StatusOK
	if res.Gone {
		code = http.StatusGone
	}
	if res.Status != flows.Challenge {
		if !res.Gone {
			code = http.StatusForbidden
		}
		h.fail(w, loc, code, flows.M("login.cannotTitle"), res.Message, "")
		return
	}
	v := h.view(loc, flows.M("login.title"))
	v.Brand = h.brand(entered.ClientID, entered.Settings)
	if r.Method == http.MethodGet {
		v.SwitchURL = r.URL.RequestURI()
	}
	v.CSRF, v.Action, v.Data = b.CSRF, action, res.Data
	h.Web.Page(w, code, res.Page, v)
}

// resume continues the login an entry request belongs to. A browser that
// does not own the login goes on only if the step consumed, in this
// request, a one-time secret issued for it; otherwise it sees a failure, a
// detached notice, or nothing of the login.
func (h *Handler) resume(w http.ResponseWriter, r *http.Request, b browser, entered flows.Entered, in *flows.Entry) {
	ctx := r.Context()
	st, _, err := h.load(ctx, entered.Session)
	if errors.Is(err, errSessionGone) {
		h.fail(w, h.locale(w, r, st, nil), http.StatusGone, flows.M("login.expiredTitle"), flows.M("link.loginExpired"), "")
		return
	}
	if err != nil {
		h.internal(w, r, h.locale(w, r, nil, nil), err)
		return
	}
	c, err := h.flowContext(w, r, st, in.Form)
	if err != nil {
		h.internal(w, r, h.locale(w, r, st, nil), err)
		return
	}
	c.SameBrowser = st.boundTo == b.ID
	// The step's writes (a link consumed, its event) and the login's (its
	// session saved, or its end: SSO session, code, LOGIN event) are one
	// transaction: one commit where there were two, and a secret is spent
	// only by a login that goes on with it.
	var ans answer
	err = h.Store.InTx(ctx, func(ctx context.Context) error {
		out, err := h.Engine.Resume(ctx, c, entered.Execution, in)
		if err != nil {
			return err
		}
		ans, err = h.resumed(ctx, r, st, c, b, entered, out)
		return err
	})
	h.reply(w, r, c, ans, err)
}

// resumed records what a resumed step decided and returns what to show.
func (h *Handler) resumed(ctx context.Context, r *http.Request, st *state, c *flows.Context, b browser, entered flows.Entered, out flows.Outcome) (answer, error) {
	if !mayContinue(st, b, c) {
		switch {
		case out.Failed:
			return func(w http.ResponseWriter, r *http.Request) {
				h.fail(w, c.Locale, failCode(out), flows.M("login.cannotTitle"), out.Message, "")
			}, nil
		case out.Detached && out.Page != "":
			// The login stays bound to its own browser.
			if err := h.save(ctx, st, st.boundTo); err != nil {
				return nil, err
			}
			return func(w http.ResponseWriter, r *http.Request) {
				v := h.view(c.Locale, flows.M("login.title"))
				v.Brand = h.brand(st.Flow.ClientID, st.Brand)
				v.Data = out.Data
				h.Web.Page(w, http.StatusOK, out.Page, v)
			}, nil
		default:
			return func(w http.ResponseWriter, r *http.Request) {
				h.Log.InfoContext(r.Context(), "login resume refused", "event", "resume_refused", "reason", "not_consumed", "execution", entered.Execution)
				h.fail(w, c.Locale, http.StatusGone, flows.M("login.cannotTitle"), flows.M("link.movedOn"), "")
			}, nil
		}
	}
	if c.ConsumedSecret != "" && !out.Done && !out.Failed {
		// More steps: continue on the login page, now bound to this browser.
		if err := h.save(ctx, st, b.ID); err != nil {
			return nil, err
		}
		return func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, h.authenticateURL(st.Flow.ID), http.StatusSeeOther)
		}, nil
	}
	return h.record(ctx, r, st, c, b, out)
}

func failCode(out flows.Outcome) int {
	if out.Gone {
		return http.StatusGone
	}
	return http.StatusForbidden
}

// begin starts a login in which the entry point's step has already
// succeeded (a minted link): the rest of the realm's browser flow and any
// pending required action still run.
func (h *Handler) begin(w http.ResponseWriter, r *http.Request, b browser, factory, flowName string, bg *flows.Begin) {
	exec, _, ok := h.Engine.FindAuthenticator(flowName, factory)
	if !ok {
		h.fail(w, h.locale(w, r, nil, nil), http.StatusForbidden, flows.M("login.cannotTitle"), flows.M("login.methodDisabled"), "")
		return
	}
	st := &state{
		Flow: flows.Session{
			ID: randomString(), ClientID: bg.ClientID, Flow: flowName, UserID: bg.UserID, MaxAge: -1,
			// The entry names its user: an SSO session of someone else must not take over.
			Prompt: "login", RequestedAt: time.Now().UTC().Truncate(time.Second),
		},
		Return: bg.Return,
		Brand:  bg.Settings,
	}
	st.Flow.MarkSucceeded(exec)
	for _, m := range bg.Methods {
		st.Flow.AddMethod(m)
	}
	if bg.Locale != "" {
		st.Locale = h.Web.Catalog().Locale(bg.Locale)
	}
	c, err := h.flowContext(w, r, st, nil)
	if err != nil {
		h.internal(w, r, h.locale(w, r, st, nil), err)
		return
	}
	c.SameBrowser, c.ConsumedSecret = true, bg.Secret
	h.advance(w, r, st, c, b, h.Engine.Run)
}

// progress answers a login page's poll: small, never cached.
func progress(w http.ResponseWriter, p flows.Progress) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]flows.Progress{"state": p})
}

// holds reports whether browser b holds a login (mayContinue, before any
// step ran).
func (h *Handler) holds(ctx context.Context, session string, b browser) (bool, error) {
	st, _, err := h.load(ctx, session)
	if errors.Is(err, errSessionGone) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return mayContinue(st, b, nil), nil
}

// waitsAt reports whether a login is open and waiting at execution.
func (h *Handler) waitsAt(ctx context.Context, session, execution string) (bool, error) {
	st, _, err := h.load(ctx, session)
	if errors.Is(err, errSessionGone) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return st.Flow.Current == execution, nil
}
