package store

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"
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
	row, err := s.queryRowWrite(ctx, insertMail, m.Kind, m.To, m.Subject, m.Text, m.HTML, m.Ref, m.Attempts, m.NextAttemptAt,
		m.LeaseOwner, nullTime(m.LeaseUntil), nullTime(m.SentAt), nullTime(m.FailedAt), m.LastError, m.CreatedAt)
	if err == nil {
		err = row.Scan(&m.ID)
	}
	if err != nil {
		return fmt.Errorf("queue mail: %w", err)
	}
	return nil
}

// Every login queues a mail, claims it and records its delivery: plain SQL
// (plainsql.go). Columns added after the table's first release (kind) are
// NULL in older rows and read as zero values.
const outboxColumns = `id, COALESCE(kind, ''), COALESCE("to", ''), COALESCE(subject, ''), COALESCE("text", ''),
COALESCE(html, ''), COALESCE(ref, ''), COALESCE(attempts, 0), next_attempt_at, COALESCE(lease_owner, ''), lease_until,
sent_at, failed_at, COALESCE(last_error, ''), created_at`

// columns are where a row of outboxColumns is scanned to.
func (m *OutboxMail) columns() []any {
	return []any{&m.ID, &m.Kind, &m.To, &m.Subject, &m.Text, &m.HTML, &m.Ref, &m.Attempts, &m.NextAttemptAt,
		&m.LeaseOwner, &m.LeaseUntil, &m.SentAt, &m.FailedAt, &m.LastError, &m.CreatedAt}
}

var (
	insertMail = plain(`INSERT INTO outbox_mails (kind, "to", subject, "text", html, ref, attempts, next_attempt_at,
lease_owner, lease_until, sent_at, failed_at, last_error, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`)
	// claimMail's subquery walks idx_outbox_due (see ClaimMail).
	claimMail = `UPDATE outbox_mails SET lease_owner = ?, lease_until = ?
WHERE id IN (SELECT id FROM outbox_mails
  WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until < ?)
  ORDER BY next_attempt_at, id LIMIT ?%s)
RETURNING ` + outboxColumns
	claimMailSQLite   = plain(fmt.Sprintf(claimMail, ""))
	claimMailPostgres = plain(fmt.Sprintf(claimMail, " FOR UPDATE SKIP LOCKED"))

	// An outcome is recorded only while the message is still leased to
	// the recording node.
	recordedMail   = ", lease_until = NULL, attempts = COALESCE(attempts, 0) + 1 WHERE id = ? AND lease_owner = ?"
	mailSent       = plain("UPDATE outbox_mails SET sent_at = ?, last_error = ''" + recordedMail)
	mailSentDrop   = plain("DELETE FROM outbox_mails WHERE id = ? AND lease_owner = ?")
	mailFailed     = plain("UPDATE outbox_mails SET failed_at = ?, last_error = ?" + recordedMail)
	mailRetryLater = plain("UPDATE outbox_mails SET next_attempt_at = ?, last_error = ?" + recordedMail)
)

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
	q := claimMailSQLite
	if s.driver == "postgres" {
		q = claimMailPostgres
	}
	claimed, err := s.claim(ctx, q, owner, now.Add(lease), now, now, limit)
	if err != nil {
		return nil, fmt.Errorf("claim mail: %w", err)
	}
	slices.SortFunc(claimed, func(a, b OutboxMail) int { return cmp.Compare(a.ID, b.ID) })
	return claimed, nil
}

func (s *Store) claim(ctx context.Context, q plainQuery, args ...any) ([]OutboxMail, error) {
	c, err := s.conn(ctx, true)
	if err != nil {
		return nil, err
	}
	rows, err := c.QueryContext(s.stmtCtx(ctx), s.text(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var claimed []OutboxMail
	for rows.Next() {
		var m OutboxMail
		if err := rows.Scan(m.columns()...); err != nil {
			return nil, err
		}
		claimed = append(claimed, m)
	}
	return claimed, rows.Err()
}

// MailOutcome is what became of one delivery attempt.
type MailOutcome struct {
	ID   uint64
	At   time.Time
	Sent bool
	// Drop deletes a delivered message (its bodies may hold secrets, and a
	// kept row whose bodies were cleared held a page of its own: ~4 KB
	// of database a login); false keeps it, marked sent.
	Drop  bool
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
			var res sql.Result
			var err error
			switch {
			case o.Sent && o.Drop:
				res, err = s.exec(ctx, mailSentDrop, o.ID, owner)
			case o.Sent:
				res, err = s.exec(ctx, mailSent, o.At.UTC(), o.ID, owner)
			case o.Retry.IsZero():
				res, err = s.exec(ctx, mailFailed, o.At.UTC(), o.Error, o.ID, owner)
			default:
				res, err = s.exec(ctx, mailRetryLater, o.Retry.UTC(), o.Error, o.ID, owner)
			}
			if err != nil {
				return fmt.Errorf("record mail %d: %w", o.ID, err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return fmt.Errorf("record mail %d: %w", o.ID, err)
			} else if n == 0 {
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

// ReleaseMail hands the given messages leased to owner back before their
// lease ends (a sender that will not send them in time), so that they can
// be claimed at once.
func (s *Store) ReleaseMail(ctx context.Context, owner string, ids []uint64) error {
	if len(ids) == 0 {
		return nil
	}
	return s.db(ctx).Model(&OutboxMail{}).Where("lease_owner = ? AND id IN ? AND sent_at IS NULL AND failed_at IS NULL", owner, ids).
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
