package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"latchkey/server/events"
	"latchkey/server/store"
)

type eventsFlags struct {
	types, user *string
	max         *int
	follow      *bool
}

func eventFlags(fs *flag.FlagSet, cmd string) eventsFlags {
	f := eventsFlags{types: new(string), user: new(string), max: new(int), follow: new(bool)}
	if cmd == "events tail" {
		f.types = fs.String("type", "", "only these event types, comma-separated (LOGIN,LOGIN_ERROR,...)")
		f.user = fs.String("user", "", "only this user id")
		f.max = fs.Int("max", 20, "print the last N events first")
		f.follow = fs.Bool("follow", false, "keep printing new events until interrupted")
	}
	return f
}

// eventsTail prints login events as JSON lines, oldest first (Keycloak's
// EventRepresentation), and with --follow the new ones as they come.
func eventsTail(st *store.Store, realm string, f eventsFlags, stdout io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	filter := store.EventFilter{Kind: store.EventLogin, UserID: *f.user, Max: *f.max}
	if *f.types != "" {
		filter.Types = strings.Split(*f.types, ",")
	}
	enc := json.NewEncoder(stdout)
	seen := map[string]bool{}
	var last time.Time
	for {
		rows, err := st.Events(ctx, filter)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		slices.Reverse(rows)
		for i := range rows {
			if seen[rows[i].ID] {
				continue
			}
			rep := events.Representation(&rows[i])
			rep.RealmID = realm
			if err := enc.Encode(rep); err != nil {
				return err
			}
			if rows[i].Time.After(last) {
				last, seen = rows[i].Time, map[string]bool{}
			}
			seen[rows[i].ID] = true
		}
		if !*f.follow {
			return nil
		}
		// Everything from the newest printed instant on, skipping what was printed.
		filter.From, filter.Max = last, 1000
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}
