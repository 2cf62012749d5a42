// Package server wires Latchkey together: store, OIDC provider, flow engine
// with its authenticators, hosted login, mail delivery and housekeeping.
package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/securecookie"
	"golang.org/x/crypto/hkdf"

	"latchkey/authenticators/conditions"
	"latchkey/authenticators/cookie"
	"latchkey/authenticators/deny"
	"latchkey/authenticators/magiclink"
	"latchkey/authenticators/otp"
	"latchkey/authenticators/password"
	"latchkey/authenticators/profile"
	"latchkey/flows"
	"latchkey/server/account"
	"latchkey/server/admin"
	"latchkey/server/clientip"
	"latchkey/server/config"
	"latchkey/server/events"
	"latchkey/server/httplimit"
	"latchkey/server/i18n"
	"latchkey/server/login"
	"latchkey/server/mail"
	"latchkey/server/observe"
	"latchkey/server/oidc"
	"latchkey/server/ratelimit"
	"latchkey/server/store"
	"latchkey/server/web"
)

// Deps are what the registered steps may need from the server. Zero
// Deps build the registry for its schemas and templates only (validating
// realm.yaml).
type Deps struct {
	Counter Counter
	Links   *magiclink.Service
	Log     *slog.Logger
}

// Counter counts events in fixed windows: the rate limits of the login and
// its steps. Each step declares the method it uses in its own Counter
// interface (HitAll where a request checks several limits at once).
type Counter interface {
	Hit(ctx context.Context, key string, window time.Duration, now time.Time) (int, time.Time, error)
	HitAll(ctx context.Context, keys []string, window time.Duration, now time.Time) (counts []int, ends []time.Time, err error)
}

// Registry is every authenticator Latchkey knows, by id. Adding one is a
// package and a line here.
func Registry(d Deps) flows.Registry {
	return flows.NewRegistry(
		cookie.Factory{},
		password.Factory{Counter: d.Counter},
		conditions.UserConfigured{},
		deny.Factory{},
		magiclink.Factory{Service: d.Links},
		otp.Factory{Counter: d.Counter, Log: d.Log},
	)
}

// RequiredActions is every required action Latchkey knows, in the order they
// run: UPDATE_PROFILE, then those the registry's steps bring.
func RequiredActions(reg flows.Registry) []flows.RequiredAction {
	return reg.RequiredActions(profile.Action{})
}

// StepTemplates are the engine's messages and the pages, mails and
// messages the registry's steps and their required actions bring.
func StepTemplates(reg flows.Registry) []fs.FS {
	out := []fs.FS{flows.Messages()}
	for _, id := range slices.Sorted(maps.Keys(reg)) {
		if t, ok := reg[id].(flows.Templated); ok {
			out = append(out, t.Templates())
		}
	}
	for _, a := range RequiredActions(flows.Registry{}) {
		if t, ok := a.(flows.Templated); ok {
			out = append(out, t.Templates())
		}
	}
	return out
}

// rateCounter is where rate limits count. One SQLite node counts in memory
// (a database write per request would be the login's most contended
// statement, for nothing another node could read); several nodes on
// PostgreSQL share the database's counters so a limit holds across them.
func rateCounter(st *store.Store) Counter {
	if st.Driver() == "sqlite" {
		return ratelimit.NewMemory()
	}
	return st
}

// LoadConfig reads and validates realm.yaml against the registry's schemas.
// uses limits it to the top-level sections a command reads (none: all).
func LoadConfig(path string, uses ...string) (*config.Config, error) {
	reg := Registry(Deps{})
	schema := config.FromRegistry(reg, RequiredActions(reg))
	schema.Uses = uses
	cfg, err := config.Load(path, schema)
	if err != nil {
		return nil, err
	}
	if uses != nil && !slices.Contains(uses, "branding") {
		return cfg, nil
	}
	// The theme is part of the configuration: check rejects what serve would.
	if _, err := web.NewRenderer(renderOptions(cfg), slog.New(slog.DiscardHandler), StepTemplates(reg)...); err != nil {
		key := "branding.themeDir"
		if errors.Is(err, i18n.ErrLocale) {
			key = "i18n.supportedLocales"
		}
		return nil, config.Errors{fmt.Sprintf("%s: %s: %v", path, key, err)}
	}
	return cfg, nil
}

func renderOptions(cfg *config.Config) web.Options {
	return web.Options{ThemeDir: cfg.Branding.ThemeDir, DefaultLocale: cfg.I18n.DefaultLocale, SupportedLocales: cfg.I18n.SupportedLocales}
}

// Server is one running realm.
type Server struct {
	Store   *store.Store
	Handler http.Handler
	// Management serves /metrics and /health/{live,ready}, for the
	// management listener (server.managementListen).
	Management http.Handler
	Metrics    *observe.Metrics
	sender     *mail.Sender
	// counters are a single node's in-memory rate counters (nil with
	// PostgreSQL, whose counters live in the database); saved every
	// saveCountersEvery and at shutdown, so limits survive a restart.
	counters *ratelimit.Memory
	log      *slog.Logger

	// What a reload keeps: keys derived from the master secret, the
	// outbox's sealer, the rate counters. current is what it swaps.
	derive  deriveFunc
	sealer  *mail.Sealer
	counter Counter
	current atomic.Pointer[realmState]
}

const saveCountersEvery = 5 * time.Second

// loadCounters restores a single node's saved rate counters.
func loadCounters(ctx context.Context, st *store.Store, m *ratelimit.Memory) error {
	now := time.Now()
	rows, err := st.LiveRateCounters(ctx, now)
	if err != nil {
		return err
	}
	entries := make([]ratelimit.Entry, len(rows))
	for i, r := range rows {
		entries[i] = ratelimit.Entry{Key: r.Key, Start: r.WindowStart, End: r.ExpiresAt, Count: r.Count}
	}
	m.Import(entries, now)
	return nil
}

// saveCounters writes the rate counters hit since the last save.
func (s *Server) saveCounters(ctx context.Context) {
	if s.counters == nil {
		return
	}
	entries := s.counters.Export()
	rows := make([]store.RateCounter, len(entries))
	for i, e := range entries {
		rows[i] = store.RateCounter{Key: e.Key, WindowStart: e.Start.UTC(), Count: e.Count, ExpiresAt: e.End.UTC()}
	}
	if err := s.Store.SaveRateCounters(ctx, rows); err != nil {
		s.log.Warn("save rate counters", "counters", len(rows), "err", err)
	}
}

// OpenStore opens and migrates the realm's database: all that commands
// which only read or change rows need.
func OpenStore(cfg *config.Config) (*store.Store, error) { return openStore(cfg, nil) }

func openStore(cfg *config.Config, log *slog.Logger) (*store.Store, error) {
	return store.Open(cfg.Database.Driver, cfg.Database.DSN, store.Options{
		MaxOpenConns: cfg.Database.MaxOpenConns, MaxIdleConns: cfg.Database.MaxIdleConns, ConnMaxLifetime: cfg.Database.ConnMaxLifetime.D(),
		CheckpointEvery: cfg.Database.CheckpointInterval.D(), Log: log,
	})
}

// UserDirectory is the users API's service over st (the command line's
// users verbs).
func UserDirectory(cfg *config.Config, st *store.Store) *admin.Users {
	return &admin.Users{Cfg: cfg, Store: st, AccountClient: account.ClientID, HashPassword: password.Hash, Actions: actionIDs(Registry(Deps{}))}
}

// RotateKey adds a new signing key to the realm's database.
func RotateKey(ctx context.Context, cfg *config.Config, st *store.Store) (string, error) {
	return signingKeys(cfg, st).Rotate(ctx)
}

func signingKeys(cfg *config.Config, st *store.Store) *oidc.KeySet {
	publishFor := max(cfg.Tokens.IDTokenTTL.D(), cfg.Tokens.AccessTokenTTL.D()) + time.Hour
	return oidc.NewKeySet(st, cfg.Tokens.SigningAlgorithm, publishFor, cfg.Tokens.KeyCacheTTL.D())
}

// New opens the database, migrates it and builds every component.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Server, error) {
	st, err := openStore(cfg, log)
	if err != nil {
		return nil, err
	}
	s, err := build(ctx, cfg, st, log)
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	return s, nil
}

// deriveFunc returns n bytes of key material for one purpose.
type deriveFunc func(purpose string, n int) []byte

// keyDeriver derives every key of the realm (cookies, HMAC, sealing) from
// one master secret with HKDF: server.cookieSecret, or one generated on
// first start and kept in the database (a single node's default).
func keyDeriver(ctx context.Context, cfg *config.Config, st *store.Store) (deriveFunc, error) {
	master := cfg.Server.CookieSecret
	if master == "" {
		var err error
		master, err = st.SettingOrCreate(ctx, "master_secret", func() (string, error) {
			b := make([]byte, 48)
			_, err := rand.Read(b)
			return base64.RawStdEncoding.EncodeToString(b), err
		})
		if err != nil {
			return nil, err
		}
	}
	return func(purpose string, n int) []byte {
		out := make([]byte, n)
		if _, err := io.ReadFull(hkdf.New(sha256.New, []byte(master), []byte("latchkey/"+cfg.Realm), []byte(purpose)), out); err != nil {
			panic(err) // hkdf cannot fail for these sizes
		}
		return out
	}, nil
}

// newSender builds the outbox sender: SMTP, or the development mailbox.
func newSender(cfg *config.Config, st *store.Store, sealer *mail.Sealer, secret func(url string) (string, bool), log *slog.Logger) (*mail.Sender, error) {
	dev := cfg.SMTP.DevMailbox
	var transport mail.Transport = mail.DevSink{Log: log, PageURL: cfg.Issuer() + "/dev/mail"}
	if !dev {
		var err error
		if transport, err = mail.NewSMTP(cfg.SMTP); err != nil {
			return nil, err
		}
	}
	hostname, _ := os.Hostname()
	return (&mail.Sender{Outbox: st, Transport: transport, Logout: mail.BackchannelLogout{Client: &http.Client{}},
		Webhooks: mail.Webhooks{Client: &http.Client{}, Secret: secret}, Owner: hostname + "-" + randomID(), Log: log, Sealer: sealer, Keep: dev,
		Poll: cfg.Outbox.PollInterval.D(), Lease: cfg.Outbox.Lease.D(), MaxTries: cfg.Outbox.MaxAttempts, Parallel: cfg.Outbox.Parallel}).Init(), nil
}

// oidcRoutes registers the provider's endpoints (Keycloak's paths).
func oidcRoutes(mux *http.ServeMux, prefix string, provider *oidc.Provider) {
	oc := prefix + "/protocol/openid-connect"
	mux.HandleFunc("GET "+prefix+"/.well-known/openid-configuration", provider.Discovery)
	mux.HandleFunc("POST "+oc+"/token", provider.Token)
	mux.HandleFunc("GET "+oc+"/userinfo", provider.Userinfo)
	mux.HandleFunc("POST "+oc+"/userinfo", provider.Userinfo)
	mux.HandleFunc("GET "+oc+"/certs", provider.Certs)
	mux.HandleFunc("POST "+oc+"/revoke", provider.Revoke)
	mux.HandleFunc("POST "+oc+"/token/introspect", provider.Introspect)
}

// health answers /healthz: the database is reachable.
func health(st *store.Store) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := st.Ping(r.Context()); err != nil {
			http.Error(w, "database unavailable", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	}
}

// readiness is what /health/ready checks: the database answers, a
// signing key is loaded, the mail sender runs.
func readiness(st *store.Store, keys func() *oidc.KeySet, sender *mail.Sender) []observe.Check {
	return []observe.Check{
		{Name: "database", Run: st.Ping},
		{Name: "signing keys", Run: func(ctx context.Context) error { _, err := keys().Signing(ctx); return err }},
		{Name: "mail sender", Run: func(context.Context) error {
			if !sender.Running() {
				return errors.New("not running")
			}
			return nil
		}},
	}
}

func build(ctx context.Context, cfg *config.Config, st *store.Store, log *slog.Logger) (*Server, error) {
	derive, err := keyDeriver(ctx, cfg, st)
	if err != nil {
		return nil, err
	}
	sealer, err := mail.NewSealer(derive("outbox-seal", 32))
	if err != nil {
		return nil, err
	}
	counter := rateCounter(st)
	mem, _ := counter.(*ratelimit.Memory)
	if mem != nil {
		if err := loadCounters(ctx, st, mem); err != nil {
			return nil, err
		}
	}
	metrics := observe.New()
	for role, db := range st.Pools() {
		if err := metrics.DBStats(db, role); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	s := &Server{Store: st, Metrics: metrics, counters: mem, log: log, derive: derive, sealer: sealer, counter: counter}
	if s.sender, err = newSender(cfg, st, sealer, s.webhookSecret, log); err != nil {
		return nil, err
	}
	s.sender.Failed = metrics.DeliveryFailed
	if err := metrics.Outbox(st.OutboxStats); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	rs, err := s.realm(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s.current.Store(rs)
	s.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.current.Load().handler.ServeHTTP(w, r) })
	management := http.NewServeMux()
	management.Handle("GET /metrics", metrics.Handler())
	health := observe.Health(log, readiness(st, s.Keys, s.sender)...)
	management.Handle("/health", health)
	management.Handle("/health/", health)
	s.Management = management
	return s, nil
}

// realmState is what realm.yaml configures of a running server: a reload
// builds a new one and swaps it in whole.
type realmState struct {
	cfg     *config.Config
	handler http.Handler
	keys    *oidc.KeySet
	admin   *admin.Service
}

// Config is the configuration the server runs now (after any reload).
func (s *Server) Config() *config.Config { return s.current.Load().cfg }

// Keys are the running realm's signing keys.
func (s *Server) Keys() *oidc.KeySet { return s.current.Load().keys }

// Admin is the running realm's magic-link management service.
func (s *Server) Admin() *admin.Service { return s.current.Load().admin }

// webhookSecret finds a webhook's secret by its URL in the running
// configuration (a reload may have added, changed or removed it).
func (s *Server) webhookSecret(url string) (string, bool) {
	for _, w := range s.Config().Events.Webhooks {
		if w.URL == url {
			return w.Secret, true
		}
	}
	return "", false
}

// realm builds everything cfg configures over the server's database,
// keys, outbox, rate counters and metrics.
func (s *Server) realm(ctx context.Context, cfg *config.Config) (*realmState, error) {
	st, log, derive, sealer, counter, metrics, sender := s.Store, s.log, s.derive, s.sealer, s.counter, s.Metrics, s.sender
	if _, taken := cfg.Client(account.ClientID); !taken {
		cfg.Clients = append(cfg.Clients, account.Client(cfg.Issuer()))
	}
	keys := signingKeys(cfg, st)
	if err := keys.Ensure(ctx); err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	provider := oidc.New(cfg, st, keys, derive("fosite-hmac", 32), derive("refresh-token-jwt", 32), log)
	renderer, err := web.NewRenderer(renderOptions(cfg), log, StepTemplates(Registry(Deps{}))...)
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	links := &magiclink.Service{
		Store: LinkStore{S: st, Sealer: sealer, Sender: sender}, Counter: counter, Mail: renderer, Log: log,
		PublicURL: cfg.Server.PublicURL, Realm: cfg.Realm, RealmName: cfg.DisplayName(),
		Brand:   login.Site{Cfg: cfg, Web: renderer, Log: log}.MailBrand,
		CodeKey: derive("link-code", 32),
	}
	rec := events.New(cfg, st, sealer.Seal, sender.Wake, log)
	links.Observe = func(ctx context.Context, e magiclink.LinkEvent) error {
		if err := rec.Record(ctx, linkEvent(e)); err != nil {
			return err // the change is rolled back: nothing to count
		}
		metrics.LinkEvent(e.Event, e.Reason)
		return nil
	}
	links.Atomic = st.InTx
	provider.Events = rec
	reg := Registry(Deps{Counter: counter, Links: links, Log: log})
	engine, err := flows.NewEngine(cfg.FlowDefs, cfg.Bindings, reg, RequiredActions(reg))
	if err != nil {
		return nil, fmt.Errorf("flows: %w", err)
	}
	if err := seedUsers(ctx, st, cfg.Users, log); err != nil {
		return nil, err
	}
	prefix := "/realms/" + cfg.Realm
	ips, err := clientip.New(cfg.Server.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("server.trustedProxies: %w", err)
	}
	secure := strings.HasPrefix(cfg.Server.PublicURL, "https://")
	ssoTTL := int(cfg.Sessions.SSOSessionTTL.D().Seconds())
	site := login.Site{Cfg: cfg, Web: renderer, Log: log}
	cookies := login.NewCookies(derive("cookie-hash", 64), derive("cookie-block", 32), prefix+"/", secure, ssoTTL)
	mux := http.NewServeMux()
	oidcRoutes(mux, prefix, provider)
	mux.Handle("GET "+prefix+"/static/", http.StripPrefix(prefix+"/static/", renderer.Static(cfg.Branding.ThemeDir)))
	mux.HandleFunc("GET /healthz", health(st))
	(&login.Handler{Site: site, Store: st, Engine: engine, OIDC: provider, Cookies: cookies, Entries: reg.EntryPoints(),
		ClientIP: ips, Counter: counter, Credentials: CredentialStore{S: st, Sealer: sealer}, Logins: metrics, Events: rec}).Routes(mux)
	logout := &login.Logout{Site: site, Store: st, OIDC: provider, Cookies: cookies, Sealer: sealer, Wake: sender.Wake, Events: rec}
	logout.Routes(mux)
	(&login.KeycloakJS{Cfg: cfg, Cookies: cookies}).Routes(mux)
	if cfg.SMTP.DevMailbox {
		(&login.DevMailbox{Site: site, Store: st, Sealer: sealer}).Routes(mux)
	}
	adm := &admin.Service{Cfg: cfg, Store: st, Links: links, Engine: engine}
	api := admin.NewAPI(adm, cfg.APIKeys, log)
	api.Tokens = provider
	api.Users = UserDirectory(cfg, st)
	api.Users.Links = adm
	api.Users.Ender = logout
	api.Events, api.Audit = st, rec
	api.Routes(mux, cfg.Realm)
	(&account.Handler{
		Issuer: cfg.Issuer(), Realm: cfg.Realm, Name: cfg.DisplayName(), Brand: site.Brand(account.ClientID), Web: renderer, Log: log, Provider: mux, Secure: secure,
		Codec: securecookie.New(derive("account-hash", 64), derive("account-block", 32)),
	}).Routes(mux)
	oc := prefix + "/protocol/openid-connect"
	handler := observe.Requests(log, ips.Of, metrics.Instrument(withNotFoundPage(site.NotFound, withCORS(cfg, []string{oc + "/token", oc + "/userinfo", oc + "/certs", oc + "/revoke", oc + "/token/introspect",
		oc + "/logout", prefix + "/account", prefix + "/.well-known/openid-configuration"}, mux))))
	return &realmState{cfg: cfg, handler: handler, keys: keys, admin: adm}, nil
}

// restartOnly are the settings a reload cannot change, by name; reading
// one gives the running value.
var restartOnly = []struct {
	name string
	get  func(c *config.Config) any
	keep func(next, running *config.Config)
}{
	{"realm", func(c *config.Config) any { return c.Realm }, func(n, r *config.Config) { n.Realm = r.Realm }},
	{"server.listen", func(c *config.Config) any { return c.Server.Listen }, func(n, r *config.Config) { n.Server.Listen = r.Server.Listen }},
	{"server.publicURL", func(c *config.Config) any { return c.Server.PublicURL }, func(n, r *config.Config) { n.Server.PublicURL = r.Server.PublicURL }},
	{"server.managementListen", func(c *config.Config) any { return c.Server.ManagementListen }, func(n, r *config.Config) { n.Server.ManagementListen = r.Server.ManagementListen }},
	{"server.cookieSecret", func(c *config.Config) any { return c.Server.CookieSecret }, func(n, r *config.Config) { n.Server.CookieSecret = r.Server.CookieSecret }},
	{"server.logFormat", func(c *config.Config) any { return c.Server.LogFormat }, func(n, r *config.Config) { n.Server.LogFormat = r.Server.LogFormat }},
	{"database", func(c *config.Config) any { return c.Database }, func(n, r *config.Config) { n.Database = r.Database }},
	{"smtp", func(c *config.Config) any { return c.SMTP }, func(n, r *config.Config) { n.SMTP = r.SMTP }},
	{"outbox", func(c *config.Config) any { return c.Outbox }, func(n, r *config.Config) { n.Outbox = r.Outbox }},
	{"tokens.signingAlgorithm", func(c *config.Config) any { return c.Tokens.SigningAlgorithm }, func(n, r *config.Config) { n.Tokens.SigningAlgorithm = r.Tokens.SigningAlgorithm }},
}

// Reload swaps in a new, already validated configuration: clients, flows,
// bindings, branding, languages, users, API keys, events and webhooks,
// signing keys (re-read from the database) take effect for the next
// request; requests in flight finish on the old one. Settings that need a
// restart keep their running values and are returned by name. On error
// nothing changes.
func (s *Server) Reload(ctx context.Context, next *config.Config) (needRestart []string, err error) {
	running := s.Config()
	for _, r := range restartOnly {
		if !reflect.DeepEqual(r.get(next), r.get(running)) {
			needRestart = append(needRestart, r.name)
			r.keep(next, running)
		}
	}
	rs, err := s.realm(ctx, next)
	if err != nil {
		return needRestart, err
	}
	s.current.Store(rs)
	return needRestart, nil
}

// linkEvent is a magic link's event as a login event: MAGIC_LINK_SENT,
// _OPENED, _CONFIRMED, _REJECTED (error: the reason), _APPROVED,
// _DECLINED, _CODE_REJECTED; and REGISTER for an account it created.
func linkEvent(e magiclink.LinkEvent) events.Event {
	if e.Event == "registered" { // Keycloak's REGISTER, by the magic-link step
		return events.Event{Type: "REGISTER", ClientID: e.Link.ClientID, UserID: e.Link.UserID, Details: map[string]string{"register_method": "magic-link"}}
	}
	out := events.Event{Type: "MAGIC_LINK_" + strings.ToUpper(e.Event), Details: map[string]string{}}
	if l := e.Link; l != nil {
		out.ClientID, out.UserID = l.ClientID, l.UserID
		out.Details["link_id"] = l.ID
		out.Details["link_type"] = l.Type
	}
	switch e.Event {
	case "rejected":
		out.Error = e.Reason
	case "confirmed":
		out.Details["method"] = e.Reason
	}
	return out
}

// actionIDs are the ids of the realm's required actions.
func actionIDs(reg flows.Registry) []string {
	var ids []string
	for _, a := range RequiredActions(reg) {
		ids = append(ids, a.ID())
	}
	return ids
}

func randomID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// seedUsers applies realm.yaml's users: a missing account is created, and
// the fields an entry writes are applied to an existing one at every start.
// A declared disabled account loses its SSO sessions and tokens at once.
func seedUsers(ctx context.Context, st *store.Store, users []config.User, log *slog.Logger) error {
	for _, cu := range users {
		u, err := st.UserByEmail(ctx, cu.Email)
		if errors.Is(err, flows.ErrUserNotFound) {
			u = &flows.User{Email: cu.Email}
			applyDeclared(u, cu)
			if err := st.CreateUser(ctx, u); err != nil && !errors.Is(err, flows.ErrUserExists) {
				return fmt.Errorf("create user from realm.yaml: %w", err)
			}
			log.Info("user created from realm.yaml", "event", "user_created", "user_id", u.ID)
			continue
		}
		if err != nil {
			return err
		}
		if applyDeclared(u, cu) {
			if err := st.UpdateUser(ctx, u); err != nil {
				return fmt.Errorf("update user from realm.yaml: %w", err)
			}
			log.Info("user updated from realm.yaml", "event", "user_updated", "user_id", u.ID)
		}
		if u.Disabled {
			if err := st.EndUserSessions(ctx, u.ID); err != nil {
				return fmt.Errorf("end sessions of disabled user: %w", err)
			}
		}
	}
	return nil
}

// applyDeclared writes the fields a users[] entry sets onto u and reports
// whether any of them changed.
func applyDeclared(u *flows.User, cu config.User) bool {
	before := *u
	before.RequiredActions = slices.Clone(u.RequiredActions)
	if cu.FirstName != nil {
		u.FirstName = *cu.FirstName
	}
	if cu.LastName != nil {
		u.LastName = *cu.LastName
	}
	if cu.EmailVerified != nil {
		u.EmailVerified = *cu.EmailVerified
	}
	if cu.Disabled != nil {
		u.Disabled = *cu.Disabled
	}
	if cu.PasswordHash != "" {
		u.PasswordHash = cu.PasswordHash
	}
	if cu.RequiredActions != nil {
		u.RequiredActions = slices.Clone(cu.RequiredActions)
	}
	if cu.Locale != nil {
		u.Locale = *cu.Locale
	}
	return u.FirstName != before.FirstName || u.LastName != before.LastName || u.EmailVerified != before.EmailVerified ||
		u.Locale != before.Locale || u.Disabled != before.Disabled || u.PasswordHash != before.PasswordHash || !slices.Equal(u.RequiredActions, before.RequiredActions)
}

// Start runs the background work (mail delivery, purging) until ctx ends.
func (s *Server) Start(ctx context.Context) (done <-chan struct{}) {
	ch := make(chan struct{})
	senderDone := s.sender.Go(ctx) // ready (health) once Start returns
	go func() {
		defer close(ch)
		purge := time.NewTicker(5 * time.Minute)
		defer purge.Stop()
		save := time.NewTicker(saveCountersEvery)
		defer save.Stop()
		for {
			select {
			case <-ctx.Done():
				<-senderDone
				final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				s.saveCounters(final)
				cancel()
				return
			case <-save.C:
				s.saveCounters(ctx)
			case <-purge.C:
				if n, err := s.Store.Purge(ctx, time.Now(), time.Hour); err != nil {
					s.log.Warn("purge expired rows", "err", err)
				} else if n > 0 {
					s.log.Info("purged expired rows", "rows", n)
				}
				if n, err := s.Store.PurgeEvents(ctx, time.Now().Add(-s.Config().Events.Expiration.D())); err != nil {
					s.log.Warn("purge old events", "err", err)
				} else if n > 0 {
					s.log.Info("purged events older than events.expiration", "rows", n, "expiration", s.Config().Events.Expiration.D())
				}
			}
		}
	}()
	return ch
}

// Serve listens on l until ctx ends, then shuts down gracefully: no new
// connections, in-flight requests finish, mail leases are released.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := s.Start(bg)
	srv := httplimit.Server(s.Handler, s.log)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	var err error
	select {
	case <-ctx.Done():
		shut, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err = srv.Shutdown(shut)
		cancel()
	case err = <-errc:
	}
	stop()
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// Close closes the database.
func (s *Server) Close() error { return s.Store.Close() }

// LinkStore adapts the store to the magic-link service; mail bodies are
// sealed before they reach the database.
type LinkStore struct {
	S      *store.Store
	Sealer *mail.Sealer
	// Sender, when set, is told of a link's mail once its transaction has
	// committed: handed the message, queued already leased to it, or woken.
	Sender LinkMailSender
}

// LinkMailSender is the part of mail.Sender a link's mail is given to.
type LinkMailSender interface {
	Reserve(now time.Time) (owner string, until time.Time, ok bool)
	Handoff(m store.OutboxMail)
	Wake()
}

var _ magiclink.Store = LinkStore{}

func (a LinkStore) CreateLink(ctx context.Context, l *magiclink.Link, m *magiclink.Mail) error {
	row := store.MagicLink(*l)
	var mail *store.OutboxMail
	if m != nil {
		mail = &store.OutboxMail{To: m.To, Subject: m.Subject, Text: a.Sealer.Seal(m.Text), HTML: a.Sealer.Seal(m.HTML)}
		if a.Sender != nil {
			if owner, until, ok := a.Sender.Reserve(time.Now().UTC()); ok {
				mail.LeaseOwner, mail.LeaseUntil = owner, &until
			}
		}
	}
	if err := a.S.CreateMagicLink(ctx, &row, mail); err != nil {
		return err
	}
	*l = magiclink.Link(row)
	if mail != nil && a.Sender != nil {
		store.AfterCommit(ctx, func() {
			if mail.LeaseOwner != "" {
				a.Sender.Handoff(*mail)
			} else {
				a.Sender.Wake()
			}
		})
	}
	return nil
}

// RehearseLink does all of CreateLink's work and undoes it (Store.Rehearse).
func (a LinkStore) RehearseLink(ctx context.Context, l *magiclink.Link, m *magiclink.Mail) error {
	return a.S.Rehearse(ctx, func(ctx context.Context) error { return a.CreateLink(ctx, l, m) })
}

func (a LinkStore) LinkByHash(ctx context.Context, hash string) (*magiclink.Link, error) {
	row, err := a.S.MagicLinkByHash(ctx, hash)
	return convertLink(row, err)
}

func (a LinkStore) ConsumeLink(ctx context.Context, hash string, owner magiclink.Owner, now time.Time) (*magiclink.Link, error) {
	row, err := a.S.ConsumeMagicLink(ctx, hash, store.LinkOwner(owner), now)
	return convertLink(row, err)
}

func (a LinkStore) LinkForLogin(ctx context.Context, authSessionID string) (*magiclink.Link, error) {
	row, err := a.S.MagicLinkForLogin(ctx, authSessionID)
	return convertLink(row, err)
}

func (a LinkStore) ConsumeLinkByID(ctx context.Context, id string, now time.Time) (*magiclink.Link, error) {
	row, err := a.S.ConsumeMagicLinkByID(ctx, id, now)
	return convertLink(row, err)
}

func (a LinkStore) FailLinkCode(ctx context.Context, id string, max int, now time.Time) (*magiclink.Link, error) {
	row, err := a.S.FailMagicLinkCode(ctx, id, max, now)
	return convertLink(row, err)
}

func (a LinkStore) ApproveLink(ctx context.Context, id string, now time.Time) (*magiclink.Link, error) {
	row, err := a.S.ApproveMagicLink(ctx, id, now)
	return convertLink(row, err)
}

func (a LinkStore) ClaimApprovedLink(ctx context.Context, id string, now time.Time) (*magiclink.Link, error) {
	row, err := a.S.ClaimApprovedMagicLink(ctx, id, now)
	return convertLink(row, err)
}

func (a LinkStore) RevokeLink(ctx context.Context, id, reason string, now time.Time) (bool, error) {
	return a.S.RevokeMagicLink(ctx, id, reason, now)
}

func (a LinkStore) MarkLinkOpened(ctx context.Context, id string, now time.Time) error {
	return a.S.MarkMagicLinkOpened(ctx, id, now)
}

func convertLink(row *store.MagicLink, err error) (*magiclink.Link, error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, magiclink.ErrNotFound
	case errors.Is(err, store.ErrLinkUnavailable):
		return nil, magiclink.ErrUnavailable
	case err != nil:
		return nil, err
	}
	l := magiclink.Link(*row)
	return &l, nil
}
