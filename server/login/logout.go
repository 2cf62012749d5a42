package login

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"latchkey/flows"
	"latchkey/server/events"
	"latchkey/server/mail"
	"latchkey/server/oidc"
	"latchkey/server/store"
)

// Logout serves RP-initiated logout and ends SSO sessions with what hangs
// on them: their tokens, and the clients' back-channel logout.
type Logout struct {
	Site
	Store   LogoutStore
	OIDC    LogoutTokens
	Cookies *Cookies
	Sealer  *mail.Sealer // seals queued logout tokens, as the outbox keeps every body
	// Wake tells the outbox sender that logout tokens were queued.
	Wake func()
	// Events records LOGOUT; nil: none.
	Events EventRecorder
}

// LogoutTokens is the OIDC provider's side of a logout: the id_token_hint
// it issued, the client's registered return addresses, and the logout
// tokens for back-channel logout.
type LogoutTokens interface {
	IDTokenHint(ctx context.Context, raw string) (oidc.Hint, error)
	PostLogoutAllowed(clientID, uri string) bool
	LogoutToken(ctx context.Context, clientID, subject, sid string) (string, error)
}

// Routes registers the end-session endpoint (Keycloak's path).
func (h *Logout) Routes(mux *http.ServeMux) {
	p := h.prefix() + "/protocol/openid-connect/logout"
	mux.HandleFunc("GET "+p, h.logout)
	mux.HandleFunc("POST "+p, h.logout)
}

// logout is RP-initiated logout. An id_token_hint that names this
// browser's SSO session (its sub and sid) ends it at once; any other
// request, a hint for someone else's session included, asks the user to
// confirm with a (CSRF-protected) form. It redirects only to a
// post-logout URI registered for the client.
func (h *Logout) logout(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	b := h.Cookies.Browser(w, r)
	loc := h.locale(w, r, nil, nil)
	clientID := r.Form.Get("client_id")
	redirect := r.Form.Get("post_logout_redirect_uri")
	confirmed := r.Method == http.MethodPost && b.ValidCSRF(r)
	ssoID := h.Cookies.SSOID(r)
	var hint oidc.Hint
	if raw := r.Form.Get("id_token_hint"); raw != "" {
		var err error
		hint, err = h.OIDC.IDTokenHint(r.Context(), raw)
		if err != nil {
			h.fail(w, loc, http.StatusBadRequest, flows.M("logout.cannotTitle"), flows.M("logout.badHint"), "")
			return
		}
		if clientID != "" && clientID != hint.ClientID {
			h.fail(w, loc, http.StatusBadRequest, flows.M("logout.cannotTitle"), flows.M("logout.twoClients"), "")
			return
		}
		clientID = hint.ClientID
		if !confirmed {
			matches, err := h.hintMatchesSSO(r.Context(), hint, ssoID)
			if err != nil {
				h.internal(w, r, loc, err)
				return
			}
			confirmed = matches
		}
	}
	if redirect != "" && !h.OIDC.PostLogoutAllowed(clientID, redirect) {
		h.fail(w, loc, http.StatusBadRequest, flows.M("logout.cannotTitle"), flows.M("logout.unregisteredRedirect"), "")
		return
	}
	if !confirmed {
		v := h.view(loc, flows.M("logout.title"))
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
		h.internal(w, r, loc, err)
		return
	}
	h.Cookies.ClearSSO(w, r)
	h.Cookies.RotateBrowser(w, r)
	h.Log.InfoContext(r.Context(), "logout", "event", "logout", "client_id", clientID)
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
	v := h.view(loc, flows.M("logout.doneTitle"))
	v.Message = h.text(loc, flows.M("logout.done"))
	h.Web.Page(w, http.StatusOK, "info", v)
}

// endSession ends the browser's SSO session or, without a cookie (a server
// calling, as oauth2-proxy does), the session the hint names, as Keycloak
// does; and queues a back-channel logout token for every client that got
// tokens in it and asked for them, in the same transaction.
func (h *Logout) endSession(ctx context.Context, ssoID string, hint oidc.Hint) error {
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
		if h.Events != nil {
			if err := h.Events.Record(ctx, events.Event{Type: "LOGOUT", UserID: sso.UserID, SessionID: ref}); err != nil {
				return err
			}
		}
		// The tokens issued in the session end with it, as with Keycloak:
		// an app in another tab cannot refresh past the sign-out.
		if err := h.Store.RevokeSession(ctx, sso.UserID, ref); err != nil {
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

// EndUserSessions ends every SSO session of a user as a logout ends one
// (LOGOUT events, the session's tokens revoked, back-channel logout tokens
// queued for its clients), then revokes every other token of the user: an
// admin's logout, disable or delete. In the caller's transaction if any.
func (h *Logout) EndUserSessions(ctx context.Context, userID string) error {
	return h.Store.InTx(ctx, func(ctx context.Context) error {
		sessions, err := h.Store.SSOSessionsOf(ctx, userID, time.Now())
		if err != nil {
			return err
		}
		for _, sso := range sessions {
			if err := h.endSession(ctx, sso.ID, oidc.Hint{}); err != nil {
				return err
			}
		}
		return h.Store.EndUserSessions(ctx, userID)
	})
}

// hintMatchesSSO reports whether an id_token_hint names this browser's SSO
// session: the same user and, when the hint has one, the same sid. Without
// an SSO session there is nothing to end, and nothing to ask.
func (h *Logout) hintMatchesSSO(ctx context.Context, hint oidc.Hint, ssoID string) (bool, error) {
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
