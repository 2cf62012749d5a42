package observe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"time"
)

// RequestInfo is what every part of a request's handling may know of it.
type RequestInfo struct {
	ID       string // the request id: X-Request-Id from a proxy, or made here
	ClientIP string
}

type requestKey struct{}

// Request returns the request's info (zero outside a request).
func Request(ctx context.Context) RequestInfo {
	ri, _ := ctx.Value(requestKey{}).(RequestInfo)
	return ri
}

// WithRequest returns ctx carrying ri.
func WithRequest(ctx context.Context, ri RequestInfo) context.Context {
	return context.WithValue(ctx, requestKey{}, ri)
}

// requestID accepts a proxy's id only if it is short and plain, so a
// client cannot forge log lines through it.
var requestID = regexp.MustCompile(`^[A-Za-z0-9._-]{8,64}$`)

// Requests gives each request an id (the X-Request-Id header, kept from a
// proxy or made here) and its client address in its context, and writes one
// access log line per request: method, route pattern, status, duration.
// The path's query is never logged (magic-link tokens travel there).
func Requests(log *slog.Logger, clientIP func(*http.Request) string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if !requestID.MatchString(id) {
			b := make([]byte, 8)
			_, _ = rand.Read(b)
			id = hex.EncodeToString(b)
		}
		w.Header().Set("X-Request-Id", id)
		ri := RequestInfo{ID: id, ClientIP: clientIP(r)}
		r = r.WithContext(WithRequest(r.Context(), ri))
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		log.LogAttrs(r.Context(), slog.LevelInfo, "request", slog.String("event", "access"), slog.String("method", r.Method),
			slog.String("route", route), slog.String("path", r.URL.Path), slog.Int("status", sw.status),
			slog.Duration("duration", time.Since(start)), slog.String("client_ip", ri.ClientIP))
	})
}

// LogHandler adds the request id of the context to every record logged
// with one (InfoContext and friends), and logs errors by their message
// above DEBUG: slog's text handler prints an error with %+v, which for
// fosite's errors (github.com/pkg/errors) is a stack trace with the build
// machine's paths.
type LogHandler struct{ slog.Handler }

// NewLogger builds the server's logger: format "json" or "text".
func NewLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(LogHandler{h})
}

// Handle implements slog.Handler.
func (h LogHandler) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level > slog.LevelDebug {
		rec = plainErrors(rec)
	}
	if id := Request(ctx).ID; id != "" {
		rec.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, rec)
}

// plainErrors returns rec with every error attribute as its message.
func plainErrors(rec slog.Record) slog.Record {
	out := slog.NewRecord(rec.Time, rec.Level, rec.Message, rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		if a.Value.Kind() == slog.KindAny {
			if err, ok := a.Value.Any().(error); ok {
				a = slog.String(a.Key, err.Error())
			}
		}
		out.AddAttrs(a)
		return true
	})
	return out
}

// WithAttrs implements slog.Handler.
func (h LogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return LogHandler{h.Handler.WithAttrs(as)}
}

// WithGroup implements slog.Handler.
func (h LogHandler) WithGroup(name string) slog.Handler { return LogHandler{h.Handler.WithGroup(name)} }
