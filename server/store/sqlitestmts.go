package store

import (
	"context"
	"database/sql/driver"
	"strings"

	"github.com/mattn/go-sqlite3"
)

// SQLite compiles SQL into a program on every prepare, and go-sqlite3
// prepares (and finalizes) each statement database/sql runs: a fifth of
// SQLite's CPU on a login went to compiling the same few dozen statements.
// stmtCachingDriver keeps each connection's compiled statements and reuses
// them. gorm's PrepareStmt cannot do this for transactions (it prepares on
// the transaction, and database/sql re-prepares such a statement for every
// later transaction); caching below database/sql serves both alike.

// maxCachedStmts bounds a connection's cache. Latchkey's statements are a
// fixed set (well under this); a statement past the bound is prepared and
// finalized as before.
const maxCachedStmts = 256

// maxCachedParams keeps batch statements out of the cache: a multi-row
// INSERT's text changes with its row count, so each batch size seen would
// be kept (~50 KB of compiled program per 100 rows). The rate counters
// saved every 5 s grew a busy node's writer cache to 256 such statements,
// ~40 MB, in an hour. Compiling a batch each time costs little beside
// writing its rows; a request's own statements take at most ~25.
const maxCachedParams = 64

type stmtCachingDriver struct{ *sqlite3.SQLiteDriver }

func (d stmtCachingDriver) Open(dsn string) (driver.Conn, error) {
	c, err := d.SQLiteDriver.Open(dsn)
	if err != nil {
		return nil, err
	}
	return &cachingConn{SQLiteConn: c.(*sqlite3.SQLiteConn), stmts: map[string]*cachedStmt{}}, nil
}

// cachingConn is used by one goroutine at a time (database/sql's promise to
// drivers), so its map needs no lock.
type cachingConn struct {
	*sqlite3.SQLiteConn
	stmts map[string]*cachedStmt
}

// ExecContext and QueryContext answer driver.ErrSkip, so database/sql takes
// the prepared path through PrepareContext, except for text holding several
// statements, which only go-sqlite3's own Exec runs whole.
func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if strings.Contains(query, ";") {
		return c.SQLiteConn.ExecContext(ctx, query, args)
	}
	return nil, driver.ErrSkip
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if strings.Contains(query, ";") {
		return c.SQLiteConn.QueryContext(ctx, query, args)
	}
	return nil, driver.ErrSkip
}

func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if s, ok := c.stmts[query]; ok && !s.busy {
		s.busy = true
		return s, nil
	}
	st, err := c.SQLiteConn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if _, taken := c.stmts[query]; taken || len(c.stmts) >= maxCachedStmts || !cacheable(query) {
		return st, nil // not cached: database/sql finalizes it as usual
	}
	s := &cachedStmt{SQLiteStmt: st.(*sqlite3.SQLiteStmt), conn: c, query: query, returnsRows: returnsRows(query), busy: true}
	c.stmts[query] = s
	return s, nil
}

// cacheable is true of the statements a request runs; schema changes and
// batches are left to go-sqlite3.
func cacheable(query string) bool {
	if strings.Count(query, "?") > maxCachedParams {
		return false
	}
	for _, verb := range []string{"SELECT", "INSERT", "UPDATE", "DELETE", "REPLACE", "WITH", "BEGIN", "COMMIT", "ROLLBACK"} {
		if hasPrefixFold(query, verb) {
			return true
		}
	}
	return false
}

// returnsRows is true of a SELECT and of a change with RETURNING: run by
// Exec, such a statement stops at its first row and, unless reset, would
// keep its read snapshot open until its next use.
func returnsRows(query string) bool {
	return hasPrefixFold(query, "SELECT") || hasPrefixFold(query, "WITH") ||
		strings.Contains(strings.ToUpper(query), "RETURNING")
}

func hasPrefixFold(s, prefix string) bool {
	s = strings.TrimLeft(s, " \t\n")
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// BeginTx and the transaction's Commit and Rollback run their statements
// from the cache too (go-sqlite3 compiles them on every call). The DSN's
// _txlock=immediate is what this BEGIN IMMEDIATE keeps: a transaction takes
// the write lock at its start, so it never fails on a lock upgrade.
func (c *cachingConn) BeginTx(ctx context.Context, _ driver.TxOptions) (driver.Tx, error) {
	if err := c.run(ctx, "BEGIN IMMEDIATE"); err != nil {
		return nil, err
	}
	return cachingTx{c}, nil
}

func (c *cachingConn) run(ctx context.Context, query string) error {
	st, err := c.PrepareContext(ctx, query)
	if err != nil {
		return err
	}
	defer st.Close()
	_, err = st.(driver.StmtExecContext).ExecContext(ctx, nil)
	return err
}

type cachingTx struct{ c *cachingConn }

func (tx cachingTx) Commit() error {
	err := tx.c.run(context.Background(), "COMMIT")
	if err != nil {
		// As go-sqlite3 does: SQLite may leave the transaction open after a
		// failed COMMIT, and database/sql considers it over.
		_ = tx.c.run(context.Background(), "ROLLBACK")
	}
	return err
}

func (tx cachingTx) Rollback() error { return tx.c.run(context.Background(), "ROLLBACK") }

func (c *cachingConn) Close() error {
	for _, s := range c.stmts {
		_ = s.SQLiteStmt.Close()
	}
	c.stmts = nil
	return c.SQLiteConn.Close()
}

// cachedStmt is a connection's compiled statement. database/sql closes it
// after each use (after its rows, which reset it, are closed); that returns
// it to the cache. busy marks it lent out, so a nested use of the same text
// (rows still open) gets a statement of its own.
type cachedStmt struct {
	*sqlite3.SQLiteStmt
	conn        *cachingConn
	query       string
	returnsRows bool
	busy        bool
}

// ExecContext runs a statement that returns rows as go-sqlite3's Exec does
// (compiled, stepped once, finalized); gorm runs those through Query.
func (s *cachedStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	if s.returnsRows {
		return s.conn.SQLiteConn.ExecContext(ctx, s.query, args)
	}
	return s.SQLiteStmt.ExecContext(ctx, args)
}

func (s *cachedStmt) Close() error {
	s.busy = false
	return nil
}
