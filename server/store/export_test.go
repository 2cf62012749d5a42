package store

import (
	"context"
	"database/sql"
	"os"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Pragma reads an integer SQLite setting from the writer connection, for
// the tests in store_test.
func (s *Store) Pragma(ctx context.Context, name string) int {
	var v int
	_ = s.db(ctx).Raw("PRAGMA " + name).Scan(&v).Error
	return v
}

// QueryPlan is SQLite's plan for a statement, one line per step.
func (s *Store) QueryPlan(ctx context.Context, sql string, args ...any) []string {
	var rows []struct {
		ID, Parent, Notused int
		Detail              string
	}
	_ = s.db(ctx).Raw("EXPLAIN QUERY PLAN "+sql, args...).Scan(&rows).Error
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.Detail
	}
	return out
}

// PurgedTables is how many tables Purge and PurgeEvents delete from.
var PurgedTables = len(purged) + 1

// PurgePlans is SQLite's plan for each select Purge and PurgeEvents delete
// a batch by, by table.
func (s *Store) PurgePlans(ctx context.Context) map[string]string {
	plans := map[string]string{}
	for _, q := range append(slices.Clone(purged), purgedEvents) {
		stmt := q.batch(s.read(ctx).Session(&gorm.Session{DryRun: true}), time.Now()).Find(&[]map[string]any{}).Statement
		plans[stmt.Table] = strings.Join(s.QueryPlan(ctx, stmt.SQL.String(), stmt.Vars...), "; ")
	}
	return plans
}

// Exec runs a statement on the writer, for tests that shape rows as an
// older release or another tool left them.
func (s *Store) Exec(ctx context.Context, sql string, args ...any) error {
	return s.db(ctx).Exec(sql, args...).Error
}

// Raw reads rows into dest, for tests that check how rows are stored.
func (s *Store) Raw(ctx context.Context, dest any, sql string, args ...any) error {
	return s.db(ctx).Raw(sql, args...).Scan(dest).Error
}

// CheckpointedWAL is the background checkpointer's newest outcome: the
// WAL's frames and how many of them are in the database.
func (s *Store) CheckpointedWAL() (frames, copied int64) {
	if s.ckpt == nil {
		return 0, 0
	}
	return s.ckpt.frames.Load(), s.ckpt.copied.Load()
}

// WALSynced is the background WAL syncer's file ("" when there is no
// syncer) and whether the WAL as it is now has been synced.
func (s *Store) WALSynced() (path string, upToDate bool, err error) {
	if s.walSync == nil {
		return "", false, nil
	}
	fi, err := os.Stat(s.walSync.path)
	if err != nil {
		return s.walSync.path, false, err
	}
	return s.walSync.path, s.walSync.upToDate(fi), nil
}

// HoldReaders takes n reader connections (all of them, with
// Options.MaxOpenConns n) until release is called.
func (s *Store) HoldReaders(ctx context.Context, n int) (release func(), err error) {
	var held []*sql.Conn
	release = func() {
		for _, c := range held {
			_ = c.Close()
		}
	}
	for range n {
		c, err := s.rsql.Conn(ctx)
		if err != nil {
			release()
			return nil, err
		}
		held = append(held, c)
	}
	return release, nil
}

// TokenRevocations are the statements that end token records by user,
// session, grant or signature (SQLite text), for plan checks.
var TokenRevocations = map[string]string{
	"delete a user's":             deleteSubject.sqlite,
	"deactivate a user's":         deactivateSubject.sqlite,
	"delete a session's":          deleteSession.sqlite,
	"deactivate a session's":      deactivateSession.sqlite,
	"delete a grant's":            deleteGrant.sqlite,
	"deactivate a grant's":        deactivateGrant.sqlite,
	"deactivate one by signature": deactivateRecord.sqlite,
}

// RecordData is the JSON a token record keeps, as stored.
func (s *Store) RecordData(ctx context.Context, kind, signature string) string {
	var data string
	if kind == kindCode {
		_ = s.db(ctx).Raw("SELECT data FROM o_auth_codes WHERE id = ? AND signature = ?", codeID(signature), signature).Scan(&data).Error
		return data
	}
	_ = s.db(ctx).Raw("SELECT data FROM o_auth_records WHERE kind = ? AND signature = ?", kind, signature).Scan(&data).Error
	return data
}

// WALFrames counts the frames of the current generation of the store's WAL
// as the syncer does.
func (s *Store) WALFrames() (int64, error) {
	f, err := os.Open(s.walSync.path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	n, _, err := walFrames(f, fi.Size())
	return n, err
}

// CheckpointWAL runs a PASSIVE checkpoint on the writer's connection: the
// WAL's frames and how many of them are in the database.
func (s *Store) CheckpointWAL() (frames, copied int64, err error) {
	return checkpointWAL(s.wsql)
}

// WALCopiedInTheBackground is how many frames of the WAL the syncer's
// newest checkpoint left in the database (0 before its first).
func (s *Store) WALCopiedInTheBackground() int64 {
	if s.walSync == nil {
		return 0
	}
	return s.walSync.copied.Load()
}
