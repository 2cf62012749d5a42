package login

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"latchkey/authenticators/magiclink"
	"latchkey/flows"
	"latchkey/server/oidc"
	"latchkey/server/store"
)

// confirmData is the link confirm page's data.
type confirmData struct {
	Email string
	Token string
}

// invalidData is the data of the page for a link that cannot be used.
type invalidData struct {
	CanResend bool
	ResendURL string
	Token     string
}

// linkUse is what the server knows about a link token a request presents:
// the link, its state, and the login it belongs to.
type linkUse struct {
	Link   *magiclink.Link // nil: no link has this token
	Status string          // pending, used, revoked, expired, or unknown
	State  *state          // the login the link belongs to, while it is open
	Owned  bool            // this browser is bound to that login
}

// canResend reports whether a fresh link can continue the login: it is
// still open and still waiting at the link's step. A used link's step is
// over, so a used link never offers one.
func (u linkUse) canResend() bool {
	return u.Link != nil && u.State != nil && u.Status != "used" && u.State.Flow.Current == u.Link.Execution
}

// inspectLink is the one place where a request presenting a link token
// (show, confirm, resend) learns the link's state and whether this
// browser owns its login. What a non-owner may then do is decided by
// mayContinue: only consuming the pending link lets it in.
func (h *Handler) inspectLink(ctx context.Context, b browser, token string, now time.Time) (linkUse, error) {
	l, err := h.Links.Inspect(ctx, token)
	if errors.Is(err, magiclink.ErrNotFound) {
		return linkUse{Status: "unknown"}, nil
	}
	if err != nil {
		return linkUse{}, err
	}
	u := linkUse{Link: l, Status: l.Status(now)}
	if l.AuthSessionID == "" {
		return u, nil // minted: it starts a login of its own
	}
	st, _, err := h.load(ctx, l.AuthSessionID)
	switch {
	case errors.Is(err, errSessionGone):
	case err != nil:
		return linkUse{}, err
	default:
		u.State, u.Owned = st, st.boundTo == b.ID
	}
	return u, nil
}

// pendingLink inspects a link token and, unless the link is pending, shows
// why it cannot be used; ok reports whether the caller goes on.
func (h *Handler) pendingLink(w http.ResponseWriter, r *http.Request, b browser, token string, now time.Time) (linkUse, bool) {
	u, err := h.inspectLink(r.Context(), b, token, now)
	if err != nil {
		h.internal(w, r, err)
		return u, false
	}
	if u.Status != "pending" {
		h.invalidLink(w, b, u, token, now)
		return u, false
	}
	return u, true
}

// linkPage shows the link's confirm page. GET and HEAD never consume the
// link: mail scanners fetch every link in a message.
func (h *Handler) linkPage(w http.ResponseWriter, r *http.Request) {
	b := h.Cookies.Browser(w, r)
	token := r.URL.Query().Get("token")
	now := time.Now()
	u, ok := h.pendingLink(w, r, b, token, now)
	if !ok {
		return
	}
	h.Links.Opened(r.Context(), u.Link, r.UserAgent(), now)
	v := h.view("Sign in")
	v.CSRF, v.Action, v.Data = b.CSRF, magiclink.LinkPath(h.Cfg.Realm), confirmData{Email: u.Link.Email, Token: token}
	h.Web.Page(w, http.StatusOK, "magic-link-confirm", v)
}

// invalidLink says which of used, expired or revoked the link is, and
// offers a new link while its login still waits for one.
func (h *Handler) invalidLink(w http.ResponseWriter, b browser, u linkUse, token string, now time.Time) {
	h.Links.Rejected(u.Link, u.Status)
	v := h.view("This link cannot be used")
	v.Message, v.CSRF = magiclink.Explain(u.Link, now), b.CSRF
	v.Data = invalidData{ResendURL: magiclink.LinkPath(h.Cfg.Realm) + "/resend", Token: token, CanResend: u.canResend()}
	h.Web.Page(w, http.StatusGone, "magic-link-invalid", v)
}

// linkConfirm consumes the link (the POST from its confirm page) and
// resumes the login it belongs to, in whichever browser it was opened:
// consuming the pending link, once, is what lets another browser in.
func (h *Handler) linkConfirm(w http.ResponseWriter, r *http.Request) {
	b, ok := h.postedBrowser(w, r, "This page was open too long or cookies are blocked. Open the link from your email again.")
	if !ok {
		return
	}
	token := r.PostForm.Get("token")
	now := time.Now()
	u, ok := h.pendingLink(w, r, b, token, now)
	if !ok {
		return
	}
	l := u.Link
	if l.AuthSessionID == "" {
		h.confirmMinted(w, r, b, l, token, now)
		return
	}
	st := u.State
	if st == nil {
		h.fail(w, http.StatusGone, "Sign-in expired", "The sign-in this link belongs to has expired. Go back to the application and sign in again.", "")
		return
	}
	c := h.flowContext(r, st, url.Values{"token": {token}})
	out, err := h.Engine.Act(r.Context(), c, l.Execution)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	if out.Failed || !mayContinue(st, b, c) {
		// Nothing was consumed for this browser: it sees no page of the login.
		msg := out.Message
		if msg == "" {
			msg = "This link belongs to a sign-in that has moved on. Continue in the browser where you started it."
		}
		if !out.Failed { // a failed redeem has logged why already
			h.Links.Rejected(l, "not_consumed")
		}
		v := h.view("This link cannot be used")
		v.Message, v.CSRF, v.Data = msg, b.CSRF, invalidData{}
		h.Web.Page(w, http.StatusGone, "magic-link-invalid", v)
		return
	}
	if !out.Done {
		// More steps (a required action, another REQUIRED step): continue on the login page.
		if err := h.save(r.Context(), st, b.ID); err != nil {
			h.internal(w, r, err)
			return
		}
		http.Redirect(w, r, h.authenticateURL(st.Flow.ID), http.StatusSeeOther)
		return
	}
	h.respond(w, r, st, c, b, out, nil)
}

// confirmMinted redeems a link minted through the management API. It does
// not bypass the realm's browser flow: a new authentication session runs it
// with the magic-link step counted as succeeded, so any other REQUIRED step
// and any pending required action still runs.
func (h *Handler) confirmMinted(w http.ResponseWriter, r *http.Request, b browser, l *magiclink.Link, token string, now time.Time) {
	ctx := r.Context()
	flowName, err := h.Engine.FlowFor("browser")
	if err != nil {
		h.internal(w, r, err)
		return
	}
	exec, _, hasStep := h.Engine.FindAuthenticator(flowName, "magic-link")
	if l.Type == magiclink.TypeLogin && !hasStep {
		h.Links.Rejected(l, "no_magic_link_step")
		h.fail(w, http.StatusForbidden, "Cannot sign in", "Sign-in links are not enabled for this realm.", "")
		return
	}
	if _, err := h.Links.Consume(ctx, token, now); errors.Is(err, magiclink.ErrUnavailable) {
		u, err := h.inspectLink(ctx, b, token, now)
		if err != nil {
			h.internal(w, r, err)
			return
		}
		h.invalidLink(w, b, u, token, now)
		return
	} else if err != nil {
		h.internal(w, r, err)
		return
	}
	u, err := h.Store.UserByID(ctx, l.UserID)
	if err != nil || u.Email != l.Email || u.Disabled {
		h.Links.Rejected(l, "account_changed")
		h.fail(w, http.StatusForbidden, "Cannot sign in", "This link was sent to an address that no longer belongs to an active account.", "")
		return
	}
	if !u.EmailVerified {
		u.EmailVerified = true
		if err := h.Store.UpdateUser(ctx, u); err != nil {
			h.internal(w, r, err)
			return
		}
	}
	if l.Type == magiclink.TypeVerifyEmail {
		v := h.view("Email verified")
		v.Message = "Thank you: " + u.Email + " is verified. You can close this page."
		h.Web.Page(w, http.StatusOK, "info", v)
		return
	}
	st := &state{
		Flow: flows.Session{
			ID: randomString(), ClientID: l.ClientID, Flow: flowName, UserID: u.ID, MaxAge: -1,
			// The link names its user: an SSO session of someone else must not take over.
			Prompt: "login", RequestedAt: now.UTC().Truncate(time.Second),
		},
		Return: l.RedirectURI,
	}
	st.Flow.MarkSucceeded(exec)
	st.Flow.AddMethod("email")
	c := h.flowContext(r, st, nil)
	c.User = u
	out, err := h.Engine.Run(ctx, c)
	h.respond(w, r, st, c, b, out, err)
}

// linkResend mails a fresh link for the login a dead link belonged to, to
// the address stored on the account. A browser that does not own that login
// is told to check its email and sees none of the login's pages.
func (h *Handler) linkResend(w http.ResponseWriter, r *http.Request) {
	b, ok := h.postedBrowser(w, r, "Open the link from your email again.")
	if !ok {
		return
	}
	token := r.PostForm.Get("token")
	now := time.Now()
	u, err := h.inspectLink(r.Context(), b, token, now)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	switch {
	case u.Status == "pending":
		// The link still works: show its confirm page.
		http.Redirect(w, r, magiclink.LinkPath(h.Cfg.Realm)+"?token="+url.QueryEscape(token), http.StatusSeeOther)
		return
	case u.Link == nil || u.Link.AuthSessionID == "":
		h.fail(w, http.StatusGone, "Cannot send a new link", "Go back to the application and sign in again.", "")
		return
	case u.State == nil:
		h.fail(w, http.StatusGone, "Sign-in expired", "The sign-in this link belonged to has expired. Go back to the application and sign in again.", "")
		return
	case !u.canResend():
		h.invalidLink(w, b, u, token, now)
		return
	}
	st := u.State
	form := url.Values{"action": {"resend"}}
	if u.Link.Type == magiclink.TypeVerifyEmail {
		form = url.Values{}
	}
	c := h.flowContext(r, st, form)
	out, err := h.Engine.Act(r.Context(), c, u.Link.Execution)
	if u.Owned || err != nil {
		h.respond(w, r, st, c, b, out, err)
		return
	}
	// Not this browser's login: record the new send, keep the login bound
	// to its own browser, and show only the outcome of the send.
	if err := h.save(r.Context(), st, st.boundTo); err != nil {
		h.internal(w, r, err)
		return
	}
	v := h.view("Check your email")
	v.Message = resendOutcome(out, u.Link.Email)
	h.Web.Page(w, http.StatusOK, "info", v)
}

// resendOutcome says what became of a resend, without the login's pages.
func resendOutcome(out flows.Outcome, email string) string {
	switch d := out.Data.(type) {
	case magiclink.SentPage:
		switch {
		case d.RetryAfter != "":
			return d.RetryAfter
		case !d.Queued && d.ResendIn > 0:
			return fmt.Sprintf("A link was sent moments ago. No new email was sent; wait %d seconds before asking again.", d.ResendIn)
		}
	case magiclink.VerifyPage:
		if d.Error != "" {
			return d.Error
		}
	}
	return "We sent a new sign-in link to " + email + ". Open it to continue signing in."
}

// devMail shows captured mail when no SMTP server is configured.
func (h *Handler) devMail(w http.ResponseWriter, r *http.Request) {
	mails, err := h.Store.RecentMail(r.Context(), 20)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	for i := range mails {
		mails[i].Text, _ = h.Sealer.Open(mails[i].Text)
		mails[i].HTML = ""
	}
	v := h.view("Development mailbox")
	v.Data = mails
	h.Web.Page(w, http.StatusOK, "dev-mail", v)
}

// logout is RP-initiated logout. An id_token_hint that names this
// browser's SSO session (its sub and sid) ends it at once; any other
// request, a hint for someone else's session included, asks the user to
// confirm with a (CSRF-protected) form. It redirects only to a
// post-logout URI registered for the client.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	b := h.Cookies.Browser(w, r)
	clientID := r.Form.Get("client_id")
	redirect := r.Form.Get("post_logout_redirect_uri")
	confirmed := r.Method == http.MethodPost && b.ValidCSRF(r)
	ssoID := h.Cookies.SSOID(r)
	var hint oidc.Hint
	if raw := r.Form.Get("id_token_hint"); raw != "" {
		var err error
		hint, err = h.OIDC.IDTokenHint(r.Context(), raw)
		if err != nil {
			h.fail(w, http.StatusBadRequest, "Cannot sign out", "The application sent an invalid sign-out request (id_token_hint).", "")
			return
		}
		if clientID != "" && clientID != hint.ClientID {
			h.fail(w, http.StatusBadRequest, "Cannot sign out", "The sign-out request names two different applications.", "")
			return
		}
		clientID = hint.ClientID
		if !confirmed {
			matches, err := h.hintMatchesSSO(r.Context(), hint, ssoID)
			if err != nil {
				h.internal(w, r, err)
				return
			}
			confirmed = matches
		}
	}
	if redirect != "" && !h.OIDC.PostLogoutAllowed(clientID, redirect) {
		h.fail(w, http.StatusBadRequest, "Cannot sign out", "The application asked to return to an address that is not registered for it (post_logout_redirect_uri).", "")
		return
	}
	if !confirmed {
		v := h.view("Sign out")
		v.CSRF, v.Action = b.CSRF, h.prefix()+"/protocol/openid-connect/logout"
		params := map[string]string{}
		for _, k := range []string{"client_id", "post_logout_redirect_uri", "state"} {
			if val := r.Form.Get(k); val != "" {
				params[k] = val
			}
		}
		if params["client_id"] == "" && clientID != "" {
			params["client_id"] = clientID
		}
		v.Data = params
		h.Web.Page(w, http.StatusOK, "logout-confirm", v)
		return
	}
	if err := h.endSession(r.Context(), ssoID, hint); err != nil {
		h.internal(w, r, err)
		return
	}
	h.Cookies.ClearSSO(w, r)
	h.Cookies.RotateBrowser(w, r)
	h.Log.Info("logout", "event", "logout", "client_id", clientID)
	if redirect != "" {
		u, _ := url.Parse(redirect)
		if s := r.Form.Get("state"); s != "" {
			q := u.Query()
			q.Set("state", s)
			u.RawQuery = q.Encode()
		}
		http.Redirect(w, r, u.String(), http.StatusFound)
		return
	}
	v := h.view("Signed out")
	v.Message = "You are signed out."
	h.Web.Page(w, http.StatusOK, "info", v)
}

// endSession ends the browser's SSO session or, without a cookie (a server
// calling, as oauth2-proxy does), the session the hint names, as Keycloak
// does; and queues a back-channel logout token for every client that got
// tokens in it and asked for them, in the same transaction.
func (h *Handler) endSession(ctx context.Context, ssoID string, hint oidc.Hint) error {
	queued := false
	err := h.Store.InTx(ctx, func(ctx context.Context) error {
		var sso *store.SSOSession
		var err error
		switch {
		case ssoID != "":
			sso, err = h.Store.SSOSessionByID(ctx, ssoID, time.Now())
		case hint.SessionID != "":
			sso, err = h.Store.SSOSessionByRef(ctx, hint.SessionID)
			if err == nil && sso.UserID != hint.Subject {
				return nil // a hint naming someone else's session ends nothing
			}
		default:
			return nil
		}
		if errors.Is(err, store.ErrNotFound) {
			if ssoID != "" {
				return h.Store.DeleteSSOSession(ctx, ssoID) // expired or idle: drop it all the same
			}
			return nil
		}
		if err != nil {
			return err
		}
		if err := h.Store.DeleteSSOSession(ctx, sso.ID); err != nil {
			return err
		}
		ref := sessionRef(sso.ID)
		// The tokens issued in the session end with it, as with Keycloak:
		// an app in another tab cannot refresh past the sign-out.
		if err := h.Store.RevokeSession(ctx, ref); err != nil {
			return err
		}
		clients, err := h.Store.SessionClients(ctx, ref)
		if err != nil {
			return err
		}
		for _, id := range clients {
			cl, ok := h.Cfg.Client(id)
			if !ok || cl.BackchannelLogoutURL == "" {
				continue
			}
			token, err := h.OIDC.LogoutToken(ctx, id, sso.UserID, ref)
			if err != nil {
				return err
			}
			if err := h.Store.EnqueueMail(ctx, &store.OutboxMail{Kind: store.KindBackchannelLogout, To: cl.BackchannelLogoutURL,
				Subject: "back-channel logout " + id, Text: h.Sealer.Seal(token), Ref: ref[:min(len(ref), 36)]}); err != nil {
				return err
			}
			queued = true
		}
		return nil
	})
	if err == nil && queued && h.Wake != nil {
		h.Wake()
	}
	return err
}

// hintMatchesSSO reports whether an id_token_hint names this browser's SSO
// session: the same user and, when the hint has one, the same sid. Without
// an SSO session there is nothing to end, and nothing to ask.
func (h *Handler) hintMatchesSSO(ctx context.Context, hint oidc.Hint, ssoID string) (bool, error) {
	if ssoID == "" {
		return true, nil
	}
	sso, err := h.Store.SSOSessionByID(ctx, ssoID, time.Now())
	if errors.Is(err, store.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return sso.UserID == hint.Subject && (hint.SessionID == "" || hint.SessionID == sessionRef(ssoID)), nil
}
