package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm/clause"
)

// RateCounter is a fixed-window counter shared by every node.
type RateCounter struct {
	Key         string `gorm:"primaryKey;size:200"`
	WindowStart time.Time
	Count       int
	ExpiresAt   time.Time `gorm:"index"`
}

// Hit counts one event for key in a window of the given length and returns
// the count so far in the current window and when that window ends. One
// statement increments or restarts the window, so concurrent hits on any
// node are all counted.
func (s *Store) Hit(ctx context.Context, key string, window time.Duration, now time.Time) (int, time.Time, error) {
	now = now.UTC()
	cutoff := now.Add(-window)
	var row struct {
		Count       int
		WindowStart time.Time
	}
	err := s.db(ctx).Raw(`INSERT INTO rate_counters (key, window_start, count, expires_at) VALUES (?, ?, 1, ?)
ON CONFLICT (key) DO UPDATE SET
  count = CASE WHEN rate_counters.window_start <= ? THEN 1 ELSE rate_counters.count + 1 END,
  expires_at = CASE WHEN rate_counters.window_start <= ? THEN excluded.expires_at ELSE rate_counters.expires_at END,
  window_start = CASE WHEN rate_counters.window_start <= ? THEN excluded.window_start ELSE rate_counters.window_start END
RETURNING count, window_start`, key, now, now.Add(window), cutoff, cutoff, cutoff).Scan(&row).Error
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("rate counter %s: %w", key, err)
	}
	return row.Count, row.WindowStart.Add(window), nil
}

// SaveRateCounters writes counters kept in memory by a single node (they
// overwrite what the table holds for their keys).
func (s *Store) SaveRateCounters(ctx context.Context, rows []RateCounter) error {
	if len(rows) == 0 {
		return nil
	}
	err := s.db(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "key"}},
		DoUpdates: clause.AssignmentColumns([]string{"window_start", "count", "expires_at"}),
	}).CreateInBatches(rows, 500).Error
	if err != nil {
		return fmt.Errorf("save rate counters: %w", err)
	}
	return nil
}

// LiveRateCounters returns the counters whose window has not ended.
func (s *Store) LiveRateCounters(ctx context.Context, now time.Time) ([]RateCounter, error) {
	var rows []RateCounter
	if err := s.read(ctx).Where("expires_at > ?", now.UTC()).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("load rate counters: %w", err)
	}
	return rows, nil
}
