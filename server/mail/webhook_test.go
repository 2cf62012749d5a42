package mail

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"latchkey/server/store"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// A delivery is signed so the spec's library verifies it; 2xx is done,
// 410 Gone stops retries, other failures are retried, and a webhook no
// longer configured is not called.
func TestWebhookDeliveryOutcomes(t *testing.T) {
	status := http.StatusNoContent
	var verr error
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		wh, _ := standardwebhooks.NewWebhook(testSecret)
		verr = wh.Verify(body, r.Header)
		w.WriteHeader(status)
	}))
	defer srv.Close()
	wh := Webhooks{Secret: func(url string) (string, bool) { return testSecret, url == srv.URL }}
	m := &store.OutboxMail{Kind: store.KindWebhook, To: srv.URL, Text: `{"type":"LOGIN"}`, Ref: "evt-1"}
	var perm *PermanentError
	if err := wh.Send(context.Background(), m); err != nil || verr != nil {
		t.Fatalf("2xx: %v, signature: %v", err, verr)
	}
	status = http.StatusGone
	if err := wh.Send(context.Background(), m); !errors.As(err, &perm) {
		t.Errorf("410: %v, want a permanent error", err)
	}
	status = http.StatusServiceUnavailable
	if err := wh.Send(context.Background(), m); err == nil || errors.As(err, &perm) {
		t.Errorf("503: %v, want a retryable error", err)
	}
	gone := &store.OutboxMail{Kind: store.KindWebhook, To: srv.URL + "/removed", Text: "{}", Ref: "evt-2"}
	if err := wh.Send(context.Background(), gone); !errors.As(err, &perm) {
		t.Errorf("unconfigured webhook: %v, want a permanent error", err)
	}
}
