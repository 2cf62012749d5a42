package store_test

import (
	"os"
	"path/filepath"
	"strings"
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

// The poll of a login waiting for another device reads its newest link by
// the indexed auth_session_id: one statement, a search, not a scan.
func TestLinkForLoginIsOneIndexedRead(t *testing.T) {
	s, err := store.Open("sqlite", filepath.Join(t.TempDir(), "p.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	now := time.Now()
	for _, h := range []string{"h1", "h2"} {
		if err := s.CreateMagicLink(ctx, &store.MagicLink{TokenHash: h, Type: "login", AuthSessionID: "as", ExpiresAt: now.Add(time.Hour)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	var stmts []string
	if err := s.OnStatement(func(sql string) { stmts = append(stmts, sql) }); err != nil {
		t.Fatal(err)
	}
	l, err := s.MagicLinkForLogin(ctx, "as")
	if err != nil || l.TokenHash != "h2" {
		t.Fatalf("newest link: %+v %v", l, err)
	}
	if len(stmts) != 1 {
		t.Fatalf("%d statements: %v", len(stmts), stmts)
	}
	plan := strings.Join(s.QueryPlan(ctx, stmts[0], "as"), "; ")
	if !strings.Contains(plan, "USING INDEX idx_magic_links_auth_session_id") {
		t.Fatalf("plan of %q: %s", stmts[0], plan)
	}
}
