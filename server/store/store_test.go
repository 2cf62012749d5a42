package store_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
	"github.com/ory/fosite"

	"latchkey/flows"
	"latchkey/server/store"
	"latchkey/server/store/conformance"
	"latchkey/server/testenv"
)

func TestConformanceSQLite(t *testing.T) {
	conformance.Run(t, func(t *testing.T) conformance.Store {
		return openSQLite(t, filepath.Join(t.TempDir(), "test.db"), store.Options{MaxOpenConns: 8})
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
	s := openSQLite(t, path, store.Options{})
	if _, err := os.Stat(path + "-wal"); err != nil {
		// WAL files appear on first write
		_, _, _ = s.Hit(t.Context(), "k", time.Minute, time.Now())
		if _, err := os.Stat(path + "-wal"); err != nil {
			t.Fatalf("no WAL file: journal mode is not WAL (%v)", err)
		}
	}
	for pragma, want := range map[string]int{"synchronous": 1, "wal_autocheckpoint": 40000, "foreign_keys": 1} {
		if got := s.Pragma(t.Context(), pragma); got != want {
			t.Errorf("PRAGMA %s = %d, want %d", pragma, got, want)
		}
	}
}

// The WAL is copied into the database in the background, not only by the
// writer once 10,000 pages have piled up (which every write then waited
// for): a few writes are in the database soon, with no checkpoint asked for.
func TestWALIsCheckpointedInTheBackground(t *testing.T) {
	s := openSQLite(t, filepath.Join(t.TempDir(), "p.db"), store.Options{CheckpointEvery: 25 * time.Millisecond})
	for i := range 20 {
		if err := s.CreateUser(t.Context(), &flows.User{Email: fmt.Sprintf("u%d@example.com", i)}); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		frames, copied := s.CheckpointedWAL()
		if frames > 0 && copied == frames {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s the WAL has %d frames, %d of them checkpointed", frames, copied)
		}
	}
}

// The WAL is synced in the background while it changes, so the writer's
// checkpoint finds few unsynced frames: after each write, the WAL as that
// write left it is synced.
func TestWALIsSyncedInTheBackground(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	s := openSQLite(t, path, store.Options{})
	for i := range 3 {
		if err := s.CreateUser(t.Context(), &flows.User{Email: fmt.Sprintf("u%d@example.com", i)}); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			file, upToDate, err := s.WALSynced()
			if file != path+"-wal" || err != nil {
				t.Fatalf("syncing %q (%v), want the WAL %q", file, err, path+"-wal")
			}
			if upToDate {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("write %d: the WAL it left is not synced after 30 s", i)
			}
		}
	}
}

// fillWAL writes about pages pages of the WAL in one transaction.
func fillWAL(t *testing.T, s *store.Store, pages int) {
	t.Helper()
	err := s.Exec(t.Context(), `CREATE TABLE IF NOT EXISTS scratch (b BLOB)`)
	if err == nil {
		err = s.Exec(t.Context(), `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
			INSERT INTO scratch SELECT randomblob(3000) FROM n`, pages)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// The syncer counts the frames of the WAL's current generation as SQLite
// does, also once a restart writes the WAL from its beginning again over
// older frames.
func TestWALFramesCountsTheCurrentGeneration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	// A timer an hour away stands in for the checkpoints by size.
	s := openSQLite(t, path, store.Options{CheckpointEvery: time.Hour})
	fillWAL(t, s, 300)
	counted, err := s.WALFrames()
	if err != nil {
		t.Fatal(err)
	}
	frames, copied, err := s.CheckpointWAL()
	if err != nil || counted != frames || frames < 300 || copied != frames {
		t.Fatalf("counted %d frames, SQLite %d (%d copied, %v), want the same, at least 300, all copied", counted, frames, copied, err)
	}
	// All copied: the next write restarts the WAL.
	if err := s.CreateUser(t.Context(), &flows.User{Email: "ann@example.com"}); err != nil {
		t.Fatal(err)
	}
	counted, err = s.WALFrames()
	if err != nil {
		t.Fatal(err)
	}
	frames, _, err = s.CheckpointWAL()
	if err != nil || counted != frames || frames >= 300 {
		t.Fatalf("after a restart counted %d frames, SQLite %d (%v), want the same, fewer than 300", counted, frames, err)
	}
	if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() < 300*4096 {
		t.Fatalf("the WAL (%v, %v) no longer holds the older frames the count had to skip", fi, err)
	}
}

// Once a WAL's worth of pages waits, the syncer copies it into the
// database, not the writer in a commit (its backstop is far away), and the
// WAL then restarts from its beginning instead of growing.
func TestLargeWALIsCheckpointedInTheBackground(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	s := openSQLite(t, path, store.Options{})
	fillWAL(t, s, 6000)
	for deadline := time.Now().Add(30 * time.Second); s.WALCopiedInTheBackground() < 6000; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s %d frames copied in the background, want the 6,000 written", s.WALCopiedInTheBackground())
		}
	}
	if err := s.CreateUser(t.Context(), &flows.User{Email: "ann@example.com"}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.WALFrames(); err != nil || n > 100 {
		t.Fatalf("the WAL has %d frames (%v) after a small write: it did not restart", n, err)
	}
}

// An in-memory database has no WAL to sync.
func TestInMemoryDatabaseHasNoWALSyncer(t *testing.T) {
	s := openSQLite(t, "file:nowal?mode=memory&cache=shared", store.Options{})
	if file, _, _ := s.WALSynced(); file != "" {
		t.Fatalf("syncing %q for an in-memory database", file)
	}
}

// The poll of a login waiting for another device reads its newest link by
// the indexed auth_session_id: one statement, a search, not a scan.
func TestLinkForLoginIsOneIndexedRead(t *testing.T) {
	s := openSQLite(t, filepath.Join(t.TempDir(), "p.db"), store.Options{})
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

// A lookup by key outside a transaction runs on the writer connection when
// it is idle (its page cache survives commits; a reader's does not) and
// never waits for it: with every reader busy a lookup is answered by the
// idle writer, and while a transaction holds the writer, by a reader.
func TestKeyLookupsUseTheIdleWriterAndNeverWaitForIt(t *testing.T) {
	s := openSQLite(t, filepath.Join(t.TempDir(), "p.db"), store.Options{MaxOpenConns: 1})
	ctx := t.Context()
	u := &flows.User{Email: "someone@example.com"}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	lookup := func(what string) {
		t.Helper()
		looked := make(chan error, 1)
		go func() {
			got, err := s.UserByID(context.Background(), u.ID)
			if err == nil && got.Email != u.Email {
				err = fmt.Errorf("read %q", got.Email)
			}
			looked <- err
		}()
		select {
		case err := <-looked:
			if err != nil {
				t.Fatalf("lookup %s: %v", what, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("a lookup by key %s did not end in 30 s", what)
		}
	}

	release, err := s.HoldReaders(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	lookup("with every reader busy and the writer idle")
	release()

	held, done, txDone := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		txDone <- s.InTx(ctx, func(ctx context.Context) error {
			if err := s.CreateUser(ctx, &flows.User{Email: "other@example.com"}); err != nil {
				return err
			}
			close(held)
			<-done
			return nil
		})
	}()
	<-held
	lookup("while a transaction holds the writer")
	close(done)
	if err := <-txDone; err != nil {
		t.Fatal(err)
	}
	if _, err := s.UserByEmail(ctx, "other@example.com"); err != nil {
		t.Fatalf("after the transaction: %v", err)
	}
}

// Rows from an older release have NULL in the columns added since (users
// had no locale before the pages spoke five languages), and a row written
// by another tool may leave any nullable column NULL: such rows read as
// zero values, and a login goes on with them.
func TestRowsWithNullColumnsAreRead(t *testing.T) {
	run := func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		u := &flows.User{Email: "old@example.com", FirstName: "Old", Locale: "de", RequiredActions: []string{"UPDATE_PROFILE"}}
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		if err := s.Exec(ctx, `UPDATE users SET first_name = NULL, last_name = NULL, email_verified = NULL, disabled = NULL,
password_hash = NULL, required_actions = NULL, locale = NULL`); err != nil {
			t.Fatal(err)
		}
		for what, get := range map[string]func() (*flows.User, error){
			"by email": func() (*flows.User, error) { return s.UserByEmail(ctx, u.Email) },
			"by id":    func() (*flows.User, error) { return s.UserByID(ctx, u.ID) },
		} {
			got, err := get()
			if err != nil || got.ID != u.ID || got.FirstName != "" || got.Locale != "" || got.RequiredActions != nil {
				t.Fatalf("user %s: %+v, %v", what, got, err)
			}
		}

		now := time.Now()
		l := &store.MagicLink{TokenHash: "h1", Type: "login", UserID: u.ID, Email: u.Email, AuthSessionID: "as", Execution: "e1",
			ClientID: "app", Locale: "de", Settings: "{}", CodeHash: "c", Approval: "approve", MatchChoices: "1,2,3", ExpiresAt: now.Add(time.Hour)}
		if err := s.CreateMagicLink(ctx, l, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.Exec(ctx, `UPDATE magic_links SET user_id = NULL, email = NULL, client_id = NULL, redirect_uri = NULL,
locale = NULL, settings = NULL, revoked_reason = NULL, code_hash = NULL, code_failures = NULL, approval = NULL,
match_number = NULL, match_choices = NULL`); err != nil {
			t.Fatal(err)
		}
		for what, get := range map[string]func() (*store.MagicLink, error){
			"by hash":       func() (*store.MagicLink, error) { return s.MagicLinkByHash(ctx, "h1") },
			"by id":         func() (*store.MagicLink, error) { return s.MagicLinkByID(ctx, l.ID) },
			"for its login": func() (*store.MagicLink, error) { return s.MagicLinkForLogin(ctx, "as") },
			"consumed": func() (*store.MagicLink, error) {
				return s.ConsumeMagicLink(ctx, "h1", store.LinkOwner{AuthSessionID: "as", Execution: "e1", Type: "login"}, now)
			},
		} {
			got, err := get()
			if err != nil || got.ID != l.ID || got.Email != "" || got.Locale != "" || got.CodeHash != "" || got.CodeFailures != 0 {
				t.Fatalf("link %s: %+v, %v", what, got, err)
			}
		}

		// Mail queued before the outbox carried other kinds has no kind.
		m := &store.OutboxMail{To: "old@example.com", Subject: "s", Text: "t", Ref: l.ID}
		if err := s.EnqueueMail(ctx, m); err != nil {
			t.Fatal(err)
		}
		if err := s.Exec(ctx, `UPDATE outbox_mails SET kind = NULL, subject = NULL, html = NULL, ref = NULL, attempts = NULL,
lease_owner = NULL, last_error = NULL`); err != nil {
			t.Fatal(err)
		}
		claimed, err := s.ClaimMail(ctx, "node-1", time.Now(), time.Minute, 10)
		if err != nil || len(claimed) != 1 || claimed[0].ID != m.ID || claimed[0].Kind != "" || claimed[0].Text != "t" || claimed[0].LeaseOwner != "node-1" {
			t.Fatalf("claimed %+v, %v", claimed, err)
		}
		lost, err := s.RecordMail(ctx, "node-1", []store.MailOutcome{{ID: m.ID, At: time.Now(), Sent: true}})
		if err != nil || len(lost) != 0 {
			t.Fatalf("record: lost %v, %v", lost, err)
		}
		recent, err := s.RecentMail(ctx, 10)
		if err != nil || len(recent) != 1 || recent[0].SentAt == nil || recent[0].Attempts != 1 {
			t.Fatalf("recorded %+v, %v", recent, err)
		}
	}
	onBothDatabases(t, run)
}

// onBothDatabases runs a test on a new SQLite store and on PostgreSQL.
func onBothDatabases(t *testing.T, run func(*testing.T, *store.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		s := openSQLite(t, filepath.Join(t.TempDir(), "test.db"), store.Options{})
		run(t, s)
	})
	t.Run("postgres", func(t *testing.T) {
		run(t, testenv.PostgresStore(t, testenv.PostgresDSN(t)))
	})
}

// A new SQLite database keeps events WITHOUT ROWID in (kind, time, id)
// order: one B-tree written per event instead of three, lists read in
// place. Opening it again changes nothing, and a database made with the
// former layout (rowid table, id key, an index on kind and time) keeps it
// and gives the same answers.
func TestEventsTableLayouts(t *testing.T) {
	testTableLayouts(t, tableLayouts{
		table: "events", key: "PRIMARY KEY (`kind`,`occurred_at`,`id`)) WITHOUT ROWID", notNew: "idx_events_kind_time",
		former: formerEventsTable, suite: conformance.Events,
		plans: map[string]string{
			"SELECT * FROM events WHERE kind = 'login' AND occurred_at < '2027' ORDER BY occurred_at DESC": "USING PRIMARY KEY",
			"SELECT * FROM events WHERE kind = 'login' AND user_id = 'u1' ORDER BY occurred_at DESC":       "USING INDEX idx_events_user_id",
		},
	})
}

// A new SQLite database keeps auth sessions WITHOUT ROWID, clustered on
// their id: two B-trees written when a login starts and ends, not three.
// Opening it again changes nothing, and a database made with the former
// layout (rowid table, a second B-tree for the id) keeps it and works.
func TestAuthSessionsTableLayouts(t *testing.T) {
	testTableLayouts(t, tableLayouts{
		table: "auth_sessions", key: "PRIMARY KEY (`id`)) WITHOUT ROWID", notNew: "sqlite_autoindex_auth_sessions",
		former: formerAuthSessionsTable, suite: conformance.AuthSessions,
	})
}

// tableLayouts is a table SQLite keeps in a new layout on new databases.
type tableLayouts struct {
	table       string
	key, notNew string            // what the new layout's schema has, and lacks
	plans       map[string]string // query -> what its plan uses, on the new layout
	former      []string          // the former layout's DDL
	suite       func(*testing.T, conformance.Store)
}

// testTableLayouts checks a new database gets the new layout, which
// reopening leaves alone, and a database in the former layout keeps it and
// passes the same suite.
func testTableLayouts(t *testing.T, l tableLayouts) {
	schema := func(t *testing.T, path string) string { return tableSchema(t, path, l.table) }
	t.Run("new", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "new.db")
		s := openSQLite(t, path, store.Options{})
		first := schema(t, path)
		if !strings.Contains(first, l.key) || strings.Contains(first, l.notNew) {
			t.Fatalf("%s schema:\n%s", l.table, first)
		}
		for q, want := range l.plans {
			if plan := strings.Join(s.QueryPlan(t.Context(), q), "; "); !strings.Contains(plan, want) {
				t.Errorf("plan of %q: %s", q, plan)
			}
		}
		l.suite(t, s)
		_ = s.Close()
		openSQLite(t, path, store.Options{})
		if again := schema(t, path); again != first {
			t.Fatalf("reopening changed the schema:\n%s\nto\n%s", first, again)
		}
	})
	t.Run("former", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "former.db")
		formerSchema(t, path, l.former...)
		before := schema(t, path)
		l.suite(t, openSQLite(t, path, store.Options{}))
		if after := schema(t, path); after != before {
			t.Fatalf("opening changed the former schema:\n%s\nto\n%s", before, after)
		}
	})
}

// formerAuthSessionsTable is the auth_sessions table as releases before
// WITHOUT ROWID made it (gorm's DDL).
var formerAuthSessionsTable = []string{
	"CREATE TABLE `auth_sessions` (`id` text,`browser_id` text,`data` text,`expires_at` datetime,`created_at` datetime,`updated_at` datetime,PRIMARY KEY (`id`))",
	"CREATE INDEX `idx_auth_sessions_expires_at` ON `auth_sessions`(`expires_at`)",
}

// Ending a user's tokens, a session's, a grant's or one record reads an
// index, never the table: the user and session revocations share one
// (subject, session_ref) index, and a database made before loses the two
// single-column indexes it replaced (each was written with every record).
func TestTokenRevocationsAreIndexed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	formerSchema(t, path,
		"CREATE TABLE `o_auth_records` (`kind` text,`signature` text,`request_id` text,`client_id` text,`subject` text,`session_ref` text,"+
			"`active` numeric,`requested_at` datetime,`expires_at` datetime,`data` text,PRIMARY KEY (`kind`,`signature`))",
		"CREATE INDEX `idx_o_auth_records_subject` ON `o_auth_records`(`subject`)",
		"CREATE INDEX `idx_o_auth_records_session_ref` ON `o_auth_records`(`session_ref`)")
	s := openSQLite(t, path, store.Options{})
	for what, q := range store.TokenRevocations {
		args := make([]any, strings.Count(q, "?"))
		for i := range args {
			args[i] = "x"
		}
		plan := strings.Join(s.QueryPlan(t.Context(), q, args...), "; ")
		if !strings.Contains(plan, "USING INDEX") && !strings.Contains(plan, "USING PRIMARY KEY") {
			t.Errorf("%s: plan of %q: %s", what, q, plan)
		}
		if strings.Contains(q, "subject") && !strings.Contains(plan, "idx_oauth_subject_session") {
			t.Errorf("%s: plan of %q: %s, want idx_oauth_subject_session", what, q, plan)
		}
	}
	if got := indexesOf(t, path, "o_auth_records"); slices.Contains(got, "idx_o_auth_records_subject") ||
		slices.Contains(got, "idx_o_auth_records_session_ref") || !slices.Contains(got, "idx_oauth_subject_session") {
		t.Fatalf("token record indexes after opening: %v", got)
	}
}

// formerEventsTable is the events table as releases before WITHOUT ROWID
// made it (gorm's DDL).
var formerEventsTable = []string{
	"CREATE TABLE `events` (`id` text,`occurred_at` datetime,`kind` text,`type` text,`client_id` text,`user_id` text,`session_id` text," +
		"`ip_address` text,`error` text,`details` text,`operation_type` text,`resource_type` text,`resource_path` text,PRIMARY KEY (`id`))",
	"CREATE INDEX `idx_events_user_id` ON `events`(`user_id`)",
	"CREATE INDEX `idx_events_kind_time` ON `events`(`kind`,`occurred_at`)",
}

// tableSchema is what sqlite_master holds of a table and its indexes.
func tableSchema(t *testing.T, path, table string) string {
	t.Helper()
	return strings.Join(sqliteStrings(t, path, "SELECT name || ': ' || COALESCE(sql, '') FROM sqlite_master WHERE tbl_name = ? ORDER BY name", table), "\n")
}

// openSQLite opens the SQLite store at path, closed when the test ends.
func openSQLite(t *testing.T, path string, opts store.Options) *store.Store {
	t.Helper()
	s, err := store.Open("sqlite", path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// formerSchema makes a SQLite database at path with tables as an earlier
// release created them.
func formerSchema(t testing.TB, path string, ddl ...string) {
	t.Helper()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, d := range ddl {
		if _, err := db.Exec(d); err != nil {
			t.Fatal(err)
		}
	}
}

// indexesOf lists a table's indexes in the SQLite database at path.
func indexesOf(t *testing.T, path, table string) []string {
	t.Helper()
	return sqliteStrings(t, path, "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? ORDER BY name", table)
}

// sqliteStrings runs a query of one text column on the SQLite database at
// path (on a connection of its own, beside the store's).
func sqliteStrings(t *testing.T, path, query string, args ...any) []string {
	t.Helper()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// keyedSession is a token session that leaves its subject and SSO session
// to the row's columns (store.KeyedSession), as the provider's does.
type keyedSession struct {
	Expires  map[fosite.TokenType]time.Time `json:"expires,omitempty"`
	Username string                         `json:"username,omitempty"`
	subject  string
	ref      string
}

func (s *keyedSession) SetExpiresAt(k fosite.TokenType, t time.Time) {
	if s.Expires == nil {
		s.Expires = map[fosite.TokenType]time.Time{}
	}
	s.Expires[k] = t
}
func (s *keyedSession) GetExpiresAt(k fosite.TokenType) time.Time { return s.Expires[k] }
func (s *keyedSession) GetUsername() string                       { return s.Username }
func (s *keyedSession) GetSubject() string                        { return s.subject }
func (s *keyedSession) SessionRef() string                        { return s.ref }
func (s *keyedSession) Clone() fosite.Session                     { c := *s; return &c }
func (s *keyedSession) RestoreKeys(subject, ref string)           { s.subject, s.ref = subject, ref }

// A token's row keeps its grant's id, client and request time, its subject
// and its SSO session in columns, so its JSON leaves them out, and a
// token's own form (its grant_type), which nothing reads back: a code
// keeps its form (the redirect_uri and PKCE challenge the exchange
// checks). Reading a row gives everything back, and a row written before,
// with all of it in its JSON, reads the same.
func TestTokenRowsLeaveTheirKeysToTheirColumns(t *testing.T) {
	run := func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		s.SetClients(func(_ context.Context, id string) (fosite.Client, error) { return &fosite.DefaultClient{ID: id}, nil })
		at := time.Now().UTC().Truncate(time.Microsecond) // PostgreSQL's precision
		request := func(grant string) *fosite.Request {
			sess := &keyedSession{Username: "ann@example.com", subject: "user-1", ref: "sid-1"}
			sess.SetExpiresAt(fosite.AccessToken, at.Add(time.Hour))
			sess.SetExpiresAt(fosite.RefreshToken, at.Add(time.Hour))
			sess.SetExpiresAt(fosite.AuthorizeCode, at.Add(time.Hour))
			return &fosite.Request{ID: grant, RequestedAt: at, Client: &fosite.DefaultClient{ID: "app"},
				RequestedScope: fosite.Arguments{"openid"}, GrantedScope: fosite.Arguments{"openid"},
				Form: url.Values{"grant_type": {"authorization_code"}, "redirect_uri": {"https://app.example/cb"}}, Session: sess}
		}
		check := func(t *testing.T, what string, r fosite.Requester, sess *keyedSession, form bool) {
			t.Helper()
			if r.GetID() != "grant-1" || r.GetClient().GetID() != "app" || !r.GetRequestedAt().Equal(at) ||
				sess.subject != "user-1" || sess.ref != "sid-1" || sess.Username != "ann@example.com" ||
				!slices.Equal(r.GetGrantedScopes(), []string{"openid"}) || !slices.Equal(r.GetRequestedScopes(), []string{"openid"}) {
				t.Fatalf("%s read back as %+v with %+v", what, r, sess)
			}
			if got := r.GetRequestForm().Get("redirect_uri"); (got != "") != form {
				t.Fatalf("%s read back with form %v", what, r.GetRequestForm())
			}
		}
		if err := s.CreateAccessTokenSession(ctx, "at-1", request("grant-1")); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateRefreshTokenSession(ctx, "rt-1", "at-1", request("grant-1")); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateAuthorizeCodeSession(ctx, "code-1", request("grant-1")); err != nil {
			t.Fatal(err)
		}
		for kind, sig := range map[string]string{"access": "at-1", "refresh": "rt-1", "code": "code-1"} {
			data := s.RecordData(ctx, kind, sig)
			for _, kept := range []string{"grant-1", `"app"`, "user-1", "sid-1", "requested_at", "granted_scope"} {
				if strings.Contains(data, kept) {
					t.Errorf("the %s row's JSON repeats its column %s: %s", kind, kept, data)
				}
			}
			if strings.Contains(data, "grant_type") != (kind == "code") {
				t.Errorf("the %s row's JSON: %s", kind, data)
			}
		}
		for what, get := range map[string]func(*keyedSession) (fosite.Requester, error){
			"access":  func(sess *keyedSession) (fosite.Requester, error) { return s.GetAccessTokenSession(ctx, "at-1", sess) },
			"refresh": func(sess *keyedSession) (fosite.Requester, error) { return s.GetRefreshTokenSession(ctx, "rt-1", sess) },
		} {
			sess := &keyedSession{}
			r, err := get(sess)
			if err != nil {
				t.Fatal(err)
			}
			check(t, what, r, sess, false)
		}
		sess := &keyedSession{}
		r, err := s.GetAuthorizeCodeSession(ctx, "code-1", sess)
		if err != nil {
			t.Fatal(err)
		}
		check(t, "code", r, sess, true)

		// A grant given fewer scopes than it asked for keeps both lists.
		narrowed := request("grant-2")
		narrowed.RequestedScope = fosite.Arguments{"openid", "offline_access"}
		if err := s.CreateRefreshTokenSession(ctx, "rt-2", "", narrowed); err != nil {
			t.Fatal(err)
		}
		if r, err := s.GetRefreshTokenSession(ctx, "rt-2", &keyedSession{}); err != nil ||
			!slices.Equal(r.GetRequestedScopes(), []string{"openid", "offline_access"}) || !slices.Equal(r.GetGrantedScopes(), []string{"openid"}) {
			t.Fatalf("a narrowed grant read back as %+v, %v", r, err)
		}

		// As a row was written before: everything in the JSON too.
		old, _ := json.Marshal(map[string]any{"id": "grant-1", "requested_at": at, "client_id": "app", "requested_scope": []string{"openid"}, "granted_scope": []string{"openid"},
			"form": url.Values{"redirect_uri": {"https://app.example/cb"}}, "session": map[string]any{"username": "ann@example.com"}})
		if err := s.Exec(ctx, "UPDATE o_auth_records SET data = ? WHERE kind = 'access'", string(old)); err != nil {
			t.Fatal(err)
		}
		sess = &keyedSession{}
		if r, err = s.GetAccessTokenSession(ctx, "at-1", sess); err != nil {
			t.Fatal(err)
		}
		check(t, "a row written before", r, sess, true)
	}
	onBothDatabases(t, run)
}

// A code waits in o_auth_codes with its request; redeemed, it stays there
// without it and without its user, as the used code's record (inactive)
// that reuse detection reads, and writes nothing to o_auth_records. A code
// a former release wrote live to o_auth_records (an upgrade within its
// minute of life) is still redeemed, once.
func TestCodesWaitApartFromTheTokenRecords(t *testing.T) {
	onBothDatabases(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		s.SetClients(func(_ context.Context, id string) (fosite.Client, error) { return &fosite.DefaultClient{ID: id}, nil })
		at := time.Now().UTC().Truncate(time.Microsecond)
		sess := &keyedSession{Username: "ann@example.com", subject: "user-1", ref: "sid-1"}
		sess.SetExpiresAt(fosite.AuthorizeCode, at.Add(time.Minute))
		r := &fosite.Request{ID: "grant-1", RequestedAt: at, Client: &fosite.DefaultClient{ID: "app"},
			RequestedScope: fosite.Arguments{"openid"}, GrantedScope: fosite.Arguments{"openid"},
			Form: url.Values{"redirect_uri": {"https://app.example/cb"}}, Session: sess}
		if err := s.CreateAuthorizeCodeSession(ctx, "code-1", r); err != nil {
			t.Fatal(err)
		}
		if s.RecordData(ctx, "code", "code-1") == "" {
			t.Fatal("a new code's request is not in o_auth_codes")
		}
		if err := s.InvalidateAuthorizeCodeSession(ctx, "code-1"); err != nil {
			t.Fatal(err)
		}
		if s.RecordData(ctx, "code", "code-1") != "" {
			t.Fatal("a spent code keeps its request")
		}
		used, err := s.GetAuthorizeCodeSession(ctx, "code-1", &keyedSession{})
		if !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) || used.GetID() != "grant-1" || used.GetClient().GetID() != "app" {
			t.Fatalf("the spent code read back as %+v, %v; want its grant and client, used", used, err)
		}
		var records int64
		if err := s.Raw(ctx, &records, "SELECT count(*) FROM o_auth_records"); err != nil || records != 0 {
			t.Fatalf("spending a code wrote %d token records (%v)", records, err)
		}
		var whose struct{ Subject, SessionRef string }
		if err := s.Raw(ctx, &whose, "SELECT subject, session_ref FROM o_auth_codes"); err != nil || whose.Subject != "" || whose.SessionRef != "" {
			t.Fatalf("a spent code still names its user and session: %+v (%v)", whose, err)
		}

		// As a former release wrote a code: live, in o_auth_records.
		data, _ := json.Marshal(map[string]any{"scope": []string{"openid"}, "form": url.Values{"redirect_uri": {"https://app.example/cb"}},
			"session": map[string]any{"username": "ann@example.com"}})
		if err := s.Exec(ctx, "INSERT INTO o_auth_records (kind, signature, request_id, client_id, subject, session_ref, active, requested_at, expires_at, data) VALUES ('code', 'code-old', 'grant-old', 'app', 'user-1', 'sid-1', ?, ?, ?, ?)",
			true, at, at.Add(time.Minute), string(data)); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetAuthorizeCodeSession(ctx, "code-old", &keyedSession{})
		if err != nil || got.GetID() != "grant-old" || got.GetRequestForm().Get("redirect_uri") != "https://app.example/cb" {
			t.Fatalf("a code written before read back as %+v, %v", got, err)
		}
		if err := s.InvalidateAuthorizeCodeSession(ctx, "code-old"); err != nil {
			t.Fatalf("a code written before is not redeemed: %v", err)
		}
		if err := s.InvalidateAuthorizeCodeSession(ctx, "code-old"); !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
			t.Fatalf("a code written before is redeemed twice: %v", err)
		}
		if used, err := s.GetAuthorizeCodeSession(ctx, "code-old", &keyedSession{}); !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) || used.GetID() != "grant-old" {
			t.Fatalf("a used code written before read back as %+v, %v", used, err)
		}
	})
}

// A login's code (about 1 KB of request) is spent a moment after it is
// written, while its access and refresh tokens are written. Kept in the
// token table, each spent code emptied a kilobyte of a page that no later
// row filled (rows are only appended there): a third of the table's pages
// stayed empty. Here the database grows by what the tokens hold. The
// codes' table is keyed by its rowid (no index for the key); its one index
// is the expiry's, for the purge (TestPurgeSelectsByIndex), which would
// otherwise read the table whole (an hour of codes) on the writer.
func TestSpentCodesLeaveNoRoomEmptyInTheTokenTable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "test.db")
	s := openSQLite(t, path, store.Options{})
	if idx := indexesOf(t, path, "o_auth_codes"); !slices.Equal(idx, []string{"idx_o_auth_codes_expires_at"}) {
		t.Errorf("o_auth_codes has indexes %v, want only its expiry's", idx)
	}
	ctx := t.Context()
	s.SetClients(func(_ context.Context, id string) (fosite.Client, error) { return &fosite.DefaultClient{ID: id}, nil })
	request := func(i int) *fosite.Request {
		sess := &keyedSession{Username: fmt.Sprintf("user%07d@example.com", i), subject: fmt.Sprintf("user-%07d", i), ref: fmt.Sprintf("sid-%07d", i)}
		now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond)
		sess.SetExpiresAt(fosite.AuthorizeCode, now.Add(time.Minute))
		sess.SetExpiresAt(fosite.AccessToken, now.Add(5*time.Minute))
		sess.SetExpiresAt(fosite.RefreshToken, now.Add(30*24*time.Hour))
		return &fosite.Request{ID: fmt.Sprintf("grant-%07d", i), RequestedAt: now, Client: &fosite.DefaultClient{ID: "app"},
			RequestedScope: fosite.Arguments{"openid", "email"}, GrantedScope: fosite.Arguments{"openid", "email"},
			// A code's form and session: about 1 KB, as a login's.
			Form: url.Values{"redirect_uri": {"https://app.example/callback"}, "code_challenge": {strings.Repeat("c", 43)},
				"claims": {strings.Repeat("x", 800)}},
			Session: sess}
	}
	sig := func(kind string, i int) string { return fmt.Sprintf("%s-%040d", kind, i) }
	const logins = 500
	size := func() int64 {
		n, err := s.SizeBytes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := s.CreateAuthorizeCodeSession(ctx, sig("code", 0), request(0)); err != nil {
		t.Fatal(err)
	}
	before := size()
	for i := 1; i <= logins; i++ {
		if err := s.CreateAuthorizeCodeSession(ctx, sig("code", i), request(i)); err != nil {
			t.Fatal(err)
		}
		err := s.InTx(ctx, func(ctx context.Context) error {
			if err := s.InvalidateAuthorizeCodeSession(ctx, sig("code", i-1)); err != nil {
				return err
			}
			tokens := request(i - 1)
			tokens.Form = url.Values{}
			if err := s.CreateAccessTokenSession(ctx, sig("access", i-1), tokens); err != nil {
				return err
			}
			return s.CreateRefreshTokenSession(ctx, sig("refresh", i-1), "", tokens)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// The token rows with their indexes and the spent codes take ~1.4 KB a
	// login here (~1.6 with the spent codes in the token table); with the
	// codes' kilobyte left empty, ~2.6.
	if perLogin := (size() - before) / logins; perLogin > 2000 {
		t.Fatalf("the database grew by %d bytes a login", perLogin)
	}
}

// Purge selects each batch inside its DELETE, on the writer: a condition
// without an index would read the whole table there, every few minutes,
// while every write waited.
func TestPurgeSelectsByIndex(t *testing.T) {
	for _, layout := range []string{"new", "former events table"} {
		t.Run(layout, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "test.db")
			if layout != "new" {
				formerSchema(t, path, formerEventsTable...)
			}
			plans := openSQLite(t, path, store.Options{}).PurgePlans(t.Context())
			if len(plans) != store.PurgedTables {
				t.Fatalf("plans of %d tables, want every purged table's: %v", len(plans), plans)
			}
			for table, plan := range plans {
				if !strings.HasPrefix(plan, "SEARCH "+table+" USING ") {
					t.Errorf("the purge selects %s's expired rows with: %s", table, plan)
				}
			}
		})
	}
}
