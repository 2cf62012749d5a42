// Package magiclink is passwordless login by email: the "magic-link"
// authenticator, the VERIFY_EMAIL required action, and the Service that
// issues, inspects and consumes one-time links.
//
// A link's secret is 256 bits from crypto/rand; only its SHA-256 is stored.
// Opening a link (GET) never consumes it: mail scanners fetch every link.
// The confirm POST consumes it with one atomic statement.
package magiclink

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"latchkey/flows"
)

// Link types.
const (
	TypeLogin       = "login"
	TypeVerifyEmail = "verify-email"
)

// Link is a stored one-time link (without its secret). It mirrors the
// store's row field for field, so the server's adapter converts between
// them with a plain type conversion while this package stays free of
// storage types.
type Link struct {
	ID            string
	TokenHash     string
	Type          string
	UserID        string
	Email         string
	AuthSessionID string
	Execution     string
	ClientID      string
	RedirectURI   string
	Locale        string // the mail's and pages' language, when the issuer named one
	Settings      string // JSON: presentation settings (a minted link's branding)
	CreatedAt     time.Time
	ExpiresAt     time.Time
	OpenedAt      *time.Time
	UsedAt        *time.Time
	RevokedAt     *time.Time
	RevokedReason string // replaced | declined | wrong_number | code_attempts | admin
	CodeHash      string // keyed hash of the code mailed beside the link (CodeHash)
	CodeFailures  int
	Approval      string // how another device may approve the login: "" | approve | number
	MatchNumber   int    // the number the login's own page shows
	MatchChoices  string // the numbers the approving device offers, "17,42,88"
	ApprovedAt    *time.Time
}

// Reasons a link was revoked.
const (
	RevokedReplaced     = "replaced"      // a newer link of the same login
	RevokedDeclined     = "declined"      // "This wasn't me"
	RevokedWrongNumber  = "wrong_number"  // number matching failed
	RevokedCodeAttempts = "code_attempts" // too many wrong codes
	RevokedByAdmin      = "admin"         // the management API or CLI
)

// Approval modes (Link.Approval).
const (
	ApproveByClick  = "approve" // crossDevice without numberMatching
	ApproveByNumber = "number"
)

// Status is pending, used, revoked, approved (by another device, for its
// login's own browser to go on) or expired.
func (l *Link) Status(now time.Time) string {
	switch {
	case l.UsedAt != nil:
		return "used"
	case l.RevokedAt != nil:
		return "revoked"
	case l.ApprovedAt != nil:
		return "approved"
	case !now.Before(l.ExpiresAt):
		return "expired"
	}
	return "pending"
}

// Mail is a message to queue with a link.
type Mail struct{ To, Subject, Text, HTML string }

// ErrNotFound: no link has that token. ErrUnavailable: the link cannot be
// consumed (used, expired, revoked).
var (
	ErrNotFound    = errors.New("magic link not found")
	ErrUnavailable = errors.New("magic link unavailable")
)

// Store keeps links; CreateLink stores the link and queues its mail in one
// transaction, revoking older pending links of the same login (and sees
// the mail delivered once that transaction commits). Every
// change of a link's state is one statement that returns ErrUnavailable
// when the link is no longer in the state it needs (pending; approved for
// ClaimApprovedLink).
type Store interface {
	CreateLink(ctx context.Context, l *Link, m *Mail) error
	LinkByHash(ctx context.Context, hash string) (*Link, error)
	// LinkForLogin is the newest link issued for a login attempt.
	LinkForLogin(ctx context.Context, authSessionID string) (*Link, error)
	// ConsumeLink consumes a pending link that belongs to owner.
	ConsumeLink(ctx context.Context, hash string, owner Owner, now time.Time) (*Link, error)
	ConsumeLinkByID(ctx context.Context, id string, now time.Time) (*Link, error)
	// FailLinkCode counts a wrong code; the max-th revokes the link.
	FailLinkCode(ctx context.Context, id string, max int, now time.Time) (*Link, error)
	ApproveLink(ctx context.Context, id string, now time.Time) (*Link, error)
	ClaimApprovedLink(ctx context.Context, id string, now time.Time) (*Link, error)
	RevokeLink(ctx context.Context, id, reason string, now time.Time) (bool, error)
	MarkLinkOpened(ctx context.Context, id string, now time.Time) error
	// RehearseLink does CreateLink's writes and rolls them back.
	RehearseLink(ctx context.Context, l *Link, m *Mail) error
}

// Owner is the login (and the step in it) a link belongs to, and its type.
type Owner struct {
	AuthSessionID, Execution, Type string
}

// Of is the owner of l.
func (l *Link) Of() Owner {
	return Owner{AuthSessionID: l.AuthSessionID, Execution: l.Execution, Type: l.Type}
}

// Counter counts events in fixed windows (rate limits): one event for each
// key, returning each key's count so far and the end of its window.
type Counter interface {
	HitAll(ctx context.Context, keys []string, window time.Duration, now time.Time) (counts []int, ends []time.Time, err error)
}

// MailRenderer renders a mail template into subject, text and HTML bodies.
type MailRenderer interface {
	Mail(locale, name string, data any) (subject, text, html string, err error)
}

// Service issues and redeems links.
type Service struct {
	Store     Store
	Counter   Counter
	Mail      MailRenderer
	Log       *slog.Logger
	PublicURL string // links are built from this, never from the request
	Realm     string
	RealmName string
	// Brand gives the look of a client's mail, a minted link's settings on
	// top (nil: the realm's name only).
	Brand func(clientID string, settings map[string]string) map[string]string
	// CodeKey keys the hashes of the codes mailed beside links.
	CodeKey []byte
	// Observe, when set, hears of link events (metrics, audit events):
	// sent (reason: link type), opened, confirmed (reason: link, code or
	// approval), rejected (reason), approved, declined, code_rejected;
	// registered (an account created for the address; Link carries only
	// the user and client).
	Observe func(ctx context.Context, e LinkEvent) error
	// Atomic, when set, runs fn in one transaction of the Store: a link's
	// change and the event Observe records of it commit together (one
	// commit, not two, and never one without the other).
	Atomic func(ctx context.Context, fn func(ctx context.Context) error) error
}

// LinkEvent is something that happened to a link; Link is nil when the
// link was not found.
type LinkEvent struct {
	Event, Reason string
	Link          *Link
}

// observe records an event that changed nothing (or whose change is
// already committed); a failure is logged.
func (s *Service) observe(ctx context.Context, event, reason string, l *Link) {
	if s.Observe == nil {
		return
	}
	if err := s.Observe(ctx, LinkEvent{Event: event, Reason: reason, Link: l}); err != nil {
		s.Log.ErrorContext(ctx, "link event not recorded", "event", event, "err", err)
	}
}

// observed makes a change to a link and records its event in one
// transaction; the event is recorded only if change succeeds.
func (s *Service) observed(ctx context.Context, event, reason string, change func(ctx context.Context) (*Link, error)) (*Link, error) {
	var out *Link
	err := s.atomic(ctx, func(ctx context.Context) error {
		l, err := change(ctx)
		if err != nil {
			return err
		}
		out = l
		if s.Observe == nil {
			return nil
		}
		return s.Observe(ctx, LinkEvent{Event: event, Reason: reason, Link: l})
	})
	return out, err
}

func (s *Service) atomic(ctx context.Context, fn func(ctx context.Context) error) error {
	if s.Atomic == nil {
		return fn(ctx)
	}
	return s.Atomic(ctx, fn)
}

// MailData is what the link mail templates see.
type MailData struct {
	RealmName string
	Email     string
	URL       string
	Lifetime  time.Duration // rendered with the templates' duration function
	Type      string
	Code      string // the one-time code beside the link ("" for none)
	Locale    string // the mail's language (<html lang>)
	// Brand is the look of the mail (Name, LogoURL, PrimaryColor, ...), as
	// Service.Brand gives it; missing keys read as "".
	Brand map[string]string
}

// Issue is what a new link is for.
type Issue struct {
	User          *flows.User
	Type          string
	AuthSessionID string
	Execution     string
	ClientID      string
	RedirectURI   string
	TTL           time.Duration
	Send          bool   // queue the mail
	Locale        string // of the mail (empty: the user's, else the realm's default)
	// Settings brand the link's mail and pages (minted links: companyName,
	// companyLogo, backgroundColor, headerImage, primaryColor).
	Settings map[string]string
	// CodeLength, when not 0, mails a code of that many digits beside the
	// link: typed on the login's page, it does what the link does.
	CodeLength int
	// Approval lets a device that opens the link without holding its login
	// approve that login (ApproveByClick, ApproveByNumber); MatchNumber is
	// the number the login's own page shows for ApproveByNumber.
	Approval    string
	MatchNumber int
	// Rehearse does all the work of issuing and rolls the writes back: for
	// an address without an account, so that response times do not tell
	// which addresses have accounts.
	Rehearse bool
}

// linkPath is where links point, below the public URL: the server serves
// the step's entry point (EntryName) there.
func linkPath(realm string) string { return "/realms/" + realm + "/login-actions/" + ID }

// Issue creates a link (and queues its mail when in.Send) and returns its URL.
func (s *Service) Issue(ctx context.Context, in Issue, now time.Time) (string, *Link, error) {
	var secret [32]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return "", nil, fmt.Errorf("link secret: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(secret[:])
	link := &Link{
		TokenHash: HashToken(token), Type: in.Type, UserID: in.User.ID, Email: in.User.Email,
		AuthSessionID: in.AuthSessionID, Execution: in.Execution, ClientID: in.ClientID, RedirectURI: in.RedirectURI, Locale: in.Locale,
		Settings:  encodeSettings(in.Settings),
		CreatedAt: now.UTC(), ExpiresAt: now.Add(in.TTL).UTC(),
		Approval: in.Approval,
	}
	var code string
	if in.CodeLength > 0 {
		var err error
		if code, err = randomDigits(in.CodeLength); err != nil {
			return "", nil, err
		}
		link.CodeHash = s.codeHash(link.TokenHash, code)
	}
	if in.Approval == ApproveByNumber {
		var err error
		link.MatchNumber = in.MatchNumber
		if link.MatchChoices, err = matchChoices(in.MatchNumber); err != nil {
			return "", nil, err
		}
	}
	u := s.PublicURL + linkPath(s.Realm) + "?token=" + url.QueryEscape(token)
	var mail *Mail
	if in.Send {
		locale := in.Locale
		if locale == "" {
			locale = in.User.Locale
		}
		subject, text, html, err := s.Mail.Mail(locale, "mail-"+in.Type, MailData{
			RealmName: s.RealmName, Email: in.User.Email, URL: u, Lifetime: in.TTL, Type: in.Type, Code: code, Locale: locale,
			Brand: s.brand(in.ClientID, in.Settings),
		})
		if err != nil {
			return "", nil, fmt.Errorf("render link mail: %w", err)
		}
		// Always the address stored on the account, never the one typed.
		mail = &Mail{To: in.User.Email, Subject: subject, Text: text, HTML: html}
	}
	if in.Rehearse {
		if err := s.Store.RehearseLink(ctx, link, mail); err != nil {
			return "", nil, err
		}
		s.Log.InfoContext(ctx, "magic link requested for unknown address", "event", "link_requested", "sent", false)
		return "", nil, nil
	}
	create := func(ctx context.Context) (*Link, error) { return link, s.Store.CreateLink(ctx, link, mail) }
	var err error
	if in.Send {
		_, err = s.observed(ctx, "sent", in.Type, create)
	} else {
		_, err = create(ctx)
	}
	if err != nil {
		return "", nil, err
	}
	s.Log.InfoContext(ctx, "magic link issued", "event", "link_requested", "link_id", link.ID, "type", in.Type,
		"user_id", in.User.ID, "client_id", in.ClientID, "expires_at", link.ExpiresAt, "mail_queued", in.Send)
	return u, link, nil
}

func (s *Service) brand(clientID string, settings map[string]string) map[string]string {
	if s.Brand == nil {
		return map[string]string{"Name": s.RealmName}
	}
	return s.Brand(clientID, settings)
}

func encodeSettings(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// DecodeSettings reads a link's settings.
func (l *Link) DecodeSettings() map[string]string {
	var m map[string]string
	if l.Settings != "" {
		_ = json.Unmarshal([]byte(l.Settings), &m)
	}
	return m
}

// HashToken is how a link secret is stored and looked up.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Inspect returns the link for a token without consuming it (the GET page).
func (s *Service) Inspect(ctx context.Context, token string) (*Link, error) {
	if token == "" || len(token) > 128 {
		return nil, ErrNotFound
	}
	return s.Store.LinkByHash(ctx, HashToken(token))
}

// Opened records that the link's page was shown (a person, or a scanner).
func (s *Service) Opened(ctx context.Context, l *Link, userAgent string, now time.Time) {
	first := l.OpenedAt == nil
	if first {
		_, err := s.observed(ctx, "opened", "", func(ctx context.Context) (*Link, error) {
			return l, s.Store.MarkLinkOpened(ctx, l.ID, now)
		})
		if err != nil {
			s.Log.WarnContext(ctx, "mark link opened", "link_id", l.ID, "err", err)
		}
	} else {
		s.observe(ctx, "opened", "", l)
	}
	s.Log.InfoContext(ctx, "magic link opened", "event", "link_opened", "link_id", l.ID, "status", l.Status(now),
		"first_open", first, "user_agent", userAgent)
}

// Consume redeems a pending link that belongs to owner: of concurrent
// attempts exactly one succeeds. ErrUnavailable: no such link for owner.
func (s *Service) Consume(ctx context.Context, token string, owner Owner, now time.Time) (*Link, error) {
	l, err := s.observed(ctx, "confirmed", "link", func(ctx context.Context) (*Link, error) {
		return s.Store.ConsumeLink(ctx, HashToken(token), owner, now)
	})
	if err != nil {
		return nil, err
	}
	s.Log.InfoContext(ctx, "magic link confirmed", "event", "link_confirmed", "link_id", l.ID, "user_id", l.UserID, "type", l.Type)
	return l, nil
}

// Rejected logs a refused link with the reason.
func (s *Service) Rejected(ctx context.Context, l *Link, reason string) {
	id := ""
	if l != nil {
		id = l.ID
	}
	s.observe(ctx, "rejected", reason, l)
	s.Log.InfoContext(ctx, "magic link rejected", "event", "link_rejected", "link_id", id, "reason", reason)
}

// statusOf is a link's status, "unknown" for no link.
func statusOf(l *Link, now time.Time) string {
	if l == nil {
		return "unknown"
	}
	return l.Status(now)
}

// Explain says, for a person, why a link cannot be used.
func Explain(l *Link, now time.Time) flows.Msg {
	if l == nil {
		return flows.M("link.unknown")
	}
	switch l.Status(now) {
	case "used":
		return flows.M("link.used")
	case "revoked":
		switch l.RevokedReason {
		case RevokedDeclined:
			return flows.M("link.declined")
		case RevokedWrongNumber:
			return flows.M("link.wrongNumber")
		case RevokedCodeAttempts:
			return flows.M("link.codeAttempts")
		}
		return flows.M("link.revoked")
	case "approved":
		return flows.M("link.approved")
	case "expired":
		return flows.M("link.expired", "Ago", now.Sub(l.ExpiresAt))
	}
	return flows.Msg{}
}
