// Package admin is the management side of magic links: minting links for
// apps to deliver through their own channels, listing and revoking them. The
// REST API (api.go) and the command line both call Service.
package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"latchkey/authenticators/magiclink"
	"latchkey/flows"
	"latchkey/server/config"
	"latchkey/server/store"
	"latchkey/server/web"
)

// MaxTTL is the longest a minted link may live.
const MaxTTL = 30 * 24 * time.Hour

// Store is what the service needs from storage: the user directory and
// the links' rows.
type Store interface {
	flows.Users
	MagicLinkByID(ctx context.Context, id string) (*store.MagicLink, error)
	ListMagicLinks(ctx context.Context, f store.LinkFilter, now time.Time) ([]store.MagicLink, int64, error)
	RevokeMagicLink(ctx context.Context, id, reason string, now time.Time) (bool, error)
}

// Flows is what the service reads of the realm's flows: whether the
// browser flow has a magic-link step, and with which lifetime.
type Flows interface {
	FlowFor(purpose string) (string, error)
	FindAuthenticator(flow, authenticator string) (id string, cfg flows.Config, ok bool)
}

// Service mints, lists and revokes links.
type Service struct {
	Cfg    *config.Config
	Store  Store
	Links  *magiclink.Service
	Engine Flows
}

// CreateRequest is POST /realms/{realm}/magic-links.
type CreateRequest struct {
	Email         string   `json:"email,omitempty"`
	UserID        string   `json:"userId,omitempty"`
	ClientID      string   `json:"clientId"`
	RedirectURI   string   `json:"redirectUri"`
	TTL           string   `json:"ttl,omitempty"`
	Send          bool     `json:"send"`
	Type          string   `json:"type,omitempty"`
	ForceCreate   bool     `json:"forceCreate,omitempty"`
	UpdateProfile bool     `json:"updateProfile,omitempty"`
	Profile       *Profile `json:"profile,omitempty"`
	// Locale is the language of the mail and of the link's pages (one of
	// i18n.supportedLocales); empty: the user's, else the realm's default.
	Locale string `json:"locale,omitempty"`
	// Settings brand the link's page and mail (Leaf's field names).
	Settings *LinkSettings `json:"settings,omitempty"`
}

// LinkSettings brand one link: colours as CSS hex, images as https URLs.
type LinkSettings struct {
	CompanyName     string `json:"companyName,omitempty"`
	CompanyLogo     string `json:"companyLogo,omitempty"`
	BackgroundColor string `json:"backgroundColor,omitempty"`
	HeaderImage     string `json:"headerImage,omitempty"`
	PrimaryColor    string `json:"primaryColor,omitempty"`
}

// check validates the settings and returns them as the link stores them.
func (ls *LinkSettings) check() (map[string]string, error) {
	if ls == nil {
		return nil, nil
	}
	if n := ls.CompanyName; utf8.RuneCountInString(n) > 100 || strings.ContainsAny(n, "\r\n\x00") {
		return nil, bad("settings.companyName", "must be at most 100 characters on one line")
	}
	for field, v := range map[string]string{"settings.backgroundColor": ls.BackgroundColor, "settings.primaryColor": ls.PrimaryColor} {
		if v != "" && !config.IsHexColor(v) {
			return nil, bad(field, "must be a CSS hex colour like #2d5bd7")
		}
	}
	for field, v := range map[string]string{"settings.companyLogo": ls.CompanyLogo, "settings.headerImage": ls.HeaderImage} {
		if v == "" {
			continue
		}
		if !config.IsHTTPSURL(v) || len(v) > 1000 {
			return nil, bad(field, "must be an https URL")
		}
	}
	out := map[string]string{}
	for k, v := range map[string]string{web.SettingCompanyName: ls.CompanyName, web.SettingCompanyLogo: ls.CompanyLogo,
		web.SettingBackgroundColor: ls.BackgroundColor, web.SettingHeaderImage: ls.HeaderImage, web.SettingPrimaryColor: ls.PrimaryColor} {
		if v != "" {
			out[k] = v
		}
	}
	return out, nil
}

// Profile is set on a user the request creates.
type Profile struct {
	FirstName string `json:"firstName,omitempty"`
	LastName  string `json:"lastName,omitempty"`
}

// Created is the answer to a create.
type Created struct {
	ID          string    `json:"id"`
	URL         string    `json:"url"`
	UserID      string    `json:"userId"`
	Type        string    `json:"type"`
	RedirectURI string    `json:"redirectUri"`
	ExpiresAt   time.Time `json:"expiresAt"`
	Sent        bool      `json:"sent"`
}

// Link is a link as the API shows it: status and times, never the secret.
type Link struct {
	ID          string     `json:"id"`
	Type        string     `json:"type"`
	Status      string     `json:"status"`
	UserID      string     `json:"userId"`
	Email       string     `json:"email"`
	ClientID    string     `json:"clientId,omitempty"`
	RedirectURI string     `json:"redirectUri,omitempty"`
	Minted      bool       `json:"minted"` // minted through the API, not by a login page
	CreatedAt   time.Time  `json:"createdAt"`
	ExpiresAt   time.Time  `json:"expiresAt"`
	OpenedAt    *time.Time `json:"openedAt,omitempty"`
	UsedAt      *time.Time `json:"usedAt,omitempty"`
	RevokedAt   *time.Time `json:"revokedAt,omitempty"`
	// RevokedReason says why: replaced, declined ("This wasn't me"),
	// wrong_number, code_attempts or admin.
	RevokedReason string `json:"revokedReason,omitempty"`
	// ApprovedAt is when another device approved the link's login.
	ApprovedAt *time.Time `json:"approvedAt,omitempty"`
}

// FieldError is bad input: which field, and what is wrong with it.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func bad(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrNotFound is returned for an unknown link id.
var ErrNotFound = errors.New("magic link not found")

// ErrNotPending is returned when revoking a link that is no longer pending.
var ErrNotPending = errors.New("magic link is not pending")

// DefaultTTL is the realm's magic-link lifetime (the browser flow's
// magic-link step), or 15 minutes.
func (s *Service) DefaultTTL() time.Duration {
	flow, err := s.Engine.FlowFor("browser")
	if err == nil {
		if _, cfg, ok := s.Engine.FindAuthenticator(flow, magiclink.ID); ok && magiclink.LinkTTL(cfg) > 0 {
			return magiclink.LinkTTL(cfg)
		}
	}
	return 15 * time.Minute
}

// Create validates the request completely before writing anything.
func (s *Service) Create(ctx context.Context, req CreateRequest, now time.Time) (*Created, error) {
	if (req.Email == "") == (req.UserID == "") {
		return nil, bad("email", "give exactly one of email or userId")
	}
	client, ok := s.Cfg.Client(req.ClientID)
	if req.ClientID == "" {
		return nil, bad("clientId", "is required")
	}
	if !ok {
		return nil, bad("clientId", "unknown client %q", req.ClientID)
	}
	if req.RedirectURI == "" {
		return nil, bad("redirectUri", "is required")
	}
	if !slices.Contains(client.RedirectURIs, req.RedirectURI) {
		return nil, bad("redirectUri", "is not registered for client %q (registered: %s)", req.ClientID, strings.Join(client.RedirectURIs, ", "))
	}
	if req.Locale != "" {
		l, ok := s.Cfg.SupportedLocale(req.Locale)
		if !ok {
			return nil, bad("locale", "must be one of %s", strings.Join(s.Cfg.I18n.SupportedLocales, ", "))
		}
		req.Locale = l
	}
	settings, err := req.Settings.check()
	if err != nil {
		return nil, err
	}
	typ := req.Type
	if typ == "" {
		typ = magiclink.TypeLogin
	}
	if typ != magiclink.TypeLogin && typ != magiclink.TypeVerifyEmail {
		return nil, bad("type", "must be login or verify-email")
	}
	ttl := s.DefaultTTL()
	if req.TTL != "" {
		d, err := config.ParseDuration(req.TTL)
		if err != nil {
			return nil, bad("ttl", "must be a duration like 15m, 2h or 3d")
		}
		ttl = d
	}
	if ttl < time.Minute || ttl > MaxTTL {
		return nil, bad("ttl", "must be between 1m and 30d")
	}
	if typ == magiclink.TypeLogin {
		if flow, err := s.Engine.FlowFor("browser"); err != nil {
			return nil, err
		} else if _, _, ok := s.Engine.FindAuthenticator(flow, magiclink.ID); !ok {
			return nil, bad("type", "the realm's browser flow has no magic-link step, so login links cannot be used")
		}
	}
	if req.Profile != nil {
		for field, v := range map[string]string{"profile.firstName": req.Profile.FirstName, "profile.lastName": req.Profile.LastName} {
			if utf8.RuneCountInString(v) > 100 || strings.ContainsAny(v, "\r\n\x00") {
				return nil, bad(field, "must be at most 100 characters on one line")
			}
		}
	}
	u, err := s.user(ctx, req, now)
	if err != nil {
		return nil, err
	}
	if u.Disabled {
		return nil, bad(fieldOf(req), "the user is disabled")
	}
	url, l, err := s.Links.Issue(ctx, magiclink.Issue{
		User: u, Type: typ, ClientID: req.ClientID, RedirectURI: req.RedirectURI, TTL: ttl, Send: req.Send, Locale: req.Locale,
		Settings: settings,
	}, now)
	if err != nil {
		return nil, err
	}
	return &Created{ID: l.ID, URL: url, UserID: u.ID, Type: typ, RedirectURI: req.RedirectURI, ExpiresAt: l.ExpiresAt, Sent: req.Send}, nil
}

func fieldOf(req CreateRequest) string {
	if req.UserID != "" {
		return "userId"
	}
	return "email"
}

// user finds (or, with forceCreate, creates) the link's user.
func (s *Service) user(ctx context.Context, req CreateRequest, now time.Time) (*flows.User, error) {
	if req.UserID != "" {
		u, err := s.Store.UserByID(ctx, req.UserID)
		if errors.Is(err, flows.ErrUserNotFound) {
			return nil, bad("userId", "no user has this id")
		}
		if err == nil && req.UpdateProfile && !u.HasRequiredAction("UPDATE_PROFILE") {
			u.AddRequiredAction("UPDATE_PROFILE")
			err = s.Store.UpdateUser(ctx, u)
		}
		return u, err
	}
	email, err := flows.ParseEmail(req.Email)
	if err != nil {
		return nil, bad("email", "is not a valid email address")
	}
	u, err := s.Store.UserByEmail(ctx, email)
	switch {
	case errors.Is(err, flows.ErrUserNotFound):
		if !req.ForceCreate {
			return nil, bad("email", "no user has this email (set forceCreate to create one)")
		}
		u = &flows.User{Email: email, CreatedAt: now}
		if req.Profile != nil {
			u.FirstName, u.LastName = strings.TrimSpace(req.Profile.FirstName), strings.TrimSpace(req.Profile.LastName)
		}
		if req.UpdateProfile {
			u.AddRequiredAction("UPDATE_PROFILE")
		}
		if err := s.Store.CreateUser(ctx, u); errors.Is(err, flows.ErrUserExists) {
			return s.Store.UserByEmail(ctx, email)
		} else if err != nil {
			return nil, err
		}
		return u, nil
	case err != nil:
		return nil, err
	}
	if req.UpdateProfile && !u.HasRequiredAction("UPDATE_PROFILE") {
		u.AddRequiredAction("UPDATE_PROFILE")
		if err := s.Store.UpdateUser(ctx, u); err != nil {
			return nil, err
		}
	}
	return u, nil
}

func view(l *store.MagicLink, now time.Time) Link {
	return Link{
		ID: l.ID, Type: l.Type, Status: l.Status(now), UserID: l.UserID, Email: l.Email, ClientID: l.ClientID,
		RedirectURI: l.RedirectURI, Minted: l.AuthSessionID == "", CreatedAt: l.CreatedAt, ExpiresAt: l.ExpiresAt,
		OpenedAt: l.OpenedAt, UsedAt: l.UsedAt, RevokedAt: l.RevokedAt, RevokedReason: l.RevokedReason, ApprovedAt: l.ApprovedAt,
	}
}

// Get returns one link.
func (s *Service) Get(ctx context.Context, id string, now time.Time) (*Link, error) {
	l, err := s.Store.MagicLinkByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	v := view(l, now)
	return &v, nil
}

// ListRequest filters and pages the list.
type ListRequest struct {
	UserID, Email, Status string
	Limit, Offset         int
}

// ListResult is one page.
type ListResult struct {
	Items      []Link `json:"items"`
	Total      int64  `json:"total"`
	NextOffset *int   `json:"nextOffset"`
}

// List returns links, newest first.
func (s *Service) List(ctx context.Context, req ListRequest, now time.Time) (*ListResult, error) {
	switch req.Status {
	case "", "pending", "used", "expired", "revoked", "approved":
	default:
		return nil, bad("status", "must be pending, used, expired, revoked or approved")
	}
	if req.Limit == 0 {
		req.Limit = 50
	}
	if req.Limit < 1 || req.Limit > 200 {
		return nil, bad("limit", "must be between 1 and 200")
	}
	if req.Offset < 0 {
		return nil, bad("offset", "must not be negative")
	}
	if req.Email != "" {
		e, err := flows.ParseEmail(req.Email)
		if err != nil {
			return nil, bad("email", "is not a valid email address")
		}
		req.Email = e
	}
	rows, total, err := s.Store.ListMagicLinks(ctx, store.LinkFilter{UserID: req.UserID, Email: req.Email, Status: req.Status, Limit: req.Limit, Offset: req.Offset}, now)
	if err != nil {
		return nil, err
	}
	res := &ListResult{Items: make([]Link, 0, len(rows)), Total: total}
	for i := range rows {
		res.Items = append(res.Items, view(&rows[i], now))
	}
	if next := req.Offset + len(rows); int64(next) < total {
		res.NextOffset = &next
	}
	return res, nil
}

// Revoke revokes a pending link.
func (s *Service) Revoke(ctx context.Context, id string, now time.Time) error {
	if _, err := s.Store.MagicLinkByID(ctx, id); errors.Is(err, store.ErrNotFound) {
		return ErrNotFound
	} else if err != nil {
		return err
	}
	ok, err := s.Store.RevokeMagicLink(ctx, id, magiclink.RevokedByAdmin, now)
	if err != nil {
		return err
	}
	if !ok {
		return ErrNotPending
	}
	return nil
}
