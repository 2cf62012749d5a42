package flows

import (
	"embed"
	"io/fs"
)

// Msg is what a step says to a person: a message id and its parameters.
// Pages and mails render it in the login's language from the message
// catalogs the steps bring (NAME.en.json beside their templates, in
// go-i18n's format); steps never build the text themselves.
type Msg struct {
	ID string
	// Args are the message's parameters; one named Count also picks the
	// plural form ("1 attempt left", "2 attempts left").
	Args map[string]any
	// Text is literal text an administrator wrote in realm.yaml (say
	// deny-access's errorMessage): shown as written.
	Text string
}

// M makes a message from an id and name, value pairs of parameters.
func M(id string, kv ...any) Msg {
	m := Msg{ID: id}
	if len(kv) > 0 {
		m.Args = map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			m.Args[kv[i].(string)] = kv[i+1]
		}
	}
	return m
}

// Literal is text written by an administrator, shown as it is.
func Literal(text string) Msg { return Msg{Text: text} }

// IsZero reports whether there is no message.
func (m Msg) IsZero() bool { return m.ID == "" && m.Text == "" }

//go:embed flows.*.json
var catalog embed.FS

// Messages is the engine's own message catalogs (flows.LOCALE.json).
func Messages() fs.FS { return catalog }
