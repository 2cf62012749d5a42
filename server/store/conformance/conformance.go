// Package conformance is the behaviour every store backend must show. A
// backend proves itself by passing Run.
package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"

	"latchkey/flows"
	"latchkey/server/store"
)

// Open returns a fresh, empty store for one test.
type Open func(t *testing.T) Store

// Run runs the whole suite.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s Store)
	}{
		{"Users", testUsers},
		{"UserDirectory", testUserDirectory},
		{"AuthorizeCodeSingleUse", testAuthorizeCode},
		{"AuthorizeCodeConcurrentRedemption", testCodeConcurrent},
		{"AccessAndRefreshTokens", testTokens},
		{"RefreshRotationAndFamilyRevocation", testRefreshRotation},
		{"RevokeEveryTokenOfAUser", testRevokeSubject},
		{"RevokeTheTokensOfASession", testRevokeSession},
		{"PKCEAndOpenIDSessions", testPKCEAndOIDC},
		{"LongSignatures", testLongSignatures},
		{"Transactions", testTransactions},
		{"Rehearsals", testRehearse},
		{"LazyTransactions", testLazyTx},
		{"AuthAndSSOSessions", testSessions},
		{"SigningKeys", testSigningKeys},
		{"MagicLinks", testMagicLinks},
		{"MagicLinkConcurrentConsume", testMagicLinkConcurrent},
		{"MagicLinkCodeAttempts", testMagicLinkCodeAttempts},
		{"MagicLinkApproval", testMagicLinkApproval},
		{"MagicLinkListing", testMagicLinkListing},
		{"Outbox", testOutbox},
		{"OutboxLeasedWhenQueued", testOutboxLeasedWhenQueued},
		{"OutboxConcurrentClaims", testOutboxConcurrent},
		{"RateCounters", testRateCounters},
		{"RateCountersConcurrent", testRateCountersConcurrent},
		{"Purge", testPurge},
		{"Events", Events},
		{"Settings", testSettings},
		{"Credentials", testCredentials},
		{"CredentialCounterConcurrentUse", testCredentialCounterConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			s.SetClients(func(_ context.Context, id string) (fosite.Client, error) {
				if id != "app" {
					return nil, fosite.ErrNotFound
				}
				return &fosite.DefaultClient{ID: "app", Public: true}, nil
			})
			tc.fn(t, s)
		})
	}
}

var ctx = context.Background()

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func testUsers(t *testing.T, s Store) {
	u := &flows.User{Email: "alice@example.com", FirstName: "Alice", RequiredActions: []string{"UPDATE_PROFILE"}}
	must(t, s.CreateUser(ctx, u))
	if u.ID == "" {
		t.Fatal("CreateUser did not assign an id")
	}
	if err := s.CreateUser(ctx, &flows.User{Email: "alice@example.com"}); !errors.Is(err, flows.ErrUserExists) {
		t.Fatalf("duplicate email: err = %v, want ErrUserExists", err)
	}
	got, err := s.UserByEmail(ctx, "alice@example.com")
	must(t, err)
	if got.ID != u.ID || got.FirstName != "Alice" || !got.HasRequiredAction("UPDATE_PROFILE") {
		t.Fatalf("UserByEmail = %+v", got)
	}
	got.LastName, got.EmailVerified = "Example", true
	got.RemoveRequiredAction("UPDATE_PROFILE")
	must(t, s.UpdateUser(ctx, got))
	again, err := s.UserByID(ctx, u.ID)
	must(t, err)
	if again.LastName != "Example" || !again.EmailVerified || len(again.RequiredActions) != 0 {
		t.Fatalf("after update: %+v", again)
	}
	if _, err := s.UserByEmail(ctx, "nobody@example.com"); !errors.Is(err, flows.ErrUserNotFound) {
		t.Fatalf("unknown email: err = %v", err)
	}
	if err := s.UpdateUser(ctx, &flows.User{ID: "missing", Email: "m@example.com"}); !errors.Is(err, flows.ErrUserNotFound) {
		t.Fatalf("update unknown: err = %v", err)
	}
	batch := []*flows.User{{Email: "bulk1@example.com"}, {Email: "bulk2@example.com"}, {Email: "alice@example.com"}}
	must(t, s.ImportUsers(ctx, batch))
	if n, err := s.CountUsers(ctx); err != nil || n != 3 {
		t.Fatalf("after import: %d users, %v; want 3 (the existing email skipped)", n, err)
	}
}

func testUserDirectory(t *testing.T, s Store) {
	no := false
	for _, u := range []*flows.User{
		{Email: "ann@example.com", FirstName: "Ann", LastName: "Lee"},
		{Email: "bob_x@example.com", FirstName: "Bob", Disabled: true},
		{Email: "carla@example.org", LastName: "Annis"},
	} {
		must(t, s.CreateUser(ctx, u))
	}
	emails := func(f store.UserFilter) string {
		t.Helper()
		us, err := s.ListUsers(ctx, f)
		must(t, err)
		var out []string
		for _, u := range us {
			out = append(out, u.Email)
		}
		n, err := s.CountUsersMatching(ctx, store.UserFilter{Search: f.Search, Email: f.Email, FirstName: f.FirstName, LastName: f.LastName, Exact: f.Exact, Enabled: f.Enabled})
		must(t, err)
		if f.Max == 0 && f.First == 0 && int(n) != len(out) {
			t.Errorf("%+v: count %d, list %d", f, n, len(out))
		}
		return strings.Join(out, ",")
	}
	for _, c := range []struct {
		f    store.UserFilter
		want string
	}{
		{store.UserFilter{}, "ann@example.com,bob_x@example.com,carla@example.org"},
		{store.UserFilter{Search: "ANN"}, "ann@example.com,carla@example.org"}, // prefix of email or last name
		{store.UserFilter{Search: "*example.org"}, "carla@example.org"},
		{store.UserFilter{Search: `"ann"`}, "ann@example.com"}, // exact: first name Ann, not Annis
		{store.UserFilter{Email: "_x"}, "bob_x@example.com"},   // _ is literal, not a wildcard
		{store.UserFilter{Email: "ann@example.com", Exact: true}, "ann@example.com"},
		{store.UserFilter{Email: "ann@", Exact: true}, ""},
		{store.UserFilter{FirstName: "bo"}, "bob_x@example.com"},
		{store.UserFilter{Enabled: &no}, "bob_x@example.com"},
		{store.UserFilter{First: 1, Max: 1}, "bob_x@example.com"},
	} {
		if got := emails(c.f); got != c.want {
			t.Errorf("ListUsers(%+v) = %s, want %s", c.f, got, c.want)
		}
	}

	// Deleting a user removes their links, the links' mail, sessions and
	// tokens, and nobody else's.
	ann, err := s.UserByEmail(ctx, "ann@example.com")
	must(t, err)
	carla, err := s.UserByEmail(ctx, "carla@example.org")
	must(t, err)
	now := time.Now()
	for i, u := range []*flows.User{ann, carla} {
		id := fmt.Sprintf("link-%d", i)
		must(t, s.CreateMagicLink(ctx, &store.MagicLink{ID: id, TokenHash: "hash-" + id, UserID: u.ID, Email: u.Email, Type: "login", ExpiresAt: now.Add(time.Hour)},
			&store.OutboxMail{To: u.Email, Subject: "link", Ref: id}))
		must(t, s.CreateSSOSession(ctx, &store.SSOSession{ID: "sso-" + id, UserID: u.ID, Ref: "ref-" + id, AuthTime: now, ExpiresAt: now.Add(time.Hour)}))
		code := request("grant-" + id)
		code.Session.(*openid.DefaultSession).Subject = u.ID
		must(t, s.CreateAuthorizeCodeSession(ctx, "code-"+id, code))
	}
	if ss, err := s.SSOSessionsOf(ctx, ann.ID, now); err != nil || len(ss) != 1 || ss[0].Ref != "ref-link-0" {
		t.Fatalf("SSOSessionsOf = %v, %v", ss, err)
	}
	must(t, s.DeleteUser(ctx, ann.ID))
	if _, err := s.UserByID(ctx, ann.ID); !errors.Is(err, flows.ErrUserNotFound) {
		t.Errorf("deleted user still found: %v", err)
	}
	if _, err := s.MagicLinkByID(ctx, "link-0"); err == nil {
		t.Error("the deleted user's link survived")
	}
	if m, _ := s.MailByRef(ctx, "link-0"); len(m) != 0 {
		t.Error("the deleted user's mail survived")
	}
	if _, err := s.SSOSessionByID(ctx, "sso-link-0", now); err == nil {
		t.Error("the deleted user's session survived")
	}
	if _, err := s.GetAuthorizeCodeSession(ctx, "code-link-0", newSession()); !errors.Is(err, fosite.ErrNotFound) {
		t.Errorf("the deleted user's authorization code survived: %v", err)
	}
	if _, err := s.GetAuthorizeCodeSession(ctx, "code-link-1", newSession()); err != nil {
		t.Errorf("another user's authorization code went too: %v", err)
	}
	if _, err := s.MagicLinkByID(ctx, "link-1"); err != nil {
		t.Errorf("another user's link went too: %v", err)
	}
	if m, _ := s.MailByRef(ctx, "link-1"); len(m) != 1 {
		t.Error("another user's mail went too")
	}
	if err := s.DeleteUser(ctx, ann.ID); !errors.Is(err, flows.ErrUserNotFound) {
		t.Errorf("deleting twice: %v, want ErrUserNotFound", err)
	}
}

func request(id string) *fosite.Request {
	sess := &openid.DefaultSession{
		Subject: "user-1",
		Claims:  &jwtClaims{Subject: "user-1", Nonce: "n-0S6"},
	}
	sess.SetExpiresAt(fosite.AuthorizeCode, time.Now().Add(time.Minute))
	sess.SetExpiresAt(fosite.AccessToken, time.Now().Add(5*time.Minute))
	sess.SetExpiresAt(fosite.RefreshToken, time.Now().Add(time.Hour))
	return &fosite.Request{
		ID: id, RequestedAt: time.Now().UTC().Truncate(time.Second), Client: &fosite.DefaultClient{ID: "app"},
		RequestedScope: fosite.Arguments{"openid", "email"}, GrantedScope: fosite.Arguments{"openid", "email"},
		Form: map[string][]string{"redirect_uri": {"http://localhost/cb"}}, Session: sess,
	}
}

func newSession() *openid.DefaultSession { return &openid.DefaultSession{} }

func testAuthorizeCode(t *testing.T, s Store) {
	must(t, s.CreateAuthorizeCodeSession(ctx, "code-sig", request("req-1")))
	got, err := s.GetAuthorizeCodeSession(ctx, "code-sig", newSession())
	must(t, err)
	if got.GetID() != "req-1" || got.GetClient().GetID() != "app" || !got.GetGrantedScopes().Has("email") {
		t.Fatalf("read back %+v", got)
	}
	if sub := got.GetSession().(*openid.DefaultSession).Claims.Subject; sub != "user-1" {
		t.Fatalf("session not hydrated: subject %q", sub)
	}
	if got.GetRequestForm().Get("redirect_uri") != "http://localhost/cb" {
		t.Fatalf("form lost: %v", got.GetRequestForm())
	}
	must(t, s.InvalidateAuthorizeCodeSession(ctx, "code-sig"))
	used, err := s.GetAuthorizeCodeSession(ctx, "code-sig", newSession())
	if !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
		t.Fatalf("used code: err = %v, want ErrInvalidatedAuthorizeCode", err)
	}
	if used == nil || used.GetID() != "req-1" {
		t.Fatal("a used code must still return its request, so fosite can revoke what it issued")
	}
	if err := s.InvalidateAuthorizeCodeSession(ctx, "code-sig"); err == nil {
		t.Fatal("second invalidation succeeded")
	}
	if _, err := s.GetAuthorizeCodeSession(ctx, "nope", newSession()); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("unknown code: err = %v", err)
	}
}

func testCodeConcurrent(t *testing.T, s Store) {
	must(t, s.CreateAuthorizeCodeSession(ctx, "race", request("req-race")))
	// The losers are told the code is used (fosite then revokes what the
	// winner issued), not given a database error.
	var mu sync.Mutex
	var lost []error
	exactlyOneWins(t, "redemptions", func() bool {
		err := s.InvalidateAuthorizeCodeSession(ctx, "race")
		if err != nil {
			mu.Lock()
			lost = append(lost, err)
			mu.Unlock()
		}
		return err == nil
	})
	for _, err := range lost {
		if !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
			t.Errorf("a concurrent redemption lost with %v, want ErrInvalidatedAuthorizeCode", err)
		}
	}
}

// exactlyOneWins runs try from 10 goroutines at once and fails unless
// exactly one of them succeeds (one statement decides, on every database).
func exactlyOneWins(t *testing.T, what string, try func() bool) {
	t.Helper()
	if n := wins(try); n != 1 {
		t.Fatalf("%d concurrent %s won, want exactly 1", n, what)
	}
}

// wins runs try 10 times at once and counts the tries that won.
func wins(try func() bool) int {
	var n atomic.Int32
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if try() {
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return int(n.Load())
}

func testTokens(t *testing.T, s Store) {
	r := request("req-2")
	must(t, s.CreateAccessTokenSession(ctx, "at-1", r))
	must(t, s.CreateRefreshTokenSession(ctx, "rt-1", "at-1", r))
	if _, err := s.GetAccessTokenSession(ctx, "at-1", newSession()); err != nil {
		t.Fatal(err)
	}
	must(t, s.RevokeAccessToken(ctx, "req-2"))
	if _, err := s.GetAccessTokenSession(ctx, "at-1", newSession()); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("revoked access token: err = %v", err)
	}
	must(t, s.RevokeRefreshToken(ctx, "req-2"))
	if _, err := s.GetRefreshTokenSession(ctx, "rt-1", newSession()); !errors.Is(err, fosite.ErrInactiveToken) {
		t.Fatalf("revoked refresh token: err = %v, want ErrInactiveToken", err)
	}
	must(t, s.DeleteRefreshTokenSession(ctx, "rt-1"))
	if _, err := s.GetRefreshTokenSession(ctx, "rt-1", newSession()); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("deleted refresh token: err = %v", err)
	}
}

// A user's tokens end at once (disabled): access tokens are gone, refresh
// tokens inactive (their reuse stays detectable); another user's stay.
func testRevokeSubject(t *testing.T, s Store) {
	mine, theirs := request("req-mine"), request("req-theirs")
	theirs.Session.(*openid.DefaultSession).Subject = "user-2"
	for sig, r := range map[string]*fosite.Request{"mine": mine, "theirs": theirs} {
		must(t, s.CreateAccessTokenSession(ctx, "at-"+sig, r))
		must(t, s.CreateRefreshTokenSession(ctx, "rt-"+sig, "at-"+sig, r))
	}
	must(t, s.RevokeSubject(ctx, "user-1"))
	tokensEnded(t, s, "the user's", "mine")
	tokensLive(t, s, "another user's", "theirs")
}

// tokensEnded checks that the access token at-SUFFIX is gone and the
// refresh token rt-SUFFIX inactive (its reuse stays detectable).
func tokensEnded(t *testing.T, s Store, whose, suffix string) {
	t.Helper()
	if _, err := s.GetAccessTokenSession(ctx, "at-"+suffix, newSession()); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("%s access token: err = %v, want ErrNotFound", whose, err)
	}
	if _, err := s.GetRefreshTokenSession(ctx, "rt-"+suffix, newSession()); !errors.Is(err, fosite.ErrInactiveToken) {
		t.Fatalf("%s refresh token: err = %v, want ErrInactiveToken", whose, err)
	}
}

// tokensLive checks that at-SUFFIX and rt-SUFFIX are still usable.
func tokensLive(t *testing.T, s Store, whose, suffix string) {
	t.Helper()
	if _, err := s.GetAccessTokenSession(ctx, "at-"+suffix, newSession()); err != nil {
		t.Fatalf("%s access token: %v", whose, err)
	}
	if _, err := s.GetRefreshTokenSession(ctx, "rt-"+suffix, newSession()); err != nil {
		t.Fatalf("%s refresh token: %v", whose, err)
	}
}

// sessionWithRef is a session issued in an SSO session, as the provider's
// are: the store keeps its sid with the records.
type sessionWithRef struct {
	*openid.DefaultSession
	ref string
}

func (s sessionWithRef) SessionRef() string { return s.ref }

// Ending an SSO session ends the access tokens issued in it and makes its
// refresh tokens inactive; the same user's tokens from another session
// stay.
func testRevokeSession(t *testing.T, s Store) {
	for _, sid := range []string{"sid-a", "sid-b"} {
		r := request("req-" + sid)
		r.Session = sessionWithRef{r.Session.(*openid.DefaultSession), sid}
		must(t, s.CreateAccessTokenSession(ctx, "at-"+sid, r))
		must(t, s.CreateRefreshTokenSession(ctx, "rt-"+sid, "at-"+sid, r))
	}
	must(t, s.RevokeSession(ctx, "user-1", "sid-a"))
	tokensEnded(t, s, "the session's", "sid-a")
	tokensLive(t, s, "another session's", "sid-b")
}

func testRefreshRotation(t *testing.T, s Store) {
	r := request("req-3")
	must(t, s.CreateAccessTokenSession(ctx, "at-a", r))
	must(t, s.CreateRefreshTokenSession(ctx, "rt-a", "at-a", r))
	must(t, s.RotateRefreshToken(ctx, "req-3", "rt-a"))
	must(t, s.CreateAccessTokenSession(ctx, "at-b", r))
	must(t, s.CreateRefreshTokenSession(ctx, "rt-b", "at-b", r))
	old, err := s.GetRefreshTokenSession(ctx, "rt-a", newSession())
	if !errors.Is(err, fosite.ErrInactiveToken) {
		t.Fatalf("rotated token: err = %v, want ErrInactiveToken (reuse detection)", err)
	}
	// fosite revokes the grant of a reused token by its request id, and
	// checks its client on revocation and introspection.
	if old == nil || old.GetID() != "req-3" || old.GetClient().GetID() != "app" {
		t.Fatalf("rotated token read back as %+v", old)
	}
	if cur, err := s.GetRefreshTokenSession(ctx, "rt-b", newSession()); err != nil || !cur.GetGrantedScopes().Has("email") {
		t.Fatalf("current token after rotation: %+v, %v", cur, err)
	}
	if _, err := s.GetAccessTokenSession(ctx, "at-a", newSession()); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("old access token survived rotation: err = %v", err)
	}
	if err := s.RotateRefreshToken(ctx, "req-3", "rt-a"); err == nil {
		t.Fatal("rotating an inactive token succeeded")
	}
	// Reuse: fosite revokes the family by request id.
	must(t, s.RevokeRefreshToken(ctx, "req-3"))
	must(t, s.RevokeAccessToken(ctx, "req-3"))
	if _, err := s.GetRefreshTokenSession(ctx, "rt-b", newSession()); !errors.Is(err, fosite.ErrInactiveToken) {
		t.Fatalf("family member survived revocation: err = %v", err)
	}
	if _, err := s.GetAccessTokenSession(ctx, "at-b", newSession()); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("family access token survived revocation: err = %v", err)
	}
}

// The signature part of an RS256 JWT access token is 342 characters: it
// must key a row on every database (PostgreSQL enforces column sizes).
func testLongSignatures(t *testing.T, s Store) {
	sig := strings.Repeat("A", 342)
	must(t, s.CreateAccessTokenSession(ctx, sig, request("req-long")))
	if _, err := s.GetAccessTokenSession(ctx, sig, newSession()); err != nil {
		t.Fatalf("long signature not found: %v", err)
	}
	if _, err := s.GetAccessTokenSession(ctx, strings.Repeat("A", 341)+"B", newSession()); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("another long signature matched: %v", err)
	}
	must(t, s.DeleteAccessTokenSession(ctx, sig))
	if _, err := s.GetAccessTokenSession(ctx, sig, newSession()); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("deleted: %v", err)
	}
}

func testPKCEAndOIDC(t *testing.T, s Store) {
	r := request("req-4")
	r.Form.Set("code_challenge", "abc")
	must(t, s.CreatePKCERequestSession(ctx, "sig", r))
	got, err := s.GetPKCERequestSession(ctx, "sig", newSession())
	must(t, err)
	if got.GetRequestForm().Get("code_challenge") != "abc" {
		t.Fatal("PKCE challenge lost")
	}
	// fosite deletes before checking the verifier: the record must survive
	// that, and end when its code is redeemed.
	must(t, s.DeletePKCERequestSession(ctx, "sig"))
	if _, err := s.GetPKCERequestSession(ctx, "sig", newSession()); err != nil {
		t.Fatalf("PKCE session gone before its code was redeemed: %v", err)
	}
	must(t, s.CreateAuthorizeCodeSession(ctx, "sig", r))
	must(t, s.InvalidateAuthorizeCodeSession(ctx, "sig"))
	if _, err := s.GetPKCERequestSession(ctx, "sig", newSession()); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("PKCE session after its code was redeemed: err = %v", err)
	}
	must(t, s.CreateOpenIDConnectSession(ctx, "code", r))
	oidc, err := s.GetOpenIDConnectSession(ctx, "code", &fosite.Request{Session: newSession()})
	must(t, err)
	if oidc.GetSession().(*openid.DefaultSession).Claims.Nonce != "n-0S6" {
		t.Fatal("nonce lost from OIDC session")
	}
	must(t, s.DeleteOpenIDConnectSession(ctx, "code"))
	if _, err := s.GetOpenIDConnectSession(ctx, "code", &fosite.Request{Session: newSession()}); !errors.Is(err, openid.ErrNoSessionFound) {
		t.Fatalf("deleted OIDC session: err = %v", err)
	}
}

func testTransactions(t *testing.T, s Store) {
	tctx, err := s.BeginTX(ctx)
	must(t, err)
	must(t, s.CreateAccessTokenSession(tctx, "tx-at", request("req-tx")))
	must(t, s.Rollback(tctx))
	if _, err := s.GetAccessTokenSession(ctx, "tx-at", newSession()); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("rolled-back write is visible: err = %v", err)
	}
	tctx, err = s.BeginTX(ctx)
	must(t, err)
	must(t, s.CreateAccessTokenSession(tctx, "tx-at", request("req-tx")))
	must(t, s.Commit(tctx))
	if _, err := s.GetAccessTokenSession(ctx, "tx-at", newSession()); err != nil {
		t.Fatalf("committed write is missing: %v", err)
	}
	testAfterCommit(t, s)
}

// What store.AfterCommit is given runs once the transaction has committed
// (its writes visible to every connection), in either kind of
// transaction, and never for one that rolled back.
func testAfterCommit(t *testing.T, s Store) {
	var ran []string
	note := func(ctx context.Context, sig string) {
		store.AfterCommit(ctx, func() {
			_, err := s.GetAccessTokenSession(context.Background(), sig, newSession())
			ran = append(ran, fmt.Sprintf("%s visible=%v", sig, err == nil))
		})
	}
	write := func(ctx context.Context, sig string) error {
		if err := s.CreateAccessTokenSession(ctx, sig, request("req-"+sig)); err != nil {
			return err
		}
		note(ctx, sig)
		return nil
	}
	must(t, s.InTx(ctx, func(ctx context.Context) error {
		if err := write(ctx, "after-1"); err != nil {
			return err
		}
		// A nested call joins the transaction, and so does its hook.
		if err := s.InTx(ctx, func(ctx context.Context) error { return write(ctx, "after-2") }); err != nil {
			return err
		}
		if len(ran) != 0 {
			t.Errorf("ran before the commit: %v", ran)
		}
		return nil
	}))
	failed := errors.New("roll back")
	if err := s.InTx(ctx, func(ctx context.Context) error {
		if err := write(ctx, "after-rolled-back"); err != nil {
			return err
		}
		return failed
	}); !errors.Is(err, failed) {
		t.Fatalf("InTx = %v, want the function's error", err)
	}
	tctx, err := s.BeginTX(ctx)
	must(t, err)
	must(t, write(tctx, "after-rolled-back-2"))
	must(t, s.Rollback(tctx))
	tctx, err = s.BeginTX(ctx)
	must(t, err)
	must(t, write(tctx, "after-3"))
	must(t, s.Commit(tctx))
	note(ctx, "after-3") // outside a transaction: at once
	want := []string{"after-1 visible=true", "after-2 visible=true", "after-3 visible=true", "after-3 visible=true"}
	if !slices.Equal(ran, want) {
		t.Fatalf("after-commit hooks ran %v, want %v", ran, want)
	}
}

// Rehearse undoes what its function wrote, and drops its after-commit
// hooks, both alone and inside a transaction that goes on to commit what
// it wrote before and after (a savepoint: joining would commit it); a
// write that fails inside it leaves that transaction usable (PostgreSQL
// aborts a transaction at a failed statement, short of a savepoint).
func testRehearse(t *testing.T, s Store) {
	var ran []string
	write := hookedWrite(s, &ran)
	rehearse := func(ctx context.Context, sig string) error {
		return s.Rehearse(ctx, func(ctx context.Context) error { return write(ctx, sig) })
	}
	must(t, rehearse(ctx, "rehearsed-alone"))
	must(t, s.InTx(ctx, func(ctx context.Context) error {
		must(t, write(ctx, "kept-before"))
		must(t, rehearse(ctx, "rehearsed-inside"))
		// The same signature again: a duplicate key fails inside the rehearsal.
		must(t, write(ctx, "kept-duplicate"))
		if err := rehearse(ctx, "kept-duplicate"); err == nil {
			t.Error("a rehearsal whose write failed reported no error")
		}
		return write(ctx, "kept-after")
	}))
	for sig, want := range map[string]bool{"rehearsed-alone": false, "rehearsed-inside": false, "kept-before": true, "kept-duplicate": true, "kept-after": true} {
		_, err := s.GetAccessTokenSession(ctx, sig, newSession())
		if got := err == nil; got != want {
			t.Errorf("%s kept = %v (err %v), want %v", sig, got, err, want)
		}
	}
	if want := []string{"kept-before", "kept-duplicate", "kept-after"}; !slices.Equal(ran, want) {
		t.Errorf("after-commit hooks ran %v, want %v", ran, want)
	}
}

// hookedWrite writes a token row named sig and, once it has committed,
// appends sig to ran.
func hookedWrite(s Store, ran *[]string) func(ctx context.Context, sig string) error {
	return func(ctx context.Context, sig string) error {
		if err := s.CreateAccessTokenSession(ctx, sig, request("req-"+sig)); err != nil {
			return err
		}
		store.AfterCommit(ctx, func() { *ran = append(*ran, sig) })
		return nil
	}
}

// testLazyTx: a LazyTx context begins its transaction at its first InTx,
// everything after joins it, and end commits it or rolls it back; a
// failed or panicking first InTx, or an abandoned context, leaves nothing
// open (on SQLite the writer: the last write here would wait for ever).
func testLazyTx(t *testing.T, s Store) {
	var ran []string
	write := hookedWrite(s, &ran)
	inTx := func(ctx context.Context, sig string) error {
		return s.InTx(ctx, func(ctx context.Context) error { return write(ctx, sig) })
	}
	kept := func(ctx context.Context, sig string) bool {
		_, err := s.GetAccessTokenSession(ctx, sig, newSession())
		return err == nil
	}
	boom := errors.New("boom")

	// No InTx: nothing begun, a write commits as it is made.
	lctx, end := s.LazyTx(ctx)
	must(t, write(lctx, "single"))
	if !kept(ctx, "single") || !slices.Equal(ran, []string{"single"}) {
		t.Errorf("a write before any InTx waited for end: kept %v, hooks %v", kept(ctx, "single"), ran)
	}
	must(t, end(nil))

	// Begun by the first InTx, joined by a single write and a second InTx,
	// committed once by end.
	ran = nil
	lctx, end = s.LazyTx(ctx)
	must(t, inTx(lctx, "first"))
	must(t, write(lctx, "joined"))
	must(t, inTx(lctx, "second"))
	if !kept(lctx, "joined") {
		t.Error("the lazy transaction does not read its own writes")
	}
	if kept(ctx, "first") || kept(ctx, "joined") || len(ran) > 0 {
		t.Errorf("visible before end: first %v, joined %v, hooks %v", kept(ctx, "first"), kept(ctx, "joined"), ran)
	}
	must(t, end(nil))
	must(t, end(nil)) // again: nothing to do
	for _, sig := range []string{"first", "joined", "second"} {
		if !kept(ctx, sig) {
			t.Errorf("%s not committed by end", sig)
		}
	}
	if want := []string{"first", "joined", "second"}; !slices.Equal(ran, want) {
		t.Errorf("after-commit hooks ran %v, want %v", ran, want)
	}

	// end with an error rolls everything back, drops the hooks, and
	// returns the error.
	ran = nil
	lctx, end = s.LazyTx(ctx)
	must(t, inTx(lctx, "undone"))
	if err := end(boom); !errors.Is(err, boom) {
		t.Errorf("end(boom) = %v", err)
	}
	if kept(ctx, "undone") || len(ran) > 0 {
		t.Errorf("rolled back: kept %v, hooks %v", kept(ctx, "undone"), ran)
	}

	// A first InTx that fails is undone; the next begins anew.
	lctx, end = s.LazyTx(ctx)
	err := s.InTx(lctx, func(ctx context.Context) error {
		must(t, write(ctx, "failed"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("failed InTx = %v", err)
	}
	must(t, inTx(lctx, "after-failure"))
	must(t, end(nil))
	if kept(ctx, "failed") || !kept(ctx, "after-failure") {
		t.Errorf("failed kept %v, after-failure kept %v", kept(ctx, "failed"), kept(ctx, "after-failure"))
	}

	// A panic inside the first InTx, or after it with end deferred, leaves
	// no transaction open and keeps nothing.
	lctx, end = s.LazyTx(ctx)
	func() {
		defer func() { _ = recover() }()
		_ = s.InTx(lctx, func(ctx context.Context) error {
			must(t, write(ctx, "panicked"))
			panic(boom)
		})
	}()
	must(t, end(nil))
	lctx, end = s.LazyTx(ctx)
	func() {
		defer func() { _ = end(errors.New("abandoned")) }()
		defer func() { _ = recover() }()
		must(t, inTx(lctx, "abandoned"))
		panic(boom)
	}()
	must(t, write(ctx, "writer-free"))
	if kept(ctx, "panicked") || kept(ctx, "abandoned") || !kept(ctx, "writer-free") {
		t.Errorf("panicked kept %v, abandoned kept %v, writer-free kept %v", kept(ctx, "panicked"), kept(ctx, "abandoned"), kept(ctx, "writer-free"))
	}
}

// AuthSessions is the suite's check of login attempts: saved, saved again
// (the expiry kept), read, deleted. Exported so a store kept in an older
// layout can be held to it too.
func AuthSessions(t *testing.T, s Store) {
	now := time.Now().UTC()
	a := &store.AuthSession{ID: "as-1", BrowserID: "b1", Data: `{"x":1}`, ExpiresAt: now.Add(time.Hour)}
	must(t, s.SaveAuthSession(ctx, a))
	a.Data, a.ExpiresAt = `{"x":2}`, now.Add(2*time.Hour)
	must(t, s.SaveAuthSession(ctx, a))
	got, err := s.AuthSessionByID(ctx, "as-1")
	must(t, err)
	if got.Data != `{"x":2}` || got.BrowserID != "b1" || got.ExpiresAt.After(now.Add(90*time.Minute)) {
		t.Fatalf("auth session = %+v", got)
	}
	must(t, s.DeleteAuthSession(ctx, "as-1"))
	if _, err := s.AuthSessionByID(ctx, "as-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted auth session: err = %v", err)
	}
}

func testSessions(t *testing.T, s Store) {
	AuthSessions(t, s)
	now := time.Now().UTC()
	must(t, s.CreateSSOSession(ctx, &store.SSOSession{ID: "sso-1", UserID: "u", AuthTime: now, ExpiresAt: now.Add(time.Hour)}))
	must(t, s.CreateSSOSession(ctx, &store.SSOSession{ID: "sso-old", UserID: "u", AuthTime: now, ExpiresAt: now.Add(-time.Second)}))
	if _, err := s.SSOSessionByID(ctx, "sso-1", now); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SSOSessionByID(ctx, "sso-old", now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired SSO session: err = %v", err)
	}
	must(t, s.DeleteSSOSession(ctx, "sso-1"))
	if _, err := s.SSOSessionByID(ctx, "sso-1", now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ended SSO session: err = %v", err)
	}
}

func testSigningKeys(t *testing.T, s Store) {
	must(t, s.AddSigningKey(ctx, &store.SigningKey{KID: "k1", Algorithm: "RS256", PrivatePEM: "pem1", CreatedAt: time.Now().Add(-time.Minute)}))
	must(t, s.AddSigningKey(ctx, &store.SigningKey{KID: "k2", Algorithm: "RS256", PrivatePEM: "pem2"}))
	keys, err := s.SigningKeys(ctx)
	must(t, err)
	if len(keys) != 2 || keys[0].KID != "k2" || keys[0].RetiredAt != nil || keys[1].RetiredAt == nil {
		t.Fatalf("keys = %+v, want k2 active then k1 retired", keys)
	}
}

func testMagicLinks(t *testing.T, s Store) {
	now := time.Now().UTC()
	l1 := &store.MagicLink{TokenHash: "h1", Type: "login", Email: "a@example.com", AuthSessionID: "as", ExpiresAt: now.Add(15 * time.Minute)}
	must(t, s.CreateMagicLink(ctx, l1, &store.OutboxMail{To: "a@example.com", Subject: "link 1"}))
	l2 := &store.MagicLink{TokenHash: "h2", Type: "login", Email: "a@example.com", AuthSessionID: "as", ExpiresAt: now.Add(15 * time.Minute)}
	must(t, s.CreateMagicLink(ctx, l2, &store.OutboxMail{To: "a@example.com", Subject: "link 2"}))
	if _, err := s.ConsumeMagicLink(ctx, "h1", l1.Owner(), now); !errors.Is(err, store.ErrLinkUnavailable) {
		t.Fatalf("older link still works after a newer one: err = %v", err)
	}
	old, err := s.MagicLinkByHash(ctx, "h1")
	must(t, err)
	if old.Status(now) != "revoked" {
		t.Fatalf("older link status = %s, want revoked", old.Status(now))
	}
	mails, err := s.MailByRef(ctx, l2.ID)
	must(t, err)
	if len(mails) != 1 || mails[0].Subject != "link 2" {
		t.Fatalf("mail for link 2 = %+v", mails)
	}
	// A login consumes only a link of its own, of the type its step sends.
	for _, other := range []store.LinkOwner{{AuthSessionID: "other"}, {AuthSessionID: "as", Type: "verify-email"}, {AuthSessionID: "as", Execution: "x", Type: "login"}} {
		if _, err := s.ConsumeMagicLink(ctx, "h2", other, now); !errors.Is(err, store.ErrLinkUnavailable) {
			t.Fatalf("link consumed by %+v: err = %v", other, err)
		}
	}
	got, err := s.ConsumeMagicLink(ctx, "h2", l2.Owner(), now)
	must(t, err)
	if got.ID != l2.ID || got.Status(now) != "used" {
		t.Fatalf("consumed link = %+v", got)
	}
	if _, err := s.ConsumeMagicLink(ctx, "h2", l2.Owner(), now); !errors.Is(err, store.ErrLinkUnavailable) {
		t.Fatalf("second use: err = %v", err)
	}
	l3 := &store.MagicLink{TokenHash: "h3", Type: "login", ExpiresAt: now.Add(time.Minute)}
	must(t, s.CreateMagicLink(ctx, l3, nil))
	if _, err := s.ConsumeMagicLink(ctx, "h3", l3.Owner(), now.Add(2*time.Minute)); !errors.Is(err, store.ErrLinkUnavailable) {
		t.Fatalf("expired link consumed: err = %v", err)
	}
	ok, err := s.RevokeMagicLink(ctx, l3.ID, "admin", now)
	must(t, err)
	if !ok {
		t.Fatal("revoke of a pending link reported nothing revoked")
	}
	must(t, s.MarkMagicLinkOpened(ctx, l3.ID, now))
	l3r, err := s.MagicLinkByID(ctx, l3.ID)
	must(t, err)
	if l3r.OpenedAt == nil || l3r.Status(now) != "revoked" {
		t.Fatalf("link 3 = %+v", l3r)
	}
}

func testMagicLinkConcurrent(t *testing.T, s Store) {
	l := &store.MagicLink{TokenHash: "race", Type: "login", ExpiresAt: time.Now().Add(time.Hour)}
	must(t, s.CreateMagicLink(ctx, l, nil))
	exactlyOneWins(t, "consumptions", func() bool {
		_, err := s.ConsumeMagicLink(ctx, "race", l.Owner(), time.Now())
		return err == nil
	})
}

// Wrong codes are counted in the statement that checks the link is still
// pending, and the max-th revokes it: ten concurrent wrong codes against
// max 5 leave exactly five counted and the link dead; the right code,
// consumed by id, then fails too.
func testMagicLinkCodeAttempts(t *testing.T, s Store) {
	now := time.Now()
	l := &store.MagicLink{TokenHash: "code", Type: "login", AuthSessionID: "as-code", CodeHash: "k", ExpiresAt: now.Add(time.Hour)}
	must(t, s.CreateMagicLink(ctx, l, nil))
	counted := wins(func() bool {
		_, err := s.FailMagicLinkCode(ctx, l.ID, 5, now)
		if err != nil && !errors.Is(err, store.ErrLinkUnavailable) {
			t.Error(err)
		}
		return err == nil
	})
	got, err := s.MagicLinkByID(ctx, l.ID)
	must(t, err)
	if counted != 5 || got.CodeFailures != 5 || got.RevokedReason != "code_attempts" || got.Status(now) != "revoked" {
		t.Fatalf("%d counted; link %+v", counted, got)
	}
	if _, err := s.ConsumeMagicLinkByID(ctx, l.ID, now); !errors.Is(err, store.ErrLinkUnavailable) {
		t.Fatalf("a link killed by wrong codes was consumed: %v", err)
	}
	// By id, of concurrent consumptions exactly one wins.
	l2 := &store.MagicLink{TokenHash: "code2", Type: "login", AuthSessionID: "as-code2", ExpiresAt: now.Add(time.Hour)}
	must(t, s.CreateMagicLink(ctx, l2, nil))
	exactlyOneWins(t, "consumptions by id", func() bool {
		_, err := s.ConsumeMagicLinkByID(ctx, l2.ID, time.Now())
		return err == nil
	})
}

// An approved link is no longer pending (neither its token nor its code
// signs in), its login's browser claims it once, and "This wasn't me"
// after the approval stops the claim.
func testMagicLinkApproval(t *testing.T, s Store) {
	now := time.Now()
	newLink := func(h string) *store.MagicLink {
		l := &store.MagicLink{TokenHash: h, Type: "login", AuthSessionID: "as-" + h, Approval: "number", MatchNumber: 42,
			MatchChoices: "17,42,88", ExpiresAt: now.Add(time.Hour)}
		must(t, s.CreateMagicLink(ctx, l, nil))
		return l
	}
	l := newLink("appr")
	exactlyOneWins(t, "approvals", func() bool {
		_, err := s.ApproveMagicLink(ctx, l.ID, time.Now())
		return err == nil
	})
	if _, err := s.ConsumeMagicLink(ctx, "appr", l.Owner(), now); !errors.Is(err, store.ErrLinkUnavailable) {
		t.Fatalf("an approved link's token signed in: %v", err)
	}
	if _, err := s.ConsumeMagicLinkByID(ctx, l.ID, now); !errors.Is(err, store.ErrLinkUnavailable) {
		t.Fatalf("an approved link's code signed in: %v", err)
	}
	got, err := s.MagicLinkForLogin(ctx, "as-appr")
	must(t, err)
	if got.Status(now) != "approved" || got.MatchChoices != "17,42,88" {
		t.Fatalf("approved link: %+v", got)
	}
	exactlyOneWins(t, "claims", func() bool {
		_, err := s.ClaimApprovedMagicLink(ctx, l.ID, time.Now())
		return err == nil
	})
	// Declined after the approval: nothing to claim.
	l2 := newLink("appr2")
	_, err = s.ApproveMagicLink(ctx, l2.ID, now)
	must(t, err)
	ok, err := s.RevokeMagicLink(ctx, l2.ID, "declined", now)
	must(t, err)
	if !ok {
		t.Fatal("an approved link could not be declined")
	}
	if _, err := s.ClaimApprovedMagicLink(ctx, l2.ID, now); !errors.Is(err, store.ErrLinkUnavailable) {
		t.Fatalf("a declined approval was claimed: %v", err)
	}
	if got, _ := s.MagicLinkByID(ctx, l2.ID); got.RevokedReason != "declined" {
		t.Fatalf("reason %q", got.RevokedReason)
	}
	// A newer link of the same login revokes the older as "replaced".
	l3 := &store.MagicLink{TokenHash: "appr3", Type: "login", AuthSessionID: "as-appr2", ExpiresAt: now.Add(time.Hour)}
	l4 := &store.MagicLink{TokenHash: "appr4", Type: "login", AuthSessionID: "as-appr2", ExpiresAt: now.Add(time.Hour)}
	must(t, s.CreateMagicLink(ctx, l3, nil))
	must(t, s.CreateMagicLink(ctx, l4, nil))
	if got, _ := s.MagicLinkByID(ctx, l3.ID); got.RevokedReason != "replaced" {
		t.Fatalf("older link: %+v", got)
	}
}

func testOutbox(t *testing.T, s Store) {
	now := time.Now().UTC()
	for _, subj := range []string{"one", "two"} {
		must(t, s.EnqueueMail(ctx, &store.OutboxMail{To: "a@example.com", Subject: subj, Text: "body " + subj}))
	}
	got, err := s.ClaimMail(ctx, "node-a", now.Add(time.Second), time.Minute, 10)
	must(t, err)
	if len(got) != 2 || got[0].Subject != "one" {
		t.Fatalf("claimed %+v", got)
	}
	again, err := s.ClaimMail(ctx, "node-b", now.Add(time.Second), time.Minute, 10)
	must(t, err)
	if len(again) != 0 {
		t.Fatalf("leased mail claimed twice: %+v", again)
	}
	// One batch: the first delivered (and dropped), the second to retry.
	lost, err := s.RecordMail(ctx, "node-a", []store.MailOutcome{
		{ID: got[0].ID, At: now, Sent: true, Drop: true},
		{ID: got[1].ID, At: now, Retry: now.Add(10 * time.Second), Error: "421 try later"},
	})
	must(t, err)
	if len(lost) != 0 {
		t.Fatalf("outcomes of the lease holder reported lost: %v", lost)
	}
	if kept, _ := s.MailByRef(ctx, ""); len(kept) != 1 || kept[0].ID != got[1].ID || kept[0].SentAt != nil {
		t.Fatalf("after recording the batch: %+v", kept)
	}
	if due, _ := s.ClaimMail(ctx, "node-b", now.Add(5*time.Second), time.Minute, 10); len(due) != 0 {
		t.Fatalf("mail claimed before its retry time: %+v", due)
	}
	due, err := s.ClaimMail(ctx, "node-b", now.Add(11*time.Second), time.Minute, 10)
	must(t, err)
	if len(due) != 1 || due[0].Attempts != 1 || due[0].LastError != "421 try later" {
		t.Fatalf("retry claim = %+v", due)
	}
	// node-b dies holding the lease: after it expires, node-a takes over.
	taken, err := s.ClaimMail(ctx, "node-a", now.Add(11*time.Second+2*time.Minute), time.Minute, 10)
	must(t, err)
	if len(taken) != 1 {
		t.Fatalf("expired lease not reclaimed: %+v", taken)
	}
	// A stale owner can no longer mark it, nor drop it, and is told so.
	for _, drop := range []bool{false, true} {
		lost, err = s.RecordMail(ctx, "node-b", []store.MailOutcome{{ID: taken[0].ID, At: now, Sent: true, Drop: drop}})
		must(t, err)
		if len(lost) != 1 || lost[0] != taken[0].ID {
			t.Fatalf("stale owner's outcome (drop %v): lost = %v, want [%d]", drop, lost, taken[0].ID)
		}
	}
	_, err = s.RecordMail(ctx, "node-a", []store.MailOutcome{{ID: taken[0].ID, At: now, Error: "550 no such user"}})
	must(t, err)
	if m, _ := s.MailByRef(ctx, ""); m[0].SentAt != nil || m[0].FailedAt == nil || m[0].LastError != "550 no such user" {
		t.Fatalf("stale owner's outcome recorded, or failure lost: %+v", m[0])
	}
	rest, err := s.ClaimMail(ctx, "node-a", now.Add(time.Hour), time.Minute, 10)
	must(t, err)
	if len(rest) != 0 {
		t.Fatalf("finished mail claimed again: %+v", rest)
	}
	must(t, s.EnqueueMail(ctx, &store.OutboxMail{To: "b@example.com", Subject: "three"}))
	held, _ := s.ClaimMail(ctx, "node-a", now.Add(time.Second), time.Hour, 10)
	must(t, s.ReleaseMailLeases(ctx, "node-a"))
	if back, _ := s.ClaimMail(ctx, "node-b", now.Add(2*time.Second), time.Minute, 10); len(held) != 1 || len(back) != 1 {
		t.Fatalf("released lease not claimable: held %d, back %d", len(held), len(back))
	}
	// A dropped message's id, even the newest, is never given again: it is
	// the mail's Message-ID.
	must(t, s.EnqueueMail(ctx, &store.OutboxMail{To: "c@example.com", Subject: "four"}))
	four, err := s.ClaimMail(ctx, "node-c", now.Add(3*time.Second), time.Minute, 10)
	must(t, err)
	if len(four) != 1 || four[0].Subject != "four" {
		t.Fatalf("claimed %+v", four)
	}
	_, err = s.RecordMail(ctx, "node-c", []store.MailOutcome{{ID: four[0].ID, At: now, Sent: true, Drop: true}})
	must(t, err)
	if m, _ := s.MailByRef(ctx, ""); len(m) != 2 || m[1].Subject != "three" {
		t.Fatalf("a dropped message is still there, or another went with it: %+v", m)
	}
	five := &store.OutboxMail{To: "c@example.com", Subject: "five"}
	must(t, s.EnqueueMail(ctx, five))
	if five.ID <= four[0].ID {
		t.Fatalf("id %d given again after it was dropped (newest was %d)", five.ID, four[0].ID)
	}
}

// A message queued already leased (mail.Sender's Reserve, for a handoff)
// is the holder's to send and record without a claim; another node takes
// it only once the holder hands it back (or the lease ends, as testOutbox
// shows for claimed mail).
func testOutboxLeasedWhenQueued(t *testing.T, s Store) {
	now := time.Now().UTC()
	until := now.Add(time.Minute)
	handed := &store.OutboxMail{To: "a@example.com", Subject: "handed", LeaseOwner: "node-a", LeaseUntil: &until}
	back := &store.OutboxMail{To: "b@example.com", Subject: "handed back", LeaseOwner: "node-a", LeaseUntil: &until}
	must(t, s.EnqueueMail(ctx, handed))
	must(t, s.EnqueueMail(ctx, back))
	if got, _ := s.ClaimMail(ctx, "node-b", now.Add(time.Second), time.Minute, 10); len(got) != 0 {
		t.Fatalf("mail leased when queued was claimed by another node: %+v", got)
	}
	lost, err := s.RecordMail(ctx, "node-a", []store.MailOutcome{{ID: handed.ID, At: now, Sent: true, Drop: true}})
	must(t, err)
	if len(lost) != 0 {
		t.Fatalf("the holder's outcome was reported lost: %v", lost)
	}
	must(t, s.ReleaseMail(ctx, "node-b", []uint64{back.ID})) // not node-b's to release
	if got, _ := s.ClaimMail(ctx, "node-b", now.Add(time.Second), time.Minute, 10); len(got) != 0 {
		t.Fatalf("a node released a lease it does not hold: %+v", got)
	}
	must(t, s.ReleaseMail(ctx, "node-a", []uint64{back.ID}))
	got, err := s.ClaimMail(ctx, "node-b", now.Add(time.Second), time.Minute, 10)
	must(t, err)
	if len(got) != 1 || got[0].ID != back.ID {
		t.Fatalf("after the holder released it, node-b claimed %+v, want message %d", got, back.ID)
	}
	if left, _ := s.MailByRef(ctx, ""); len(left) != 1 || left[0].ID != back.ID {
		t.Fatalf("outbox holds %+v, want only the message handed back", left)
	}
}

func testOutboxConcurrent(t *testing.T, s Store) {
	const n = 40
	for range n {
		must(t, s.EnqueueMail(ctx, &store.OutboxMail{To: "a@example.com", Subject: "x"}))
	}
	seen := sync.Map{}
	var dup atomic.Int32
	var total atomic.Int32
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := string(rune('a' + w))
			for range 20 {
				got, err := s.ClaimMail(ctx, owner, time.Now().Add(time.Second), time.Minute, 3)
				if err != nil {
					t.Error(err)
					return
				}
				for _, m := range got {
					if _, loaded := seen.LoadOrStore(m.ID, owner); loaded {
						dup.Add(1)
					}
					total.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if dup.Load() != 0 || total.Load() != n {
		t.Fatalf("claimed %d mails with %d duplicates, want %d and none", total.Load(), dup.Load(), n)
	}
}

func testRateCounters(t *testing.T, s Store) {
	now := time.Now().UTC()
	for i := 1; i <= 3; i++ {
		n, reset, err := s.Hit(ctx, "email:a@example.com", 15*time.Minute, now.Add(time.Duration(i)*time.Second))
		must(t, err)
		if n != i {
			t.Fatalf("hit %d counted %d", i, n)
		}
		if d := reset.Sub(now.Add(15*time.Minute + time.Second)); d < -time.Second || d > time.Second {
			t.Fatalf("window ends %v, want 15m after the first hit", reset)
		}
	}
	n, _, err := s.Hit(ctx, "email:a@example.com", 15*time.Minute, now.Add(16*time.Minute+2*time.Second))
	must(t, err)
	if n != 1 {
		t.Fatalf("new window counted %d, want 1", n)
	}
	if n, _, _ := s.Hit(ctx, "ip:127.0.0.1", time.Minute, now); n != 1 {
		t.Fatalf("other key counted %d", n)
	}
	// Several limits in one call: answers in the caller's order (not the
	// key order rows are locked in), a key given twice counted once.
	later := now.Add(30 * time.Second)
	counts, ends, err := s.HitAll(ctx, []string{"ip:127.0.0.1", "email:b@example.com", "ip:127.0.0.1", "email:a@example.com"}, time.Minute, later)
	must(t, err)
	if want := []int{2, 1, 2, 2}; !slices.Equal(counts, want) {
		t.Fatalf("HitAll counted %v, want %v", counts, want)
	}
	for i, want := range []time.Time{now, later, now, now.Add(16*time.Minute + 2*time.Second)} {
		if d := ends[i].Sub(want.Add(time.Minute)); d < -time.Second || d > time.Second {
			t.Fatalf("HitAll: window %d ends %v, want a minute after %v", i, ends[i], want)
		}
	}
}

// Requests that share limits count them at once, naming the keys in any
// order: none is lost, and none waits on another for ever (rows are
// locked in key order; in the caller's order two requests could each hold
// the row the other wants, and PostgreSQL would abort one).
func testRateCountersConcurrent(t *testing.T, s Store) {
	keys := []string{"c:1", "c:2", "c:3"}
	reversed := slices.Clone(keys)
	slices.Reverse(reversed)
	const workers, each = 8, 40
	now := time.Now().UTC()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		order := keys
		if w%2 == 1 {
			order = reversed
		}
		wg.Go(func() {
			for range each {
				if _, _, err := s.HitAll(ctx, order, time.Hour, now); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	counts, _, err := s.HitAll(ctx, keys, time.Hour, now)
	must(t, err)
	if want := []int{workers*each + 1, workers*each + 1, workers*each + 1}; !slices.Equal(counts, want) {
		t.Fatalf("counted %v, want %v", counts, want)
	}
}

func testPurge(t *testing.T, s Store) {
	now := time.Now().UTC()
	old := request("req-old")
	old.Session.SetExpiresAt(fosite.AccessToken, now.Add(-2*time.Hour))
	must(t, s.CreateAccessTokenSession(ctx, "old-at", old))
	must(t, s.CreateAccessTokenSession(ctx, "new-at", request("req-new")))
	must(t, s.SaveAuthSession(ctx, &store.AuthSession{ID: "gone", ExpiresAt: now.Add(-2 * time.Hour)}))
	oldCode, newCode := request("req-old-code"), request("req-new-code")
	oldCode.Session.SetExpiresAt(fosite.AuthorizeCode, now.Add(-2*time.Hour))
	must(t, s.CreateAuthorizeCodeSession(ctx, "old-code", oldCode))
	must(t, s.CreateAuthorizeCodeSession(ctx, "new-code", newCode))
	n, err := s.Purge(ctx, now, time.Hour)
	must(t, err)
	if n < 3 {
		t.Fatalf("purged %d rows, want at least 3", n)
	}
	if _, err := s.GetAuthorizeCodeSession(ctx, "old-code", newSession()); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("an expired code survived the purge: %v", err)
	}
	if _, err := s.GetAuthorizeCodeSession(ctx, "new-code", newSession()); err != nil {
		t.Fatalf("a live code was purged: %v", err)
	}
	if _, err := s.GetAccessTokenSession(ctx, "new-at", newSession()); err != nil {
		t.Fatalf("live token purged: %v", err)
	}
	if _, err := s.AuthSessionByID(ctx, "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("expired auth session survived the purge")
	}
	if _, err := s.GetAccessTokenSession(ctx, "old-at", newSession()); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("expired token survived the purge: %v", err)
	}

	// More expired rows than one purge statement takes: all go, in batches,
	// and the live ones stay.
	const many = 2500
	must(t, s.InTx(ctx, func(ctx context.Context) error {
		for i := range many {
			if err := s.SaveAuthSession(ctx, &store.AuthSession{ID: fmt.Sprint("old-", i), ExpiresAt: now.Add(-2 * time.Hour)}); err != nil {
				return err
			}
		}
		return s.SaveAuthSession(ctx, &store.AuthSession{ID: "live", ExpiresAt: now.Add(time.Hour)})
	}))
	n, err = s.Purge(ctx, now, time.Hour)
	must(t, err)
	if n != many {
		t.Fatalf("purged %d rows, want %d", n, many)
	}
	if _, err := s.AuthSessionByID(ctx, "live"); err != nil {
		t.Fatalf("live auth session purged: %v", err)
	}
}

// Events is the suite's check of the event log: listing by kind, newest
// first, with filters and pages, and the purge by age in batches. Exported
// so a store kept in an older layout can be held to it too.
func Events(t *testing.T, s Store) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	record := func(e store.Event) {
		t.Helper()
		if e.ID == "" {
			e.ID = fmt.Sprintf("%s-%d-%s", e.Kind, e.Time.UnixMilli(), e.UserID)
		}
		must(t, s.RecordEvent(ctx, &e, nil))
	}
	for i := range 4 {
		at := t0.Add(time.Duration(i) * time.Minute)
		record(store.Event{Kind: store.EventLogin, Time: at, Type: "LOGIN", ClientID: "app", UserID: "u1", IPAddress: "192.0.2.1"})
		record(store.Event{Kind: store.EventLogin, Time: at, Type: "CODE_TO_TOKEN", ClientID: "app", UserID: "u2"})
	}
	record(store.Event{Kind: store.EventAdmin, Time: t0.Add(time.Minute), Type: "ADMIN_CREATE", OperationType: "CREATE", ResourcePath: "users/u1"})
	list := func(f store.EventFilter) []string {
		t.Helper()
		got, err := s.Events(ctx, f)
		must(t, err)
		var out []string
		for _, e := range got {
			out = append(out, fmt.Sprintf("%s %s %s", e.Time.UTC().Format("15:04"), e.UserID, e.Type))
		}
		return out
	}
	expect := func(what string, got []string, want ...string) {
		t.Helper()
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("%s:\n got %q\nwant %q", what, got, want)
		}
	}
	expect("u1's logins, newest first", list(store.EventFilter{Kind: store.EventLogin, UserID: "u1", Max: 10}),
		"12:03 u1 LOGIN", "12:02 u1 LOGIN", "12:01 u1 LOGIN", "12:00 u1 LOGIN")
	expect("a time range, a type, a page", list(store.EventFilter{Kind: store.EventLogin, Types: []string{"CODE_TO_TOKEN"},
		From: t0.Add(time.Minute), To: t0.Add(3 * time.Minute), First: 1, Max: 10}), "12:01 u2 CODE_TO_TOKEN")
	expect("admin events", list(store.EventFilter{Kind: store.EventAdmin, ResourcePath: "users/", Max: 10}), "12:01  ADMIN_CREATE")
	if got := list(store.EventFilter{Kind: store.EventLogin, Max: 3}); len(got) != 3 || got[0][:5] != "12:03" {
		t.Fatalf("newest three: %q", got)
	}

	// The purge takes events older than the cut, of every kind, in batches
	// (more than one purge statement holds), and leaves the rest.
	const many = 1100
	must(t, s.InTx(ctx, func(ctx context.Context) error {
		for i := range many {
			e := store.Event{ID: fmt.Sprint("old-", i), Kind: store.EventLogin, Time: t0.Add(-time.Hour), Type: "LOGIN", UserID: "u3"}
			if err := s.RecordEvent(ctx, &e, nil); err != nil {
				return err
			}
		}
		return nil
	}))
	n, err := s.PurgeEvents(ctx, t0.Add(2*time.Minute))
	must(t, err)
	if n != many+5 {
		t.Fatalf("purged %d events, want %d", n, many+5)
	}
	expect("logins left", list(store.EventFilter{Kind: store.EventLogin, Max: 10}),
		"12:03 u1 LOGIN", "12:03 u2 CODE_TO_TOKEN", "12:02 u1 LOGIN", "12:02 u2 CODE_TO_TOKEN")
	expect("admin events left", list(store.EventFilter{Kind: store.EventAdmin, Max: 10}))
}

func testSettings(t *testing.T, s Store) {
	v1, err := s.SettingOrCreate(ctx, "k", func() (string, error) { return "first", nil })
	must(t, err)
	v2, err := s.SettingOrCreate(ctx, "k", func() (string, error) { return "second", nil })
	must(t, err)
	if v1 != "first" || v2 != "first" {
		t.Fatalf("settings %q %q", v1, v2)
	}
}

// jwtClaims is fosite's ID token claims type, named for brevity.
type jwtClaims = jwt.IDTokenClaims

func testMagicLinkListing(t *testing.T, s Store) {
	now := time.Now().UTC()
	mk := func(hash, user string, exp time.Duration) *store.MagicLink {
		l := &store.MagicLink{TokenHash: hash, Type: "login", UserID: user, Email: user + "@example.com", ExpiresAt: now.Add(exp), CreatedAt: now.Add(-time.Duration(len(hash)) * time.Second)}
		must(t, s.CreateMagicLink(ctx, l, nil))
		return l
	}
	mk("p", "u1", time.Hour)
	used := mk("uu", "u1", time.Hour)
	rev := mk("rrr", "u2", time.Hour)
	mk("eeee", "u2", -time.Minute)
	_, err := s.ConsumeMagicLink(ctx, used.TokenHash, used.Owner(), now)
	must(t, err)
	_, err = s.RevokeMagicLink(ctx, rev.ID, "admin", now)
	must(t, err)
	for status, want := range map[string]int{"": 4, "pending": 1, "used": 1, "revoked": 1, "expired": 1} {
		got, total, err := s.ListMagicLinks(ctx, store.LinkFilter{Status: status, Limit: 10}, now)
		must(t, err)
		if len(got) != want || total != int64(want) {
			t.Errorf("status %q: %d links (total %d), want %d", status, len(got), total, want)
		}
		for _, l := range got {
			if status != "" && l.Status(now) != status {
				t.Errorf("status %q listed a %s link", status, l.Status(now))
			}
		}
	}
	byUser, total, err := s.ListMagicLinks(ctx, store.LinkFilter{UserID: "u2", Limit: 1}, now)
	must(t, err)
	if len(byUser) != 1 || total != 2 {
		t.Fatalf("user filter with limit 1: %d (total %d)", len(byUser), total)
	}
	page2, _, err := s.ListMagicLinks(ctx, store.LinkFilter{UserID: "u2", Limit: 1, Offset: 1}, now)
	must(t, err)
	if len(page2) != 1 || page2[0].ID == byUser[0].ID {
		t.Fatal("second page repeats the first")
	}
	if got, _, _ := s.ListMagicLinks(ctx, store.LinkFilter{Email: "u1@example.com", Limit: 10}, now); len(got) != 2 {
		t.Fatalf("email filter: %d", len(got))
	}
}

func testCredentials(t *testing.T, s Store) {
	c := &store.Credential{UserID: "u1", Type: "otp", Secret: "sealed", Label: "phone"}
	must(t, s.SaveCredential(ctx, c))
	must(t, s.SaveCredential(ctx, &store.Credential{UserID: "u1", Type: "webauthn", Secret: "k"}))
	c.Confirmed = true
	must(t, s.SaveCredential(ctx, c))
	got, err := s.CredentialsOf(ctx, "u1", "otp")
	if err != nil || len(got) != 1 || got[0].ID != c.ID || !got[0].Confirmed || got[0].Secret != "sealed" {
		t.Fatalf("credentials %+v, %v", got, err)
	}
	if ok, err := s.UseCounter(ctx, c.ID, 100); err != nil || !ok {
		t.Fatalf("first use of 100: %v %v", ok, err)
	}
	for _, n := range []int64{100, 99} {
		if ok, err := s.UseCounter(ctx, c.ID, n); err != nil || ok {
			t.Fatalf("use of %d after 100 accepted: %v %v", n, ok, err)
		}
	}
	must(t, s.DeleteCredential(ctx, c.ID))
	if got, _ := s.CredentialsOf(ctx, "u1", "otp"); len(got) != 0 {
		t.Fatalf("deleted credential still there: %+v", got)
	}
}

// A TOTP code is accepted once even when it arrives ten times at once.
func testCredentialCounterConcurrent(t *testing.T, s Store) {
	c := &store.Credential{UserID: "u1", Type: "otp", Secret: "sealed"}
	must(t, s.SaveCredential(ctx, c))
	exactlyOneWins(t, "uses of one code", func() bool { ok, err := s.UseCounter(ctx, c.ID, 42); return err == nil && ok })
}
