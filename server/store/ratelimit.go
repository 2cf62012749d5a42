package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
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
// the count so far in the current window and when that window ends.
func (s *Store) Hit(ctx context.Context, key string, window time.Duration, now time.Time) (int, time.Time, error) {
	counts, ends, err := s.HitAll(ctx, []string{key}, window, now)
	if err != nil {
		return 0, time.Time{}, err
	}
	return counts[0], ends[0], nil
}

// HitAll counts one event for each key, in windows of the same length, and
// returns each key's count so far and the end of its window (counts[i] and
// ends[i] are keys[i]'s). One statement increments or restarts every
// window, so concurrent hits on any node are all counted, and a request
// with several limits (address, address and IP, IP) makes one round trip.
// Rows are locked in key order, so two requests sharing keys cannot
// deadlock.
func (s *Store) HitAll(ctx context.Context, keys []string, window time.Duration, now time.Time) ([]int, []time.Time, error) {
	sorted := slices.Clone(keys)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted) // one row may be changed once a statement
	now = now.UTC()
	cutoff := now.Add(-window)
	var q strings.Builder
	args := make([]any, 0, 3*len(sorted)+3)
	q.WriteString("INSERT INTO rate_counters (key, window_start, count, expires_at) VALUES ")
	for i, k := range sorted {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, 1, ?)")
		args = append(args, k, now, now.Add(window))
	}
	q.WriteString(`
ON CONFLICT (key) DO UPDATE SET
  count = CASE WHEN rate_counters.window_start <= ? THEN 1 ELSE rate_counters.count + 1 END,
  expires_at = CASE WHEN rate_counters.window_start <= ? THEN excluded.expires_at ELSE rate_counters.expires_at END,
  window_start = CASE WHEN rate_counters.window_start <= ? THEN excluded.window_start ELSE rate_counters.window_start END
RETURNING key, count, window_start`)
	args = append(args, cutoff, cutoff, cutoff)
	var rows []hitRow
	if err := s.db(ctx).Raw(q.String(), args...).Scan(&rows).Error; err != nil {
		return nil, nil, fmt.Errorf("rate counters %s: %w", strings.Join(sorted, ", "), err)
	}
	counts, ends := make([]int, len(keys)), make([]time.Time, len(keys))
	for i, k := range keys {
		j := slices.IndexFunc(rows, func(r hitRow) bool { return r.Key == k })
		if j < 0 {
			return nil, nil, fmt.Errorf("rate counter %s: not returned", k)
		}
		counts[i], ends[i] = rows[j].Count, rows[j].WindowStart.Add(window)
	}
	return counts, ends, nil
}

// hitRow is what HitAll's statement returns for a key.
type hitRow struct {
	Key         string
	Count       int
	WindowStart time.Time
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
