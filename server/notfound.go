package server

import (
	"net/http"
)

// withNotFoundPage shows page instead of the mux's plain-text "404 page
// not found" for addresses nothing serves (any other realm, /). A 404 a
// handler writes itself (JSON, a page) passes untouched, and so do 405s.
func withNotFoundPage(page http.HandlerFunc, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nf := &notFoundCatcher{ResponseWriter: w}
		next.ServeHTTP(nf, r)
		if nf.caught {
			w.Header().Del("X-Content-Type-Options")
			page(w, r)
		}
	})
}

// notFoundCatcher swallows the mux's own 404: a plain-text one.
type notFoundCatcher struct {
	http.ResponseWriter
	caught, wrote bool
}

func (c *notFoundCatcher) WriteHeader(code int) {
	if !c.wrote && code == http.StatusNotFound && c.Header().Get("Content-Type") == "text/plain; charset=utf-8" {
		c.caught = true
		c.Header().Del("Content-Type")
		return
	}
	c.wrote = true
	c.ResponseWriter.WriteHeader(code)
}

func (c *notFoundCatcher) Write(b []byte) (int, error) {
	if c.caught {
		return len(b), nil
	}
	c.wrote = true
	return c.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (flushes).
func (c *notFoundCatcher) Unwrap() http.ResponseWriter { return c.ResponseWriter }
