package store

import (
	"context"
	"fmt"
	"time"
)

// Event is a login event (Kind EventLogin) or an admin event (Kind
// EventAdmin), in Keycloak's terms. Details is JSON; nothing in a row is a
// secret. Every read and the purge select by kind and time: on SQLite the
// table is kept in that order (sqliteEventsTable), elsewhere an index is.
type Event struct {
	ID        string    `gorm:"primaryKey;size:36"`
	Time      time.Time `gorm:"column:occurred_at"`
	Kind      string    `gorm:"size:8"`
	Type      string    `gorm:"size:64"`
	ClientID  string    `gorm:"size:128"`
	UserID    string    `gorm:"size:36;index"`
	SessionID string    `gorm:"size:64"`
	IPAddress string    `gorm:"size:64"`
	Error     string    `gorm:"size:128"`
	Details   string
	// Admin events: what was done to which resource.
	OperationType string `gorm:"size:16"`
	ResourceType  string `gorm:"size:32"`
	ResourcePath  string `gorm:"size:256"`
}

// The kinds of event.
const (
	EventLogin = "login"
	EventAdmin = "admin"
)

// sqliteEventsTable is the events table of a new SQLite database: WITHOUT
// ROWID, clustered on (kind, occurred_at, id). As a rowid table keyed by
// id with an index on (kind, occurred_at), every event wrote three B-trees
// for what this one holds (the user index is written either way; a login
// records ~5 events), and reads by kind and time read the rows in place.
// The id stays in the key but is not unique on its own here: ids are
// UUIDv7s made by the recorder, and nothing looks an event up by id. The
// columns are those gorm declares, so AutoMigrate finds nothing to change;
// a database made before keeps its layout (same columns, same answers).
const sqliteEventsTable = "CREATE TABLE IF NOT EXISTS `events` (`id` text,`occurred_at` datetime,`kind` text,`type` text," +
	"`client_id` text,`user_id` text,`session_id` text,`ip_address` text,`error` text,`details` text,`operation_type` text," +
	"`resource_type` text,`resource_path` text,PRIMARY KEY (`kind`,`occurred_at`,`id`)) WITHOUT ROWID"

// eventsKindTimeIndex serves the same reads where the table is not
// clustered on them (PostgreSQL; SQLite databases made before have it).
const eventsKindTimeIndex = "CREATE INDEX IF NOT EXISTS idx_events_kind_time ON events (kind, occurred_at)"

// EventFilter selects events; empty fields match all.
type EventFilter struct {
	Kind                 string
	Types                []string
	ClientID, UserID, IP string
	ResourcePath         string
	From, To             time.Time // To is exclusive
	First, Max           int
}

// RecordEvent stores an event and queues its webhook deliveries, in one
// transaction (the caller's, if it has one): an event is never announced
// without being kept, nor kept without being announced.
func (s *Store) RecordEvent(ctx context.Context, e *Event, deliveries []OutboxMail) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		_, err := s.exec(ctx, insertEvent, e.ID, e.Time.UTC(), e.Kind, e.Type, e.ClientID, e.UserID, e.SessionID, e.IPAddress, e.Error,
			e.Details, e.OperationType, e.ResourceType, e.ResourcePath)
		if err != nil {
			return fmt.Errorf("record event: %w", err)
		}
		for i := range deliveries {
			if err := s.enqueue(ctx, &deliveries[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// insertEvent is plain SQL (plainsql.go): a login records several events.
var insertEvent = plain("INSERT INTO events (id, occurred_at, kind, type, client_id, user_id, session_id, ip_address, error, details, " +
	"operation_type, resource_type, resource_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")

// Events returns the events f selects, newest first.
func (s *Store) Events(ctx context.Context, f EventFilter) ([]Event, error) {
	q := s.read(ctx).Where("kind = ?", f.Kind)
	if len(f.Types) > 0 {
		col := "type"
		if f.Kind == EventAdmin {
			col = "operation_type"
		}
		q = q.Where(col+" IN ?", f.Types)
	}
	for col, v := range map[string]string{"client_id": f.ClientID, "user_id": f.UserID, "ip_address": f.IP} {
		if v != "" {
			q = q.Where(col+" = ?", v)
		}
	}
	if f.ResourcePath != "" {
		q = q.Where(`resource_path LIKE ? ESCAPE '\'`, likeEscaper.Replace(f.ResourcePath)+"%")
	}
	if !f.From.IsZero() {
		q = q.Where("occurred_at >= ?", f.From.UTC())
	}
	if !f.To.IsZero() {
		q = q.Where("occurred_at < ?", f.To.UTC())
	}
	var out []Event
	if err := q.Order("occurred_at DESC, id").Offset(f.First).Limit(f.Max).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	return out, nil
}

// PurgeEvents deletes events older than before, in batches. Rows are
// selected and deleted by (kind, occurred_at, id): the key they are kept
// under on SQLite, an index range elsewhere (TestPurgeSelectsByIndex).
func (s *Store) PurgeEvents(ctx context.Context, before time.Time) (int64, error) {
	return s.purge(ctx, purgedEvents, before.UTC())
}

// purgedEvents is how PurgeEvents selects and deletes: never a scan of 30
// days of events on the writer.
var purgedEvents = purgedTable{&Event{}, "(kind, occurred_at, id)",
	"kind IN ('" + EventLogin + "', '" + EventAdmin + "') AND occurred_at < ?"}
