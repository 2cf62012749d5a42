// Package testenv gives tests the real services they need (PostgreSQL,
// Chromium) and decides whether a missing one skips the test or fails it:
// locally such tests skip with a clear message; with LATCHKEY_REQUIRE set
// (as .ci/run does) they fail.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"latchkey/server/store"
)

// Required reports whether the named service ("postgres", "browser") is
// mandatory in this run: LATCHKEY_REQUIRE lists them, comma-separated.
func Required(service string) bool {
	for _, s := range strings.Split(os.Getenv("LATCHKEY_REQUIRE"), ",") {
		if strings.TrimSpace(s) == service || strings.TrimSpace(s) == "all" {
			return true
		}
	}
	return false
}

// Unavailable skips the test, or fails it when the service is required.
func Unavailable(t testing.TB, service, why string) {
	t.Helper()
	if Required(service) {
		t.Fatalf("%s is required in this run (LATCHKEY_REQUIRE=%s) but unavailable: %s", service, os.Getenv("LATCHKEY_REQUIRE"), why)
	}
	t.Skipf("skipping: %s unavailable (%s); set it up as .ci/run does to run this test", service, why)
}

// PostgresDSN returns LATCHKEY_TEST_POSTGRES_DSN after checking the server answers.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("LATCHKEY_TEST_POSTGRES_DSN")
	if dsn == "" {
		Unavailable(t, "postgres", "LATCHKEY_TEST_POSTGRES_DSN is not set")
	}
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		Unavailable(t, "postgres", err.Error())
	}
	_ = conn.Close(context.Background())
	return dsn
}

// PostgresStore opens a store in a fresh schema that is dropped after the test.
func PostgresStore(t testing.TB, dsn string) *store.Store {
	t.Helper()
	schema := NewSchema(t, dsn)
	s, err := store.Open("postgres", WithSearchPath(dsn, schema), store.Options{MaxOpenConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// NewSchema creates an empty schema and drops it when the test ends.
func NewSchema(t testing.TB, dsn string) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, dsn)
		if err == nil {
			_, _ = c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
			_ = c.Close(ctx)
		}
	})
	return schema
}

// WithSearchPath points a DSN (URL or key=value form) at schema.
func WithSearchPath(dsn, schema string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}

// Chromium returns the path of a Chromium binary.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{os.Getenv("LATCHKEY_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	Unavailable(t, "browser", "no chromium on PATH (Debian: apt-get install chromium)")
	return ""
}

// NPMPackageFile returns the path of a file inside an npm package that
// .ci/run installs with npm ci (dir holds its package.json), for tests that
// drive the real client software; missing, the test skips, or fails where
// LATCHKEY_REQUIRE includes service.
func NPMPackageFile(t testing.TB, service, dir, file string) string {
	t.Helper()
	p := filepath.Join(dir, "node_modules", file)
	if _, err := os.Stat(p); err != nil {
		Unavailable(t, service, fmt.Sprintf("%s is not installed (run: npm ci --prefix %s)", p, dir))
	}
	return p
}
