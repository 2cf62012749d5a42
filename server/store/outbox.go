package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"
)

// OutboxMail is a message waiting for (or done with) delivery. Writing it in
// the same transaction as what it announces means no mail is lost and none
// is sent for a change that rolled back.
type OutboxMail struct {
	ID uint64 `gorm:"primaryKey;autoIncrement"`
	// Kind selects the transport: "" is mail (SMTP); KindBackchannelLogout
	// is an OpenID back-channel logout token POSTed to the URL in To.
	Kind     string `gorm:"size:32"`
	To       string `gorm:"size:2048"`
	Subject  string
	Text     string
	HTML     string
	Ref      string `gorm:"index;size:36"` // what the mail is about (a magic link id)
	Attempts int
	// Only mail still to deliver is indexed, so claiming stays one short
	// index range however much delivered mail the table holds.
	NextAttemptAt time.Time `gorm:"index:idx_outbox_due,where:sent_at IS NULL AND failed_at IS NULL"`
	LeaseOwner    string    `gorm:"size:64"`
	LeaseUntil    *time.Time
	SentAt        *time.Time
	FailedAt      *time.Time
	LastError     string
	// Indexed for the purge, which otherwise scans the whole outbox (on the
	// writer) every time it finds nothing old enough to delete.
	CreatedAt time.Time `gorm:"index"`
}

func (s *Store) enqueue(ctx context.Context, m *OutboxMail) error {
	now := time.Now().UTC()
	if m.CreatedAt.IsZero() {
		m.CreatedAt = now
	}
	if m.NextAttemptAt.IsZero() {
		m.NextAttemptAt = now
	}
	if err := s.db(ctx).Create(m).Error; err != nil {
		return fmt.Errorf("queue mail: %w", err)
	}
	return nil
}

// EnqueueMail queues a message.
func (s *Store) EnqueueMail(ctx context.Context, m *OutboxMail) error { return s.enqueue(ctx, m) }

// ClaimMail leases up to limit due messages to owner until now+lease, in
// one statement, oldest due first. The order follows idx_outbox_due: with
// ORDER BY id, SQLite chose to walk the whole table in id order (sent mail
// included) on every claim, which made each login slower than the last. A lease that expires (its node died mid-send) makes the
// message claimable again. On PostgreSQL, SKIP LOCKED lets several nodes
// claim concurrently without waiting for each other.
func (s *Store) ClaimMail(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]OutboxMail, error) {
	now = now.UTC()
	lock := ""
	if s.driver == "postgres" {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	var claimed []OutboxMail
	err := s.db(ctx).Raw(`UPDATE outbox_mails SET lease_owner = ?, lease_until = ?
WHERE id IN (SELECT id FROM outbox_mails
  WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until < ?)
  ORDER BY next_attempt_at, id LIMIT ?`+lock+`)
RETURNING *`, owner, now.Add(lease), now, now, limit).Scan(&claimed).Error
	if err != nil {
		return nil, fmt.Errorf("claim mail: %w", err)
	}
	slices.SortFunc(claimed, func(a, b OutboxMail) int { return cmp.Compare(a.ID, b.ID) })
	return claimed, nil
}

// MailOutcome is what became of one delivery attempt.
type MailOutcome struct {
	ID    uint64
	At    time.Time
	Sent  bool
	Scrub bool      // drop the delivered bodies
	Retry time.Time // when to try again; zero when a failure is final
	Error string
}

// RecordMail stores a batch of outcomes in one transaction (one commit
// instead of one per message). Outcomes for messages no longer leased to
// owner (the lease ran out and another node claimed them) are not
// recorded; their ids are returned so the caller can say so.
func (s *Store) RecordMail(ctx context.Context, owner string, outcomes []MailOutcome) (lost []uint64, err error) {
	if len(outcomes) == 0 {
		return nil, nil
	}
	err = s.InTx(ctx, func(ctx context.Context) error {
		lost = lost[:0]
		for _, o := range outcomes {
			var set map[string]any
			switch {
			case o.Sent:
				set = map[string]any{"sent_at": o.At.UTC(), "last_error": ""}
				if o.Scrub { // the bodies may hold secrets (sign-in links) no longer needed
					set["text"], set["html"] = "", ""
				}
			case o.Retry.IsZero():
				set = map[string]any{"failed_at": o.At.UTC(), "last_error": o.Error}
			default:
				set = map[string]any{"next_attempt_at": o.Retry.UTC(), "last_error": o.Error}
			}
			set["lease_until"], set["attempts"] = nil, gorm.Expr("attempts + 1")
			res := s.db(ctx).Model(&OutboxMail{}).Where("id = ? AND lease_owner = ?", o.ID, owner).Updates(set)
			if res.Error != nil {
				return fmt.Errorf("record mail %d: %w", o.ID, res.Error)
			}
			if res.RowsAffected == 0 {
				lost = append(lost, o.ID)
			}
		}
		return nil
	})
	return lost, err
}

// ReleaseMailLeases hands owner's unfinished messages back (graceful shutdown).
func (s *Store) ReleaseMailLeases(ctx context.Context, owner string) error {
	return s.db(ctx).Model(&OutboxMail{}).Where("lease_owner = ? AND sent_at IS NULL AND failed_at IS NULL", owner).
		Update("lease_until", nil).Error
}

// MailByRef returns the messages about ref, oldest first.
func (s *Store) MailByRef(ctx context.Context, ref string) ([]OutboxMail, error) {
	var out []OutboxMail
	err := s.read(ctx).Where("ref = ?", ref).Order("id").Find(&out).Error
	return out, err
}

// RecentMail returns the newest mail messages (the development mail page).
func (s *Store) RecentMail(ctx context.Context, limit int) ([]OutboxMail, error) {
	var out []OutboxMail
	err := s.read(ctx).Where("kind = ? OR kind IS NULL", "").Order("id DESC").Limit(limit).Find(&out).Error
	return out, err
}

// KindBackchannelLogout is an outbox entry carrying a logout token.
const KindBackchannelLogout = "backchannel-logout"

// OutboxStats counts entries waiting for delivery and returns when the
// oldest due one became due (zero if none is due).
func (s *Store) OutboxStats(ctx context.Context, now time.Time) (int64, time.Time, error) {
	var row struct {
		N      int64
		Oldest *time.Time
	}
	q := s.read(ctx).Model(&OutboxMail{}).Where("sent_at IS NULL AND failed_at IS NULL")
	if err := q.Select("COUNT(*) AS n").Scan(&row).Error; err != nil {
		return 0, time.Time{}, fmt.Errorf("outbox depth: %w", err)
	}
	var oldest []time.Time
	if err := s.read(ctx).Model(&OutboxMail{}).Where("sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= ?", now.UTC()).
		Order("next_attempt_at").Limit(1).Pluck("next_attempt_at", &oldest).Error; err != nil {
		return 0, time.Time{}, fmt.Errorf("outbox oldest: %w", err)
	}
	if len(oldest) == 0 {
		return row.N, time.Time{}, nil
	}
	return row.N, oldest[0], nil
}

// KindWebhook is an outbox entry carrying an event to a webhook: To is
// its URL, Text the JSON body, Ref the event id (the webhook-id).
const KindWebhook = "webhook"

// OutboxByKind returns the entries of a kind, oldest first (tests, tools).
func (s *Store) OutboxByKind(ctx context.Context, kind string) ([]OutboxMail, error) {
	var out []OutboxMail
	err := s.read(ctx).Where("kind = ?", kind).Order("id").Find(&out).Error
	return out, err
}
