package admin

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"latchkey/server/config"
	"latchkey/server/store"
)

// userRoutes registers Keycloak's users endpoints under prefix
// (/admin/realms/{realm}). Keycloak's admin client writes collection paths
// with a trailing slash (/users/), so both forms are served.
func (a *API) userRoutes(mux *http.ServeMux, prefix string) {
	u := prefix + "/users"
	for _, p := range []string{u, u + "/{$}"} {
		mux.HandleFunc("GET "+p, a.guard(OpUsersRead, a.listUsers))
		mux.HandleFunc("POST "+p, a.guard(OpUsersWrite, a.createUser))
	}
	mux.HandleFunc("GET "+u+"/count", a.guard(OpUsersRead, a.countUsers))
	mux.HandleFunc("GET "+u+"/{id}", a.guard(OpUsersRead, a.getUser))
	mux.HandleFunc("PUT "+u+"/{id}", a.guard(OpUsersWrite, a.updateUser))
	mux.HandleFunc("DELETE "+u+"/{id}", a.guard(OpUsersWrite, a.deleteUser))
	mux.HandleFunc("GET "+u+"/{id}/sessions", a.guard(OpUsersRead, a.userSessions))
	mux.HandleFunc("POST "+u+"/{id}/logout", a.guard(OpUsersWrite, a.logoutUser))
	mux.HandleFunc("PUT "+u+"/{id}/reset-password", a.guard(OpUsersWrite, a.resetPassword))
	mux.HandleFunc("PUT "+u+"/{id}/execute-actions-email", a.guard(OpUsersWrite, a.executeActionsEmail))
	mux.HandleFunc("GET "+u+"/{id}/role-mappings", a.guard(OpUsersRead, a.roleMappings))
	mux.HandleFunc("GET "+u+"/{id}/role-mappings/realm", a.guard(OpUsersRead, a.realmRoleMappings))
	mux.HandleFunc("GET "+u+"/{id}/groups", a.guard(OpUsersRead, a.userGroups))
	declared := a.guard(OpUsersWrite, func(w http.ResponseWriter, r *http.Request, _ caller) {
		writeJSON(w, http.StatusNotImplemented, map[string]string{"error": "not_implemented",
			"errorMessage": "roles and groups are declared in realm.yaml (users[].roles, users[].groups): change them there and reload with SIGHUP"})
	})
	mux.HandleFunc("POST "+u+"/{id}/role-mappings/realm", declared)
	mux.HandleFunc("DELETE "+u+"/{id}/role-mappings/realm", declared)
	mux.HandleFunc("PUT "+u+"/{id}/groups/{group}", declared)
	mux.HandleFunc("DELETE "+u+"/{id}/groups/{group}", declared)
}

// userFilter reads Keycloak's query parameters of GET /users and /count.
func userFilter(q url.Values) (store.UserFilter, error) {
	f := store.UserFilter{Search: q.Get("search"), Email: q.Get("email"), FirstName: q.Get("firstName"), LastName: q.Get("lastName")}
	// The username is the email.
	if v := q.Get("username"); v != "" {
		if f.Email != "" && f.Email != v {
			return f, bad("username", "the username is the email: give one of them, or the same value")
		}
		f.Email = v
	}
	var err error
	if f.Enabled, err = queryBool(q, "enabled"); err != nil {
		return f, err
	}
	if f.EmailVerified, err = queryBool(q, "emailVerified"); err != nil {
		return f, err
	}
	exact, err := queryBool(q, "exact")
	if err != nil {
		return f, err
	}
	f.Exact = exact != nil && *exact
	return f, queryInts(q, map[string]*int{"first": &f.First, "max": &f.Max})
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request, who caller) {
	f, err := userFilter(r.URL.Query())
	if err == nil {
		var users []UserRepresentation
		if users, err = a.Users.List(r.Context(), f, who.may(OpUsersWrite)); err == nil {
			writeJSON(w, http.StatusOK, users)
			return
		}
	}
	a.fail(w, r, err)
}

func (a *API) countUsers(w http.ResponseWriter, r *http.Request, _ caller) {
	f, err := userFilter(r.URL.Query())
	if err == nil {
		var n int64
		if n, err = a.Users.Count(r.Context(), f); err == nil {
			writeJSON(w, http.StatusOK, n)
			return
		}
	}
	a.fail(w, r, err)
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request, who caller) {
	u, err := a.Users.Get(r.Context(), r.PathValue("id"), who.may(OpUsersWrite))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}

func (a *API) createUser(w http.ResponseWriter, r *http.Request, who caller) {
	var in UserInput
	if err := decodeBody(r, &in); err != nil {
		a.fail(w, r, err)
		return
	}
	id, err := a.Users.Create(r.Context(), in)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.Log.InfoContext(r.Context(), "user created", "event", "user_created", "user_id", id, "caller", who.name)
	a.audit(r, who, "CREATE", "users/"+id)
	w.Header().Set("Location", a.Users.Cfg.Server.PublicURL+"/admin/realms/"+a.Users.Cfg.Realm+"/users/"+id)
	w.WriteHeader(http.StatusCreated)
}

// changed answers a change to a user that has committed (or its error): a
// log line naming the caller, an admin event, 204.
func (a *API) changed(w http.ResponseWriter, r *http.Request, who caller, err error, msg, event, op, sub string) {
	if err != nil {
		a.fail(w, r, err)
		return
	}
	id := r.PathValue("id")
	a.Log.InfoContext(r.Context(), msg, "event", event, "user_id", id, "caller", who.name)
	a.audit(r, who, op, "users/"+id+sub)
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) updateUser(w http.ResponseWriter, r *http.Request, who caller) {
	var in UserInput
	err := decodeBody(r, &in)
	if err == nil {
		err = a.Users.Update(r.Context(), r.PathValue("id"), in)
	}
	a.changed(w, r, who, err, "user updated", "user_updated", "UPDATE", "")
}

func (a *API) deleteUser(w http.ResponseWriter, r *http.Request, who caller) {
	err := a.Users.Delete(r.Context(), r.PathValue("id"))
	a.changed(w, r, who, err, "user deleted", "user_deleted", "DELETE", "")
}

func (a *API) userSessions(w http.ResponseWriter, r *http.Request, _ caller) {
	s, err := a.Users.Sessions(r.Context(), r.PathValue("id"), time.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s)
}

func (a *API) logoutUser(w http.ResponseWriter, r *http.Request, who caller) {
	err := a.Users.Logout(r.Context(), r.PathValue("id"))
	a.changed(w, r, who, err, "user logged out everywhere", "user_logout", "ACTION", "/logout")
}

func (a *API) resetPassword(w http.ResponseWriter, r *http.Request, who caller) {
	var c CredentialInput
	err := decodeBody(r, &c)
	if err == nil {
		err = a.Users.SetPassword(r.Context(), r.PathValue("id"), c)
	}
	a.changed(w, r, who, err, "user password set", "user_password_set", "ACTION", "/reset-password")
}

func (a *API) executeActionsEmail(w http.ResponseWriter, r *http.Request, who caller) {
	var actions []string
	if err := decodeBody(r, &actions); err != nil {
		a.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	var lifespan time.Duration
	if v := q.Get("lifespan"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 60 || n > int(MaxTTL/time.Second) {
			a.fail(w, r, bad("lifespan", "must be seconds between 60 and %d", int(MaxTTL/time.Second)))
			return
		}
		lifespan = time.Duration(n) * time.Second
	}
	err := a.Users.ExecuteActionsEmail(r.Context(), r.PathValue("id"), actions, q.Get("client_id"), q.Get("redirect_uri"), lifespan, time.Now())
	a.changed(w, r, who, err, "required actions mailed", "user_actions_email", "ACTION", "/execute-actions-email")
}

// roleRepresentation is Keycloak's RoleRepresentation of a declared role;
// its id is its name (realm.yaml's roles have no other identity).
type roleRepresentation struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Composite   bool   `json:"composite"`
	ClientRole  bool   `json:"clientRole"`
	ContainerID string `json:"containerId"`
}

func roles(names []string, container string, client bool) []roleRepresentation {
	out := make([]roleRepresentation, len(names))
	for i, n := range names {
		out[i] = roleRepresentation{ID: n, Name: n, ClientRole: client, ContainerID: container}
	}
	return out
}

func (a *API) mappings(w http.ResponseWriter, r *http.Request) (config.RoleMapping, bool) {
	m, err := a.Users.RoleMappings(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return m, false
	}
	return m, true
}

func (a *API) roleMappings(w http.ResponseWriter, r *http.Request, _ caller) {
	m, ok := a.mappings(w, r)
	if !ok {
		return
	}
	type clientMappings struct {
		ID       string               `json:"id"`
		Client   string               `json:"client"`
		Mappings []roleRepresentation `json:"mappings"`
	}
	out := struct {
		RealmMappings  []roleRepresentation      `json:"realmMappings"`
		ClientMappings map[string]clientMappings `json:"clientMappings,omitempty"`
	}{RealmMappings: roles(m.Realm, a.Users.Cfg.Realm, false)}
	for client, names := range m.Clients {
		if out.ClientMappings == nil {
			out.ClientMappings = map[string]clientMappings{}
		}
		out.ClientMappings[client] = clientMappings{ID: client, Client: client, Mappings: roles(names, client, true)}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) realmRoleMappings(w http.ResponseWriter, r *http.Request, _ caller) {
	if m, ok := a.mappings(w, r); ok {
		writeJSON(w, http.StatusOK, roles(m.Realm, a.Users.Cfg.Realm, false))
	}
}

func (a *API) userGroups(w http.ResponseWriter, r *http.Request, _ caller) {
	m, ok := a.mappings(w, r)
	if !ok {
		return
	}
	type group struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		Path string `json:"path"`
	}
	out := make([]group, len(m.Groups))
	for i, p := range m.Groups {
		out[i] = group{ID: p, Name: p[strings.LastIndex(p, "/")+1:], Path: p}
	}
	writeJSON(w, http.StatusOK, out)
}
