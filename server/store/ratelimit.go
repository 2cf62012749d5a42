package store

import (
	"context"
	"fmt"
	"time"
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
