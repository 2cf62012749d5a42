// Package ratelimit holds the in-process fixed-window counter used when
// Latchkey runs as one node (SQLite). Several nodes share the database's
// counters instead (store.Store.Hit), so a limit holds across all of them.
package ratelimit

import (
	"context"
	"sync"
	"time"
)

// Memory counts events per key in fixed windows, like store.Store.Hit,
// without a database write per request. Counters do not survive a restart:
// a restart opens fresh windows.
type Memory struct {
	mu        sync.Mutex
	windows   map[string]window
	nextSweep time.Time
}

type window struct {
	start time.Time
	end   time.Time // start + the window's length
	count int
}

// NewMemory returns an empty counter.
func NewMemory() *Memory { return &Memory{windows: map[string]window{}} }

// sweepEvery bounds how long ended windows stay in memory.
const sweepEvery = time.Minute

// Hit counts one event for key in a window of the given length and returns
// the count so far in the current window and when that window ends.
func (m *Memory) Hit(_ context.Context, key string, length time.Duration, now time.Time) (int, time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !now.Before(m.nextSweep) {
		m.sweep(now)
	}
	w, ok := m.windows[key]
	if !ok || !now.Before(w.start.Add(length)) {
		w = window{start: now, end: now.Add(length)}
	}
	w.count++
	m.windows[key] = w
	return w.count, w.start.Add(length), nil
}

// sweep drops windows that have ended, so memory follows the live keys.
func (m *Memory) sweep(now time.Time) {
	for k, w := range m.windows {
		if !now.Before(w.end) {
			delete(m.windows, k)
		}
	}
	m.nextSweep = now.Add(sweepEvery)
}

// Len is the number of keys held (for tests and metrics).
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.windows)
}
