package admin

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"latchkey/server/config"
)

// API serves the management endpoints under /realms/{realm}/magic-links.
type API struct {
	Service *Service
	Log     *slog.Logger
	keys    []apiKey
}

type apiKey struct {
	name string
	hash [32]byte
	ops  []string
}

// NewAPI keeps only hashes of the configured keys.
func NewAPI(svc *Service, keys []config.APIKey, log *slog.Logger) *API {
	a := &API{Service: svc, Log: log}
	for _, k := range keys {
		a.keys = append(a.keys, apiKey{name: k.Name, hash: sha256.Sum256([]byte(k.Key)), ops: k.Operations})
	}
	return a
}

// Routes registers the endpoints.
func (a *API) Routes(mux *http.ServeMux, realm string) {
	p := "/realms/" + realm + "/magic-links"
	mux.HandleFunc("POST "+p, a.guard("magic-links:create", a.create))
	mux.HandleFunc("GET "+p, a.guard("magic-links:read", a.list))
	mux.HandleFunc("GET "+p+"/{id}", a.guard("magic-links:read", a.get))
	mux.HandleFunc("DELETE "+p+"/{id}", a.guard("magic-links:revoke", a.revoke))
}

// authenticate finds the key in the Authorization header ("Bearer KEY").
// Every configured key is compared, in constant time, so the time taken
// does not depend on which key (if any) matched.
func (a *API) authenticate(r *http.Request) (*apiKey, bool) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || raw == "" {
		return nil, false
	}
	sum := sha256.Sum256([]byte(raw))
	var found *apiKey
	for i := range a.keys {
		if subtle.ConstantTimeCompare(sum[:], a.keys[i].hash[:]) == 1 {
			found = &a.keys[i]
		}
	}
	return found, found != nil
}

func (a *API) guard(op string, h func(w http.ResponseWriter, r *http.Request, key string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		k, ok := a.authenticate(r)
		if !ok {
			a.Log.Warn("management API: unauthenticated request", "event", "api_unauthorized", "path", r.URL.Path, "client_ip", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="latchkey"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized"})
			return
		}
		if !slices.Contains(k.ops, op) {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "forbidden", "message": "this API key may not use " + op})
			return
		}
		h(w, r, k.name)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var fe *FieldError
	switch {
	case errors.As(err, &fe):
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "field": fe.Field, "message": fe.Message})
	case errors.Is(err, ErrNotFound):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not_found"})
	case errors.Is(err, ErrNotPending):
		writeJSON(w, http.StatusConflict, map[string]string{"error": "conflict", "message": "the link is already used, expired or revoked"})
	default:
		a.Log.Error("management API", "path", r.URL.Path, "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
	}
}

func (a *API) create(w http.ResponseWriter, r *http.Request, key string) {
	body, err := io.ReadAll(r.Body) // bounded by httplimit
	if err != nil {
		a.fail(w, r, bad("", "unreadable body"))
		return
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req CreateRequest
	if err := dec.Decode(&req); err != nil {
		a.fail(w, r, bad(jsonField(err), "%s", jsonProblem(err)))
		return
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		a.fail(w, r, bad("", "the body must hold one JSON object and nothing after it"))
		return
	}
	res, err := a.Service.Create(r.Context(), req, time.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.Log.Info("magic link minted", "event", "link_minted", "link_id", res.ID, "api_key", key, "client_id", req.ClientID, "sent", res.Sent)
	writeJSON(w, http.StatusCreated, res)
}

// jsonField names the field a decoding error is about.
func jsonField(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return te.Field
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return strings.Trim(f, `"`)
	}
	return ""
}

func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &te):
		return "must be a " + te.Type.String()
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return "unknown field"
	}
	return "the body must be a JSON object"
}

func (a *API) list(w http.ResponseWriter, r *http.Request, _ string) {
	q := r.URL.Query()
	req := ListRequest{UserID: q.Get("userId"), Email: q.Get("email"), Status: q.Get("status")}
	for field, dst := range map[string]*int{"limit": &req.Limit, "offset": &req.Offset} {
		if v := q.Get(field); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				a.fail(w, r, bad(field, "must be a whole number"))
				return
			}
			*dst = n
		}
	}
	res, err := a.Service.List(r.Context(), req, time.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (a *API) get(w http.ResponseWriter, r *http.Request, _ string) {
	l, err := a.Service.Get(r.Context(), r.PathValue("id"), time.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, l)
}

func (a *API) revoke(w http.ResponseWriter, r *http.Request, key string) {
	if err := a.Service.Revoke(r.Context(), r.PathValue("id"), time.Now()); err != nil {
		a.fail(w, r, err)
		return
	}
	a.Log.Info("magic link revoked", "event", "link_revoked", "link_id", r.PathValue("id"), "api_key", key)
	w.WriteHeader(http.StatusNoContent)
}
