package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/handler/pkce"
	"gorm.io/gorm/clause"
)

// signatureKey is how a token signature keys its row: HMAC signatures
// (43 characters) as they are; longer ones, such as the signature part of
// an RS256 JWT access token (342), by their SHA-256, so every key fits the
// column on PostgreSQL.
func signatureKey(signature string) string {
	if len(signature) <= 64 {
		return signature
	}
	sum := sha256.Sum256([]byte(signature))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Kinds of fosite records, kept in one table keyed by (kind, signature);
// a code lives in o_auth_codes instead (OAuthCode).
const (
	kindCode    = "code"
	kindAccess  = "access"
	kindRefresh = "refresh"
	kindPKCE    = "pkce"
	kindOIDC    = "oidc"
)

// OAuthRecord is one fosite request stored under a token signature. Only
// signatures (HMACs of tokens) are stored, never the tokens themselves.
type OAuthRecord struct {
	Kind      string `gorm:"primaryKey;size:8;index:idx_oauth_grant,priority:2"`
	Signature string `gorm:"primaryKey;size:128"`
	// (request_id, kind, active) finds a grant's live tokens of a kind
	// without reading the rotated ones kept for reuse detection, however
	// long the grant's chain of refreshes grows.
	RequestID string `gorm:"index:idx_oauth_grant,priority:1;size:64"`
	ClientID  string `gorm:"size:128"`
	// Subject is the user's id. SessionRef is the sid of the SSO session
	// the tokens were issued in: ending the session revokes them. One index
	// serves both revocations (a user's tokens, a user's session's tokens):
	// each record written updates one B-tree for them, not two.
	Subject     string `gorm:"index:idx_oauth_subject_session,priority:1;size:64"`
	SessionRef  string `gorm:"index:idx_oauth_subject_session,priority:2;size:64"`
	Active      bool   `gorm:"index:idx_oauth_grant,priority:3"`
	RequestedAt time.Time
	ExpiresAt   time.Time `gorm:"index"`
	Data        string    // JSON of storedRequest
}

// OAuthCode is an authorization code waiting to be redeemed, with the
// request its tokens are made from (about 1 KB). Redeeming it drops that
// data: the row stays, as the used code's record reuse detection reads,
// until the code expires and is purged. In the token table a spent code's
// row shrank the same way and left that space empty for good (a rowid table
// only appends there: about 0.9 KB of pages a login), and a record moved
// there on redemption wrote the token table's five B-trees. Here rows are
// keyed at random, so the room a spent code leaves takes later codes.
//
// Its key is the rowid itself (codeID: 64 bits of the signature's hash,
// the signature checked beside it), so the key needs no index of its own:
// a text key would add one, written at the code's issue and again at its
// redemption. Two codes with the same 64 bits fail the second's insert.
type OAuthCode struct {
	ID          int64  `gorm:"primaryKey;autoIncrement:false"`
	Signature   string `gorm:"size:128"`
	RequestID   string `gorm:"size:64"`
	ClientID    string `gorm:"size:128"`
	Subject     string `gorm:"size:64"`
	SessionRef  string `gorm:"size:64"`
	RequestedAt time.Time
	// ExpiresAt is indexed for the purge: the table holds every code of
	// the last hour or so, keyed at random, which a scan for the expired
	// ones would read whole, on the writer, every few minutes. Codes are
	// written in time order, so the index only appends.
	ExpiresAt time.Time `gorm:"index"`
	Data      string    // JSON of storedRequest
}

// codeID is the key of a code's row in o_auth_codes: the first 64 bits
// of its signature key's SHA-256.
func codeID(key string) int64 {
	sum := sha256.Sum256([]byte(key))
	return int64(binary.BigEndian.Uint64(sum[:8]))
}

// The token record statements (plain SQL: plainsql.go). get reads only
// what a request is rebuilt from.
var (
	insertOAuthRecord = plain("INSERT INTO o_auth_records (kind, signature, request_id, client_id, subject, session_ref, active, requested_at, expires_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
	insertOAuthCode   = plain("INSERT INTO o_auth_codes (id, signature, request_id, client_id, subject, session_ref, requested_at, expires_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
	selectOAuthRecord = plain("SELECT request_id, client_id, subject, session_ref, active, requested_at, data FROM o_auth_records WHERE kind = ? AND signature = ?")
	// selectCode finds a code in o_auth_codes (live while it has data), or
	// else in o_auth_records, where releases before kept codes, live or
	// spent: there is never both.
	selectCode = plain("SELECT request_id, client_id, subject, session_ref, data <> '', requested_at, data FROM o_auth_codes WHERE id = ? AND signature = ? " +
		"UNION ALL SELECT request_id, client_id, subject, session_ref, active, requested_at, data FROM o_auth_records WHERE kind = 'code' AND signature = ?")
	// selectLivePKCE: a PKCE record whose code (same signature) is used is
	// no longer there.
	selectLivePKCE = plain("SELECT request_id, client_id, subject, session_ref, active, requested_at, data FROM o_auth_records p WHERE kind = ? AND signature = ? " +
		"AND NOT EXISTS (SELECT 1 FROM o_auth_codes c WHERE c.id = ? AND c.signature = p.signature AND c.data = '') " +
		"AND NOT EXISTS (SELECT 1 FROM o_auth_records c WHERE c.kind = 'code' AND c.signature = p.signature AND NOT c.active)")
)

// storedRequest is the serialisable part of a fosite.Requester. Session
// is written from the request's session and read straight into the
// caller's (or skippedJSON): one pass each way. The request's id, client
// and time are the row's columns, so a row written now leaves them out of
// its JSON (rows written before keep them, and are read as before); a
// token's own form (its grant_type) is never read back, so only a code
// keeps its form (the redirect_uri and PKCE challenge). Scope stands for
// both the requested and the granted scopes when they are the same (most
// grants: written once).
type storedRequest struct {
	ID                string     `json:"id,omitempty"`
	RequestedAt       time.Time  `json:"requested_at,omitzero"`
	ClientID          string     `json:"client_id,omitempty"`
	Scope             []string   `json:"scope,omitempty"`
	RequestedScope    []string   `json:"requested_scope,omitempty"`
	GrantedScope      []string   `json:"granted_scope,omitempty"`
	RequestedAudience []string   `json:"requested_audience,omitempty"`
	GrantedAudience   []string   `json:"granted_audience,omitempty"`
	Form              url.Values `json:"form,omitempty"`
	Session           any        `json:"session"`
}

// KeyedSession is a session that may leave its subject and the SSO
// session it belongs to (the row's subject and session_ref columns) out of
// its JSON: the store gives them back when it reads the row.
type KeyedSession interface {
	RestoreKeys(subject, sessionRef string)
}

// keepsForm reports whether a record of kind keeps its request's form.
func keepsForm(kind string) bool { return kind != kindAccess && kind != kindRefresh }

// skippedJSON takes a value without decoding it.
type skippedJSON struct{}

func (*skippedJSON) UnmarshalJSON([]byte) error { return nil }

// ClientLookup resolves a client id to a fosite client.
type ClientLookup func(ctx context.Context, id string) (fosite.Client, error)

// SetClients tells the store how to resolve clients when reading requests back.
func (s *Store) SetClients(l ClientLookup) { s.clients = l }

var (
	_ oauth2.AuthorizeCodeStorage        = (*Store)(nil)
	_ oauth2.AccessTokenStorage          = (*Store)(nil)
	_ oauth2.RefreshTokenStorage         = (*Store)(nil)
	_ oauth2.TokenRevocationStorage      = (*Store)(nil)
	_ pkce.PKCERequestStorage            = (*Store)(nil)
	_ openid.OpenIDConnectRequestStorage = (*Store)(nil)
)

// lifetimes bound how long a record is kept when the session has no expiry
// for its kind (PKCE and OIDC records live as long as the code).
func expiryOf(kind string, r fosite.Requester) time.Time {
	var tt fosite.TokenType
	switch kind {
	case kindAccess:
		tt = fosite.AccessToken
	case kindRefresh:
		tt = fosite.RefreshToken
	default:
		tt = fosite.AuthorizeCode
	}
	if sess := r.GetSession(); sess != nil {
		if t := sess.GetExpiresAt(tt); !t.IsZero() {
			return t.UTC()
		}
	}
	if kind == kindRefresh {
		return time.Now().UTC().Add(365 * 24 * time.Hour)
	}
	return time.Now().UTC().Add(24 * time.Hour)
}

func (s *Store) create(ctx context.Context, kind, signature string, r fosite.Requester) error {
	rec, err := recordOf(kind, r)
	if err != nil {
		return err
	}
	if _, err := s.exec(ctx, insertOAuthRecord, kind, signatureKey(signature), rec.RequestID, rec.ClientID, rec.Subject, rec.SessionRef, true,
		rec.RequestedAt, rec.ExpiresAt, rec.Data); err != nil {
		return fmt.Errorf("store %s: %w", kind, err)
	}
	return nil
}

// recordOf is what a record of kind keeps of r: its columns and its JSON.
func recordOf(kind string, r fosite.Requester) (OAuthRecord, error) {
	sr := storedRequest{RequestedAudience: r.GetRequestedAudience(), GrantedAudience: r.GetGrantedAudience(), Session: r.GetSession()}
	if requested, granted := r.GetRequestedScopes(), r.GetGrantedScopes(); len(granted) > 0 && slices.Equal(requested, granted) {
		sr.Scope = granted
	} else {
		sr.RequestedScope, sr.GrantedScope = requested, granted
	}
	if keepsForm(kind) {
		sr.Form = r.GetRequestForm()
	}
	data, err := json.Marshal(sr)
	if err != nil {
		return OAuthRecord{}, fmt.Errorf("encode %s request: %w", kind, err)
	}
	rec := OAuthRecord{Kind: kind, RequestID: r.GetID(), ClientID: r.GetClient().GetID(),
		RequestedAt: r.GetRequestedAt().UTC(), ExpiresAt: expiryOf(kind, r), Data: string(data)}
	if r.GetSession() != nil {
		rec.Subject = r.GetSession().GetSubject()
	}
	if sr, ok := r.GetSession().(interface{ SessionRef() string }); ok {
		rec.SessionRef = sr.SessionRef()
	}
	return rec, nil
}

// get reads a record back into a fosite.Request hydrating session. It
// returns the request even for inactive records, as fosite needs it to
// revoke what was issued from a reused code or refresh token.
func (s *Store) get(ctx context.Context, kind, signature string, session fosite.Session) (*fosite.Request, bool, error) {
	return s.getRecord(ctx, selectOAuthRecord, kind, session, kind, signatureKey(signature))
}

// getRecord is get with the statement that selects the record of kind,
// and its arguments.
func (s *Store) getRecord(ctx context.Context, q plainQuery, kind string, session fosite.Session, args ...any) (*fosite.Request, bool, error) {
	rec := OAuthRecord{Kind: kind}
	row, err := s.queryRow(ctx, q, args...)
	if err == nil {
		err = row.Scan(&rec.RequestID, &rec.ClientID, &rec.Subject, &rec.SessionRef, &rec.Active, &rec.RequestedAt, &rec.Data)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, fosite.ErrNotFound
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", kind, err)
	}
	if rec.Data == "" {
		// A rotated or revoked refresh token keeps only what reuse detection
		// needs: its grant (request id) and client.
		return s.deadRecord(ctx, &rec, session)
	}
	sr := storedRequest{Session: &skippedJSON{}}
	if session != nil {
		sr.Session = session
	}
	if err := json.Unmarshal([]byte(rec.Data), &sr); err != nil {
		return nil, false, fmt.Errorf("decode %s: %w", kind, err)
	}
	if sr.ID == "" {
		sr.ID, sr.ClientID, sr.RequestedAt = rec.RequestID, rec.ClientID, rec.RequestedAt
	}
	if k, ok := session.(KeyedSession); ok {
		k.RestoreKeys(rec.Subject, rec.SessionRef)
	}
	if sr.Scope != nil {
		sr.RequestedScope, sr.GrantedScope = sr.Scope, slices.Clone(sr.Scope)
	}
	if sr.Form == nil {
		sr.Form = url.Values{}
	}
	client, err := s.client(ctx, kind, sr.ClientID)
	if err != nil {
		return nil, false, err
	}
	req := &fosite.Request{
		ID: sr.ID, RequestedAt: sr.RequestedAt, Client: client,
		RequestedScope: sr.RequestedScope, GrantedScope: sr.GrantedScope,
		RequestedAudience: sr.RequestedAudience, GrantedAudience: sr.GrantedAudience,
		Form: sr.Form, Session: session,
	}
	return req, rec.Active, nil
}

// deadRecord is the request of a record whose data was dropped when it
// stopped being usable: enough for fosite to revoke its grant on reuse and
// to check the client, never enough to issue anything (it is inactive).
func (s *Store) deadRecord(ctx context.Context, rec *OAuthRecord, session fosite.Session) (*fosite.Request, bool, error) {
	client, err := s.client(ctx, rec.Kind, rec.ClientID)
	if err != nil {
		return nil, false, err
	}
	return &fosite.Request{ID: rec.RequestID, RequestedAt: rec.RequestedAt, Client: client, Form: url.Values{}, Session: session}, false, nil
}

// client resolves the client a stored record of kind was issued to.
func (s *Store) client(ctx context.Context, kind, id string) (fosite.Client, error) {
	if s.clients == nil {
		return nil, errors.New("store: no client lookup configured")
	}
	c, err := s.clients(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("client of %s: %w", kind, err)
	}
	return c, nil
}

func (s *Store) delete(ctx context.Context, kind, signature string) error {
	signature = signatureKey(signature)
	if err := s.db(ctx).Where("kind = ? AND signature = ?", kind, signature).Delete(&OAuthRecord{}).Error; err != nil {
		return fmt.Errorf("delete %s: %w", kind, err)
	}
	return nil
}

// CreateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage.
// The code waits in o_auth_codes (OAuthCode) until it is spent.
func (s *Store) CreateAuthorizeCodeSession(ctx context.Context, code string, r fosite.Requester) error {
	rec, err := recordOf(kindCode, r)
	if err != nil {
		return err
	}
	key := signatureKey(code)
	if _, err := s.exec(ctx, insertOAuthCode, codeID(key), key, rec.RequestID, rec.ClientID, rec.Subject, rec.SessionRef,
		rec.RequestedAt, rec.ExpiresAt, rec.Data); err != nil {
		return fmt.Errorf("store code: %w", err)
	}
	return nil
}

// GetAuthorizeCodeSession returns fosite.ErrInvalidatedAuthorizeCode with the
// request for a used code, so fosite revokes the tokens issued from it.
func (s *Store) GetAuthorizeCodeSession(ctx context.Context, code string, session fosite.Session) (fosite.Requester, error) {
	key := signatureKey(code)
	req, active, err := s.getRecord(ctx, selectCode, kindCode, session, codeID(key), key, key)
	if err != nil {
		return nil, err
	}
	if !active {
		return req, fosite.ErrInvalidatedAuthorizeCode
	}
	return req, nil
}

// InvalidateAuthorizeCodeSession marks a code used. One statement decides,
// so of two concurrent redemptions exactly one succeeds.
// Redeeming the code also ends its PKCE record: GetPKCERequestSession finds
// none for a used code (no delete here: the provider keeps no PKCE records,
// see oidc/records.go, and a standalone one is purged when it expires).
func (s *Store) InvalidateAuthorizeCodeSession(ctx context.Context, code string) error {
	// The used code keeps only what reuse detection needs (its grant and
	// client, as a rotated refresh token does): the tokens were made from
	// the request read before this.
	key := signatureKey(code)
	res, err := s.exec(ctx, spendWaitingCode, codeID(key), key)
	if err != nil {
		return fmt.Errorf("invalidate code: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("invalidate code: %w", err)
	} else if n == 1 {
		return nil
	}
	// Not waiting: spent already, or written live to o_auth_records before
	// codes waited in o_auth_codes (an upgrade within its minute of life).
	if err := s.deactivate(ctx, kindCode, code); err != nil {
		if errors.Is(err, fosite.ErrInactiveToken) {
			return fosite.ErrInvalidatedAuthorizeCode
		}
		return fmt.Errorf("invalidate code: %w", err)
	}
	return nil
}

// spendWaitingCode spends a waiting code where it waits: it drops the
// request (about 1 KB) and whose it was, and keeps what reuse detection
// reads (the grant, the client) until the code expires. A waiting code
// always has data, so one statement decides between concurrent
// redemptions (on PostgreSQL the loser waits for the winner's row lock,
// reads the row again and updates nothing).
var spendWaitingCode = plain("UPDATE o_auth_codes SET data = '', subject = '', session_ref = '' WHERE id = ? AND signature = ? AND data <> ''")

// CreateAccessTokenSession implements oauth2.AccessTokenStorage.
func (s *Store) CreateAccessTokenSession(ctx context.Context, signature string, r fosite.Requester) error {
	return s.create(ctx, kindAccess, signature, r)
}

// GetAccessTokenSession implements oauth2.AccessTokenStorage.
func (s *Store) GetAccessTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, active, err := s.get(ctx, kindAccess, signature, session)
	if err != nil {
		return nil, err
	}
	if !active {
		return req, fosite.ErrInactiveToken
	}
	return req, nil
}

// DeleteAccessTokenSession implements oauth2.AccessTokenStorage.
func (s *Store) DeleteAccessTokenSession(ctx context.Context, signature string) error {
	return s.delete(ctx, kindAccess, signature)
}

// CreateRefreshTokenSession implements oauth2.RefreshTokenStorage.
func (s *Store) CreateRefreshTokenSession(ctx context.Context, signature, _ string, r fosite.Requester) error {
	return s.create(ctx, kindRefresh, signature, r)
}

// GetRefreshTokenSession returns fosite.ErrInactiveToken with the request for
// a rotated or revoked refresh token: fosite then revokes the whole family.
func (s *Store) GetRefreshTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, active, err := s.get(ctx, kindRefresh, signature, session)
	if err != nil {
		return nil, err
	}
	if !active {
		return req, fosite.ErrInactiveToken
	}
	return req, nil
}

// DeleteRefreshTokenSession implements oauth2.RefreshTokenStorage.
func (s *Store) DeleteRefreshTokenSession(ctx context.Context, signature string) error {
	return s.delete(ctx, kindRefresh, signature)
}

// deactivateLive is how a used code or a rotated or revoked refresh token
// is kept: inactive, so presenting it again is detected as reuse and
// revokes its grant, and without its data (about 1 KB of request and
// claims), so a session refreshed every few minutes does not store a full
// copy of its request per refresh for the refresh token's lifetime. Its
// arguments: false, the kind, true, then the key the statement ends with.
const deactivateLive = "UPDATE o_auth_records SET active = ?, data = '' WHERE kind = ? AND active = ? AND "

// Ending records one at a time, by grant, by user or by SSO session.
var (
	deactivateRecord  = plain(deactivateLive + "signature = ?")
	deactivateGrant   = plain(deactivateLive + "request_id = ?")
	deactivateSubject = plain(deactivateLive + "subject = ?")
	deactivateSession = plain(deactivateLive + "subject = ? AND session_ref = ?")
	deleteGrant       = plain("DELETE FROM o_auth_records WHERE kind = ? AND request_id = ?")
	deleteSubject     = plain("DELETE FROM o_auth_records WHERE kind = ? AND subject = ?")
	deleteSession     = plain("DELETE FROM o_auth_records WHERE kind = ? AND subject = ? AND session_ref = ?")
)

// deactivate ends one live record of kind; fosite.ErrInactiveToken when it
// was not live (one statement decides between concurrent attempts).
func (s *Store) deactivate(ctx context.Context, kind, signature string) error {
	res, err := s.exec(ctx, deactivateRecord, false, kind, true, signatureKey(signature))
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return fosite.ErrInactiveToken
	}
	return nil
}

// RotateRefreshToken deactivates the family's refresh tokens (kept, so reuse
// is detected) and deletes its access tokens. Only one concurrent rotation of
// the same token wins: the losing one finds it inactive.
func (s *Store) RotateRefreshToken(ctx context.Context, requestID, signature string) error {
	if err := s.deactivate(ctx, kindRefresh, signature); err != nil {
		if errors.Is(err, fosite.ErrInactiveToken) {
			return err
		}
		return fmt.Errorf("rotate refresh token: %w", err)
	}
	if err := s.RevokeRefreshToken(ctx, requestID); err != nil {
		return err
	}
	return s.RevokeAccessToken(ctx, requestID)
}

// RevokeRefreshToken deactivates every refresh token of a grant. Only the
// active ones are written: a grant keeps its rotated tokens (to detect
// reuse), and rewriting them all on every rotation made each refresh
// slower than the last.
func (s *Store) RevokeRefreshToken(ctx context.Context, requestID string) error {
	if _, err := s.exec(ctx, deactivateGrant, false, kindRefresh, true, requestID); err != nil {
		return fmt.Errorf("revoke refresh tokens: %w", err)
	}
	return nil
}

// RevokeRefreshTokenMaybeGracePeriod implements oauth2.TokenRevocationStorage.
func (s *Store) RevokeRefreshTokenMaybeGracePeriod(ctx context.Context, requestID, _ string) error {
	return s.RevokeRefreshToken(ctx, requestID)
}

// RevokeAccessToken deletes every access token of a grant.
func (s *Store) RevokeAccessToken(ctx context.Context, requestID string) error {
	if _, err := s.exec(ctx, deleteGrant, kindAccess, requestID); err != nil {
		return fmt.Errorf("revoke access tokens: %w", err)
	}
	return nil
}

// RevokeSubject revokes every token issued to a user (logout everywhere).
func (s *Store) RevokeSubject(ctx context.Context, subject string) error {
	return s.revoke(ctx, "user's", deleteSubject, deactivateSubject, subject)
}

// RevokeSession ends the access and refresh tokens issued to a user in an
// SSO session (its sid), as when the session ends.
func (s *Store) RevokeSession(ctx context.Context, subject, ref string) error {
	if ref == "" {
		return nil
	}
	return s.revoke(ctx, "session's", deleteSession, deactivateSession, subject, ref)
}

// revoke deletes the access tokens and deactivates the refresh tokens that
// del and deactivate select by key, in one transaction.
func (s *Store) revoke(ctx context.Context, whose string, del, deactivate plainQuery, key ...any) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		if _, err := s.exec(ctx, del, append([]any{kindAccess}, key...)...); err != nil {
			return fmt.Errorf("revoke %s access tokens: %w", whose, err)
		}
		if _, err := s.exec(ctx, deactivate, append([]any{false, kindRefresh, true}, key...)...); err != nil {
			return fmt.Errorf("revoke %s refresh tokens: %w", whose, err)
		}
		return nil
	})
}

// CreatePKCERequestSession implements pkce.PKCERequestStorage.
func (s *Store) CreatePKCERequestSession(ctx context.Context, signature string, r fosite.Requester) error {
	return s.create(ctx, kindPKCE, signature, r)
}

// GetPKCERequestSession implements pkce.PKCERequestStorage: a code's PKCE
// record ends when the code is used.
func (s *Store) GetPKCERequestSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	key := signatureKey(signature)
	req, _, err := s.getRecord(ctx, selectLivePKCE, kindPKCE, session, kindPKCE, key, codeID(key))
	if err != nil {
		return nil, err
	}
	return req, nil
}

// DeletePKCERequestSession implements pkce.PKCERequestStorage as a no-op.
// fosite calls it before it checks the code_verifier, so deleting here let
// whoever intercepted a code break the legitimate exchange with one wrong
// verifier. The record ends with its code instead
// (InvalidateAuthorizeCodeSession), or expires with it and is purged.
func (s *Store) DeletePKCERequestSession(context.Context, string) error {
	return nil
}

// fosite keys OpenID Connect sessions by the raw authorization code, not
// its signature; oidcKey hashes it so that no usable code is ever stored.
func oidcKey(code string) string {
	sum := sha256.Sum256([]byte(code))
	return hex.EncodeToString(sum[:])
}

// CreateOpenIDConnectSession implements openid.OpenIDConnectRequestStorage.
func (s *Store) CreateOpenIDConnectSession(ctx context.Context, code string, r fosite.Requester) error {
	return s.create(ctx, kindOIDC, oidcKey(code), r)
}

// GetOpenIDConnectSession implements openid.OpenIDConnectRequestStorage.
func (s *Store) GetOpenIDConnectSession(ctx context.Context, code string, r fosite.Requester) (fosite.Requester, error) {
	req, _, err := s.get(ctx, kindOIDC, oidcKey(code), r.GetSession())
	if errors.Is(err, fosite.ErrNotFound) {
		return nil, openid.ErrNoSessionFound
	}
	if err != nil {
		return nil, err
	}
	return req, nil
}

// DeleteOpenIDConnectSession implements openid.OpenIDConnectRequestStorage.
func (s *Store) DeleteOpenIDConnectSession(ctx context.Context, code string) error {
	return s.delete(ctx, kindOIDC, oidcKey(code))
}

// ClientAssertionJWTValid and SetClientAssertionJWT satisfy fosite.ClientManager's
// JTI tracking; Latchkey does not accept private_key_jwt client assertions.
func (s *Store) ClientAssertionJWTValid(context.Context, string) error { return nil }

// SetClientAssertionJWT is a no-op; see ClientAssertionJWTValid.
func (s *Store) SetClientAssertionJWT(context.Context, string, time.Time) error { return nil }

var onConflictDoNothing = clause.OnConflict{DoNothing: true}
