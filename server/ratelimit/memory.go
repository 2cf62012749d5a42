// Package ratelimit holds the in-process fixed-window counter used when
// Latchkey runs as one node (SQLite). Several nodes share the database's
// counters instead (store.Store.Hit), so a limit holds across all of them.
// The single node saves its counters to the database now and then and at
// shutdown (Export), and loads them at start (Import), so a restart does not
// reset the limits.
package ratelimit

import (
	"context"
	"sync"
	"time"
)

// Memory counts events per key in fixed windows, like store.Store.Hit,
// without a database write per request.
type Memory struct {
	mu        sync.Mutex
	windows   map[string]window
	dirty     map[string]struct{} // keys hit since the last Export
	nextSweep time.Time
}

// Entry is one key's current window, for saving and restoring.
type Entry struct {
	Key        string
	Start, End time.Time
	Count      int
}

type window struct {
	start time.Time
	end   time.Time // start + the window's length
	count int
}

// NewMemory returns an empty counter.
func NewMemory() *Memory {
	return &Memory{windows: map[string]window{}, dirty: map[string]struct{}{}}
}

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
	m.dirty[key] = struct{}{}
	return w.count, w.start.Add(length), nil
}

// Export returns the windows hit since the last Export.
func (m *Memory) Export() []Entry {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Entry, 0, len(m.dirty))
	for k := range m.dirty {
		if w, ok := m.windows[k]; ok {
			out = append(out, Entry{Key: k, Start: w.start, End: w.end, Count: w.count})
		}
	}
	clear(m.dirty)
	return out
}

// Import restores saved windows that have not ended by now.
func (m *Memory) Import(entries []Entry, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range entries {
		if now.Before(e.End) {
			if w, ok := m.windows[e.Key]; !ok || w.count < e.Count {
				m.windows[e.Key] = window{start: e.Start, end: e.End, count: e.Count}
			}
		}
	}
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
