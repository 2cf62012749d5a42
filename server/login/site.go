package login

import (
	"log/slog"
	"net/http"

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

func (s Site) view(title string) web.View {
	return web.View{Title: title, RealmName: s.Cfg.DisplayName(), StaticURL: s.prefix() + "/static"}
}

// fail shows an error page; restart, when set, offers "start again".
func (s Site) fail(w http.ResponseWriter, status int, title, msg, restart string) {
	v := s.view(title)
	v.Message, v.RestartURL = msg, restart
	s.Web.Page(w, status, "error", v)
}

func (s Site) internal(w http.ResponseWriter, r *http.Request, err error) {
	s.Log.Error("login request failed", "path", r.URL.Path, "err", err)
	s.fail(w, http.StatusInternalServerError, "Something went wrong", "We could not complete this step. Please try again in a moment.", "")
}
