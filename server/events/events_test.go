package events

import (
	"context"
	"log/slog"
	"slices"
	"testing"

	"github.com/google/uuid"

	"latchkey/server/store"
)

type rows []*store.Event

func (r *rows) RecordEvent(_ context.Context, e *store.Event, _ []store.OutboxMail) error {
	*r = append(*r, e)
	return nil
}

// Event ids are time-ordered (UUID version 7), so each new row's key goes
// to the end of the id index instead of a random page of it.
func TestEventIDsAreTimeOrdered(t *testing.T) {
	var kept rows
	r := &Recorder{Store: &kept, Enabled: true, Log: slog.New(slog.DiscardHandler)}
	for range 50 {
		if err := r.Record(context.Background(), Event{Type: "LOGIN"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.RecordAdmin(context.Background(), AdminEvent{Operation: "CREATE"}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range kept {
		if u, err := uuid.Parse(e.ID); err != nil || u.Version() != 7 {
			t.Fatalf("event id %q: version %v, %v", e.ID, u.Version(), err)
		}
		ids = append(ids, e.ID)
	}
	if !slices.IsSorted(ids) {
		t.Fatalf("ids not in the order recorded: %v", ids)
	}
}
