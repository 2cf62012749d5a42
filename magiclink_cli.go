package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"time"

	"latchkey/server/admin"
)

type mlFlags struct {
	userID, client, redirect, ttl, typ, status *string
	send, forceCreate, updateProfile           *bool
	limit, offset                              *int
}

// magicLinkFlags registers the flags of a magic-link operation (create,
// list, revoke); the others keep their zero values.
func magicLinkFlags(fs *flag.FlagSet, op string) mlFlags {
	str := func(name, def, help string, ops ...string) *string {
		if slices.Contains(ops, op) {
			return fs.String(name, def, help)
		}
		return &def
	}
	boolean := func(name, help string) *bool {
		if op == "create" {
			return fs.Bool(name, false, help)
		}
		return new(bool)
	}
	integer := func(name string, def int, help string) *int {
		if op == "list" {
			return fs.Int(name, def, help)
		}
		return &def
	}
	return mlFlags{
		userID:        str("user-id", "", "the user's id", "create", "list"),
		client:        str("client", "", "client id", "create"),
		redirect:      str("redirect-uri", "", "registered redirect URI", "create"),
		ttl:           str("ttl", "", "link lifetime, like 15m, 2h, 3d", "create"),
		typ:           str("type", "login", "login or verify-email", "create"),
		status:        str("status", "", "pending, used, expired or revoked", "list"),
		send:          boolean("send", "mail the link through the outbox"),
		forceCreate:   boolean("force-create", "create the user if missing"),
		updateProfile: boolean("update-profile", "ask for the profile at first login"),
		limit:         integer("limit", 50, "page size"),
		offset:        integer("offset", 0, "page start"),
	}
}

// magicLink runs the management operations through the same service as the
// REST API, and prints JSON.
func magicLink(ctx context.Context, svc *admin.Service, op, email string, f mlFlags, args []string, stdout, stderr io.Writer) int {
	now := time.Now()
	var out any
	var err error
	switch op {
	case "create":
		out, err = svc.Create(ctx, admin.CreateRequest{
			Email: email, UserID: *f.userID, ClientID: *f.client, RedirectURI: *f.redirect, TTL: *f.ttl, Send: *f.send,
			Type: *f.typ, ForceCreate: *f.forceCreate, UpdateProfile: *f.updateProfile,
		}, now)
	case "list":
		out, err = svc.List(ctx, admin.ListRequest{UserID: *f.userID, Email: email, Status: *f.status, Limit: *f.limit, Offset: *f.offset}, now)
	case "revoke":
		if len(args) != 1 {
			fmt.Fprintln(stderr, "latchkey: magic-link revoke takes one link id")
			return 2
		}
		if err = svc.Revoke(ctx, args[0], now); err == nil {
			out = map[string]string{"id": args[0], "status": "revoked"}
		}
	default:
		fmt.Fprint(stderr, usage)
		return 2
	}
	var fe *admin.FieldError
	switch {
	case errors.As(err, &fe):
		fmt.Fprintf(stderr, "latchkey: --%s: %s\n", cliFlag(fe.Field), fe.Message)
		return 2
	case err != nil:
		fmt.Fprintln(stderr, "latchkey:", err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(out)
	return 0
}

// cliFlag maps an API field name to its command-line flag.
func cliFlag(field string) string {
	switch field {
	case "userId":
		return "user-id"
	case "clientId":
		return "client"
	case "redirectUri":
		return "redirect-uri"
	}
	return field
}
