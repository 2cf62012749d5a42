package login

import (
	"context"
	"net/http"
	"regexp"

	"latchkey/flows"
	"latchkey/server/mail"
	"latchkey/server/store"
)

var firstURL = regexp.MustCompile(`https?://[^\s<>"]+`)

// DevMailbox shows captured mail when no SMTP server is configured.
type DevMailbox struct {
	Site
	Store interface {
		RecentMail(ctx context.Context, limit int) ([]store.OutboxMail, error)
	}
	Sealer *mail.Sealer // opens the outbox's sealed bodies
}

// Routes registers the mailbox page.
func (h *DevMailbox) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+h.prefix()+"/dev/mail", h.show)
}

func (h *DevMailbox) show(w http.ResponseWriter, r *http.Request) {
	loc := h.locale(w, r, nil, nil)
	mails, err := h.Store.RecentMail(r.Context(), 20)
	if err != nil {
		h.internal(w, r, loc, err)
		return
	}
	type shown struct {
		store.OutboxMail
		Link string // the first address in the text, clickable
	}
	out := make([]shown, len(mails))
	for i, m := range mails {
		m.Text, _ = h.Sealer.Open(m.Text)
		m.HTML = ""
		out[i] = shown{OutboxMail: m, Link: firstURL.FindString(m.Text)}
	}
	v := h.view(loc, flows.M("devmail.title"))
	v.SwitchURL = r.URL.RequestURI()
	v.Data = out
	h.Web.Page(w, http.StatusOK, "dev-mail", v)
}
