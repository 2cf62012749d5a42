// Package mail delivers the outbox: a sender claims due messages with a
// lease, hands them to SMTP (or the development sink), and records the
// outcome. Delivery never happens while a user waits.
package mail

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"

	"latchkey/server/config"
	"latchkey/server/store"
)

// Outbox is the part of the store the sender uses.
type Outbox interface {
	ClaimMail(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]store.OutboxMail, error)
	RecordMail(ctx context.Context, owner string, outcomes []store.MailOutcome) (lost []uint64, err error)
	ReleaseMailLeases(ctx context.Context, owner string) error
	ReleaseMail(ctx context.Context, owner string, ids []uint64) error
}

// Transport hands one message to the next hop.
type Transport interface {
	Send(ctx context.Context, m *store.OutboxMail) error
}

// PermanentError is a refusal not worth retrying (SMTP 5xx).
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// SMTP sends through an SMTP server with go-mail. Connections are kept
// open between messages (up to maxIdle, for idleTimeout): a login storm
// then costs one message on an open connection per mail, not a TCP (and
// TLS, and AUTH) handshake each.
//
// Every stage of a send (connect, greeting, EHLO, STARTTLS, AUTH, the
// message itself) ends by the deadline of the context given to Send: each
// stage runs under a go-mail client whose timeout is the time left, and
// go-mail puts that timeout on the connection as an absolute deadline.
type SMTP struct {
	cfg  config.SMTP
	opts []gomail.Option // everything but the timeout
	idle chan *smtpConn
}

type smtpConn struct {
	c    *smtp.Client
	last time.Time
}

const (
	maxIdle = 8
	// idleTimeout is well under the 5 minutes RFC 5321 lets servers wait,
	// so a kept connection is rarely one the server already dropped.
	idleTimeout = 30 * time.Second
	// defaultSendTimeout bounds a send whose context has no deadline.
	defaultSendTimeout = 20 * time.Second
)

// NewSMTP validates the settings.
func NewSMTP(cfg config.SMTP) (*SMTP, error) {
	if _, err := mail.ParseAddress(cfg.From); err != nil {
		return nil, fmt.Errorf("smtp.from: %w", err)
	}
	helo, err := os.Hostname()
	if err != nil || helo == "" {
		helo = "localhost"
	}
	// Neither NOOP before a message nor RSET after it: a transaction ends
	// with the server's answer to its data (RFC 5321 4.1.1.4), and a kept
	// connection the server dropped fails at MAIL FROM, before anything of
	// the message is sent (see Send). Each was a round trip per mail.
	opts := []gomail.Option{gomail.WithPort(cfg.Port), gomail.WithHELO(helo), gomail.WithoutNoop(), gomail.WithoutRset()}
	switch cfg.TLS {
	case "none":
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	case "starttls":
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case "tls":
		opts = append(opts, gomail.WithSSL())
	}
	if cfg.Username != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(cfg.Username), gomail.WithPassword(cfg.Password))
	}
	return &SMTP{cfg: cfg, opts: opts, idle: make(chan *smtpConn, maxIdle)}, nil
}

// client returns a go-mail client whose every network operation ends by deadline.
func (s *SMTP) client(deadline time.Time) (*gomail.Client, error) {
	left := time.Until(deadline)
	if left <= 0 {
		return nil, fmt.Errorf("smtp: no time left for the send: %w", context.DeadlineExceeded)
	}
	c, err := gomail.NewClient(s.cfg.Host, append(slices.Clip(s.opts), gomail.WithTimeout(left))...)
	if err != nil {
		return nil, &PermanentError{fmt.Errorf("smtp client: %w", err)}
	}
	return c, nil
}

// Send delivers m before ctx's deadline. 5xx answers are permanent;
// connection failures, timeouts and 4xx answers are worth retrying.
func (s *SMTP) Send(ctx context.Context, m *store.OutboxMail) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(defaultSendTimeout)
	}
	msg := gomail.NewMsg()
	if err := msg.From(s.cfg.From); err != nil {
		return &PermanentError{fmt.Errorf("from address: %w", err)}
	}
	if err := msg.To(m.To); err != nil {
		return &PermanentError{fmt.Errorf("to address: %w", err)}
	}
	msg.Subject(m.Subject)
	// A stable Message-ID lets receivers drop the duplicate if a node dies
	// between handing a message over and recording it.
	msg.SetMessageIDWithValue(fmt.Sprintf("outbox-%d@%s", m.ID, domainOf(s.cfg.From)))
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	for {
		cn, kept, err := s.conn(ctx, deadline)
		if err != nil {
			return err
		}
		gc, err := s.client(deadline)
		if err != nil {
			_ = cn.c.Close()
			return err
		}
		err = gc.SendWithSMTPClient(cn.c, msg)
		if err == nil {
			s.release(cn)
			return nil
		}
		_ = cn.c.Close()
		if kept && dropped(err) {
			continue
		}
		return classify(err)
	}
}

// dropped tells a kept connection the server has closed: the first command
// of the message (MAIL FROM) got no SMTP answer at all. Nothing of the
// message was sent, so it is safe to send on a fresh connection; an answer
// with a code (421, 5xx) is the server's word and is classified instead.
func dropped(err error) bool {
	var se *gomail.SendError
	return errors.As(err, &se) && (se.Reason == gomail.ErrConnCheck || se.Reason == gomail.ErrSMTPMailFrom && se.ErrorCode() == 0)
}

// classify marks SMTP 5xx answers permanent; anything else is worth a retry.
func classify(err error) error {
	var se *gomail.SendError
	if errors.As(err, &se) && se.ErrorCode() >= 500 && se.ErrorCode() < 600 {
		return &PermanentError{err}
	}
	return err
}

// conn returns a kept connection that is not too old, or dials one.
func (s *SMTP) conn(ctx context.Context, deadline time.Time) (cn *smtpConn, kept bool, err error) {
	for {
		select {
		case cn := <-s.idle:
			if time.Since(cn.last) < idleTimeout {
				return cn, true, nil
			}
			_ = cn.c.Close()
		default:
			cn, err := s.dial(ctx, deadline)
			return cn, false, err
		}
	}
}

// dial opens a new connection (with STARTTLS/TLS and AUTH as configured),
// every step of it ending by deadline.
func (s *SMTP) dial(ctx context.Context, deadline time.Time) (*smtpConn, error) {
	gc, err := s.client(deadline)
	if err != nil {
		return nil, err
	}
	c, err := gc.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return nil, classify(err) // a 5xx here is e.g. authentication refused
	}
	return &smtpConn{c: c}, nil
}

// release keeps a healthy connection for the next message, or closes it.
func (s *SMTP) release(cn *smtpConn) {
	cn.last = time.Now()
	select {
	case s.idle <- cn:
	default:
		quit(cn.c)
	}
}

// quit says goodbye briefly and always closes the connection.
func quit(c *smtp.Client) {
	_ = c.UpdateDeadline(2 * time.Second)
	if err := c.Quit(); err != nil {
		_ = c.Close()
	}
}

// Close closes the kept connections (QUIT).
func (s *SMTP) Close() error {
	for {
		select {
		case cn := <-s.idle:
			quit(cn.c)
		default:
			return nil
		}
	}
}

func domainOf(from string) string {
	if a, err := mail.ParseAddress(from); err == nil {
		if i := strings.LastIndexByte(a.Address, '@'); i >= 0 {
			return a.Address[i+1:]
		}
	}
	return "latchkey.invalid"
}

// DevSink stands in for SMTP when none is configured: the mail stays in
// the outbox table, shown on the development mail page, and is not delivered.
type DevSink struct {
	Log     *slog.Logger
	PageURL string
}

// Send records the message as captured. The body (with its link) is not
// logged: links are secrets even in development.
func (d DevSink) Send(_ context.Context, m *store.OutboxMail) error {
	d.Log.Warn("mail NOT delivered (development sink): open the development mailbox to read it",
		"event", "mail_captured", "to", m.To, "subject", m.Subject, "mailbox", d.PageURL)
	return nil
}

// Sender runs the delivery loop.
type Sender struct {
	Outbox    Outbox
	Transport Transport
	// Logout delivers back-channel logout tokens (kind
	// store.KindBackchannelLogout); nil: they fail permanently.
	Logout Transport
	// Webhooks delivers events (kind store.KindWebhook); nil: they fail.
	Webhooks Transport
	// Failed, when set, hears of each failed attempt (metrics).
	Failed   func(kind string, final bool)
	Owner    string // this node's lease owner id
	Log      *slog.Logger
	Poll     time.Duration // how often to look for due mail
	Lease    time.Duration // how long a claim is held
	MaxTries int
	Parallel int     // messages sent at once
	Sealer   *Sealer // opens bodies sealed at rest
	// Keep leaves delivered messages in the outbox, marked sent (the
	// development mailbox shows them) until the purge; otherwise a message
	// leaves the outbox once delivered (the log's mail_delivered names it).
	Keep bool
	// RecordDelay is how long outcomes wait to be recorded together: the
	// messages sent meanwhile share one write transaction. 0: 50ms.
	RecordDelay time.Duration

	wake chan struct{}
	// claimDue: the outbox may hold due messages this sender has not been
	// handed (Wake, the poll, a lease released).
	claimDue atomic.Bool
	running  atomic.Bool

	mu     sync.Mutex
	handed []store.OutboxMail // committed, leased to this node (Handoff)
	unheld []uint64           // handed over past maxHanded: leases to release

	pending []store.MailOutcome // not yet recorded; the loop's own
}

// maxHanded bounds the handed-over messages held in memory; past it a
// message's lease is released and it is claimed like any other.
const maxHanded = 256

// Running reports whether the delivery loop runs (readiness).
func (s *Sender) Running() bool { return s.running.Load() }

// Wake makes the sender look for mail now (after a commit that queued some).
func (s *Sender) Wake() {
	s.claimDue.Store(true)
	s.signal()
}

// Reserve is the lease to write on a message queued now, for this node's
// sender to deliver it once handed over (Handoff) without claiming it: a
// claim is a write transaction (and on PostgreSQL a round trip) per batch.
// ok is false while the sender does not run: queue the message unleased
// and Wake the sender.
func (s *Sender) Reserve(now time.Time) (owner string, until time.Time, ok bool) {
	if s.wake == nil || !s.running.Load() {
		return "", time.Time{}, false
	}
	return s.Owner, now.Add(s.Lease), true
}

// Handoff gives the sender a message queued with Reserve's lease, once the
// transaction that queued it has committed. Should the node stop before
// sending it, the message waits for its lease to end and is claimed then,
// here or by another node (as when a node dies mid-send).
func (s *Sender) Handoff(m store.OutboxMail) {
	s.mu.Lock()
	if len(s.handed) < maxHanded {
		s.handed = append(s.handed, m)
	} else {
		s.unheld = append(s.unheld, m.ID)
	}
	s.mu.Unlock()
	s.signal()
}

// takeHanded returns up to limit handed-over messages, and the ids of
// those past maxHanded.
func (s *Sender) takeHanded(limit int) (batch []store.OutboxMail, unheld []uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := min(limit, len(s.handed))
	batch = slices.Clone(s.handed[:n])
	s.handed = slices.Delete(s.handed, 0, n)
	unheld, s.unheld = s.unheld, nil
	return batch, unheld
}

func (s *Sender) signal() {
	if s.wake == nil {
		return
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Init prepares the wake channel; call before Run and Wake.
func (s *Sender) Init() *Sender {
	s.wake = make(chan struct{}, 1)
	if s.Poll == 0 {
		s.Poll = time.Second
	}
	if s.Lease == 0 {
		s.Lease = time.Minute
	}
	if s.MaxTries == 0 {
		s.MaxTries = 12
	}
	if s.Parallel < 1 {
		s.Parallel = 8
	}
	if s.RecordDelay == 0 {
		s.RecordDelay = 50 * time.Millisecond
	}
	return s
}

// Go runs the delivery loop in a goroutine; it reports running from the
// moment Go returns (readiness), and done closes when the loop has ended.
func (s *Sender) Go(ctx context.Context) (done <-chan struct{}) {
	s.running.Store(true)
	ch := make(chan struct{})
	go func() { defer close(ch); s.Run(ctx) }()
	return ch
}

// Run delivers until ctx ends, then releases its leases.
func (s *Sender) Run(ctx context.Context) {
	s.running.Store(true)
	defer s.running.Store(false)
	t := time.NewTicker(s.Poll)
	defer t.Stop()
	s.claimDue.Store(true)
	var record <-chan time.Time // set while outcomes wait to be recorded
	for {
		s.drain(ctx)
		if len(s.pending) > 0 && record == nil {
			record = time.After(s.RecordDelay)
		}
		select {
		case <-record:
			record = nil
			s.record(ctx)
		case <-ctx.Done():
			s.record(ctx)
			// No more reservations; then every lease of this node is
			// handed back, those of messages handed over but not sent too.
			s.running.Store(false)
			rel, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := s.Outbox.ReleaseMailLeases(rel, s.Owner); err != nil {
				s.Log.Warn("release mail leases", "err", err)
			}
			cancel()
			if c, ok := s.Transport.(io.Closer); ok {
				_ = c.Close()
			}
			return
		case <-t.C:
			s.claimDue.Store(true)
		case <-s.wake:
		}
	}
}

// drain sends what was handed over and, when due, what the outbox holds,
// a batch at a time, until there is nothing left to send.
func (s *Sender) drain(ctx context.Context) {
	for ctx.Err() == nil {
		limit := 2 * s.Parallel
		batch, unheld := s.takeHanded(limit)
		if len(unheld) > 0 {
			s.release(ctx, unheld)
		}
		if len(batch) < limit && s.claimDue.Swap(false) {
			want := limit - len(batch)
			claimed, err := s.Outbox.ClaimMail(ctx, s.Owner, time.Now(), s.Lease, want)
			if err != nil && ctx.Err() == nil {
				s.Log.Error("claim mail", "err", err)
			}
			if len(claimed) == want {
				s.claimDue.Store(true) // there may be more
			}
			batch = append(batch, claimed...)
		}
		if len(batch) == 0 {
			return
		}
		s.send(ctx, batch)
	}
}

// send delivers a batch, Parallel messages at once. Every send must
// finish inside its lease, or another node could claim the same message: a
// send starts only while at least half the lease is left, and is cut off
// (every SMTP stage, see SMTP) after half a lease. A message whose time is
// up is handed back, to be claimed again.
//
// Outcomes are recorded RecordDelay later (Run), with those of the batches
// sent meanwhile, in one transaction; at once when 2x Parallel are
// waiting, or when a message has less than a quarter of its lease left (a
// slow send), so that no outcome is recorded after its lease.
func (s *Sender) send(ctx context.Context, batch []store.OutboxMail) {
	sem := make(chan struct{}, s.Parallel)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		outcomes []store.MailOutcome
		late     []uint64
		urgent   bool
	)
	for i := range batch {
		m := &batch[i]
		sem <- struct{}{} // may wait for a slow send: check the lease after
		if m.LeaseUntil == nil || time.Until(*m.LeaseUntil) < s.Lease/2 {
			<-sem
			late = append(late, m.ID)
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			o := s.deliver(ctx, m)
			mu.Lock()
			outcomes = append(outcomes, o)
			urgent = urgent || time.Until(*m.LeaseUntil) < s.Lease/4
			mu.Unlock()
		}()
	}
	wg.Wait()
	s.pending = append(s.pending, outcomes...)
	if urgent || len(s.pending) >= 2*s.Parallel {
		s.record(ctx)
	}
	if len(late) > 0 {
		s.release(ctx, late)
	}
}

// record stores the outcomes waiting, in one transaction: even while
// shutting down, since the mail went out.
func (s *Sender) record(ctx context.Context) {
	if len(s.pending) == 0 {
		return
	}
	outcomes := s.pending
	s.pending = nil
	lost, err := s.Outbox.RecordMail(context.WithoutCancel(ctx), s.Owner, outcomes)
	if err != nil {
		s.Log.Error("record mail outcomes", "mails", len(outcomes), "err", err)
	}
	if len(lost) > 0 {
		s.Log.Error("mail outcomes not recorded: the lease ran out and another node took the messages; raise outbox.lease",
			"event", "mail_lease_lost", "mail_ids", lost, "lease", s.Lease)
	}
}

// release hands leases back before they end, for the messages to be
// claimed at once (here, on the next batch, or by another node).
func (s *Sender) release(ctx context.Context, ids []uint64) {
	if err := s.Outbox.ReleaseMail(context.WithoutCancel(ctx), s.Owner, ids); err != nil {
		s.Log.Warn("release mail leases", "mail_ids", ids, "err", err)
		return
	}
	s.claimDue.Store(true)
}

// deliver sends m and says what became of it; the caller records outcomes
// a batch at a time.
func (s *Sender) deliver(ctx context.Context, m *store.OutboxMail) store.MailOutcome {
	err := s.open(m)
	if err == nil {
		sendCtx, cancel := context.WithTimeout(ctx, s.Lease/2)
		err = s.transport(m).Send(sendCtx, m)
		cancel()
	}
	o := store.MailOutcome{ID: m.ID, At: time.Now()}
	var perm *PermanentError
	switch {
	case err == nil:
		o.Sent, o.Drop = true, !s.Keep
		s.Log.Info("mail delivered", "event", "mail_delivered", "kind", kindName(m), "mail_id", m.ID, "ref", m.Ref, "attempt", m.Attempts+1)
	case errors.As(err, &perm) || m.Attempts+1 >= s.MaxTries:
		o.Error = truncate(err.Error())
		s.failed(m, true)
		s.Log.Error("mail delivery failed; giving up", "event", "mail_failed", "kind", kindName(m), "mail_id", m.ID, "ref", m.Ref, "attempt", m.Attempts+1, "err", err)
	default:
		o.Error, o.Retry = truncate(err.Error()), o.At.Add(Backoff(m.Attempts))
		s.failed(m, false)
		s.Log.Warn("mail delivery failed; will retry", "event", "mail_retry", "kind", kindName(m), "mail_id", m.ID, "ref", m.Ref, "attempt", m.Attempts+1, "next_attempt", o.Retry, "err", err)
	}
	return o
}

// transport is the transport of the entry's kind.
func (s *Sender) transport(m *store.OutboxMail) Transport {
	var t Transport
	switch m.Kind {
	case store.KindBackchannelLogout:
		t = s.Logout
	case store.KindWebhook:
		t = s.Webhooks
	default:
		t = s.Transport
	}
	if t == nil {
		return failing{}
	}
	return t
}

func (s *Sender) failed(m *store.OutboxMail, final bool) {
	if s.Failed != nil {
		s.Failed(kindName(m), final)
	}
}

// kindName names an outbox entry's kind in logs ("mail" for mail).
func kindName(m *store.OutboxMail) string {
	if m.Kind == "" {
		return "mail"
	}
	return m.Kind
}

type failing struct{}

func (failing) Send(context.Context, *store.OutboxMail) error {
	return &PermanentError{errors.New("no transport for this kind of outbox entry")}
}

// open decrypts a message's bodies; a body that cannot be opened is a
// permanent failure (another realm's key, or corruption).
func (s *Sender) open(m *store.OutboxMail) error {
	if s.Sealer == nil {
		return nil
	}
	var err error
	if m.Text, err = s.Sealer.Open(m.Text); err != nil {
		return &PermanentError{err}
	}
	if m.HTML, err = s.Sealer.Open(m.HTML); err != nil {
		return &PermanentError{err}
	}
	return nil
}

// Backoff is the wait after the given number of failed attempts: 1s, 2s,
// 4s ... capped at 5 minutes.
func Backoff(attempts int) time.Duration {
	if attempts > 8 {
		return 5 * time.Minute
	}
	d := time.Second << attempts
	return min(d, 5*time.Minute)
}

func truncate(s string) string {
	if len(s) > 500 {
		return s[:500]
	}
	return s
}
