package magiclink

import (
	"context"
	"errors"
	"strconv"
	"time"

	"latchkey/flows"
)

// A link opened on a device that did not start its login: that device may
// sign in itself, approve the login where it started (picking the number
// that page shows), or say "This wasn't me". Nothing here continues the
// login: an approval marks the link, and the login's own browser, bound
// to it, goes on (Authenticator.waiting).

// confirmPage is what opening a pending link shows: "Continue as ..." in
// the browser that started the login (one click, as ever); elsewhere, the
// choice between signing in here and approving the other device.
func (f Factory) confirmPage(ctx context.Context, in *flows.Entry, l *Link, token string) (flows.Entered, error) {
	p := ConfirmPage{Email: l.Email, Token: token}
	if l.AuthSessionID != "" && l.Approval != "" && in.HoldsLogin != nil {
		holds, err := in.HoldsLogin(ctx, l.AuthSessionID)
		if err != nil {
			return flows.Entered{}, err
		}
		p.OtherDevice = !holds
	}
	return answer(flows.Show(PageConfirm, p)), nil
}

// approve approves the link's login for the device that started it. With
// number matching the first POST shows the numbers, the second carries the
// pick: the right one approves, a wrong one kills the link at once (with
// three choices a second try would make a blind approval likely).
func (f Factory) approve(ctx context.Context, in *flows.Entry, l *Link, status, token string, now time.Time) (flows.Entered, error) {
	svc := f.Service
	switch {
	case in.Method != "POST":
		return answer(gone(flows.Fail(flows.M("link.openAgain")))), nil
	case status != "pending":
		return f.invalid(ctx, in, l, status, token, now)
	case l.AuthSessionID == "" || l.Approval == "":
		svc.Rejected(ctx, l, "not_approvable")
		return answer(flows.Fail(flows.M("approve.notPossible"))), nil
	}
	if in.WaitsAt != nil {
		waits, err := in.WaitsAt(ctx, l.AuthSessionID, l.Execution)
		if err != nil {
			return flows.Entered{}, err
		}
		if !waits {
			return answer(gone(flows.Fail(flows.M("link.loginEnded")))), nil
		}
	}
	if l.Approval == ApproveByNumber {
		pick := in.Form.Get("number")
		if pick == "" {
			return answer(flows.Show(PageApprove, ApprovePage{Email: l.Email, Token: token, Choices: l.Choices()})), nil
		}
		if n, err := strconv.Atoi(pick); err != nil || n != l.MatchNumber {
			if _, err := svc.Store.RevokeLink(ctx, l.ID, RevokedWrongNumber, now); err != nil {
				return flows.Entered{}, err
			}
			svc.observe(ctx, "rejected", RevokedWrongNumber, l)
			svc.Log.WarnContext(ctx, "magic link approval refused", "event", "link_rejected", "link_id", l.ID, "reason", RevokedWrongNumber,
				"user_id", l.UserID, "client_ip", in.ClientIP)
			return answer(gone(flows.Show(PageNotice, NoticePage{Heading: flows.M("approve.wrongHeading"), Message: flows.M("approve.wrong")}))), nil
		}
	}
	if _, err := svc.Store.ApproveLink(ctx, l.ID, now); errors.Is(err, ErrUnavailable) {
		l2, _ := svc.Inspect(ctx, token)
		return f.invalid(ctx, in, l2, statusOf(l2, now), token, now)
	} else if err != nil {
		return flows.Entered{}, err
	}
	svc.observe(ctx, "approved", "", l)
	svc.Log.InfoContext(ctx, "magic link approved on another device", "event", "link_approved", "link_id", l.ID, "user_id", l.UserID,
		"client_ip", in.ClientIP)
	return answer(flows.Show(PageNotice, NoticePage{Heading: flows.M("approve.doneHeading"), Message: flows.M("approve.done")})), nil
}

// decline is "This wasn't me": the link dies, and the login that sent it
// is told it was declined.
func (f Factory) decline(ctx context.Context, in *flows.Entry, l *Link, status, token string, now time.Time) (flows.Entered, error) {
	svc := f.Service
	switch {
	case in.Method != "POST":
		return answer(gone(flows.Fail(flows.M("link.openAgain")))), nil
	case status != "pending" && status != "approved":
		return f.invalid(ctx, in, l, status, token, now)
	}
	if _, err := svc.Store.RevokeLink(ctx, l.ID, RevokedDeclined, now); err != nil {
		return flows.Entered{}, err
	}
	svc.observe(ctx, "declined", "", l)
	svc.Log.WarnContext(ctx, "magic link declined: the address holder did not ask to sign in", "event", "link_declined", "link_id", l.ID,
		"user_id", l.UserID, "client_id", l.ClientID, "client_ip", in.ClientIP)
	return answer(gone(flows.Show(PageNotice, NoticePage{Heading: flows.M("decline.heading"), Message: flows.M("decline.done")}))), nil
}

// status answers the login page that polls while its link is out: one
// indexed read. It tells only whether to look again, and says "waiting"
// for a login that sent nothing (no account), as for one whose link is
// still unopened.
func (f Factory) status(ctx context.Context, in *flows.Entry, now time.Time) (flows.Entered, error) {
	session := in.Query.Get("session")
	if session == "" || len(session) > 128 {
		return flows.Entered{Progress: flows.Waiting}, nil
	}
	l, err := f.Service.Store.LinkForLogin(ctx, session)
	if errors.Is(err, ErrNotFound) {
		return flows.Entered{Progress: flows.Waiting}, nil
	}
	if err != nil {
		return flows.Entered{}, err
	}
	switch l.Status(now) {
	case "approved", "used":
		return flows.Entered{Progress: flows.Changed}, nil
	case "revoked": // the reasons the login's page tells (Authenticator.waiting)
		switch l.RevokedReason {
		case RevokedDeclined, RevokedWrongNumber, RevokedCodeAttempts:
			return flows.Entered{Progress: flows.Changed}, nil
		}
	}
	return flows.Entered{Progress: flows.Waiting}, nil
}
