package observe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ory/fosite"
	pkgerrors "github.com/pkg/errors"
)

// A failing check turns readiness DOWN with 503, names the check, and
// logs its error; liveness stays UP.
func TestHealthReportsAFailingCheck(t *testing.T) {
	var logs bytes.Buffer
	h := Health(slog.New(slog.NewTextHandler(&logs, nil)),
		Check{Name: "database", Run: func(context.Context) error { return nil }},
		Check{Name: "mail sender", Run: func(context.Context) error { return errors.New("not running") }})
	get := func(path string) (int, map[string]any) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		var body map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatalf("%s: %v: %s", path, err, w.Body)
		}
		return w.Code, body
	}
	if code, body := get("/health/live"); code != http.StatusOK || body["status"] != "UP" {
		t.Fatalf("live: %d %v", code, body)
	}
	code, body := get("/health/ready")
	checks, _ := body["checks"].([]any)
	if code != http.StatusServiceUnavailable || body["status"] != "DOWN" || len(checks) != 2 ||
		checks[1].(map[string]any)["status"] != "DOWN" || checks[0].(map[string]any)["status"] != "UP" {
		t.Fatalf("ready: %d %v", code, body)
	}
	if !strings.Contains(logs.String(), `check="mail sender" err="not running"`) {
		t.Fatalf("log: %s", logs.String())
	}
}

// Above DEBUG an error is logged by its message, never as a stack trace
// (fosite's errors print one with %+v); a request's id joins its lines.
func TestLogsCarryRequestIDAndNoStackTraces(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		log := NewLogger(&buf, format, slog.LevelInfo)
		ctx := WithRequest(context.Background(), RequestInfo{ID: "req-0123456789"})
		// fosite wraps its errors like this (errorsx.WithStack).
		log.ErrorContext(ctx, "token request refused", "err", pkgerrors.WithStack(fosite.ErrServerError.WithWrap(errors.New("database down"))))
		out := buf.String()
		if strings.Contains(out, ".go:") || !strings.Contains(out, "req-0123456789") || !strings.Contains(out, "server_error") {
			t.Errorf("%s: %s", format, out)
		}
		if format == "json" && !json.Valid(bytes.TrimSpace(buf.Bytes())) {
			t.Errorf("not JSON: %s", out)
		}
	}
}
