package login

import (
	"context"
	"net/http"

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
