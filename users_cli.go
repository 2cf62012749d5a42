package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"latchkey/flows"
	"latchkey/server/admin"
	"latchkey/server/store"
)

type usersFlags struct {
	search, enabled *string
	first, max      *int
	create          *bool
}

// userFlags registers the flags of a users operation; the others keep
// their zero values.
func userFlags(fs *flag.FlagSet, op string) usersFlags {
	f := usersFlags{search: new(string), enabled: new(string), first: new(int), max: new(int), create: new(bool)}
	switch op {
	case "list":
		f.search = fs.String("search", "", "prefix of email, first or last name (* is a wildcard)")
		f.enabled = fs.String("enabled", "", "true or false: only enabled or only disabled users")
		f.first = fs.Int("first", 0, "skip this many users")
		f.max = fs.Int("max", 100, "list at most this many users")
	case "set-password":
		f.create = fs.Bool("create", false, "create the user if no account has this email")
	}
	return f
}

// users runs the users verbs through the same service as the admin API.
func users(ctx context.Context, us *admin.Users, op, email string, f usersFlags, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	err := runUsers(ctx, us, op, email, f, args, stdin, stdout)
	var fe *admin.FieldError
	var usage usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &usage):
		fmt.Fprintln(stderr, "latchkey:", err)
		return 2
	case errors.As(err, &fe):
		fmt.Fprintln(stderr, "latchkey:", fe)
		return 2
	}
	fmt.Fprintln(stderr, "latchkey:", err)
	return 1
}

// usageError is a mistake in the command line (exit 2).
type usageError string

func (e usageError) Error() string { return string(e) }

func runUsers(ctx context.Context, us *admin.Users, op, email string, f usersFlags, args []string, stdin io.Reader, stdout io.Writer) error {
	switch op {
	case "list":
		filter := store.UserFilter{Search: *f.search, Email: email, First: *f.first, Max: *f.max}
		if *f.enabled != "" {
			b, err := strconv.ParseBool(*f.enabled)
			if err != nil {
				return usageError("--enabled must be true or false")
			}
			filter.Enabled = &b
		}
		list, err := us.List(ctx, filter, true)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tEMAIL\tENABLED\tNAME\tCREATED")
		for _, u := range list {
			fmt.Fprintf(tw, "%s\t%s\t%t\t%s\t%s\n", u.ID, u.Email, u.Enabled, (&flows.User{FirstName: u.FirstName, LastName: u.LastName}).Name(),
				time.UnixMilli(u.CreatedTimestamp).UTC().Format(time.DateOnly))
		}
		return tw.Flush()
	case "set-password":
		return setPassword(ctx, us, email, *f.create, stdin, stdout)
	}
	id, err := target(ctx, us, email, args)
	if err != nil {
		return err
	}
	switch op {
	case "get":
		u, err := us.Get(ctx, id, true)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(u)
	case "disable", "enable":
		if err := us.SetEnabled(ctx, id, op == "enable"); err != nil {
			return err
		}
		if op == "disable" {
			fmt.Fprintf(stdout, "user %s disabled; their sessions ended and their tokens were revoked\n", id)
		} else {
			fmt.Fprintf(stdout, "user %s enabled\n", id)
		}
	case "delete":
		if err := us.Delete(ctx, id); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "user %s deleted, with their sessions, tokens, credentials, magic links and mail\n", id)
	case "logout":
		if err := us.Logout(ctx, id); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "user %s logged out everywhere; their tokens were revoked\n", id)
	}
	return nil
}

// target is the user a verb acts on: one positional id, or --email.
func target(ctx context.Context, us *admin.Users, email string, args []string) (string, error) {
	switch {
	case len(args) == 1 && email == "":
		return args[0], nil
	case len(args) == 0 && email != "":
		addr, err := flows.ParseEmail(email)
		if err != nil {
			return "", usageError("--email: " + err.Error())
		}
		u, err := us.Store.UserByEmail(ctx, addr)
		if errors.Is(err, flows.ErrUserNotFound) {
			return "", fmt.Errorf("no user has the email %s", addr)
		}
		if err != nil {
			return "", err
		}
		return u.ID, nil
	}
	return "", usageError("name the user: one user id, or --email ADDR")
}

// setPassword sets a password; an unknown address is an error unless
// create says to make the account (a typo must not create one).
func setPassword(ctx context.Context, us *admin.Users, email string, create bool, stdin io.Reader, stdout io.Writer) error {
	addr, err := flows.ParseEmail(email)
	if err != nil {
		return usageError("--email: " + err.Error())
	}
	pw, err := readPassword(stdin)
	if err != nil {
		return usageError(err.Error())
	}
	cred := admin.CredentialInput{Type: "password", Value: pw}
	u, err := us.Store.UserByEmail(ctx, addr)
	switch {
	case errors.Is(err, flows.ErrUserNotFound) && !create:
		return usageError(fmt.Sprintf("no user has the email %s (add --create to create the account)", addr))
	case errors.Is(err, flows.ErrUserNotFound):
		if _, err := us.Create(ctx, admin.UserInput{Email: &addr, Credentials: []admin.CredentialInput{cred}}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "user %s created with a password\n", addr)
		return nil
	case err != nil:
		return err
	}
	if err := us.SetPassword(ctx, u.ID, cred); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "password set for %s\n", addr)
	return nil
}
