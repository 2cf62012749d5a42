package mail

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"latchkey/server/store"
)

// BackchannelLogout delivers logout tokens (OpenID Back-Channel Logout 1.0):
// a form POST of logout_token to the client's backchannelLogoutUrl. 2xx is
// delivered; 400 means the client refused the token (permanent); anything
// else, and connection errors, are retried like mail.
type BackchannelLogout struct {
	Client *http.Client
}

func (b BackchannelLogout) Send(ctx context.Context, m *store.OutboxMail) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.To, strings.NewReader(url.Values{"logout_token": {m.Text}}.Encode()))
	if err != nil {
		return &PermanentError{fmt.Errorf("back-channel logout request: %w", err)}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return post(b.Client, req, "back-channel logout to "+m.To, http.StatusBadRequest)
}

// post sends req and classifies the answer for the outbox: 2xx is
// delivered, the permanent status stops retries, anything else (and a
// connection error) is retried.
func post(client *http.Client, req *http.Request, what string, permanent int) error {
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == permanent:
		return &PermanentError{fmt.Errorf("%s: refused (%d)", what, resp.StatusCode)}
	}
	return fmt.Errorf("%s: status %d", what, resp.StatusCode)
}
