package admin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"latchkey/server/config"
)

// API serves the management endpoints: magic links under
// /realms/{realm}/magic-links, and Keycloak's admin REST paths under
// /admin/realms/{realm} (users, events).
type API struct {
	Service *Service
	Users   *Users
	Events  EventReader
	// Audit records the admin events of changes; nil: none.
	Audit AdminRecorder
	// Tokens checks service-account bearer tokens; nil: API keys only.
	Tokens ServiceAccounts
	Log    *slog.Logger
	keys   []apiKey
}

// ServiceAccounts checks the bearer access token of a service-account
// client and returns the client with its roles of rolesOf's client.
type ServiceAccounts interface {
	ServiceAccount(ctx context.Context, token, rolesOf string) (clientID string, roles []string, err error)
}

type apiKey struct {
	name string
	hash [32]byte
	ops  []string
}

// caller is who sent a request: an API key or a service account, and the
// operations it may use.
type caller struct {
	name string
	ops  []string
}

func (c caller) may(op string) bool { return slices.Contains(c.ops, op) }

// The operations of the API.
const (
	OpLinksCreate = "magic-links:create"
	OpLinksRead   = "magic-links:read"
	OpLinksRevoke = "magic-links:revoke"
	OpUsersRead   = "users:read"
	OpUsersWrite  = "users:write"
	OpEventsRead  = "events:read"
)

// roleOps are the operations Keycloak's realm-management roles grant.
var roleOps = map[string][]string{
	"view-users":   {OpUsersRead},
	"query-users":  {OpUsersRead},
	"manage-users": {OpUsersRead, OpUsersWrite},
	"view-events":  {OpEventsRead},
	"realm-admin":  {OpLinksCreate, OpLinksRead, OpLinksRevoke, OpUsersRead, OpUsersWrite, OpEventsRead},
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
	mux.HandleFunc("POST "+p, a.guard(OpLinksCreate, a.create))
	mux.HandleFunc("GET "+p, a.guard(OpLinksRead, a.list))
	mux.HandleFunc("GET "+p+"/{id}", a.guard(OpLinksRead, a.get))
	mux.HandleFunc("DELETE "+p+"/{id}", a.guard(OpLinksRevoke, a.revoke))
	if a.Users != nil {
		a.userRoutes(mux, "/admin/realms/"+realm)
	}
	if a.Events != nil {
		a.eventRoutes(mux, "/admin/realms/"+realm)
	}
}

// authenticate finds the caller of "Authorization: Bearer X": an API key
// (every configured key is compared, in constant time, so the time taken
// does not depend on which key matched), else a service account's access
// token.
func (a *API) authenticate(r *http.Request) (caller, bool) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || raw == "" {
		return caller{}, false
	}
	sum := sha256.Sum256([]byte(raw))
	var found *apiKey
	for i := range a.keys {
		if subtle.ConstantTimeCompare(sum[:], a.keys[i].hash[:]) == 1 {
			found = &a.keys[i]
		}
	}
	if found != nil {
		return caller{name: "api-key:" + found.name, ops: found.ops}, true
	}
	if a.Tokens == nil {
		return caller{}, false
	}
	client, roles, err := a.Tokens.ServiceAccount(r.Context(), raw, config.RealmManagementClient)
	if err != nil {
		a.Log.DebugContext(r.Context(), "management API: bearer token refused", "err", err)
		return caller{}, false
	}
	c := caller{name: "service-account:" + client}
	for _, role := range roles {
		for _, op := range roleOps[role] {
			if !c.may(op) {
				c.ops = append(c.ops, op)
			}
		}
	}
	return c, true
}

func (a *API) guard(op string, h func(w http.ResponseWriter, r *http.Request, who caller)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		c, ok := a.authenticate(r)
		if !ok {
			a.Log.WarnContext(r.Context(), "management API: unauthenticated request", "event", "api_unauthorized", "path", r.URL.Path, "client_ip", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="latchkey"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized"})
			return
		}
		if !c.may(op) {
			a.Log.WarnContext(r.Context(), "management API: operation not allowed", "event", "api_forbidden", "caller", c.name, "operation", op, "path", r.URL.Path)
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "forbidden", "message": c.name + " may not use " + op})
			return
		}
		h(w, r, c)
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
		// message is the links API's name, errorMessage Keycloak's.
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "field": fe.Field, "message": fe.Message, "errorMessage": fe.Field + ": " + fe.Message})
	case errors.Is(err, ErrNotFound):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not_found"})
	case errors.Is(err, ErrNoUser):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not_found", "errorMessage": ErrNoUser.Error()})
	case errors.Is(err, ErrConflict):
		writeJSON(w, http.StatusConflict, map[string]string{"error": "conflict", "errorMessage": ErrConflict.Error()})
	case errors.Is(err, ErrNotPending):
		writeJSON(w, http.StatusConflict, map[string]string{"error": "conflict", "message": "the link is already used, expired or revoked"})
	default:
		a.Log.ErrorContext(r.Context(), "management API", "path", r.URL.Path, "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
	}
}

func (a *API) create(w http.ResponseWriter, r *http.Request, who caller) {
	var req CreateRequest
	if err := decodeBody(r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	res, err := a.Service.Create(r.Context(), req, time.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.Log.InfoContext(r.Context(), "magic link minted", "event", "link_minted", "link_id", res.ID, "caller", who.name, "client_id", req.ClientID, "sent", res.Sent)
	writeJSON(w, http.StatusCreated, res)
}

// decodeBody reads one JSON value into v, refusing unknown fields and
// anything after the value.
func decodeBody(r *http.Request, v any) error {
	body, err := io.ReadAll(r.Body) // bounded by httplimit
	if err != nil {
		return bad("", "unreadable body")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bad(jsonField(err), "%s", jsonProblem(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return bad("", "the body must hold one JSON value and nothing after it")
	}
	return nil
}

// queryInts reads whole-number query parameters into dsts; an absent one
// leaves its destination as it is.
func queryInts(q url.Values, dsts map[string]*int) error {
	for name, dst := range dsts {
		if v := q.Get(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return bad(name, "must be a whole number")
			}
			*dst = n
		}
	}
	return nil
}

// queryBool reads an optional true/false query parameter (nil: absent).
func queryBool(q url.Values, name string) (*bool, error) {
	v := q.Get(name)
	if v == "" {
		return nil, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return nil, bad(name, "must be true or false")
	}
	return &b, nil
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

func (a *API) list(w http.ResponseWriter, r *http.Request, _ caller) {
	q := r.URL.Query()
	req := ListRequest{UserID: q.Get("userId"), Email: q.Get("email"), Status: q.Get("status")}
	if err := queryInts(q, map[string]*int{"limit": &req.Limit, "offset": &req.Offset}); err != nil {
		a.fail(w, r, err)
		return
	}
	res, err := a.Service.List(r.Context(), req, time.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (a *API) get(w http.ResponseWriter, r *http.Request, _ caller) {
	l, err := a.Service.Get(r.Context(), r.PathValue("id"), time.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, l)
}

func (a *API) revoke(w http.ResponseWriter, r *http.Request, who caller) {
	if err := a.Service.Revoke(r.Context(), r.PathValue("id"), time.Now()); err != nil {
		a.fail(w, r, err)
		return
	}
	a.Log.InfoContext(r.Context(), "magic link revoked", "event", "link_revoked", "link_id", r.PathValue("id"), "caller", who.name)
	w.WriteHeader(http.StatusNoContent)
}
