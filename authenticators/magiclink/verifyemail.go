package magiclink

import (
	"context"
	"time"

	"latchkey/flows"
)

// VerifyEmailID is the required action's id.
const VerifyEmailID = "VERIFY_EMAIL"

// PageVerify is the verify-email page.
const PageVerify = "verify-email"

const noteVerifySent = "verify-email.sentAt"

// VerifyPage is the data of the verify-email page.
type VerifyPage struct {
	Email string
	Sent  bool
	Error flows.Msg
}

// VerifyEmail is the VERIFY_EMAIL required action: it mails a one-time link
// (the same scanner-safe links as login) and completes when it is confirmed.
type VerifyEmail struct {
	Service *Service
	TTL     time.Duration
}

var _ flows.RequiredAction = VerifyEmail{}

func (VerifyEmail) ID() string { return VerifyEmailID }

func (v VerifyEmail) Challenge(_ context.Context, c *flows.Context) (flows.Result, error) {
	if c.User.EmailVerified {
		return flows.Succeeded(), nil
	}
	return flows.Show(PageVerify, VerifyPage{Email: c.User.Email, Sent: c.Session.Note(noteVerifySent) != ""}), nil
}

func (v VerifyEmail) Process(ctx context.Context, c *flows.Context) (flows.Result, error) {
	if c.User.EmailVerified {
		return flows.Succeeded(), nil
	}
	return v.send(ctx, c)
}

// Resume takes the confirm POST of a verification link, or a resend asked
// from a dead one.
func (v VerifyEmail) Resume(ctx context.Context, c *flows.Context, in *flows.Entry) (flows.Result, error) {
	if c.User.EmailVerified {
		return flows.Succeeded(), nil
	}
	if in.Path == "resend" {
		r, err := v.send(ctx, c)
		return detachIfElsewhere(c, r), err
	}
	if _, err := redeem(ctx, v.Service, c, in.Form.Get("token"), TypeVerifyEmail); err != nil {
		return flows.Show(PageVerify, VerifyPage{Email: c.User.Email, Error: why(err)}), nil
	}
	c.User.EmailVerified = true
	return flows.Succeeded(), nil
}

// send mails a verification link, within the address's send limit.
func (v VerifyEmail) send(ctx context.Context, c *flows.Context) (flows.Result, error) {
	now := c.Time()
	counts, ends, err := v.Service.Counter.HitAll(ctx, []string{"ml:" + c.User.Email}, 15*time.Minute, now)
	if err != nil {
		return flows.Result{}, err
	}
	if counts[0] > 5 {
		return flows.Show(PageVerify, VerifyPage{Email: c.User.Email, Sent: true,
			Error: flows.M("verify.tooMany", "Wait", ends[0].Sub(now).Round(time.Second))}), nil
	}
	ttl := v.TTL
	if ttl == 0 {
		ttl = 15 * time.Minute
	}
	if _, _, err := v.Service.Issue(ctx, Issue{User: c.User, Type: TypeVerifyEmail, AuthSessionID: c.Session.ID,
		Execution: c.Execution, ClientID: c.Session.ClientID, TTL: ttl, Send: true, Locale: c.Locale}, now); err != nil {
		return flows.Result{}, err
	}
	c.Session.SetNote(noteVerifySent, now.Format(time.RFC3339Nano))
	return flows.Show(PageVerify, VerifyPage{Email: c.User.Email, Sent: true}), nil
}
