package otp

import (
	"context"
	"html/template"

	"latchkey/flows"
)

// ConfigureID is the required action's id.
const ConfigureID = "CONFIGURE_TOTP"

// ConfigurePage is the set-up page.
const ConfigurePage = "configure-totp"

// noteParams carries the params the flow's otp step wants for a new app.
const noteParams = "otp.params"

// ConfigureData is the data of the set-up page.
type ConfigureData struct {
	QR      template.URL // the otpauth:// URL as a PNG data URL
	Secret  string       // the same key as text, in groups of four
	Issuer  string
	Account string
	Digits  int
	Period  int // seconds
	Error   flows.Msg
}

// Configure is CONFIGURE_TOTP: it shows a new key as a QR code and as text,
// and completes when the first code from the app is right. The key is
// stored (sealed) unconfirmed until then, so reloading the page shows the
// same key; the step never accepts an unconfirmed key.
type Configure struct{}

var _ flows.RequiredAction = Configure{}

func (Configure) ID() string { return ConfigureID }

func (a Configure) Challenge(ctx context.Context, c *flows.Context) (flows.Result, error) {
	if done, err := hasConfirmed(ctx, c); err != nil || done {
		return flows.Succeeded(), err
	}
	k, err := a.pending(ctx, c)
	if err != nil {
		return flows.Result{}, err
	}
	return page(k, flows.Msg{})
}

func (a Configure) Process(ctx context.Context, c *flows.Context) (flows.Result, error) {
	if done, err := hasConfirmed(ctx, c); err != nil || done {
		return flows.Succeeded(), err
	}
	k, err := a.pending(ctx, c)
	if err != nil {
		return flows.Result{}, err
	}
	step, ok := match(k.key, c.Form.Get("otp"), c.Time(), 1)
	if !ok {
		return page(k, flows.M("otp.setupWrong"))
	}
	k.cred.Confirmed, k.cred.Counter, k.cred.Label = true, step, "Authenticator app"
	if err := c.Credentials.SaveCredential(ctx, &k.cred); err != nil {
		return flows.Result{}, err
	}
	// The first code proves the app works: it counts as this login's second factor.
	c.Session.AddMethod("otp")
	return flows.Succeeded(), nil
}

func hasConfirmed(ctx context.Context, c *flows.Context) (bool, error) {
	keys, err := confirmedKeys(ctx, c, c.User.ID)
	return len(keys) > 0, err
}

// pending returns the user's unconfirmed key, creating one when there is none.
func (Configure) pending(ctx context.Context, c *flows.Context) (key, error) {
	keys, err := keysOf(ctx, c, c.User.ID, false)
	if err != nil || len(keys) > 0 {
		if len(keys) > 0 {
			return keys[0], nil
		}
		return key{}, err
	}
	p, ok := parseParams(c.Session.Note(noteParams))
	if !ok {
		p = defaults
	}
	// The name the authenticator app lists the account under.
	issuer := c.RealmName
	if issuer == "" {
		issuer = c.Realm
	}
	k, err := newKey(issuer, c.User.Email, p)
	if err != nil {
		return key{}, err
	}
	cred := flows.Credential{UserID: c.User.ID, Type: ID, Secret: []byte(k.URL()), Label: "Authenticator app (not confirmed)"}
	if err := c.Credentials.SaveCredential(ctx, &cred); err != nil {
		return key{}, err
	}
	return key{cred: cred, key: k}, nil
}

func page(k key, msg flows.Msg) (flows.Result, error) {
	qr, err := qrImage(k.key)
	if err != nil {
		return flows.Result{}, err
	}
	return flows.Show(ConfigurePage, ConfigureData{
		QR: qr, Secret: grouped(k.key.Secret()), Issuer: k.key.Issuer(), Account: k.key.AccountName(),
		Digits: k.key.Digits().Length(), Period: int(k.key.Period()), Error: msg,
	}), nil
}
