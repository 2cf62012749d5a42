package login

import (
	"context"
	"net/http"

	"latchkey/flows"
	"latchkey/server/mail"
	"latchkey/server/store"
)

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
	for i := range mails {
		mails[i].Text, _ = h.Sealer.Open(mails[i].Text)
		mails[i].HTML = ""
	}
	v := h.view(loc, flows.M("devmail.title"))
	v.SwitchURL = r.URL.RequestURI()
	v.Data = mails
	h.Web.Page(w, http.StatusOK, "dev-mail", v)
}
