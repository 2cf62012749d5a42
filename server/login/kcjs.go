package login

import (
	"html/template"
	"net/http"
	"slices"

	"latchkey/server/config"
)

// keycloak-js loads two pages of the realm in hidden iframes: the third-party
// cookie check (3p-cookies/step1.html, step2.html) and the session status
// iframe (login-status-iframe.html, which asks .../init whether the app's
// origin may use it). The pages carry no secret, so any page may frame them;
// their scripts are static files (no inline script under the CSP).

const (
	testCookie    = "KEYCLOAK_3P_COOKIE"
	sessionCookie = "LATCHKEY_SESSION" // the sid of the browser's SSO session, readable by the status iframe
)

var kcPage = template.Must(template.New("kc").Parse(`<!doctype html>
<html data-result="{{.Result}}" data-init="{{.Init}}"><head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body><script src="{{.Script}}"></script></body></html>
`))

type kcPageData struct{ Title, Result, Init, Script string }

// KeycloakJS serves the pages keycloak-js frames.
type KeycloakJS struct {
	Cfg     *config.Config
	Cookies *Cookies
}

func (h *KeycloakJS) prefix() string { return "/realms/" + h.Cfg.Realm }

// Routes registers the framed pages at Keycloak's paths.
func (h *KeycloakJS) Routes(mux *http.ServeMux) {
	oc := h.prefix() + "/protocol/openid-connect"
	mux.HandleFunc("GET "+oc+"/3p-cookies/step1.html", h.thirdPartyStep1)
	mux.HandleFunc("GET "+oc+"/3p-cookies/step2.html", h.thirdPartyStep2)
	mux.HandleFunc("GET "+oc+"/login-status-iframe.html", h.loginStatusIframe)
	mux.HandleFunc("GET "+oc+"/login-status-iframe.html/init", h.loginStatusInit)
}

func (h *KeycloakJS) writeKCPage(w http.ResponseWriter, d kcPageData) {
	w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; connect-src 'self'; base-uri 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = kcPage.Execute(w, d)
}

// thirdPartyStep1 sets a test cookie and goes on to step 2, which sees
// whether the browser sent it back inside a third-party frame.
func (h *KeycloakJS) thirdPartyStep1(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, h.Cookies.crossSite(testCookie, "supported", 60))
	http.Redirect(w, r, "step2.html", http.StatusFound)
}

func (h *KeycloakJS) thirdPartyStep2(w http.ResponseWriter, r *http.Request) {
	result := "unsupported"
	if _, err := r.Cookie(testCookie); err == nil {
		result = "supported"
		http.SetCookie(w, h.Cookies.crossSite(testCookie, "", -1))
	}
	h.writeKCPage(w, kcPageData{Title: "3rd-party cookie check", Result: result, Script: h.prefix() + "/static/kc-3p-cookies.js"})
}

func (h *KeycloakJS) loginStatusIframe(w http.ResponseWriter, r *http.Request) {
	h.writeKCPage(w, kcPageData{Title: "Session status", Init: h.prefix() + "/protocol/openid-connect/login-status-iframe.html/init",
		Script: h.prefix() + "/static/kc-login-status.js"})
}

// loginStatusInit answers 204 when origin is one of the client's web
// origins, so the iframe answers only the apps it serves (403 otherwise).
func (h *KeycloakJS) loginStatusInit(w http.ResponseWriter, r *http.Request) {
	c, ok := h.Cfg.Client(r.URL.Query().Get("client_id"))
	if !ok || !slices.Contains(c.Origins(), r.URL.Query().Get("origin")) {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
