package server

import (
	"net/http"

	"github.com/rs/cors"

	"latchkey/server/config"
)

// withCORS lets browsers call the endpoints an app's own pages use
// (keycloak-js: token, userinfo, JWKS, revocation, introspection, logout,
// account, discovery) from the web origins of the realm's clients
// (clients[].webOrigins, "+" for the redirect URIs' origins), with
// credentials, answering preflights. Other paths are not CORS-enabled.
// rs/cors implements the CORS protocol (preflight, Vary, credentials).
func withCORS(cfg *config.Config, paths []string, next http.Handler) http.Handler {
	allowed := map[string]bool{}
	for _, c := range cfg.Clients {
		for _, o := range c.Origins() {
			allowed[o] = true
		}
	}
	c := cors.New(cors.Options{
		AllowOriginFunc:  func(origin string) bool { return allowed[origin] },
		AllowedMethods:   []string{http.MethodGet, http.MethodPost},
		AllowedHeaders:   []string{"Authorization", "Content-Type", "Accept"},
		AllowCredentials: true,
		MaxAge:           3600,
	})
	enabled := map[string]bool{}
	for _, p := range paths {
		enabled[p] = true
	}
	wrapped := c.Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if enabled[r.URL.Path] {
			wrapped.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
