package store_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"latchkey/server/store"
	"latchkey/server/store/conformance"
	"latchkey/server/testenv"
)

func TestConformanceSQLite(t *testing.T) {
	conformance.Run(t, func(t *testing.T) conformance.Store {
		s, err := store.Open("sqlite", filepath.Join(t.TempDir(), "test.db"), store.Options{MaxOpenConns: 8})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func TestConformancePostgres(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	conformance.Run(t, func(t *testing.T) conformance.Store {
		return testenv.PostgresStore(t, dsn)
	})
}

func TestSQLitePragmas(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	s, err := store.Open("sqlite", path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(path + "-wal"); err != nil {
		// WAL files appear on first write
		_, _, _ = s.Hit(t.Context(), "k", time.Minute, time.Now())
		if _, err := os.Stat(path + "-wal"); err != nil {
			t.Fatalf("no WAL file: journal mode is not WAL (%v)", err)
		}
	}
	for pragma, want := range map[string]int{"synchronous": 1, "wal_autocheckpoint": 10000, "foreign_keys": 1} {
		if got := s.Pragma(t.Context(), pragma); got != want {
			t.Errorf("PRAGMA %s = %d, want %d", pragma, got, want)
		}
	}
}
