// Package ratelimit holds the in-process fixed-window counter used when
// Latchkey runs as one node (SQLite). Several nodes share the database's
// counters instead (store.Store.Hit), so a limit holds across all of them.
// The single node saves its counters to the database now and then and at
// shutdown (Export), and loads them at start (Import), so a restart does not
// reset the limits.
package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"slices"
	"strings"
	"sync"
	"time"
)

// Memory counts events per key in fixed windows, like store.Store.Hit,
// without a database write per request.
//
// A busy node holds a window for every address (twice: alone and with its
// IP) that asked for a link within the window's length, ~80,000 at 300
// logins a second. Keys are kept as digests and times as integers, so
// neither the map's keys nor its values hold pointers: an entry takes ~50
// bytes instead of ~150 (key string, two time.Time with their location
// pointers), and the garbage collector never scans the map.
type Memory struct {
	mu        sync.Mutex
	windows   map[digest]window
	dirty     map[digest]struct{} // keys hit since the last Export
	nextSweep time.Time
}

// digest names a key: the first 16 bytes of its SHA-256, collision
// resistant (a key chosen to share another's counter, to exhaust a
// victim's limit, is not within reach) and the same across restarts.
type digest [16]byte

func digestOf(key string) digest {
	sum := sha256.Sum256([]byte(key))
	return digest(sum[:16])
}

// savedPrefix marks a key saved as its digest (Export); a saved key
// without it (written before digests) is digested on Import. No counter's
// name begins with it.
const savedPrefix = "#"

func (d digest) saved() string { return savedPrefix + base64.RawURLEncoding.EncodeToString(d[:]) }

func parseSaved(key string) (digest, bool) {
	var d digest
	raw, ok := strings.CutPrefix(key, savedPrefix)
	if !ok {
		return digestOf(key), true
	}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || len(b) != len(d) {
		return d, false
	}
	return digest(b), true
}

// Entry is one key's current window, for saving and restoring. Export
// names the key by its digest; Import takes either form.
type Entry struct {
	Key        string
	Start, End time.Time
	Count      int
}

// window is a key's current window, in Unix nanoseconds.
type window struct {
	start, end int64
	count      int64
}

// NewMemory returns an empty counter.
func NewMemory() *Memory {
	return &Memory{windows: map[digest]window{}, dirty: map[digest]struct{}{}}
}

// sweepEvery bounds how long ended windows stay in memory.
const sweepEvery = time.Minute

// Hit counts one event for key in a window of the given length and returns
// the count so far in the current window and when that window ends.
func (m *Memory) Hit(_ context.Context, key string, length time.Duration, now time.Time) (int, time.Time, error) {
	d := digestOf(key) // outside the lock
	at := now.UnixNano()
	m.mu.Lock()
	defer m.mu.Unlock()
	if !now.Before(m.nextSweep) {
		m.sweep(at)
		m.nextSweep = now.Add(sweepEvery)
	}
	w, ok := m.windows[d]
	if !ok || at >= w.start+int64(length) {
		w = window{start: at, end: at + int64(length)}
	}
	w.count++
	m.windows[d] = w
	m.dirty[d] = struct{}{}
	return int(w.count), time.Unix(0, w.start+int64(length)), nil
}

// HitAll is Hit for each key (counts[i] and ends[i] are keys[i]'s), as
// store.Store.HitAll counts several limits in one statement.
func (m *Memory) HitAll(ctx context.Context, keys []string, length time.Duration, now time.Time) (counts []int, ends []time.Time, err error) {
	counts, ends = make([]int, len(keys)), make([]time.Time, len(keys))
	for i, k := range keys {
		if j := slices.Index(keys[:i], k); j >= 0 { // counted once, as by the store
			counts[i], ends[i] = counts[j], ends[j]
			continue
		}
		counts[i], ends[i], _ = m.Hit(ctx, k, length, now)
	}
	return counts, ends, nil
}

// Export returns the windows hit since the last Export.
func (m *Memory) Export() []Entry {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Entry, 0, len(m.dirty))
	for d := range m.dirty {
		if w, ok := m.windows[d]; ok {
			out = append(out, Entry{Key: d.saved(), Start: time.Unix(0, w.start), End: time.Unix(0, w.end), Count: int(w.count)})
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
		d, ok := parseSaved(e.Key)
		if !ok || !now.Before(e.End) {
			continue
		}
		if w, held := m.windows[d]; !held || w.count < int64(e.Count) {
			m.windows[d] = window{start: e.Start.UnixNano(), end: e.End.UnixNano(), count: int64(e.Count)}
		}
	}
}

// sweep drops windows that have ended, so memory follows the live keys.
func (m *Memory) sweep(at int64) {
	for d, w := range m.windows {
		if at >= w.end {
			delete(m.windows, d)
		}
	}
}

// Len is the number of keys held (for tests and metrics).
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.windows)
}
