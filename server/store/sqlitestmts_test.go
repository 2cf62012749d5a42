package store

import (
	"database/sql"
	"path/filepath"
	"testing"
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
