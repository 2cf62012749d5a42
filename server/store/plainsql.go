package store

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The statements a login runs (token records, authentication sessions,
// users, magic links, the outbox, events) skip gorm: building one through
// gorm's clauses, reflection and callbacks cost more CPU and allocation
// than the database running it. A column a writer may leave NULL (added
// after its table's first release) is read through COALESCE. The rest of the store, the schema and its migrations stay
// gorm's. A plainQuery is written once with ? placeholders and rewritten
// for PostgreSQL ($1, $2, ...) when it is declared.

type plainQuery struct{ sqlite, postgres string }

func plain(q string) plainQuery {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return plainQuery{sqlite: q, postgres: b.String()}
}

// sqlConn is what both a pool and a transaction run statements with.
type sqlConn interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *Store) text(q plainQuery) string {
	if s.driver == "postgres" {
		return q.postgres
	}
	return q.sqlite
}

// conn is the transaction in ctx, or else the writer (write) or a reader.
func (s *Store) conn(ctx context.Context, write bool) (sqlConn, error) {
	if tx, ok := inTx(ctx); ok {
		c, ok := tx.db.Statement.ConnPool.(sqlConn)
		if !ok {
			return nil, fmt.Errorf("store: transaction %T runs no plain statements", tx.db.Statement.ConnPool)
		}
		return c, nil
	}
	if write {
		return s.wsql, nil
	}
	return s.rsql, nil
}

// exec runs a write in the transaction in ctx, or on its own.
func (s *Store) exec(ctx context.Context, q plainQuery, args ...any) (sql.Result, error) {
	c, err := s.conn(ctx, true)
	if err != nil {
		return nil, err
	}
	return c.ExecContext(s.stmtCtx(ctx), s.text(q), args...)
}

// queryRow reads one row by its key in the transaction in ctx, or else on
// keyReader's connection. Its Scan returns sql.ErrNoRows when there is none.
func (s *Store) queryRow(ctx context.Context, q plainQuery, args ...any) (*sql.Row, error) {
	c, err := s.keyReader(ctx)
	if err != nil {
		return nil, err
	}
	return c.QueryRowContext(s.stmtCtx(ctx), s.text(q), args...), nil
}

// keyReader is where a lookup by key runs: the transaction in ctx, else on
// SQLite the writer connection whenever it is idle, else a reader. A WAL
// reader drops its whole page cache when anything was committed since its
// last read (in a login, every time), so its lookups read each B-tree's
// pages again; the one writer's cache survives its own commits. A lookup
// by key holds the writer for microseconds, and one that finds it busy
// does not wait for it; scans (listings, counts) stay on the readers.
func (s *Store) keyReader(ctx context.Context) (sqlConn, error) {
	if _, tx := inTx(ctx); s.driver == "sqlite" && !tx && s.wsql.Stats().InUse == 0 {
		return s.wsql, nil
	}
	return s.conn(ctx, false)
}

// queryRowWrite runs a statement that writes and returns a row (UPDATE ...
// RETURNING) in the transaction in ctx, or on the writer.
func (s *Store) queryRowWrite(ctx context.Context, q plainQuery, args ...any) (*sql.Row, error) {
	c, err := s.conn(ctx, true)
	if err != nil {
		return nil, err
	}
	return c.QueryRowContext(s.stmtCtx(ctx), s.text(q), args...), nil
}

// nullTime is t as a statement argument: NULL when unset.
func nullTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return *t
}
