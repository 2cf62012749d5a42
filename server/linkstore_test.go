package server

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"latchkey/authenticators/magiclink"
	"latchkey/server/mail"
	"latchkey/server/store"
)

// recordingSender is what a link's mail tells the outbox sender.
type recordingSender struct {
	running bool
	handed  []store.OutboxMail
	woken   int
}

func (f *recordingSender) Reserve(now time.Time) (string, time.Time, bool) {
	if !f.running {
		return "", time.Time{}, false
	}
	return "node-a", now.Add(time.Minute), true
}
func (f *recordingSender) Handoff(m store.OutboxMail) { f.handed = append(f.handed, m) }
func (f *recordingSender) Wake()                      { f.woken++ }

// A link's mail is queued leased to a running sender and handed to it
// once the link's transaction commits (no claim); with no sender running
// it is queued unleased and the sender woken. A link rolled back (or
// rehearsed) tells the sender nothing.
func TestLinkMailIsGivenToTheSenderAfterTheCommit(t *testing.T) {
	st, err := store.Open("sqlite", filepath.Join(t.TempDir(), "links.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sealer, err := mail.NewSealer(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	n := 0
	create := func(ctx context.Context, ls LinkStore) error {
		n++
		l := &magiclink.Link{TokenHash: string(rune('a' + n)), Type: "login", AuthSessionID: "as", ExpiresAt: time.Now().Add(time.Hour)}
		return ls.CreateLink(ctx, l, &magiclink.Mail{To: "a@example.com", Subject: "Sign in", Text: "link", HTML: "<p>link</p>"})
	}
	for _, running := range []bool{true, false} {
		f := &recordingSender{running: running}
		ls := LinkStore{S: st, Sealer: sealer, Sender: f}
		err := st.InTx(ctx, func(ctx context.Context) error {
			if err := create(ctx, ls); err != nil {
				return err
			}
			if len(f.handed) != 0 || f.woken != 0 {
				t.Errorf("sender running=%v told of the mail before the commit", running)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		claimed, err := st.ClaimMail(ctx, "node-b", time.Now(), time.Minute, 10)
		if err != nil {
			t.Fatal(err)
		}
		if running {
			if len(f.handed) != 1 || f.woken != 0 || f.handed[0].ID == 0 || f.handed[0].LeaseOwner != "node-a" || len(claimed) != 0 {
				t.Fatalf("running sender: handed %+v, woken %d, another node claimed %d; want the leased message handed over and nothing claimable",
					f.handed, f.woken, len(claimed))
			}
		} else if len(f.handed) != 0 || f.woken != 1 || len(claimed) != 1 {
			t.Fatalf("stopped sender: handed %d, woken %d, claimable %d; want none, once, the message", len(f.handed), f.woken, len(claimed))
		}
	}
	f := &recordingSender{running: true}
	ls := LinkStore{S: st, Sealer: sealer, Sender: f}
	rollBack := errors.New("roll back")
	if err := st.InTx(ctx, func(ctx context.Context) error { _ = create(ctx, ls); return rollBack }); !errors.Is(err, rollBack) {
		t.Fatal(err)
	}
	if err := ls.RehearseLink(ctx, &magiclink.Link{TokenHash: "rehearsed", Type: "login", ExpiresAt: time.Now().Add(time.Hour)},
		&magiclink.Mail{To: "b@example.com", Subject: "Sign in", Text: "link"}); err != nil {
		t.Fatal(err)
	}
	if len(f.handed) != 0 || f.woken != 0 {
		t.Fatalf("rolled back and rehearsed links told the sender: handed %d, woken %d", len(f.handed), f.woken)
	}
}
