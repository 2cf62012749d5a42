package admin

import "net/http"

// EventReader is what the events API reads.
type EventReader interface{}

func (a *API) eventRoutes(mux *http.ServeMux, prefix string) {}
