package magiclink

import (
	"context"
	"errors"
	"strconv"
	"time"

	"latchkey/flows"
)

// The login's own page while its link is out: the code typed there, and
// the answer of another device that opened the link.

// waiting shows "check your email", unless the link's fate was decided
// elsewhere: an approval signs in here; "This wasn't me" ends the login; a
// wrong number or too many wrong codes ended the link (the page says so).
func (a *Authenticator) waiting(ctx context.Context, c *flows.Context, email string, notice flows.Msg) (flows.Result, error) {
	p := a.sentPage(c, email, flows.Msg{})
	p.Notice = notice
	if !a.opt.CrossDevice && a.opt.codeLength() == 0 {
		return flows.Show(PageSent, p), nil
	}
	l, err := a.linkOf(ctx, c)
	if err != nil {
		return flows.Result{}, err
	}
	if l == nil { // nothing was sent: only wrong codes can have ended it
		if n, _ := strconv.Atoi(c.Session.Note(noteCodeFails)); n >= a.opt.CodeAttempts {
			return a.wrongCode(p, n), nil
		}
		return flows.Show(PageSent, p), nil
	}
	switch {
	case l.ApprovedAt != nil && l.UsedAt == nil && l.RevokedAt == nil:
		l, err := a.svc.observed(ctx, "confirmed", "approval", func(ctx context.Context) (*Link, error) {
			return a.svc.Store.ClaimApprovedLink(ctx, l.ID, c.Time())
		})
		if errors.Is(err, ErrUnavailable) {
			return flows.Show(PageSent, p), nil // declined meanwhile, or claimed by another tab
		}
		if err != nil {
			return flows.Result{}, err
		}
		a.svc.Log.InfoContext(ctx, "magic link approval used", "event", "link_confirmed", "link_id", l.ID, "user_id", l.UserID, "method", "approval")
		return a.accepted(ctx, c, l)
	case l.RevokedReason == RevokedDeclined:
		return gone(flows.Fail(flows.M("approve.declinedHere"))), nil
	case l.RevokedReason == RevokedWrongNumber || l.RevokedReason == RevokedCodeAttempts:
		p.Ended, p.PollPath, p.Notice = Explain(l, c.Time()), "", flows.Msg{}
	}
	return flows.Show(PageSent, p), nil
}

// linkOf is the link this login sent last, nil when none was (no account
// for the address: nothing was sent, and the page must not tell).
func (a *Authenticator) linkOf(ctx context.Context, c *flows.Context) (*Link, error) {
	l, err := a.svc.Store.LinkForLogin(ctx, c.Session.ID)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	case l.Execution != c.Execution || l.Type != TypeLogin:
		return nil, nil
	}
	return l, nil
}

// enterCode signs in with the code mailed beside the link. The code is
// checked in constant time against its keyed hash; a wrong one is counted
// on the link in one statement, and the codeAttempts-th kills the link
// and its code; the right one consumes the link in one statement, so of
// concurrent tries exactly one signs in.
func (a *Authenticator) enterCode(ctx context.Context, c *flows.Context) (flows.Result, error) {
	email := c.Session.Note(noteEmail)
	if email == "" || a.opt.codeLength() == 0 {
		return flows.Show(PageEmail, EmailForm{}), nil
	}
	now := c.Time()
	p := a.sentPage(c, email, flows.Msg{})
	code, ok := NormalizeCode(c.Form.Get("code"), a.opt.CodeLength)
	if !ok {
		p.CodeError = flows.M("code.format", "Count", a.opt.CodeLength)
		return flows.Show(PageSent, p), nil
	}
	l, err := a.linkOf(ctx, c)
	if err != nil {
		return flows.Result{}, err
	}
	if l == nil {
		n, _ := strconv.Atoi(c.Session.Note(noteCodeFails))
		c.Session.SetNote(noteCodeFails, strconv.Itoa(n+1))
		return a.wrongCode(p, n+1), nil
	}
	if l.Status(now) != "pending" {
		return a.deadCode(p, l, now), nil
	}
	if !a.svc.CodeMatches(l, code) {
		l2, err := a.svc.Store.FailLinkCode(ctx, l.ID, a.opt.CodeAttempts, now)
		if errors.Is(err, ErrUnavailable) {
			return a.deadCode(p, l, now), nil
		}
		if err != nil {
			return flows.Result{}, err
		}
		a.svc.observe(ctx, "code_rejected", "", l)
		a.svc.Log.InfoContext(ctx, "magic link code rejected", "event", "link_code_rejected", "link_id", l.ID, "failures", l2.CodeFailures,
			"client_ip", c.ClientIP)
		return a.wrongCode(p, l2.CodeFailures), nil
	}
	l, err = a.svc.observed(ctx, "confirmed", "code", func(ctx context.Context) (*Link, error) {
		return a.svc.Store.ConsumeLinkByID(ctx, l.ID, now)
	})
	if errors.Is(err, ErrUnavailable) {
		p.CodeError = flows.M("code.used")
		return flows.Show(PageSent, p), nil
	}
	if err != nil {
		return flows.Result{}, err
	}
	a.svc.Log.InfoContext(ctx, "magic link code accepted", "event", "link_confirmed", "link_id", l.ID, "user_id", l.UserID, "method", "code")
	return a.accepted(ctx, c, l)
}

// accepted ends the step for a link this login consumed here.
func (a *Authenticator) accepted(ctx context.Context, c *flows.Context, l *Link) (flows.Result, error) {
	u, err := accept(ctx, a.svc, c, l)
	var ue userError
	if errors.As(err, &ue) {
		return gone(flows.Fail(ue.msg)), nil
	}
	if err != nil {
		return flows.Result{}, err
	}
	return a.signedIn(c, u), nil
}

// wrongCode says how many tries are left, or that there are none.
func (a *Authenticator) wrongCode(p SentPage, failures int) flows.Result {
	if left := a.opt.CodeAttempts - failures; left > 0 {
		p.CodeError = flows.M("code.wrong", "Count", left)
	} else {
		p.Ended, p.PollPath = flows.M("link.codeAttempts"), ""
	}
	return flows.Show(PageSent, p)
}

// deadCode says why the code of a link that no longer works cannot sign in.
func (a *Authenticator) deadCode(p SentPage, l *Link, now time.Time) flows.Result {
	switch l.Status(now) {
	case "used", "approved":
		p.CodeError = flows.M("code.used")
	case "expired":
		p.CodeError = flows.M("code.expired")
	default: // revoked: too many codes, a wrong number, "This wasn't me", an admin
		p.Ended, p.PollPath = Explain(l, now), ""
	}
	return flows.Show(PageSent, p)
}
