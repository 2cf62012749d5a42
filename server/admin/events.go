package admin

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"latchkey/server/events"
	"latchkey/server/store"
)

// EventReader reads stored events.
type EventReader interface {
	Events(ctx context.Context, f store.EventFilter) ([]store.Event, error)
}

// AdminRecorder records admin events.
type AdminRecorder interface {
	RecordAdmin(ctx context.Context, e events.AdminEvent) error
}

// audit records a change made through the API; a failure to record is
// logged (the change itself has committed).
func (a *API) audit(r *http.Request, who caller, op, path string) {
	if a.Audit == nil {
		return
	}
	e := events.AdminEvent{Operation: op, ResourceType: "USER", ResourcePath: path, AuthClientID: who.name}
	if err := a.Audit.RecordAdmin(r.Context(), e); err != nil {
		a.Log.ErrorContext(r.Context(), "admin event not recorded", "operation", op, "resource_path", path, "err", err)
	}
}

func (a *API) eventRoutes(mux *http.ServeMux, prefix string) {
	mux.HandleFunc("GET "+prefix+"/events", a.guard(OpEventsRead, a.loginEvents))
	mux.HandleFunc("GET "+prefix+"/admin-events", a.guard(OpEventsRead, a.adminEvents))
}

// eventFilter reads Keycloak's filters: dateFrom and dateTo are days
// (yyyy-MM-dd, dateTo inclusive) or epoch milliseconds; first and max page.
func eventFilter(q url.Values, kind string) (store.EventFilter, error) {
	f := store.EventFilter{Kind: kind, Max: 100}
	for name, dst := range map[string]*time.Time{"dateFrom": &f.From, "dateTo": &f.To} {
		v := q.Get(name)
		if v == "" {
			continue
		}
		if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
			*dst = time.UnixMilli(ms)
			if name == "dateTo" {
				*dst = dst.Add(time.Millisecond)
			}
			continue
		}
		d, err := time.Parse(time.DateOnly, v)
		if err != nil {
			return f, bad(name, "must be a date like 2026-01-31, or epoch milliseconds")
		}
		if name == "dateTo" {
			d = d.AddDate(0, 0, 1)
		}
		*dst = d
	}
	if err := queryInts(q, map[string]*int{"first": &f.First, "max": &f.Max}); err != nil {
		return f, err
	}
	if f.First < 0 || f.Max < 0 {
		return f, bad("first", "first and max must not be negative")
	}
	if f.Max > MaxPage {
		return f, bad("max", "must be at most %d", MaxPage)
	}
	return f, nil
}

func (a *API) loginEvents(w http.ResponseWriter, r *http.Request, _ caller) {
	q := r.URL.Query()
	f, err := eventFilter(q, store.EventLogin)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	f.Types = q["type"]
	f.ClientID, f.UserID, f.IP = q.Get("client"), q.Get("user"), q.Get("ipAddress")
	rows, err := a.Events.Events(r.Context(), f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]events.EventRepresentation, len(rows))
	for i := range rows {
		out[i] = events.Representation(&rows[i])
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) adminEvents(w http.ResponseWriter, r *http.Request, _ caller) {
	q := r.URL.Query()
	f, err := eventFilter(q, store.EventAdmin)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	for _, op := range q["operationTypes"] {
		f.Types = append(f.Types, strings.ToUpper(op))
	}
	f.ClientID, f.IP, f.ResourcePath = q.Get("authClient"), q.Get("authIpAddress"), q.Get("resourcePath")
	rows, err := a.Events.Events(r.Context(), f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]events.AdminEventRepresentation, len(rows))
	for i := range rows {
		out[i] = events.AdminRepresentation(&rows[i])
	}
	writeJSON(w, http.StatusOK, out)
}
