package login

import "net/http"

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
