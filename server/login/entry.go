package login

import (
	"context"
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
		in := &flows.Entry{
			Method: r.Method, Path: r.PathValue("path"), Query: r.URL.Query(),
			ClientIP: h.ClientIP.Of(r), UserAgent: r.UserAgent(), Users: h.Store, WaitsAt: h.waitsAt,
		}
		if r.Method == http.MethodPost {
			if !b.ValidCSRF(r) {
				h.fail(w, http.StatusForbidden, "Form expired", "This page was open too long or cookies are blocked. Open the link from your email again.", "")
				return
			}
			in.Form = r.PostForm
		}
		flowName, err := h.Engine.FlowFor("browser")
		if err != nil {
			h.internal(w, r, err)
			return
		}
		_, _, in.InBrowserFlow = h.Engine.FindAuthenticator(flowName, ep.Factory)
		entered, err := ep.Enter(ctx, in, time.Now())
		switch {
		case err != nil:
			h.internal(w, r, err)
		case entered.Answer != nil:
			h.answer(w, b, base, *entered.Answer)
		case entered.Begin != nil:
			h.begin(w, r, b, ep.Factory, flowName, entered.Begin)
		default:
			h.resume(w, r, b, entered, in)
		}
	}
}

// answer shows a page an entry point answered with, outside any login.
func (h *Handler) answer(w http.ResponseWriter, b browser, action string, res flows.Result) {
	code := http.StatusOK
	if res.Gone {
		code = http.StatusGone
	}
	if res.Status != flows.Challenge {
		if !res.Gone {
			code = http.StatusForbidden
		}
		h.fail(w, code, "Cannot sign in", h.Web.Text(res.Message), "")
		return
	}
	v := h.view("Sign in")
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
		h.fail(w, http.StatusGone, "Sign-in expired", "The sign-in this link belongs to has expired. Go back to the application and sign in again.", "")
		return
	}
	if err != nil {
		h.internal(w, r, err)
		return
	}
	c := h.flowContext(r, st, in.Form)
	c.SameBrowser = st.boundTo == b.ID
	out, err := h.Engine.Resume(ctx, c, entered.Execution, in)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	if !mayContinue(st, b, c) {
		switch {
		case out.Failed:
			h.fail(w, failCode(out), "Cannot sign in", h.Web.Text(out.Message), "")
		case out.Detached && out.Page != "":
			// The login stays bound to its own browser.
			if err := h.save(ctx, st, st.boundTo); err != nil {
				h.internal(w, r, err)
				return
			}
			v := h.view("Sign in")
			v.Data = out.Data
			h.Web.Page(w, http.StatusOK, out.Page, v)
		default:
			h.Log.Info("login resume refused", "event", "resume_refused", "reason", "not_consumed", "execution", entered.Execution)
			h.fail(w, http.StatusGone, "Cannot sign in", "This link belongs to a sign-in that has moved on. Continue in the browser where you started it.", "")
		}
		return
	}
	if c.ConsumedSecret != "" && !out.Done && !out.Failed {
		// More steps: continue on the login page, now bound to this browser.
		if err := h.save(ctx, st, b.ID); err != nil {
			h.internal(w, r, err)
			return
		}
		http.Redirect(w, r, h.authenticateURL(st.Flow.ID), http.StatusSeeOther)
		return
	}
	h.respond(w, r, st, c, b, out, nil)
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
		h.fail(w, http.StatusForbidden, "Cannot sign in", "This way of signing in is not enabled for this realm.", "")
		return
	}
	st := &state{
		Flow: flows.Session{
			ID: randomString(), ClientID: bg.ClientID, Flow: flowName, UserID: bg.UserID, MaxAge: -1,
			// The entry names its user: an SSO session of someone else must not take over.
			Prompt: "login", RequestedAt: time.Now().UTC().Truncate(time.Second),
		},
		Return: bg.Return,
	}
	st.Flow.MarkSucceeded(exec)
	for _, m := range bg.Methods {
		st.Flow.AddMethod(m)
	}
	c := h.flowContext(r, st, nil)
	c.SameBrowser, c.ConsumedSecret = true, bg.Secret
	out, err := h.Engine.Run(r.Context(), c)
	h.respond(w, r, st, c, b, out, err)
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
