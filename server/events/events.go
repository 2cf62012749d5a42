// Package events records login and admin events (Keycloak's types and
// Latchkey's own) in the database and queues them for the realm's
// webhooks in the same transaction, for the durable outbox to deliver.
package events

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"latchkey/server/config"
	"latchkey/server/observe"
	"latchkey/server/store"
)

// Event is a login event.
type Event struct {
	Type                                          string
	ClientID, UserID, SessionID, IPAddress, Error string
	Details                                       map[string]string
}

// AdminEvent is a change made through the admin API.
type AdminEvent struct {
	Operation    string // CREATE, UPDATE, DELETE, ACTION
	ResourceType string // USER
	ResourcePath string // users/{id}
	// Who: an API key ("api-key:NAME") or a service account's client.
	AuthClientID string
	Error        string
}

// Store keeps events and their deliveries.
type Store interface {
	RecordEvent(ctx context.Context, e *store.Event, deliveries []store.OutboxMail) error
}

// Recorder records events. Its methods never fail a login: an event that
// cannot be stored is logged as an error.
type Recorder struct {
	Store    Store
	Realm    string
	Enabled  bool
	Webhooks []config.Webhook
	// Seal seals webhook bodies at rest, as mail bodies are.
	Seal func(string) string
	// Queued wakes the outbox after a delivery was queued.
	Queued func()
	Log    *slog.Logger
}

// New builds the realm's recorder.
func New(cfg *config.Config, st Store, seal func(string) string, queued func(), log *slog.Logger) *Recorder {
	return &Recorder{Store: st, Realm: cfg.Realm, Enabled: cfg.Events.On(), Webhooks: cfg.Events.Webhooks, Seal: seal, Queued: queued, Log: log}
}

// Record stores a login event; the client address defaults to the request's.
func (r *Recorder) Record(ctx context.Context, e Event) error {
	if r == nil || !r.Enabled {
		return nil
	}
	if e.IPAddress == "" {
		e.IPAddress = observe.Request(ctx).ClientIP
	}
	details := ""
	if len(e.Details) > 0 {
		b, _ := json.Marshal(e.Details)
		details = string(b)
	}
	row := &store.Event{ID: eventID(), Time: time.Now().UTC(), Kind: store.EventLogin, Type: e.Type, ClientID: e.ClientID,
		UserID: e.UserID, SessionID: e.SessionID, IPAddress: e.IPAddress, Error: e.Error, Details: details}
	rep := Representation(row)
	rep.RealmID = r.Realm
	return r.store(ctx, row, e.Type, rep)
}

// RecordAdmin stores an admin event.
func (r *Recorder) RecordAdmin(ctx context.Context, e AdminEvent) error {
	if r == nil || !r.Enabled {
		return nil
	}
	row := &store.Event{ID: eventID(), Time: time.Now().UTC(), Kind: store.EventAdmin, Type: "ADMIN_" + e.Operation,
		ClientID: e.AuthClientID, IPAddress: observe.Request(ctx).ClientIP, Error: e.Error,
		OperationType: e.Operation, ResourceType: e.ResourceType, ResourcePath: e.ResourcePath}
	return r.store(ctx, row, row.Type, AdminRepresentation(row))
}

// eventID is a time-ordered UUID (version 7): each new event's key goes
// to the end of the id index, one page a commit, not to a random page of
// it (a page read, a page written, and splits leaving pages part empty).
func eventID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}

// Try records e and logs (never returns) a failure: for events recorded
// after the state they describe has committed.
func (r *Recorder) Try(ctx context.Context, e Event) {
	if err := r.Record(ctx, e); err != nil {
		r.Log.ErrorContext(ctx, "event not recorded", "type", e.Type, "err", err)
	}
}

func (r *Recorder) store(ctx context.Context, row *store.Event, typ string, rep any) error {
	var deliveries []store.OutboxMail
	var sealed string // the body, made once for every webhook that wants it
	for _, w := range r.Webhooks {
		if !w.Wants(typ) {
			continue
		}
		if sealed == "" {
			body, err := json.Marshal(map[string]any{"type": typ, "timestamp": row.Time.Format(time.RFC3339Nano), "data": rep})
			if err != nil {
				return fmt.Errorf("webhook body: %w", err)
			}
			sealed = r.Seal(string(body))
		}
		deliveries = append(deliveries, store.OutboxMail{Kind: store.KindWebhook, To: w.URL, Subject: typ, Text: sealed, Ref: row.ID})
	}
	if err := r.Store.RecordEvent(ctx, row, deliveries); err != nil {
		return err
	}
	if len(deliveries) > 0 && r.Queued != nil {
		store.AfterCommit(ctx, r.Queued)
	}
	return nil
}

// EventRepresentation is Keycloak's.
type EventRepresentation struct {
	ID        string            `json:"id"`
	Time      int64             `json:"time"`
	Type      string            `json:"type"`
	RealmID   string            `json:"realmId,omitempty"`
	ClientID  string            `json:"clientId,omitempty"`
	UserID    string            `json:"userId,omitempty"`
	SessionID string            `json:"sessionId,omitempty"`
	IPAddress string            `json:"ipAddress,omitempty"`
	Error     string            `json:"error,omitempty"`
	Details   map[string]string `json:"details,omitempty"`
}

// Representation is a stored login event as the API and webhooks show it.
func Representation(e *store.Event) EventRepresentation {
	var details map[string]string
	if e.Details != "" {
		_ = json.Unmarshal([]byte(e.Details), &details)
	}
	return EventRepresentation{ID: e.ID, Time: e.Time.UnixMilli(), Type: e.Type, ClientID: e.ClientID, UserID: e.UserID,
		SessionID: e.SessionID, IPAddress: e.IPAddress, Error: e.Error, Details: details}
}

// AdminEventRepresentation is Keycloak's.
type AdminEventRepresentation struct {
	ID            string      `json:"id"`
	Time          int64       `json:"time"`
	AuthDetails   AuthDetails `json:"authDetails"`
	OperationType string      `json:"operationType"`
	ResourceType  string      `json:"resourceType"`
	ResourcePath  string      `json:"resourcePath"`
	Error         string      `json:"error,omitempty"`
}

// AuthDetails says who made an admin change.
type AuthDetails struct {
	ClientID  string `json:"clientId,omitempty"`
	IPAddress string `json:"ipAddress,omitempty"`
}

// AdminRepresentation is a stored admin event as the API and webhooks show it.
func AdminRepresentation(e *store.Event) AdminEventRepresentation {
	return AdminEventRepresentation{ID: e.ID, Time: e.Time.UnixMilli(), AuthDetails: AuthDetails{ClientID: e.ClientID, IPAddress: e.IPAddress},
		OperationType: e.OperationType, ResourceType: e.ResourceType, ResourcePath: e.ResourcePath, Error: e.Error}
}
