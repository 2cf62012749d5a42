package mail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"latchkey/server/store"
)

// Webhooks delivers events to webhooks, signed per the Standard Webhooks
// spec by its reference library: webhook-id (the event id, the same on
// every retry, for the receiver to deduplicate), webhook-timestamp (this
// attempt's, so that a retry after an outage still passes the receiver's
// tolerance) and webhook-signature. 2xx is delivered; 410 Gone stops;
// anything else is retried with the outbox's backoff.
type Webhooks struct {
	Client *http.Client
	// Secret returns the secret of the webhook at url in the running
	// configuration; false: the webhook was removed (nothing is sent).
	Secret func(url string) (string, bool)
}

// Send implements Transport.
func (wh Webhooks) Send(ctx context.Context, m *store.OutboxMail) error {
	secret, ok := wh.Secret(m.To)
	if !ok {
		return &PermanentError{errors.New("webhook no longer configured: " + m.To)}
	}
	signer, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return &PermanentError{fmt.Errorf("webhook secret: %w", err)}
	}
	body := []byte(m.Text)
	now := time.Now()
	sig, err := signer.Sign(m.Ref, now, body)
	if err != nil {
		return &PermanentError{fmt.Errorf("sign webhook: %w", err)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.To, bytes.NewReader(body))
	if err != nil {
		return &PermanentError{fmt.Errorf("webhook request: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", m.Ref)
	req.Header.Set("webhook-timestamp", fmt.Sprint(now.Unix()))
	req.Header.Set("webhook-signature", sig)
	return post(wh.Client, req, "webhook "+m.To, http.StatusGone)
}
