// Package store is Latchkey's persistence on gorm: SQLite (one node) and
// PostgreSQL (several nodes). Both pass the suite in store/conformance.
//
// The Store implements the narrow interfaces its consumers declare
// (flows.Users, fosite's token storages, the magic-link and outbox stores)
// rather than one wide interface of its own.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// ErrNotFound is returned when a row does not exist.
var ErrNotFound = errors.New("not found")

// Options tune the connection pool.
type Options struct {
	MaxOpenConns    int
	MaxIdleConns    int
	ConnMaxLifetime time.Duration
	// CheckpointEvery (SQLite) runs a background checkpoint this often
	// (checkpoint.go); 0 checkpoints by the WAL's size instead (walsync.go).
	CheckpointEvery time.Duration
	// Log hears of background trouble (SQLite checkpoints and WAL syncs);
	// nil is silent.
	Log *slog.Logger
}

// Store is the database.
type Store struct {
	// gdb takes writes and transactions. On SQLite it is one connection:
	// SQLite has one writer at a time, and queueing in Go is fair and cheap
	// where contending connections sleep in SQLite's busy handler.
	gdb *gorm.DB
	// rdb takes reads outside transactions: several connections on SQLite
	// (WAL lets them read while the writer writes), gdb itself on PostgreSQL.
	rdb *gorm.DB
	// wsql and rsql are gdb's and rdb's pools, for the plain statements
	// (plainsql.go).
	wsql, rsql *sql.DB
	driver     string
	// clients resolves client ids when fosite requests are read back.
	clients ClientLookup
	// ckpt checkpoints SQLite's WAL in the background (checkpoint.go).
	ckpt *checkpointer
	// walSync syncs SQLite's WAL in the background (walsync.go).
	walSync *walSyncer
}

// Open connects and migrates the schema.
func Open(driver, dsn string, opts Options) (*Store, error) {
	s := &Store{driver: driver}
	var err error
	switch driver {
	case "sqlite", "":
		s.driver = "sqlite"
		if s.gdb, err = openGorm(&sqlite.Dialector{DriverName: sqliteDriver, DSN: sqliteDSN(dsn)}, Options{MaxOpenConns: 1, MaxIdleConns: 1}); err != nil {
			return nil, fmt.Errorf("open sqlite database: %w", err)
		}
		if s.rdb, err = openGorm(&sqlite.Dialector{DriverName: sqliteDriver, DSN: sqliteDSN(dsn)}, opts); err != nil {
			_ = s.Close()
			return nil, fmt.Errorf("open sqlite database: %w", err)
		}
	case "postgres":
		if s.gdb, err = openGorm(postgres.Open(dsn), opts); err != nil {
			return nil, fmt.Errorf("open postgres database: %w", err)
		}
		s.rdb = s.gdb
	default:
		return nil, fmt.Errorf("unknown database driver %q", driver)
	}
	if s.wsql, err = s.gdb.DB(); err == nil {
		s.rsql, err = s.rdb.DB()
	}
	if err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("database pool: %w", err)
	}
	if err := s.migrate(); err != nil {
		_ = s.Close()
		return nil, err
	}
	if s.driver == "sqlite" {
		if err := s.startWALSyncer(opts.Log, opts.CheckpointEvery == 0); err != nil {
			_ = s.Close()
			return nil, err
		}
		if opts.CheckpointEvery > 0 {
			s.startCheckpointer(opts.CheckpointEvery, opts.Log)
		}
	}
	return s, nil
}

func openGorm(dial gorm.Dialector, opts Options) (*gorm.DB, error) {
	gdb, err := gorm.Open(dial, &gorm.Config{
		Logger:                 logger.Discard,
		SkipDefaultTransaction: true, // each statement is atomic; explicit transactions where several must be
		NowFunc:                func() time.Time { return time.Now().UTC() },
	})
	if err != nil {
		return nil, err
	}
	sqlDB, err := gdb.DB()
	if err != nil {
		return nil, err
	}
	if opts.MaxOpenConns > 0 {
		sqlDB.SetMaxOpenConns(opts.MaxOpenConns)
	}
	if opts.MaxIdleConns > 0 {
		sqlDB.SetMaxIdleConns(opts.MaxIdleConns)
	}
	if opts.ConnMaxLifetime > 0 {
		sqlDB.SetConnMaxLifetime(opts.ConnMaxLifetime)
	}
	return gdb, nil
}

// walBackstopPages is where the writer checkpoints the WAL itself (~160
// MB). Well above walCheckpointFrames: the WAL restarts from its
// beginning only when a write begins with all of it copied, so under
// steady writes it may grow past one background checkpoint's worth, and a
// writer's checkpoint at each commit past the backstop would sync twice.
const walBackstopPages = 40000

// sqliteDriver is mattn/go-sqlite3 with the per-connection settings a DSN
// cannot carry.
const sqliteDriver = "sqlite3-latchkey"

func init() {
	sql.Register(sqliteDriver, stmtCachingDriver{&sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		// The writer copies the WAL back into the database itself only
		// past walBackstopPages rather than SQLite's 1,000: the WAL syncer
		// (walsync.go) or the background checkpointer (checkpoint.go) does
		// that work off the commit path, and this is the backstop when
		// they fall behind.
		_, err := c.Exec(fmt.Sprintf("PRAGMA wal_autocheckpoint = %d", walBackstopPages), nil)
		return err
	}}})
}

// sqliteDSN adds the pragmas Latchkey relies on: WAL so readers do not block
// the writer, a busy timeout instead of immediate SQLITE_BUSY, foreign keys,
// BEGIN IMMEDIATE so transactions never fail on lock upgrade, and
// synchronous=NORMAL (durable across process crashes; a power loss may lose
// the last transactions, never corrupt the file).
func sqliteDSN(dsn string) string {
	params := "_journal_mode=WAL&_busy_timeout=10000&_foreign_keys=on&_txlock=immediate&_synchronous=NORMAL"
	if strings.Contains(dsn, "?") {
		return dsn + "&" + params
	}
	if !strings.HasPrefix(dsn, "file:") {
		dsn = "file:" + dsn
	}
	return dsn + "?" + params
}

func (s *Store) migrate() error {
	if s.driver == "sqlite" {
		// Before AutoMigrate, which creates only the tables it does not find.
		for name, table := range map[string]string{"events": sqliteEventsTable, "auth_sessions": sqliteAuthSessionsTable} {
			if err := s.gdb.Exec(table).Error; err != nil {
				return fmt.Errorf("migrate schema: %s: %w", name, err)
			}
		}
	}
	err := s.gdb.AutoMigrate(&User{}, &SigningKey{}, &Setting{}, &OAuthRecord{}, &OAuthCode{}, &AuthSession{},
		&SSOSession{}, &MagicLink{}, &OutboxMail{}, &RateCounter{}, &SessionClient{}, &Credential{}, &Event{})
	if err != nil {
		return fmt.Errorf("migrate schema: %w", err)
	}
	if s.driver != "sqlite" {
		if err := s.gdb.Exec(eventsKindTimeIndex).Error; err != nil {
			return fmt.Errorf("migrate schema: events: %w", err)
		}
	}
	// Token records' indexes by user and by SSO session, which
	// idx_oauth_subject_session replaced: a database made before stops
	// writing them with every record.
	for _, idx := range []string{"idx_o_auth_records_subject", "idx_o_auth_records_session_ref"} {
		if err := s.gdb.Exec("DROP INDEX IF EXISTS " + idx).Error; err != nil {
			return fmt.Errorf("migrate schema: drop %s: %w", idx, err)
		}
	}
	return nil
}

// Driver is "sqlite" or "postgres".
func (s *Store) Driver() string { return s.driver }

// Close closes the pools.
func (s *Store) Close() error {
	s.stopCheckpointer()
	s.stopWALSyncer()
	var errs []error
	for _, g := range []*gorm.DB{s.gdb, s.rdb} {
		if g == nil || (g == s.rdb && s.rdb == s.gdb) {
			continue
		}
		sqlDB, err := g.DB()
		if err == nil {
			err = sqlDB.Close()
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.gdb.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

type txKey struct{}

// txState is the transaction a context carries, and what is to run once
// it has committed.
type txState struct {
	db    *gorm.DB
	after []func()
}

// inTx returns the transaction in ctx, if any: one InTx or BeginTX
// began, or the one a LazyTx context's first InTx began.
func inTx(ctx context.Context) (*txState, bool) {
	if tx, ok := ctx.Value(txKey{}).(*txState); ok {
		return tx, true
	}
	if l, ok := ctx.Value(lazyKey{}).(*lazyTx); ok && l.tx != nil {
		return l.tx, true
	}
	return nil, false
}

// AfterCommit runs fn once the transaction in ctx has committed (at once
// when ctx holds none); fn is dropped if the transaction rolls back. What
// tells others of a write (waking the outbox sender, handing it the
// message) must not run before the write is visible, nor for one that
// rolled back.
func AfterCommit(ctx context.Context, fn func()) {
	if tx, ok := inTx(ctx); ok {
		tx.after = append(tx.after, fn)
		return
	}
	fn()
}

func (tx *txState) committed() {
	for _, fn := range tx.after {
		fn()
	}
	tx.after = nil
}

// commit commits the transaction, then runs its after-commit hooks.
func (tx *txState) commit() error {
	if err := tx.db.Commit().Error; err != nil {
		return err
	}
	tx.committed()
	return nil
}

// rollback rolls the transaction back and drops its hooks.
func (tx *txState) rollback() error {
	tx.after = nil
	return tx.db.Rollback().Error
}

// undo rolls tx back because of err, and returns err with any failure to
// roll back.
func (tx *txState) undo(err error) error {
	if rerr := tx.rollback(); rerr != nil {
		return errors.Join(err, fmt.Errorf("roll back: %w", rerr))
	}
	return err
}

// db returns the transaction in ctx, or the writer.
func (s *Store) db(ctx context.Context) *gorm.DB {
	if tx, ok := inTx(ctx); ok {
		return tx.db
	}
	return s.gdb.WithContext(s.stmtCtx(ctx))
}

// stmtCtx is the context statements run with. On SQLite it drops
// cancellation: go-sqlite3 runs every statement on a cancellable context in
// a goroutine of its own (to interrupt it), and database/sql watches a
// cancellable transaction with another; under load those hand-offs cost
// more than the statements and stretch how long the one writer is held.
// SQLite statements here are short and bounded by the busy timeout.
func (s *Store) stmtCtx(ctx context.Context) context.Context {
	if s.driver == "sqlite" {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

// read returns the transaction in ctx, or a reader.
func (s *Store) read(ctx context.Context) *gorm.DB {
	if tx, ok := inTx(ctx); ok {
		return tx.db
	}
	return s.rdb.WithContext(s.stmtCtx(ctx))
}

// InTx runs fn in one transaction; nested calls join the outer one. Every
// store call inside fn must use the ctx fn is given: on SQLite the
// transaction holds the only writer connection, so a write made with any
// other context waits for it (for ever: SQLite statements run without
// cancellation, see stmtCtx).
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context) error) error {
	if _, ok := inTx(ctx); ok {
		return fn(ctx)
	}
	if l, ok := ctx.Value(lazyKey{}).(*lazyTx); ok {
		return s.beginLazy(ctx, l, fn)
	}
	state := &txState{}
	err := s.gdb.WithContext(s.stmtCtx(ctx)).Transaction(func(tx *gorm.DB) error {
		state.db = tx
		return fn(context.WithValue(ctx, txKey{}, state))
	})
	if err == nil {
		state.committed()
	}
	return err
}

type lazyKey struct{}

// lazyTx is the transaction a LazyTx context's first InTx begins; nil
// until then, and again once ended.
type lazyTx struct{ tx *txState }

// LazyTx returns a context in which the first InTx begins a transaction
// and leaves it open: what follows with that context (later InTx calls,
// single writes, reads) joins it, and end commits it, or rolls it back
// when given an error, which it returns. A request that writes in a
// step's InTx and then saves its login (the email POST: link and outbox,
// then the login's session) commits once, where it committed twice; one
// that calls no InTx (a page view, a refused form) begins nothing, and its
// writes commit as they are made, so a rate counter hit before any InTx
// holds no row lock. end may be called again (no-op): defer it, with an
// error, so that a panic cannot leave the transaction, on SQLite the only
// writer, open.
func (s *Store) LazyTx(ctx context.Context) (_ context.Context, end func(err error) error) {
	l := &lazyTx{}
	return context.WithValue(ctx, lazyKey{}, l), func(err error) error {
		tx := l.tx
		if tx == nil {
			return err
		}
		l.tx = nil
		if err != nil {
			return tx.undo(err)
		}
		if err := tx.commit(); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		return nil
	}
}

// beginLazy runs fn in the transaction it begins for l, and leaves it open
// unless fn fails (or panics): then it is rolled back, and the next InTx
// begins anew.
func (s *Store) beginLazy(ctx context.Context, l *lazyTx, fn func(ctx context.Context) error) (err error) {
	tx := s.gdb.WithContext(s.stmtCtx(ctx)).Begin()
	if tx.Error != nil {
		return fmt.Errorf("begin transaction: %w", tx.Error)
	}
	state := &txState{db: tx}
	l.tx = state
	kept := false
	defer func() {
		if !kept { // fn failed, or panicked (err is then nil, and unused)
			l.tx = nil
			err = state.undo(err)
		}
	}()
	if err := fn(ctx); err != nil {
		return err
	}
	kept = true
	return nil
}

// Rehearse runs fn and undoes its writes: in a savepoint of the
// transaction in ctx (a nested InTx would join it, and the writes would
// commit with it), or in a transaction of its own. What fn asked to run
// after commit (AfterCommit) is dropped with them. fn's error is returned.
func (s *Store) Rehearse(ctx context.Context, fn func(ctx context.Context) error) error {
	rehearse := func(ctx context.Context) error {
		if err := fn(ctx); err != nil {
			return err
		}
		return errRehearsed
	}
	var err error
	if tx, ok := inTx(ctx); ok {
		n := len(tx.after)
		err = tx.db.Transaction(func(*gorm.DB) error { return rehearse(ctx) })
		tx.after = tx.after[:n]
	} else {
		err = s.InTx(ctx, rehearse)
	}
	if errors.Is(err, errRehearsed) {
		return nil
	}
	return err
}

// errRehearsed rolls a rehearsal back.
var errRehearsed = errors.New("rehearsal rolled back")

// BeginTX, Commit and Rollback implement fosite's storage.Transactional, so
// that fosite's multi-step writes (code redemption, refresh rotation) are atomic.
func (s *Store) BeginTX(ctx context.Context) (context.Context, error) {
	tx := s.gdb.WithContext(s.stmtCtx(ctx)).Begin()
	if tx.Error != nil {
		return ctx, fmt.Errorf("begin transaction: %w", tx.Error)
	}
	return context.WithValue(ctx, txKey{}, &txState{db: tx}), nil
}

// Commit commits the transaction in ctx.
func (s *Store) Commit(ctx context.Context) error {
	tx, ok := inTx(ctx)
	if !ok {
		return errors.New("commit: no transaction in context")
	}
	return tx.commit()
}

// Rollback rolls back the transaction in ctx.
func (s *Store) Rollback(ctx context.Context) error {
	tx, ok := inTx(ctx)
	if !ok {
		return errors.New("rollback: no transaction in context")
	}
	return tx.rollback()
}

func notFound(err error) error {
	if errors.Is(err, gorm.ErrRecordNotFound) || errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// Setting is a small key/value row (generated cookie keys).
type Setting struct {
	Key   string `gorm:"primaryKey;size:64"`
	Value string
}

// SettingOrCreate returns the setting, storing create() first if missing.
// Concurrent callers all get the first stored value.
func (s *Store) SettingOrCreate(ctx context.Context, key string, create func() (string, error)) (string, error) {
	var row Setting
	err := s.db(ctx).Where("key = ?", key).Take(&row).Error
	if err == nil {
		return row.Value, nil
	}
	if !errors.Is(err, gorm.ErrRecordNotFound) {
		return "", fmt.Errorf("read setting %s: %w", key, err)
	}
	v, err := create()
	if err != nil {
		return "", err
	}
	if err := s.db(ctx).Exec(`INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`, key, v).Error; err != nil {
		return "", fmt.Errorf("store setting %s: %w", key, err)
	}
	if err := s.db(ctx).Where("key = ?", key).Take(&row).Error; err != nil {
		return "", fmt.Errorf("read setting %s: %w", key, err)
	}
	return row.Value, nil
}

// purgeBatch bounds each DELETE of a purge: a busy hour's expired rows go
// in many short statements, never one long one holding the (SQLite) writer
// while logins wait.
const purgeBatch = 1000

// purged is what Purge deletes: each table by its primary key, the rows
// its condition selects. Each batch is selected in a subquery of the
// DELETE, on the writer, so every condition must be an index range
// (TestPurgeSelectsByIndex): a scan would hold every write meanwhile.
var purged = []purgedTable{
	{&OAuthRecord{}, "(kind, signature)", "expires_at < ?"},
	{&OAuthCode{}, "id", "expires_at < ?"},
	{&AuthSession{}, "id", "expires_at < ?"},
	{&SSOSession{}, "id", "expires_at < ?"},
	{&MagicLink{}, "id", "expires_at < ?"},
	{&OutboxMail{}, "id", "(sent_at IS NOT NULL OR failed_at IS NOT NULL) AND created_at < ?"},
	{&RateCounter{}, "key", "expires_at < ?"},
	{&SessionClient{}, "(ref, client_id)", "expires_at < ?"},
}

type purgedTable struct {
	model any
	key   string // the primary key, to delete a batch selected by a subquery
	where string
}

// batch selects the keys of a batch of the rows q deletes before cut.
func (q purgedTable) batch(db *gorm.DB, cut time.Time) *gorm.DB {
	return db.Model(q.model).Select(strings.Trim(q.key, "()")).Where(q.where, cut).Limit(purgeBatch)
}

// Purge deletes rows that expired before now minus grace: tokens, codes,
// sessions, links and delivered mail, so the database does not grow without bound.
func (s *Store) Purge(ctx context.Context, now time.Time, grace time.Duration) (int64, error) {
	cut := now.Add(-grace).UTC()
	var total int64
	for _, q := range purged {
		n, err := s.purge(ctx, q, cut)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// purge deletes q's rows from before cut, a batch a statement.
func (s *Store) purge(ctx context.Context, q purgedTable, cut time.Time) (int64, error) {
	var total int64
	for ctx.Err() == nil {
		res := s.db(ctx).Where(q.key+" IN (?)", q.batch(s.read(ctx), cut)).Delete(q.model)
		if res.Error != nil {
			return total, fmt.Errorf("purge %T: %w", q.model, res.Error)
		}
		total += res.RowsAffected
		if res.RowsAffected < purgeBatch {
			break
		}
	}
	return total, ctx.Err()
}

// SizeBytes is the space the schema's tables and indexes take (PostgreSQL),
// or the database file's size (SQLite, without its WAL).
func (s *Store) SizeBytes(ctx context.Context) (int64, error) {
	var n int64
	q := `SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace WHERE ns.nspname = current_schema() AND c.relkind = 'r'`
	if s.driver == "sqlite" {
		q = `SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()`
	}
	err := s.read(ctx).Raw(q).Scan(&n).Error
	return n, err
}

// OnStatement calls fn with the SQL of every statement the store runs
// from now on (after it ran). For tests and benchmarks that count what a
// request costs; fn must be safe for concurrent use.
func (s *Store) OnStatement(fn func(sql string)) error {
	seen := map[*gorm.DB]bool{}
	for _, g := range []*gorm.DB{s.gdb, s.rdb} {
		if seen[g] {
			continue
		}
		seen[g] = true
		cb := func(db *gorm.DB) { fn(db.Statement.SQL.String()) }
		cbs := g.Callback()
		for name, err := range map[string]error{
			"create": cbs.Create().After("gorm:create").Register("latchkey:on_statement", cb),
			"query":  cbs.Query().After("gorm:query").Register("latchkey:on_statement", cb),
			"update": cbs.Update().After("gorm:update").Register("latchkey:on_statement", cb),
			"delete": cbs.Delete().After("gorm:delete").Register("latchkey:on_statement", cb),
			"row":    cbs.Row().After("gorm:row").Register("latchkey:on_statement", cb),
			"raw":    cbs.Raw().After("gorm:raw").Register("latchkey:on_statement", cb),
		} {
			if err != nil {
				return fmt.Errorf("statement callback (%s): %w", name, err)
			}
		}
	}
	return nil
}

// Pools are the database connection pools by role (writer, reader; one on
// PostgreSQL), for their statistics.
func (s *Store) Pools() map[string]*sql.DB {
	out := map[string]*sql.DB{}
	if db, err := s.gdb.DB(); err == nil {
		out["writer"] = db
	}
	if s.rdb != s.gdb {
		if db, err := s.rdb.DB(); err == nil {
			out["reader"] = db
		}
	}
	return out
}
