// Package profile is the UPDATE_PROFILE required action: first and last name.
package profile

import (
	"context"
	"strings"
	"unicode"
	"unicode/utf8"

	"latchkey/flows"
)

// ID is the required action's id.
const ID = "UPDATE_PROFILE"

// Page is the template the form is rendered with.
const Page = "update-profile"

// FormData is what the page shows.
type FormData struct {
	Email, FirstName, LastName string
	Error                      flows.Msg
}

// Action implements flows.RequiredAction.
type Action struct{}

var _ flows.RequiredAction = Action{}

func (Action) ID() string { return ID }

func (Action) Challenge(_ context.Context, c *flows.Context) (flows.Result, error) {
	return flows.Show(Page, FormData{Email: c.User.Email, FirstName: c.User.FirstName, LastName: c.User.LastName}), nil
}

func (Action) Process(ctx context.Context, c *flows.Context) (flows.Result, error) {
	first, last := clean(c.Form.Get("firstName")), clean(c.Form.Get("lastName"))
	data := FormData{Email: c.User.Email, FirstName: first, LastName: last}
	switch {
	case first == "" || last == "":
		data.Error = flows.M("profile.nameRequired")
	case utf8.RuneCountInString(first) > 100 || utf8.RuneCountInString(last) > 100:
		data.Error = flows.M("profile.nameTooLong")
	}
	if !data.Error.IsZero() {
		return flows.Show(Page, data), nil
	}
	c.User.FirstName, c.User.LastName = first, last
	if err := c.Users.UpdateUser(ctx, c.User); err != nil {
		return flows.Result{}, err
	}
	return flows.Succeeded(), nil
}

// clean trims and drops control characters.
func clean(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s))
}
