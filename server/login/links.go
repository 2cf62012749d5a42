package login

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"latchkey/authenticators/magiclink"
	"latchkey/flows"
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

// linkPage shows the link's confirm page. GET and HEAD never consume the
// link: mail scanners fetch every link in a message.
func (h *Handler) linkPage(w http.ResponseWriter, r *http.Request) {
	b := h.Cookies.Browser(w, r)
	token := r.URL.Query().Get("token")
	now := time.Now()
	l := h.pendingLink(w, r, b, token, now)
	if l == nil {
		return
	}
	h.Links.Opened(r.Context(), l, r.UserAgent(), now)
	v := h.view("Sign in")
	v.CSRF, v.Action, v.Data = b.CSRF, magiclink.LinkPath(h.Cfg.Realm), confirmData{Email: l.Email, Token: token}
	h.Web.Page(w, http.StatusOK, "magic-link-confirm", v)
}

// pendingLink returns the token's link if it can still be used; otherwise
// it shows why not and returns nil.
func (h *Handler) pendingLink(w http.ResponseWriter, r *http.Request, b browser, token string, now time.Time) *magiclink.Link {
	l, err := h.Links.Inspect(r.Context(), token)
	if err != nil && !errors.Is(err, magiclink.ErrNotFound) {
		h.internal(w, r, err)
		return nil
	}
	if l == nil || l.Status(now) != "pending" {
		h.invalidLink(w, r, b, l, token, now)
		return nil
	}
	return l
}

// invalidLink says which of used, expired or revoked the link is, and
// offers a new link for the same login while that login is still open.
func (h *Handler) invalidLink(w http.ResponseWriter, r *http.Request, b browser, l *magiclink.Link, token string, now time.Time) {
	if l != nil {
		h.Links.Rejected(l, l.Status(now))
	} else {
		h.Links.Rejected(nil, "unknown")
	}
	v := h.view("This link cannot be used")
	v.Message, v.CSRF = magiclink.Explain(l, now), b.CSRF
	data := invalidData{ResendURL: magiclink.LinkPath(h.Cfg.Realm) + "/resend", Token: token}
	if l != nil && l.AuthSessionID != "" {
		if _, _, err := h.load(r.Context(), l.AuthSessionID); err == nil {
			data.CanResend = true
		}
	}
	v.Data = data
	h.Web.Page(w, http.StatusGone, "magic-link-invalid", v)
}

// linkConfirm consumes the link (the POST from its confirm page) and resumes
// the login it belongs to, in whichever browser it was opened.
func (h *Handler) linkConfirm(w http.ResponseWriter, r *http.Request) {
	b, ok := h.postedBrowser(w, r, "This page was open too long or cookies are blocked. Open the link from your email again.")
	if !ok {
		return
	}
	token := r.PostForm.Get("token")
	now := time.Now()
	l := h.pendingLink(w, r, b, token, now)
	if l == nil {
		return
	}
	if l.AuthSessionID == "" {
		h.confirmMinted(w, r, b, l, token, now)
		return
	}
	st, _, err := h.load(r.Context(), l.AuthSessionID)
	if err != nil {
		if errors.Is(err, errSessionGone) {
			restart := ""
			if st != nil {
				restart = h.restartURL(l.AuthSessionID)
			}
			h.fail(w, http.StatusGone, "Sign-in expired", "The sign-in this link belongs to has expired.", restart)
			return
		}
		h.internal(w, r, err)
		return
	}
	// The login continues in this browser (it may not be the one that asked).
	c := h.flowContext(r, st, url.Values{"token": {token}})
	out, err := h.Engine.Act(r.Context(), c, l.Execution)
	if err == nil && out.Failed {
		v := h.view("This link cannot be used")
		v.Message, v.CSRF, v.Data = out.Message, b.CSRF, invalidData{}
		h.Web.Page(w, http.StatusGone, "magic-link-invalid", v)
		return
	}
	if err == nil && !out.Done {
		// More steps (a required action, another REQUIRED step): continue on the login page.
		if err := h.save(r.Context(), st, b.ID); err != nil {
			h.internal(w, r, err)
			return
		}
		http.Redirect(w, r, h.authenticateURL(st.Flow.ID), http.StatusSeeOther)
		return
	}
	h.respond(w, r, st, c, b, out, err)
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
		l2, _ := h.Links.Inspect(ctx, token)
		h.invalidLink(w, r, b, l2, token, now)
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

// linkResend sends a fresh link for the login an unusable link belonged to.
func (h *Handler) linkResend(w http.ResponseWriter, r *http.Request) {
	b, ok := h.postedBrowser(w, r, "Open the link from your email again.")
	if !ok {
		return
	}
	l, err := h.Links.Inspect(r.Context(), r.PostForm.Get("token"))
	if err != nil {
		h.fail(w, http.StatusGone, "Cannot send a new link", "Go back to the application and sign in again.", "")
		return
	}
	st, _, err := h.load(r.Context(), l.AuthSessionID)
	if err != nil {
		h.fail(w, http.StatusGone, "Sign-in expired", "The sign-in this link belonged to has expired. Go back to the application and sign in again.", "")
		return
	}
	form := url.Values{"action": {"resend"}}
	if l.Type == magiclink.TypeVerifyEmail {
		form = url.Values{}
	}
	c := h.flowContext(r, st, form)
	out, err := h.Engine.Act(r.Context(), c, l.Execution)
	h.respond(w, r, st, c, b, out, err)
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

// logout is RP-initiated logout. With a valid id_token_hint it ends the
// session at once; otherwise the user confirms with a (CSRF-protected)
// form. It redirects only to a post-logout URI registered for the client.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	b := h.Cookies.Browser(w, r)
	clientID := r.Form.Get("client_id")
	redirect := r.Form.Get("post_logout_redirect_uri")
	confirmed := r.Method == http.MethodPost && b.ValidCSRF(r)
	if hint := r.Form.Get("id_token_hint"); hint != "" {
		aud, _, err := h.OIDC.IDTokenHint(r.Context(), hint)
		if err != nil {
			h.fail(w, http.StatusBadRequest, "Cannot sign out", "The application sent an invalid sign-out request (id_token_hint).", "")
			return
		}
		if clientID != "" && clientID != aud {
			h.fail(w, http.StatusBadRequest, "Cannot sign out", "The sign-out request names two different applications.", "")
			return
		}
		clientID, confirmed = aud, true
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
		v.Data = params
		h.Web.Page(w, http.StatusOK, "logout-confirm", v)
		return
	}
	if id := h.Cookies.SSOID(r); id != "" {
		if err := h.Store.DeleteSSOSession(r.Context(), id); err != nil {
			h.internal(w, r, err)
			return
		}
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
