package login

import (
	"log/slog"
	"net/http"
	"strings"

	"latchkey/flows"
	"latchkey/server/config"
	"latchkey/server/web"
)

// Site is what every page of the hosted login needs: the realm, the
// renderer and the log. The login, logout and mailbox handlers embed it.
type Site struct {
	Cfg *config.Config
	Web *web.Renderer
	Log *slog.Logger
}

func (s Site) prefix() string { return "/realms/" + s.Cfg.Realm }

// locale picks the language of a page, first match wins: kc_locale in the
// request (the switcher's links, or an app's parameter; remembered in a
// cookie and in the login), the login's own (ui_locales at its start), the
// switcher's cookie, the user's locale, Accept-Language, the default.
// st and u may be nil.
func (s Site) locale(w http.ResponseWriter, r *http.Request, st *state, u *flows.User) string {
	cat := s.Web.Catalog()
	if l, ok := cat.Chosen(w, r, s.prefix()+"/", strings.HasPrefix(s.Cfg.Server.PublicURL, "https:")); ok {
		if st != nil {
			st.Locale, st.ChosenLocale = l, true
		}
		return l
	}
	if st != nil && st.Locale != "" {
		return cat.Locale(st.Locale)
	}
	user := ""
	if u != nil {
		user = u.Locale
	}
	return cat.Preferred(r, user)
}

// text renders a message in a locale.
func (s Site) text(locale string, m flows.Msg) string { return s.Web.Text(locale, m) }

func (s Site) view(locale string, title flows.Msg) web.View {
	return web.View{Title: s.text(locale, title), RealmName: s.Cfg.DisplayName(), StaticURL: s.prefix() + "/static", Locale: locale,
		Brand: s.brand("", nil)}
}

// Brand is the look of the pages of a client that are not login steps
// (the account page).
func (s Site) Brand(clientID string) web.Brand { return s.brand(clientID, nil) }

// brand is the look of a page of a client's login (clientID may be
// empty), with a minted link's settings on top.
func (s Site) brand(clientID string, settings map[string]string) web.Brand {
	b, app, home := s.Cfg.Branding, "", ""
	if c, ok := s.Cfg.Client(clientID); ok {
		b, app, home = b.Over(c.Branding), c.Name, c.BaseURL
	}
	asset := func(u string) string {
		if u == "" || strings.Contains(u, "://") {
			return u
		}
		return s.prefix() + "/static/" + u
	}
	name := b.DisplayName
	if name == "" {
		name = s.Cfg.Realm
	}
	out := web.Brand{
		Name: name, AppName: app, AppURL: home, AccountURL: s.prefix() + "/account", LogoURL: asset(b.LogoURL), FaviconURL: asset(b.FaviconURL), HeaderImageURL: asset(b.HeaderImageURL),
		CustomCSSURL: asset(b.CustomCSS), PrimaryColor: b.PrimaryColor, BackgroundColor: b.BackgroundColor, TextColor: b.TextColor,
		FontFamily: b.FontFamily, Title: b.Title, Description: b.Description, SupportEmail: b.SupportEmail,
		PrivacyURL: asset(b.PrivacyURL), TermsURL: asset(b.TermsURL),
	}
	for _, l := range b.HelperLinks {
		out.HelperLinks = append(out.HelperLinks, web.HelperLink{Label: l.Label, URL: asset(l.URL)})
	}
	return out.WithSettings(settings)
}

// MailBrand is the brand of a client's mails, as the mail templates see it
// (.Brand.Name, .Brand.LogoURL, ...): URLs absolute, for mail clients.
func (s Site) MailBrand(clientID string, settings map[string]string) map[string]string {
	b := s.brand(clientID, settings)
	abs := func(u string) string {
		if strings.HasPrefix(u, "/") {
			return s.Cfg.Server.PublicURL + u
		}
		return u
	}
	return map[string]string{"Name": b.Name, "AppName": b.AppName, "LogoURL": abs(b.LogoURL), "HeaderImageURL": abs(b.HeaderImageURL),
		"PrimaryColor": b.PrimaryColor, "BackgroundColor": b.BackgroundColor, "TextColor": b.TextColor, "FontFamily": b.FontFamily,
		"SupportEmail": b.SupportEmail}
}

// fail shows an error page; restart, when set, offers "start again".
func (s Site) fail(w http.ResponseWriter, locale string, status int, title, msg flows.Msg, restart string) {
	v := s.view(locale, title)
	v.Message, v.RestartURL = s.text(locale, msg), restart
	s.Web.Page(w, status, "error", v)
}

func (s Site) internal(w http.ResponseWriter, r *http.Request, locale string, err error) {
	s.Log.ErrorContext(r.Context(), "login request failed", "path", r.URL.Path, "err", err)
	s.fail(w, locale, http.StatusInternalServerError, flows.M("page.failedTitle"), flows.M("page.failed"), "")
}

// NotFound answers any address nothing else serves with a page in the
// visitor's language, not the mux's plain text.
func (s Site) NotFound(w http.ResponseWriter, r *http.Request) {
	loc := s.locale(w, r, nil, nil)
	v := s.view(loc, flows.M("page.notFoundTitle"))
	v.Message = s.text(loc, flows.M("page.notFound"))
	s.Web.Page(w, http.StatusNotFound, "error", v)
}
