package magiclink

import (
	"context"
	"errors"
	"time"

	"latchkey/flows"
)

// Pages of the link's own entry point.
const (
	PageConfirm = "magic-link-confirm"
	PageInvalid = "magic-link-invalid"
	PageNotice  = "magic-link-notice"
	PageApprove = "magic-link-approve"
)

// ConfirmPage is the data of the page a link opens: buttons, because a
// GET must never consume a link (mail scanners fetch every link).
type ConfirmPage struct {
	Email string
	Token string
	// OtherDevice: this browser did not start the login, which another
	// device may approve instead (crossDevice).
	OtherDevice bool
}

// ApprovePage offers the numbers of number matching: the person picks the
// one the login's own page shows.
type ApprovePage struct {
	Email   string
	Token   string
	Choices []int
}

// InvalidPage is the data of the page for a link that cannot be used.
type InvalidPage struct {
	Message   flows.Msg
	CanResend bool // the link's login still waits for a link
	Token     string
}

// NoticePage is a heading and a sentence that tell nothing of any login.
type NoticePage struct {
	Heading flows.Msg
	Message flows.Msg
}

var _ flows.EntryPoint = Factory{}

// EntryName is where links point: /realms/{realm}/login-actions/magic-link.
func (Factory) EntryName() string { return ID }

// Enter reads a link request. Opening a link (GET) shows its confirm page
// and consumes nothing; the confirm POST of a link issued by a login page
// goes to that login's step (Resume); a minted link, which belongs to no
// login, is consumed here and begins one.
func (f Factory) Enter(ctx context.Context, in *flows.Entry, now time.Time) (flows.Entered, error) {
	token := in.Value("token")
	l, err := f.Service.Inspect(ctx, token)
	if errors.Is(err, ErrNotFound) {
		l = nil
	} else if err != nil {
		return flows.Entered{}, err
	}
	e, err := f.enter(ctx, in, l, token, now)
	if l != nil {
		// The link's pages speak the language of its mail, and look like it.
		e.Locale, e.ClientID, e.Settings = l.Locale, l.ClientID, l.DecodeSettings()
	}
	return e, err
}

func (f Factory) enter(ctx context.Context, in *flows.Entry, l *Link, token string, now time.Time) (flows.Entered, error) {
	svc := f.Service
	status := statusOf(l, now)
	switch {
	case in.Path == "resend":
		return f.enterResend(ctx, in, l, status, token, now)
	case in.Path == "status":
		return f.status(ctx, in, now)
	case in.Path == "approve":
		return f.approve(ctx, in, l, status, token, now)
	case in.Path == "decline":
		return f.decline(ctx, in, l, status, token, now)
	case in.Path != "":
		return answer(gone(flows.Fail(flows.M("link.notALink")))), nil
	case status == "approved":
		return answer(flows.Show(PageNotice, NoticePage{Heading: flows.M("approve.doneHeading"), Message: flows.M("link.approved")})), nil
	case status != "pending":
		return f.invalid(ctx, in, l, status, token, now)
	case in.Method != "POST":
		svc.Opened(ctx, l, in.UserAgent, now)
		return f.confirmPage(ctx, in, l, token)
	case l.AuthSessionID == "":
		return f.enterMinted(ctx, in, l, token, now)
	}
	return flows.Entered{Session: l.AuthSessionID, Execution: l.Execution}, nil
}

func answer(r flows.Result) flows.Entered { return flows.Entered{Answer: &r} }

func gone(r flows.Result) flows.Result { r.Gone = true; return r }

// invalid says which of used, expired, revoked or unknown the link is, and
// offers a new link while its login still waits for one. A used link's
// step is over, so it never offers one.
func (f Factory) invalid(ctx context.Context, in *flows.Entry, l *Link, status, token string, now time.Time) (flows.Entered, error) {
	f.Service.Rejected(ctx, l, status)
	p := InvalidPage{Message: Explain(l, now), Token: token}
	if l != nil && l.AuthSessionID != "" && mayResend(l, status) && in.WaitsAt != nil {
		waits, err := in.WaitsAt(ctx, l.AuthSessionID, l.Execution)
		if err != nil {
			return flows.Entered{}, err
		}
		p.CanResend = waits
	}
	return answer(gone(flows.Show(PageInvalid, p))), nil
}

// mayResend: a dead link's page may mail a new one for its login. Not
// after it was used, nor after someone said "This wasn't me", picked a
// wrong number or typed too many wrong codes: those end the link on
// purpose, and a new one is asked for where the login started.
func mayResend(l *Link, status string) bool {
	switch {
	case status == "used" || status == "approved":
		return false
	case status == "revoked":
		return l.RevokedReason == RevokedReplaced || l.RevokedReason == "" || l.RevokedReason == RevokedByAdmin
	}
	return true
}

// enterResend sends a fresh link for the login a dead link belonged to.
func (f Factory) enterResend(ctx context.Context, in *flows.Entry, l *Link, status, token string, now time.Time) (flows.Entered, error) {
	switch {
	case in.Method != "POST":
		return answer(gone(flows.Fail(flows.M("link.openAgain")))), nil
	case status == "pending":
		// The link still works: show its confirm page.
		return f.confirmPage(ctx, in, l, token)
	case l == nil || l.AuthSessionID == "":
		return answer(gone(flows.Fail(flows.M("link.cannotResend")))), nil
	case !mayResend(l, status):
		return f.invalid(ctx, in, l, status, token, now)
	}
	if in.WaitsAt != nil {
		if waits, err := in.WaitsAt(ctx, l.AuthSessionID, l.Execution); err != nil || !waits {
			if err != nil {
				return flows.Entered{}, err
			}
			return answer(gone(flows.Fail(flows.M("link.loginEnded")))), nil
		}
	}
	return flows.Entered{Session: l.AuthSessionID, Execution: l.Execution}, nil
}

// enterMinted redeems a link minted through the management API. It does
// not bypass the realm's browser flow: it begins a login in which the link's
// step has succeeded, so any other REQUIRED step and any pending required
// action still runs.
func (f Factory) enterMinted(ctx context.Context, in *flows.Entry, l *Link, token string, now time.Time) (flows.Entered, error) {
	svc := f.Service
	if l.Type == TypeLogin && !in.InBrowserFlow {
		svc.Rejected(ctx, l, "no_magic_link_step")
		return answer(flows.Fail(flows.M("link.disabled"))), nil
	}
	l, err := svc.Consume(ctx, token, l.Of(), now)
	if errors.Is(err, ErrUnavailable) {
		l2, _ := svc.Inspect(ctx, token)
		return f.invalid(ctx, in, l2, statusOf(l2, now), token, now)
	}
	if err != nil {
		return flows.Entered{}, err
	}
	u, err := in.Users.UserByID(ctx, l.UserID)
	if err != nil && !errors.Is(err, flows.ErrUserNotFound) {
		return flows.Entered{}, err
	}
	if err != nil || u.Email != l.Email || u.Disabled {
		svc.Rejected(ctx, l, "account_changed")
		return answer(flows.Fail(flows.M("link.accountChanged"))), nil
	}
	if !u.EmailVerified {
		u.EmailVerified = true
		if err := in.Users.UpdateUser(ctx, u); err != nil {
			return flows.Entered{}, err
		}
	}
	if l.Type == TypeVerifyEmail {
		return answer(flows.Show(PageNotice, NoticePage{Heading: flows.M("verify.doneHeading"), Message: flows.M("verify.done", "Email", u.Email)})), nil
	}
	return flows.Entered{Begin: &flows.Begin{UserID: u.ID, ClientID: l.ClientID, Return: l.RedirectURI, Methods: []string{"email"}, Secret: l.ID, Locale: l.Locale, Settings: l.DecodeSettings()}}, nil
}

// Resume takes a link's confirm POST, or a resend asked from a dead link,
// for the login the link belongs to.
func (a *Authenticator) Resume(ctx context.Context, c *flows.Context, in *flows.Entry) (flows.Result, error) {
	if in.Path == "resend" {
		r, err := a.Action(ctx, withForm(c, "action", "resend"))
		return detachIfElsewhere(c, r), err
	}
	return a.confirm(ctx, c, in.Form.Get("token"))
}

func withForm(c *flows.Context, k, v string) *flows.Context {
	c.Form = map[string][]string{k: {v}}
	return c
}

// detachIfElsewhere turns the answer to a resend asked from a browser that
// does not own the login into a notice that tells only what was mailed.
func detachIfElsewhere(c *flows.Context, r flows.Result) flows.Result {
	if c.SameBrowser || r.Status != flows.Challenge {
		return r
	}
	msg := flows.M("link.resentAnon")
	switch d := r.Data.(type) {
	case SentPage:
		switch {
		case !d.RetryAfter.IsZero():
			msg = d.RetryAfter
		case !d.Queued && d.ResendIn > 0:
			msg = flows.M("link.sentMomentsAgo", "Count", d.ResendIn)
		default:
			msg = flows.M("link.resent", "Email", d.Email)
		}
	case VerifyPage:
		msg = flows.M("verify.resent", "Email", d.Email)
		if !d.Error.IsZero() {
			msg = d.Error
		}
	}
	out := flows.Show(PageNotice, NoticePage{Heading: flows.M("notice.checkEmail"), Message: msg})
	out.Detached = true
	return out
}
