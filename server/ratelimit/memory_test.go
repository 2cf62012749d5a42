package ratelimit

import (
	"context"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMemoryCountsFixedWindows(t *testing.T) {
	m := NewMemory()
	ctx := context.Background()
	now := time.Now()
	for i := 1; i <= 3; i++ {
		n, reset, _ := m.Hit(ctx, "ml:a@example.com", 15*time.Minute, now.Add(time.Duration(i)*time.Second))
		if n != i {
			t.Fatalf("hit %d counted %d", i, n)
		}
		if want := now.Add(15*time.Minute + time.Second); !reset.Equal(want) {
			t.Fatalf("window ends %v, want %v (15m after the first hit)", reset, want)
		}
	}
	if n, _, _ := m.Hit(ctx, "ml:a@example.com", 15*time.Minute, now.Add(16*time.Minute+2*time.Second)); n != 1 {
		t.Fatalf("new window counted %d, want 1", n)
	}
	if n, _, _ := m.Hit(ctx, "ml-ip:127.0.0.1", time.Minute, now); n != 1 {
		t.Fatalf("other key counted %d", n)
	}
}

// HitAll answers as store.Store.HitAll does: in the caller's order, a
// key given twice counted once.
func TestMemoryHitAllCountsEachKeyOnce(t *testing.T) {
	m := NewMemory()
	now := time.Now()
	m.Hit(t.Context(), "ip:127.0.0.1", time.Minute, now)
	counts, ends, err := m.HitAll(t.Context(), []string{"ip:127.0.0.1", "email:b@example.com", "ip:127.0.0.1"}, time.Minute, now.Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{2, 1, 2}; !slices.Equal(counts, want) {
		t.Fatalf("HitAll counted %v, want %v", counts, want)
	}
	if want := now.Add(time.Minute); !ends[0].Equal(want) || !ends[2].Equal(want) || !ends[1].Equal(now.Add(90*time.Second)) {
		t.Fatalf("windows end %v", ends)
	}
}

func TestMemoryCountsConcurrentHits(t *testing.T) {
	m := NewMemory()
	now := time.Now()
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.Hit(context.Background(), "k", time.Minute, now)
		}()
	}
	wg.Wait()
	if n, _, _ := m.Hit(context.Background(), "k", time.Minute, now); n != 51 {
		t.Fatalf("counted %d, want 51", n)
	}
}

func TestMemoryForgetsEndedWindows(t *testing.T) {
	m := NewMemory()
	now := time.Now()
	for _, k := range []string{"a", "b", "c"} {
		m.Hit(context.Background(), k, time.Minute, now)
	}
	m.Hit(context.Background(), "d", time.Hour, now.Add(2*time.Minute))
	if n := m.Len(); n != 1 {
		t.Fatalf("%d keys held after their windows ended, want 1", n)
	}
}

func TestExportImportRoundTrip(t *testing.T) {
	m := NewMemory()
	now := time.Now()
	for range 3 {
		m.Hit(context.Background(), "k", time.Minute, now)
	}
	saved := m.Export()
	if len(saved) != 1 || saved[0].Count != 3 || len(m.Export()) != 0 {
		t.Fatalf("export = %+v, then %d more", saved, len(m.Export()))
	}
	fresh := NewMemory()
	fresh.Import(saved, now.Add(time.Second))
	if n, _, _ := fresh.Hit(context.Background(), "k", time.Minute, now.Add(2*time.Second)); n != 4 {
		t.Fatalf("after import, the 4th hit counts %d", n)
	}
	ended := NewMemory()
	ended.Import(saved, now.Add(2*time.Minute))
	if ended.Len() != 0 {
		t.Fatal("an ended window was imported")
	}
}

func TestSavedCountersNameTheirKeysByDigest(t *testing.T) {
	m := NewMemory()
	now := time.Now()
	m.Hit(context.Background(), "ml:ann@example.com|192.0.2.7", 15*time.Minute, now)
	saved := m.Export()
	if len(saved) != 1 || !strings.HasPrefix(saved[0].Key, savedPrefix) || strings.Contains(saved[0].Key, "ann") || strings.Contains(saved[0].Key, "192.0.2.7") {
		t.Fatalf("saved %+v: want the key's digest, not its address or IP", saved)
	}
}

func TestImportTakesKeysSavedBeforeDigests(t *testing.T) {
	now := time.Now()
	m := NewMemory()
	m.Import([]Entry{{Key: "ml:ann@example.com", Start: now, End: now.Add(time.Minute), Count: 5}}, now)
	if n, _, _ := m.Hit(context.Background(), "ml:ann@example.com", time.Minute, now.Add(time.Second)); n != 6 {
		t.Fatalf("a counter saved under its plain key counts %d after import, want 6", n)
	}
	m.Import([]Entry{{Key: savedPrefix + "not base64!", Start: now, End: now.Add(time.Minute), Count: 5}}, now)
	if m.Len() != 1 {
		t.Fatalf("a malformed saved key was imported: %d keys", m.Len())
	}
}

// BenchmarkHeldWindows reports the heap a held window costs: a busy node
// holds one for every address (twice: alone and with its IP) that asked
// for a link within the window.
func BenchmarkHeldWindows(b *testing.B) {
	const keys = 100_000
	now := time.Now()
	var before, after runtime.MemStats
	for b.Loop() {
		runtime.GC()
		runtime.ReadMemStats(&before)
		m := NewMemory()
		for i := range keys {
			m.Hit(context.Background(), "ml:user"+strconv.Itoa(i)+"@example.com|192.0.2.7", 15*time.Minute, now)
		}
		m.Export()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/keys, "heap-B/key")
		runtime.KeepAlive(m)
	}
}
