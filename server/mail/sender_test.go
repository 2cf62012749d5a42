package mail_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"latchkey/e2e/testkit"
	"latchkey/server/config"
	"latchkey/server/mail"
	"latchkey/server/store"
)

// countingOutbox is the real store, counting the sender's claims and the
// leases it hands back.
type countingOutbox struct {
	*store.Store
	mu       sync.Mutex
	claims   int
	released []uint64
	records  int // RecordMail transactions
}

func (o *countingOutbox) ClaimMail(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]store.OutboxMail, error) {
	o.mu.Lock()
	o.claims++
	o.mu.Unlock()
	return o.Store.ClaimMail(ctx, owner, now, lease, limit)
}

func (o *countingOutbox) ReleaseMail(ctx context.Context, owner string, ids []uint64) error {
	o.mu.Lock()
	o.released = append(o.released, ids...)
	o.mu.Unlock()
	return o.Store.ReleaseMail(ctx, owner, ids)
}

func (o *countingOutbox) RecordMail(ctx context.Context, owner string, outcomes []store.MailOutcome) ([]uint64, error) {
	o.mu.Lock()
	o.records++
	o.mu.Unlock()
	return o.Store.RecordMail(ctx, owner, outcomes)
}

func (o *countingOutbox) counts() (claims, records int, released []uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.claims, o.records, append([]uint64(nil), o.released...)
}

func openOutbox(t *testing.T) *countingOutbox {
	t.Helper()
	st, err := store.Open("sqlite", filepath.Join(t.TempDir(), "outbox.db"), store.Options{MaxOpenConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return &countingOutbox{Store: st}
}

// startSender runs a sender that polls only once an hour: what it sends,
// it was handed or woken for. stop ends it and waits. recordDelay 0 is
// the default.
func startSender(t *testing.T, o *countingOutbox, tr mail.Transport, lease, recordDelay time.Duration) (s *mail.Sender, stop func()) {
	t.Helper()
	s = (&mail.Sender{Outbox: o, Transport: tr, Owner: "node-a", Log: slog.Default(), Poll: time.Hour, Lease: lease, RecordDelay: recordDelay}).Init()
	if _, _, ok := s.Reserve(time.Now()); ok {
		t.Fatal("a sender that does not run reserved a lease")
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := s.Go(ctx)
	// The first look at the outbox, at start, is the one claim expected.
	waitUntil(t, "the sender's first claim", func() bool { n, _, _ := o.counts(); return n == 1 })
	return s, func() { cancel(); <-done }
}

// queue writes a message the way a link's mail is written: leased to the
// sender when queued, handed over once the transaction has committed.
func queue(t *testing.T, o *countingOutbox, s *mail.Sender, to string, lease func(now time.Time) time.Time) uint64 {
	t.Helper()
	m := store.OutboxMail{To: to, Subject: "link", Text: "body"}
	owner, until, ok := s.Reserve(time.Now())
	if !ok {
		t.Fatal("the running sender reserved no lease")
	}
	if lease != nil {
		until = lease(time.Now())
	}
	m.LeaseOwner, m.LeaseUntil = owner, &until
	err := o.InTx(t.Context(), func(ctx context.Context) error {
		if err := o.EnqueueMail(ctx, &m); err != nil {
			return err
		}
		store.AfterCommit(ctx, func() { s.Handoff(m) })
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m.ID
}

func waitUntil(t *testing.T, what string, done func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !done(); {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10 s for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func outboxEmpty(t *testing.T, o *countingOutbox) func() bool {
	return func() bool {
		left, err := o.MailByRef(t.Context(), "")
		if err != nil {
			t.Fatal(err)
		}
		return len(left) == 0
	}
}

func smtpTransport(t *testing.T, srv *testkit.SMTPServer) *mail.SMTP {
	t.Helper()
	port, _ := strconv.Atoi(srv.Port())
	tr, err := mail.NewSMTP(config.SMTP{Host: "127.0.0.1", Port: port, TLS: "none", From: "Latchkey <id@example.com>"})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// A message handed over after its commit goes out, and leaves the outbox,
// without a claim: no write transaction beyond the one recording it.
func TestHandedOverMailIsSentWithoutAClaim(t *testing.T) {
	srv := testkit.StartSMTP(t)
	o := openOutbox(t)
	s, stop := startSender(t, o, smtpTransport(t, srv), time.Minute, 0)
	for i := range 3 {
		queue(t, o, s, fmt.Sprintf("u%d@example.com", i), nil)
	}
	for i := range 3 {
		srv.WaitFor(t, fmt.Sprintf("u%d@example.com", i), 1, 10*time.Second)
	}
	waitUntil(t, "the delivered messages to leave the outbox", outboxEmpty(t, o))
	if claims, _, released := o.counts(); claims != 1 || len(released) != 0 {
		t.Fatalf("handed-over mail took %d claims and %d released leases, want only the claim at start", claims-1, len(released))
	}
	stop()
	if _, _, ok := s.Reserve(time.Now()); ok {
		t.Fatal("a stopped sender reserved a lease")
	}
}

// A message handed over with less than half its lease left is not sent
// under that lease (the send could outlast it, and another node could
// send it too): its lease is handed back and it is claimed afresh.
func TestHandedOverMailShortOfLeaseIsClaimedAfresh(t *testing.T) {
	srv := testkit.StartSMTP(t)
	o := openOutbox(t)
	s, stop := startSender(t, o, smtpTransport(t, srv), 2*time.Second, 0)
	defer stop()
	id := queue(t, o, s, "late@example.com", func(now time.Time) time.Time { return now.Add(500 * time.Millisecond) })
	srv.WaitFor(t, "late@example.com", 1, 10*time.Second)
	waitUntil(t, "the delivered message to leave the outbox", outboxEmpty(t, o))
	claims, _, released := o.counts()
	if len(released) != 1 || released[0] != id || claims != 2 {
		t.Fatalf("released %v and claimed %d times after start, want message %d released and claimed once", released, claims-1, id)
	}
	if got := len(srv.To("late@example.com")); got != 1 {
		t.Fatalf("the message arrived %d times", got)
	}
}

// gate is a transport that holds its first send until opened, and counts
// what it is given.
type gate struct {
	first, open chan struct{}
	once        sync.Once
	mu          sync.Mutex
	sent        map[uint64]int
}

func (g *gate) Send(_ context.Context, m *store.OutboxMail) error {
	g.once.Do(func() { close(g.first); <-g.open })
	g.mu.Lock()
	g.sent[m.ID]++
	g.mu.Unlock()
	return nil
}

// Messages handed over while the sender is stuck on a slow send are held
// in memory up to a bound; past it their leases are handed back and they
// are claimed instead. Each is sent once.
func TestHandOverPastTheBoundFallsBackToClaims(t *testing.T) {
	o := openOutbox(t)
	g := &gate{first: make(chan struct{}), open: make(chan struct{}), sent: map[uint64]int{}}
	s, stop := startSender(t, o, g, time.Minute, 0)
	defer stop()
	ids := []uint64{queue(t, o, s, "first@example.com", nil)}
	<-g.first // the sender is now held in that send
	const more = mail.MaxHanded + 44
	for i := range more {
		ids = append(ids, queue(t, o, s, fmt.Sprintf("u%d@example.com", i), nil))
	}
	close(g.open)
	waitUntil(t, "every message to leave the outbox", outboxEmpty(t, o))
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, id := range ids {
		if g.sent[id] != 1 {
			t.Errorf("message %d sent %d times", id, g.sent[id])
		}
	}
	if _, _, released := o.counts(); len(released) != more-mail.MaxHanded {
		t.Fatalf("%d leases handed back, want the %d messages past the bound", len(released), more-mail.MaxHanded)
	}
}

// Outcomes wait RecordDelay to be recorded together: messages sent one
// after another cost one write transaction, not one each. Shutting down
// records what waits.
func TestOutcomesAreRecordedTogether(t *testing.T) {
	srv := testkit.StartSMTP(t)
	o := openOutbox(t)
	s, stop := startSender(t, o, smtpTransport(t, srv), time.Minute, time.Hour)
	for i := range 3 {
		queue(t, o, s, fmt.Sprintf("u%d@example.com", i), nil)
		srv.WaitFor(t, fmt.Sprintf("u%d@example.com", i), 1, 10*time.Second) // sent in a batch of its own
	}
	if left, _ := o.MailByRef(t.Context(), ""); len(left) != 3 {
		t.Fatalf("within the delay: %d messages left in the outbox, want 3", len(left))
	}
	if _, records, _ := o.counts(); records != 0 {
		t.Fatalf("within the delay: %d recordings, want none", records)
	}
	stop()
	if left, _ := o.MailByRef(t.Context(), ""); len(left) != 0 {
		t.Fatalf("after stopping: %d messages left, want none", len(left))
	}
	if _, records, _ := o.counts(); records != 1 {
		t.Fatalf("after stopping: %d recordings, want 1", records)
	}
}

// slowTransport delivers each message when less than a quarter of its
// lease is left.
type slowTransport struct{ lease time.Duration }

func (s slowTransport) Send(ctx context.Context, m *store.OutboxMail) error {
	select {
	case <-time.After(time.Until(*m.LeaseUntil) - s.lease/4 + 100*time.Millisecond):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// The outcome of a send that ends near its lease's end is recorded at once,
// not after the delay, when the lease could be over and another node
// could send the message again.
func TestOutcomeNearTheLeasesEndIsRecordedAtOnce(t *testing.T) {
	const lease = 2 * time.Second
	o := openOutbox(t)
	s, stop := startSender(t, o, slowTransport{lease}, lease, time.Hour)
	defer stop()
	// Handed over with 1.2 s of its 2 s lease left: sent (more than half
	// is left), the send ends with 0.4 s left.
	queue(t, o, s, "slow@example.com", func(now time.Time) time.Time { return now.Add(1200 * time.Millisecond) })
	waitUntil(t, "the outcome to be recorded", outboxEmpty(t, o))
	if _, records, _ := o.counts(); records != 1 {
		t.Fatalf("%d recordings, want 1", records)
	}
}
