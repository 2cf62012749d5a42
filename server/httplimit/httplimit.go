// Package httplimit bounds what one HTTP request may cost the server: the
// size of its body and headers, and how long it may take to arrive.
package httplimit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Limits of one request. Forms and JSON bodies of an identity server are a
// few hundred bytes; 64 KB leaves room for any legitimate one.
const (
	MaxBodyBytes   = 64 << 10
	MaxHeaderBytes = 32 << 10 // cookies included

	ReadHeaderTimeout = 10 * time.Second  // slowloris: headers must arrive quickly
	ReadTimeout       = 30 * time.Second  // the whole request, body included
	WriteTimeout      = 60 * time.Second  // the response
	IdleTimeout       = 120 * time.Second // a kept-alive connection between requests
)

// Bodies reads each request's body up front, at most MaxBodyBytes of it,
// and answers 413 to a larger one before any handler parses it: a
// multipart form is otherwise buffered in memory (up to 32 MB) by
// net/http before the handler can check its CSRF token.
func Bodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxBodyBytes {
			tooLarge(w, r)
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
			switch {
			case err != nil:
				http.Error(w, "could not read the request body", http.StatusBadRequest)
				return
			case len(body) > MaxBodyBytes:
				tooLarge(w, r)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		next.ServeHTTP(w, r)
	})
}

func tooLarge(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Connection", "close")
	msg := fmt.Sprintf("request body too large: the limit is %d KB", MaxBodyBytes>>10)
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") || strings.HasSuffix(r.URL.Path, "/token") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_request", "error_description": msg})
		return
	}
	http.Error(w, msg, http.StatusRequestEntityTooLarge)
}

// Server returns an http.Server with every limit set.
func Server(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           Bodies(h),
		MaxHeaderBytes:    MaxHeaderBytes,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
