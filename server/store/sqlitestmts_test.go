package store

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func openCachingDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open(sqliteDriver, sqliteDSN(filepath.Join(t.TempDir(), "stmts.db")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)`); err != nil {
		t.Fatal(err)
	}
	return db
}

// A statement's text used again while its rows are open (one connection,
// one transaction) gets a statement of its own, not the cached one reset
// under the open rows.
func TestCachedStatementNestedUse(t *testing.T) {
	db := openCachingDB(t)
	for _, k := range []int{1, 2, 3} {
		if _, err := db.Exec(`INSERT INTO t (k, v) VALUES (?, ?)`, k, "v"); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	const q = `SELECT k FROM t WHERE k >= ? ORDER BY k`
	rows, err := tx.Query(q, 1)
	if err != nil {
		t.Fatal(err)
	}
	var outer, inner []int
	for rows.Next() {
		var k int
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		outer = append(outer, k)
		var n int
		if err := tx.QueryRow(q, k).Scan(&n); err != nil {
			t.Fatal(err)
		}
		inner = append(inner, n)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	if len(outer) != 3 || len(inner) != 3 || inner[2] != 3 {
		t.Fatalf("outer %v inner %v, want [1 2 3] both", outer, inner)
	}
}

// A change with RETURNING run by Exec, and a SELECT that stopped early, must
// not leave a read snapshot open on a cached statement: a full checkpoint
// afterwards is not blocked.
func TestCachedStatementsLeaveNoSnapshotOpen(t *testing.T) {
	db := openCachingDB(t)
	for range 2 {
		if _, err := db.Exec(`INSERT INTO t (v) VALUES (?) RETURNING k`, "x"); err != nil {
			t.Fatal(err)
		}
		rows, err := db.Query(`SELECT k FROM t`)
		if err != nil {
			t.Fatal(err)
		}
		rows.Next()
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("count = %d, %v; want 2", n, err)
	}
	var busy, logged, checkpointed int
	if err := db.QueryRow(`PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logged, &checkpointed); err != nil {
		t.Fatal(err)
	}
	if busy != 0 {
		t.Fatal("checkpoint blocked: a statement kept its snapshot")
	}
}

// Commit and Rollback through the cached BEGIN/COMMIT/ROLLBACK keep their
// meaning.
func TestCachedTransactionStatements(t *testing.T) {
	db := openCachingDB(t)
	for i, commit := range []bool{true, false, true} {
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(`INSERT INTO t (k, v) VALUES (?, 'x')`, i); err != nil {
			t.Fatal(err)
		}
		if commit {
			err = tx.Commit()
		} else {
			err = tx.Rollback()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("count = %d, %v; want 2 (one of three rolled back)", n, err)
	}
}

// Batch statements, whose text changes with their row count, are run but
// not kept: the rate counters saved every 5 s in batches of every size once
// filled a busy node's writer cache with 256 compiled batches (~40 MB).
func TestBatchStatementsAreNotCached(t *testing.T) {
	s, err := Open("sqlite", filepath.Join(t.TempDir(), "batches.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Second)
	const saves = 40
	for n := 1; n <= saves; n++ {
		rows := make([]RateCounter, n)
		for i := range rows {
			rows[i] = RateCounter{Key: fmt.Sprintf("k%d", i), WindowStart: now, Count: n, ExpiresAt: now.Add(time.Hour)}
		}
		if err := s.SaveRateCounters(ctx, rows); err != nil {
			t.Fatal(err)
		}
	}
	live, err := s.LiveRateCounters(ctx, now)
	if err != nil || len(live) != saves {
		t.Fatalf("%d counters saved (%v), want %d", len(live), err, saves)
	}
	for _, c := range live {
		if c.Count != saves {
			t.Fatalf("counter %s = %d, want %d: the last save was lost", c.Key, c.Count, saves)
		}
	}
	conn, err := s.wsql.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var batches, mostParams int
	_ = conn.Raw(func(dc any) error {
		for q := range dc.(*cachingConn).stmts {
			if strings.Contains(q, "INSERT INTO `rate_counters`") {
				batches++
			}
			mostParams = max(mostParams, strings.Count(q, "?"))
		}
		return nil
	})
	// Batches of 1 to 16 rows (4 to 64 parameters) are kept, larger ones not.
	if batches != maxCachedParams/4 || mostParams > maxCachedParams {
		t.Fatalf("writer cache holds %d rate counter batches (want %d), the largest statement has %d parameters", batches, maxCachedParams/4, mostParams)
	}
}
