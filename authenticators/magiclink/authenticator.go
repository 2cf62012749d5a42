package magiclink

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"time"

	"latchkey/authenticators/profile"
	"latchkey/flows"
)

// Pages the authenticator shows.
const (
	PageEmail = "magic-link-email"
	PageSent  = "magic-link-sent"
)

// Session notes.
const (
	noteEmail  = "magic-link.email"
	noteSentAt = "magic-link.sentAt"
	noteSentTo = "magic-link.sentTo" // the address of the last send: kept by "use another email"
	noteMatch  = "magic-link.match"  // the number matching shows on this login's page
	// noteCodeFails counts wrong codes when no link was sent (no account):
	// the page then answers as a real link's would.
	noteCodeFails = "magic-link.codeFails"
)

// EmailForm is the data of the email page.
type EmailForm struct {
	Email string
	Error flows.Msg
}

// SentPage is the data of the "check your email" page.
type SentPage struct {
	Email      string
	Lifetime   time.Duration
	ResendIn   int       // seconds until resend is allowed; 0: now
	RetryAfter flows.Msg // set when a rate limit was reached
	Queued     bool      // this request sent a link (or, for an unknown address, would have)
	// Notice says what the last click did (sent again, or nothing yet).
	Notice flows.Msg

	CodeLength int       // digits of the code beside the link; 0: no code field
	CodeError  flows.Msg // why the typed code did not sign in (tied to the field)
	// MatchNumber is the number to pick on another device that opens the
	// link (number matching); 0: none.
	MatchNumber int
	// PollPath, relative to the page, is polled while another device may
	// approve this login ("": nothing to wait for).
	PollPath string
	// Approvable: another device may approve this login (the page offers
	// a "continue" button for browsers without JavaScript).
	Approvable bool
	// Ended says why the last link no longer works (a wrong number was
	// picked, too many wrong codes); a new one can be asked for.
	Ended flows.Msg
}

// ID is the authenticator's id in realm.yaml.
const ID = "magic-link"

// Factory builds magic-link authenticators.
type Factory struct{ Service *Service }

var _ flows.Factory = Factory{}

func (Factory) ID() string          { return ID }
func (Factory) DisplayName() string { return "Email link" }

func positive(v any) error {
	if i, ok := v.(int); ok && i < 1 {
		return errors.New("must be at least 1")
	}
	if d, ok := v.(time.Duration); ok && d <= 0 {
		return errors.New("must be a positive duration")
	}
	return nil
}

func (Factory) Options() []flows.Option {
	return []flows.Option{
		{Name: "forceCreateUser", Type: flows.Bool, Default: false, Help: "Create an account for an unknown email (unverified until the link is used)."},
		{Name: "updateProfileOnCreate", Type: flows.Bool, Default: false, Help: "New accounts fill in their first and last name at first login."},
		{Name: "linkTTL", Type: flows.Duration, Default: 15 * time.Minute, Help: "How long a link works (1m to 24h, at most sessions.authSessionTTL).", WithinAuthSession: true,
			Check: func(v any) error {
				if d := v.(time.Duration); d < time.Minute || d > 24*time.Hour {
					return errors.New("must be between 1m and 24h")
				}
				return nil
			}},
		{Name: "maxPerEmail", Type: flows.Int, Default: 5, Help: "Links sent to one address per rateWindow, counted per client IP (someone elsewhere cannot use up a user's links).", Check: positive},
		{Name: "maxPerEmailAllIPs", Type: flows.Int, Default: 20, Help: "Links sent to one address per rateWindow from all client IPs together.", Check: positive},
		{Name: "maxPerIP", Type: flows.Int, Default: 30, Help: "Links requested from one client IP per rateWindow.", Check: positive},
		{Name: "rateWindow", Type: flows.Duration, Default: 15 * time.Minute, Help: "Window of the send limits.", Check: positive},
		{Name: "resendCooldown", Type: flows.Duration, Default: 30 * time.Second, Help: "Wait between two sends for one login.", Check: positive},
		{Name: "code", Type: flows.Bool, Default: true, Help: "Mail a one-time code beside the link: typed on the login page, it signs in there (the mail was read on another device)."},
		{Name: "codeLength", Type: flows.Int, Default: 6, Help: "Digits of the code (6 to 8).",
			Check: func(v any) error {
				if n := v.(int); n < 6 || n > 8 {
					return errors.New("must be between 6 and 8")
				}
				return nil
			}},
		{Name: "codeAttempts", Type: flows.Int, Default: 5, Help: "Wrong codes per link before the link and its code stop working.", Check: positive},
		{Name: "crossDevice", Type: flows.Bool, Default: true, Help: "A link opened on a device that did not start the login may approve the login there instead of signing in on this device."},
		{Name: "numberMatching", Type: flows.Bool, Default: true, Help: "To approve, the other device must pick the number the login page shows (an attacker who started the login cannot get it approved blindly)."},
	}
}

func (f Factory) New(cfg flows.Config) (flows.Authenticator, error) {
	if f.Service == nil {
		return nil, errors.New("magic-link: no link service configured")
	}
	a := &Authenticator{svc: f.Service}
	if err := cfg.Decode(&a.opt); err != nil {
		return nil, err
	}
	return a, nil
}

// RequiredActions: VERIFY_EMAIL mails the same one-time links.
func (f Factory) RequiredActions() []flows.RequiredAction {
	return []flows.RequiredAction{VerifyEmail{Service: f.Service}}
}

// LinkTTL is the link lifetime an execution of this step is configured with.
func LinkTTL(cfg flows.Config) time.Duration { return cfg.Duration("linkTTL") }

// options are the step's options, decoded once from its schema (Options).
type options struct {
	ForceCreateUser       bool          `option:"forceCreateUser"`
	UpdateProfileOnCreate bool          `option:"updateProfileOnCreate"`
	LinkTTL               time.Duration `option:"linkTTL"`
	MaxPerEmail           int           `option:"maxPerEmail"`
	MaxPerEmailAllIPs     int           `option:"maxPerEmailAllIPs"`
	MaxPerIP              int           `option:"maxPerIP"`
	RateWindow            time.Duration `option:"rateWindow"`
	ResendCooldown        time.Duration `option:"resendCooldown"`
	Code                  bool          `option:"code"`
	CodeLength            int           `option:"codeLength"`
	CodeAttempts          int           `option:"codeAttempts"`
	CrossDevice           bool          `option:"crossDevice"`
	NumberMatching        bool          `option:"numberMatching"`
}

// approval is how another device may approve a login of this step.
func (o options) approval() string {
	switch {
	case !o.CrossDevice:
		return ""
	case o.NumberMatching:
		return ApproveByNumber
	}
	return ApproveByClick
}

// codeLength is the length of the code mailed beside the link; 0: none.
func (o options) codeLength() int {
	if !o.Code {
		return 0
	}
	return o.CodeLength
}

// Authenticator is the "magic-link" step.
type Authenticator struct {
	svc *Service
	opt options
}

var _ flows.Authenticator = (*Authenticator)(nil)

// Authenticate shows the email form, or "check your email" once sent;
// then, the login goes on if another device approved it.
func (a *Authenticator) Authenticate(ctx context.Context, c *flows.Context) (flows.Result, error) {
	if email := c.Session.Note(noteEmail); email != "" {
		return a.waiting(ctx, c, email, flows.Msg{})
	}
	return flows.Show(PageEmail, EmailForm{Email: c.Session.LoginHint}), nil
}

// Action handles the email form, resend and "use another email". The link
// itself comes back through the entry point (Resume).
func (a *Authenticator) Action(ctx context.Context, c *flows.Context) (flows.Result, error) {
	switch c.Form.Get("action") {
	case "code":
		return a.enterCode(ctx, c)
	case "check": // "I approved it on my other device" without JavaScript
		if email := c.Session.Note(noteEmail); email != "" {
			return a.waiting(ctx, c, email, flows.M("approve.notYet"))
		}
		return flows.Show(PageEmail, EmailForm{}), nil
	case "another":
		// The last send's time and address stay: typing the same address
		// again is a resend, and waits for the cooldown.
		c.Session.SetNote(noteEmail, "")
		return flows.Show(PageEmail, EmailForm{}), nil
	case "resend":
		if email := c.Session.Note(noteEmail); email != "" {
			return a.send(ctx, c, email)
		}
		return flows.Show(PageEmail, EmailForm{}), nil
	}
	typed := c.Form.Get("email")
	email, err := flows.ParseEmail(typed)
	if err != nil {
		return flows.Show(PageEmail, EmailForm{Email: typed, Error: flows.EmailMsg(err)}), nil
	}
	return a.send(ctx, c, email)
}

func (a *Authenticator) sentPage(c *flows.Context, email string, retry flows.Msg) SentPage {
	p := SentPage{Email: email, Lifetime: a.opt.LinkTTL, RetryAfter: retry, CodeLength: a.opt.codeLength(), Approvable: a.opt.CrossDevice}
	p.MatchNumber, _ = strconv.Atoi(c.Session.Note(noteMatch))
	if a.opt.CrossDevice {
		// Relative to the login page (.../login-actions/authenticate).
		p.PollPath = ID + "/status?session=" + url.QueryEscape(c.Session.ID)
	}
	if at, err := time.Parse(time.RFC3339Nano, c.Session.Note(noteSentAt)); err == nil {
		if left := a.opt.ResendCooldown - c.Time().Sub(at); left > 0 {
			p.ResendIn = int(left.Seconds()) + 1
		}
	}
	return p
}

// send issues a link for email. Whether or not the address has an account,
// the person sees the same page: no enumeration.
func (a *Authenticator) send(ctx context.Context, c *flows.Context, email string) (flows.Result, error) {
	now := c.Time()
	if c.Session.Note(noteSentTo) == email {
		if p := a.sentPage(c, email, flows.Msg{}); p.ResendIn > 0 {
			c.Session.SetNote(noteEmail, email)
			p.Notice = flows.M("link.sentMomentsAgo", "Count", p.ResendIn)
			return flows.Show(PageSent, p), nil
		}
	}
	// The address's limit from this client's address comes first and
	// alone: a request it refuses must not count toward the address's
	// limit over all client addresses, or someone elsewhere could use up
	// the user's links. The other two count together, in one round trip.
	for _, group := range [][]struct {
		name, key string
		max       int
	}{
		{{"per_email_and_ip", "ml:" + email + "|" + c.ClientIP, a.opt.MaxPerEmail}},
		{{"per_email", "ml:" + email, a.opt.MaxPerEmailAllIPs}, {"per_ip", "ml-ip:" + c.ClientIP, a.opt.MaxPerIP}},
	} {
		keys := make([]string, len(group))
		for i, lim := range group {
			keys[i] = lim.key
		}
		counts, ends, err := a.svc.Counter.HitAll(ctx, keys, a.opt.RateWindow, now)
		if err != nil {
			return flows.Result{}, err
		}
		for i, lim := range group {
			if counts[i] > lim.max {
				a.svc.Log.WarnContext(ctx, "magic link rate limit reached", "event", "link_rate_limited", "limit", lim.name, "client_ip", c.ClientIP)
				c.Session.SetNote(noteEmail, email)
				return flows.Show(PageSent, a.sentPage(c, email, flows.M("link.tooMany", "Wait", ends[i].Sub(now).Round(time.Second)))), nil
			}
		}
	}
	u, err := a.user(ctx, c, email, now)
	if err != nil {
		return flows.Result{}, err
	}
	// No account (and none may be created): send nothing, but do the same
	// work, rolled back, so the response takes as long (no enumeration).
	rehearse := u == nil || u.Disabled
	if rehearse {
		u = &flows.User{Email: email}
	}
	match := 0
	if a.opt.approval() == ApproveByNumber {
		if match, err = NewMatchNumber(); err != nil {
			return flows.Result{}, err
		}
	}
	if _, _, err := a.svc.Issue(ctx, Issue{
		User: u, Type: TypeLogin, AuthSessionID: c.Session.ID, Execution: c.Execution,
		ClientID: c.Session.ClientID, TTL: a.opt.LinkTTL, Send: true, Rehearse: rehearse, Locale: c.Locale,
		CodeLength: a.opt.codeLength(), Approval: a.opt.approval(), MatchNumber: match,
	}, now); err != nil {
		return flows.Result{}, err
	}
	c.Session.SetNote(noteMatch, "")
	if match != 0 {
		c.Session.SetNote(noteMatch, strconv.Itoa(match))
	}
	c.Session.SetNote(noteCodeFails, "")
	c.Session.SetNote(noteEmail, email)
	c.Session.SetNote(noteSentTo, email)
	c.Session.SetNote(noteSentAt, now.Format(time.RFC3339Nano))
	p := a.sentPage(c, email, flows.Msg{})
	p.Queued = true
	if c.Form.Get("action") == "resend" {
		p.Notice = flows.M("sent.resentNotice", "Email", email)
	}
	return flows.Show(PageSent, p), nil
}

func (a *Authenticator) user(ctx context.Context, c *flows.Context, email string, now time.Time) (*flows.User, error) {
	u, err := c.Users.UserByEmail(ctx, email)
	if err == nil {
		return u, nil
	}
	if !errors.Is(err, flows.ErrUserNotFound) {
		return nil, err
	}
	if !a.opt.ForceCreateUser {
		return nil, nil
	}
	u = &flows.User{Email: email, CreatedAt: now}
	if a.opt.UpdateProfileOnCreate {
		u.AddRequiredAction(profile.ID)
	}
	if err := c.Users.CreateUser(ctx, u); errors.Is(err, flows.ErrUserExists) {
		return c.Users.UserByEmail(ctx, email) // created concurrently
	} else if err != nil {
		return nil, err
	}
	a.svc.Log.InfoContext(ctx, "user created by magic link request", "event", "user_created", "user_id", u.ID)
	a.svc.observe(ctx, "registered", "", &Link{UserID: u.ID, ClientID: c.Session.ClientID})
	return u, nil
}

// confirm redeems a link posted from its confirm page.
func (a *Authenticator) confirm(ctx context.Context, c *flows.Context, token string) (flows.Result, error) {
	u, err := redeem(ctx, a.svc, c, token, TypeLogin)
	if err != nil || u == nil {
		return gone(flows.Fail(why(err))), nil
	}
	return a.signedIn(c, u), nil
}

// signedIn ends the step for the user of a link this login used (by the
// link, its code, or an approval).
func (a *Authenticator) signedIn(c *flows.Context, u *flows.User) flows.Result {
	c.SetUser(u)
	c.Session.AddMethod("email")
	c.Session.SetNote(noteEmail, "")
	return flows.Succeeded()
}

// userError is a refusal the person is told about.
type userError struct{ msg flows.Msg }

func (e userError) Error() string { return "link refused: " + e.msg.ID }

func why(err error) flows.Msg {
	var ue userError
	if errors.As(err, &ue) {
		return ue.msg
	}
	return flows.M("link.unknown")
}

// redeem checks that the link belongs to this login step, consumes it, and
// marks the address verified. Errors of type userError are safe to show.
func redeem(ctx context.Context, svc *Service, c *flows.Context, token, typ string) (*flows.User, error) {
	now := c.Time()
	owner := Owner{AuthSessionID: c.Session.ID, Execution: c.Execution, Type: typ}
	l, err := svc.Consume(ctx, token, owner, now)
	if errors.Is(err, ErrUnavailable) {
		// Only a refusal reads the link, to say why.
		l2, _ := svc.Inspect(ctx, token)
		switch {
		case l2 == nil:
			svc.Rejected(ctx, nil, "unknown")
			return nil, userError{Explain(nil, now)}
		case l2.Of() != owner:
			svc.Rejected(ctx, l2, "other_login")
			return nil, userError{flows.M("link.otherLogin")}
		}
		svc.Rejected(ctx, l2, l2.Status(now))
		return nil, userError{Explain(l2, now)}
	}
	if err != nil {
		return nil, err
	}
	return accept(ctx, svc, c, l)
}

// accept is the end of every way a login uses its link (the link, its
// code, an approval): the link, consumed by the caller in one statement,
// must still name an active account at the address it was mailed to;
// that address is now verified.
func accept(ctx context.Context, svc *Service, c *flows.Context, l *Link) (*flows.User, error) {
	c.ConsumedSecret = l.ID
	u, err := c.Users.UserByID(ctx, l.UserID)
	if err != nil && !errors.Is(err, flows.ErrUserNotFound) {
		return nil, err
	}
	if err != nil || u.Email != l.Email || u.Disabled {
		svc.Rejected(ctx, l, "account_changed")
		return nil, userError{flows.M("link.accountChanged")}
	}
	if !u.EmailVerified {
		u.EmailVerified = true
		if err := c.Users.UpdateUser(ctx, u); err != nil {
			return nil, err
		}
	}
	return u, nil
}
