package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// OutboxMail is a message waiting for (or done with) delivery. Writing it in
// the same transaction as what it announces means no mail is lost and none
// is sent for a change that rolled back.
type OutboxMail struct {
	ID            uint64 `gorm:"primaryKey;autoIncrement"`
	To            string `gorm:"size:254"`
	Subject       string
	Text          string
	HTML          string
	Ref           string `gorm:"index;size:36"` // what the mail is about (a magic link id)
	Attempts      int
	NextAttemptAt time.Time `gorm:"index"`
	LeaseOwner    string    `gorm:"size:64"`
	LeaseUntil    *time.Time
	SentAt        *time.Time
	FailedAt      *time.Time
	LastError     string
	CreatedAt     time.Time
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

// ClaimMail leases up to limit due messages to owner until now+lease. A
// lease that expires (its node died mid-send) makes the message claimable
// again. On PostgreSQL, SKIP LOCKED lets several nodes claim concurrently
// without waiting for each other.
func (s *Store) ClaimMail(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]OutboxMail, error) {
	now = now.UTC()
	until := now.Add(lease)
	var claimed []OutboxMail
	err := s.InTx(ctx, func(ctx context.Context) error {
		q := s.db(ctx).Model(&OutboxMail{}).Select("id").
			Where("sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until < ?)", now, now).
			Order("id").Limit(limit)
		if s.driver == "postgres" {
			q = q.Clauses(clause.Locking{Strength: "UPDATE", Options: "SKIP LOCKED"})
		}
		var ids []uint64
		if err := q.Find(&ids).Error; err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		if err := s.db(ctx).Model(&OutboxMail{}).Where("id IN ?", ids).
			Updates(map[string]any{"lease_owner": owner, "lease_until": until}).Error; err != nil {
			return err
		}
		return s.db(ctx).Where("id IN ?", ids).Order("id").Find(&claimed).Error
	})
	if err != nil {
		return nil, fmt.Errorf("claim mail: %w", err)
	}
	return claimed, nil
}

// MarkMailSent records delivery; scrub drops the bodies, which may hold
// secrets (sign-in links) no longer needed.
func (s *Store) MarkMailSent(ctx context.Context, id uint64, owner string, now time.Time, scrub bool) error {
	set := map[string]any{"sent_at": now.UTC(), "lease_until": nil, "attempts": gorm.Expr("attempts + 1"), "last_error": ""}
	if scrub {
		set["text"], set["html"] = "", ""
	}
	return s.db(ctx).Model(&OutboxMail{}).Where("id = ? AND lease_owner = ?", id, owner).Updates(set).Error
}

// MarkMailRetry schedules another attempt.
func (s *Store) MarkMailRetry(ctx context.Context, id uint64, owner string, next time.Time, reason string) error {
	return s.db(ctx).Model(&OutboxMail{}).Where("id = ? AND lease_owner = ?", id, owner).
		Updates(map[string]any{"next_attempt_at": next.UTC(), "lease_until": nil, "attempts": gorm.Expr("attempts + 1"), "last_error": reason}).Error
}

// MarkMailFailed gives up on a message.
func (s *Store) MarkMailFailed(ctx context.Context, id uint64, owner string, now time.Time, reason string) error {
	return s.db(ctx).Model(&OutboxMail{}).Where("id = ? AND lease_owner = ?", id, owner).
		Updates(map[string]any{"failed_at": now.UTC(), "lease_until": nil, "attempts": gorm.Expr("attempts + 1"), "last_error": reason}).Error
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

// RecentMail returns the newest messages (the development mail page).
func (s *Store) RecentMail(ctx context.Context, limit int) ([]OutboxMail, error) {
	var out []OutboxMail
	err := s.read(ctx).Order("id DESC").Limit(limit).Find(&out).Error
	return out, err
}
