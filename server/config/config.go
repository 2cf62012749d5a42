// Package config loads and validates realm.yaml: the realm's whole
// configuration. Every error names the file, the line and the field.
package config

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/language"
	"gopkg.in/yaml.v3"

	"latchkey/flows"
	"latchkey/server/i18n"
)

// Config is realm.yaml. The yaml keys are a contract: extend, never rename.
type Config struct {
	Realm    string                    `yaml:"realm"`
	Server   Server                    `yaml:"server"`
	Database Database                  `yaml:"database"`
	SMTP     SMTP                      `yaml:"smtp"`
	Tokens   Tokens                    `yaml:"tokens"`
	Sessions Sessions                  `yaml:"sessions"`
	Clients  []Client                  `yaml:"clients"`
	Flows    map[string][]ExecutionDef `yaml:"flows"`
	Bindings map[string]string         `yaml:"bindings"`
	Users    []User                    `yaml:"users"`
	// Roles are the realm roles; DefaultRoles are given to every user and
	// service account (Keycloak's default roles); Groups carry roles to
	// their members (and their subgroups' members).
	Roles        []string `yaml:"roles"`
	DefaultRoles []string `yaml:"defaultRoles"`
	Groups       []Group  `yaml:"groups"`
	Branding     Branding `yaml:"branding"`
	I18n         I18n     `yaml:"i18n"`
	APIKeys      []APIKey `yaml:"apiKeys"`
	Outbox       Outbox   `yaml:"outbox"`
	Events       Events   `yaml:"events"`

	// roleMap is every user's effective role mappings, by email; built at load.
	roleMap map[string]RoleMapping `yaml:"-"`

	// FlowDefs are the flows, resolved against the authenticator registry.
	FlowDefs map[string]*flows.Flow `yaml:"-"`
	// File is the path the config was read from.
	File string `yaml:"-"`
}

// Server is where Latchkey listens and how it is reached.
type Server struct {
	Listen    string `yaml:"listen"`
	PublicURL string `yaml:"publicURL"`
	// ManagementListen serves /metrics and /health/{live,ready} (Keycloak's
	// port 9000), apart from the public listener; "" turns it off.
	ManagementListen string `yaml:"managementListen"`
	// LogFormat is text (default) or json (--log-format overrides).
	LogFormat string `yaml:"logFormat"`
	// derivedPublicURL: publicURL was not set, so it follows the listen
	// address (SetListen moves it).
	derivedPublicURL bool
	// CookieSecret signs and encrypts cookies. Empty: generated once and
	// kept in the database (one node); set it when running several nodes.
	CookieSecret string `yaml:"cookieSecret"`
	// TrustedProxies are the load balancers (CIDRs) whose X-Forwarded-For
	// names the client; empty: the TCP peer is the client.
	TrustedProxies []string `yaml:"trustedProxies"`
}

// Database selects the store.
type Database struct {
	Driver          string   `yaml:"driver"`
	DSN             string   `yaml:"dsn"`
	MaxOpenConns    int      `yaml:"maxOpenConns"`
	MaxIdleConns    int      `yaml:"maxIdleConns"`
	ConnMaxLifetime Duration `yaml:"connMaxLifetime"`
	// CheckpointInterval (SQLite), when set, is how often a background
	// checkpoint copies the WAL into the database; 0 (the default) copies
	// it in the background once ~5,000 pages wait (the writer's own
	// checkpoint, in a commit, is a backstop at 40,000).
	CheckpointInterval Duration `yaml:"checkpointInterval"`
}

// SMTP is the outgoing mail server.
type SMTP struct {
	Host string `yaml:"host"`
	// DevMailbox keeps mail in the database and shows it at
	// /realms/{realm}/dev/mail instead of sending it: anyone who can reach
	// that page reads every sign-in link. Only with an http://localhost
	// public URL, and never together with a host.
	DevMailbox bool   `yaml:"devMailbox"`
	Port       int    `yaml:"port"`
	TLS        string `yaml:"tls"`
	Username   string `yaml:"username"`
	Password   string `yaml:"password"`
	From       string `yaml:"from"`
}

// Tokens sets token lifetimes and the signing algorithm.
type Tokens struct {
	AccessTokenTTL       Duration `yaml:"accessTokenTTL"`
	IDTokenTTL           Duration `yaml:"idTokenTTL"`
	RefreshTokenTTL      Duration `yaml:"refreshTokenTTL"`
	AuthorizationCodeTTL Duration `yaml:"authorizationCodeTTL"`
	SigningAlgorithm     string   `yaml:"signingAlgorithm"`
	// AccessTokenFormat is jwt (RFC 9068, signed like ID tokens; Keycloak's
	// adapters decode it) or opaque.
	AccessTokenFormat string `yaml:"accessTokenFormat"`
	// KeyCacheTTL bounds how long a node signs with a key after another node rotated it.
	KeyCacheTTL Duration `yaml:"keyCacheTTL"`
}

// Outbox tunes mail delivery.
type Outbox struct {
	PollInterval Duration `yaml:"pollInterval"` // how often each node looks for due mail
	Lease        Duration `yaml:"lease"`        // how long a node holds a message; a dead node's messages wait this long
	MaxAttempts  int      `yaml:"maxAttempts"`  // tries before giving up on connection errors and 4xx
	Parallel     int      `yaml:"parallel"`     // messages each node sends at once
}

// Events are the login and admin events kept in the database and sent to
// webhooks.
type Events struct {
	// Enabled stores events (default true); webhooks need it.
	Enabled *bool `yaml:"enabled"`
	// Expiration is how long stored events are kept (default 30d).
	Expiration Duration  `yaml:"expiration"`
	Webhooks   []Webhook `yaml:"webhooks"`
}

// On reports whether events are stored.
func (e Events) On() bool { return e.Enabled == nil || *e.Enabled }

// Webhook receives events as Standard Webhooks (signed with Secret, a
// whsec_ base64 key) of the listed types (none: all).
type Webhook struct {
	URL    string   `yaml:"url"`
	Secret string   `yaml:"secret"`
	Types  []string `yaml:"types"`
}

// Wants reports whether the webhook takes events of type typ.
func (w Webhook) Wants(typ string) bool { return len(w.Types) == 0 || slices.Contains(w.Types, typ) }

// EventTypes are the event types Latchkey records: Keycloak's, its own
// MAGIC_LINK_*, and ADMIN_* for admin events (ADMIN_ + operation type).
var EventTypes = []string{
	"LOGIN", "LOGIN_ERROR", "CODE_TO_TOKEN", "CODE_TO_TOKEN_ERROR", "REFRESH_TOKEN", "REFRESH_TOKEN_ERROR",
	"CLIENT_LOGIN", "CLIENT_LOGIN_ERROR", "LOGOUT", "REGISTER",
	"MAGIC_LINK_SENT", "MAGIC_LINK_OPENED", "MAGIC_LINK_CONFIRMED", "MAGIC_LINK_REJECTED", "MAGIC_LINK_APPROVED",
	"MAGIC_LINK_DECLINED", "MAGIC_LINK_CODE_REJECTED",
	"ADMIN_CREATE", "ADMIN_UPDATE", "ADMIN_DELETE", "ADMIN_ACTION",
}

// Sessions sets browser session lifetimes.
type Sessions struct {
	// AuthSessionTTL bounds one login attempt (it must outlive its emailed links).
	AuthSessionTTL Duration `yaml:"authSessionTTL"`
	// SSOSessionTTL is how long a login is remembered for single sign-on.
	SSOSessionTTL Duration `yaml:"ssoSessionTTL"`
	// SSOIdleTimeout ends an SSO session not used for this long (Keycloak's
	// "SSO Session Idle", 30m by default); each login it answers renews it.
	SSOIdleTimeout Duration `yaml:"ssoIdleTimeout"`
	// AuthSessionsPerMinutePerIP bounds the login attempts (each a stored
	// row) one client address may start per minute.
	AuthSessionsPerMinutePerIP int `yaml:"authSessionsPerMinutePerIP"`
}

// Client is a relying party.
type Client struct {
	ClientID               string   `yaml:"clientId"`
	Name                   string   `yaml:"name"`
	Secret                 string   `yaml:"secret"` // empty: public client, PKCE S256 required
	RedirectURIs           []string `yaml:"redirectUris"`
	PostLogoutRedirectURIs []string `yaml:"postLogoutRedirectUris"`
	Scopes                 []string `yaml:"scopes"`
	// DefaultScopes are granted whether or not the app asks for them
	// (Keycloak's default client scopes); OptionalScopes when it asks.
	// Scopes, DefaultScopes and OptionalScopes together are what the client
	// may request; other requested scopes are ignored (OIDC Core 3.1.2.1).
	DefaultScopes  []string `yaml:"defaultScopes"`
	OptionalScopes []string `yaml:"optionalScopes"`
	// Roles are the client's roles (in tokens under resource_access.{clientId}).
	Roles []string `yaml:"roles"`
	// ServiceAccountsEnabled allows the client_credentials grant, for the
	// client's own subject; ServiceAccount gives that subject roles.
	ServiceAccountsEnabled bool            `yaml:"serviceAccountsEnabled"`
	ServiceAccount         *ServiceAccount `yaml:"serviceAccount"`
	// Branding overrides the realm's branding on this app's pages and mails.
	Branding *Branding `yaml:"branding"`
	// IDTokenSignedResponseAlg signs this client's ID tokens with RS256
	// where the realm signs with ES256 or EdDSA (empty: the realm's).
	IDTokenSignedResponseAlg string `yaml:"idTokenSignedResponseAlg"`
	// BackchannelLogoutURL receives a signed logout token (OpenID
	// Back-Channel Logout 1.0) when a session in which the client got
	// tokens ends.
	BackchannelLogoutURL string `yaml:"backchannelLogoutUrl"`
	// WebOrigins may call the token, userinfo, JWKS, logout and account
	// endpoints from a browser (CORS); "+" stands for the origins of the
	// redirect URIs, as in Keycloak.
	WebOrigins []string `yaml:"webOrigins"`
	// BaseURL is the app's home page (Keycloak's "Home URL"): pages that
	// end a dead link's journey offer "Back to {name}" there.
	BaseURL string `yaml:"baseUrl"`
}

// Origins are the client's web origins, "+" expanded to the origins of its
// redirect URIs.
func (c Client) Origins() []string {
	var out []string
	add := func(o string) {
		o = strings.TrimSuffix(o, "/")
		if o != "" && !contains(out, o) {
			out = append(out, o)
		}
	}
	for _, o := range c.WebOrigins {
		if o != "+" {
			add(o)
			continue
		}
		for _, ru := range c.RedirectURIs {
			if u, err := url.Parse(ru); err == nil && u.Scheme != "" && u.Host != "" {
				add(u.Scheme + "://" + u.Host)
			}
		}
	}
	return out
}

// AllowedScopes are the scopes the client may request.
func (c Client) AllowedScopes() []string {
	var out []string
	for _, list := range [][]string{{"openid"}, c.Scopes, c.DefaultScopes, c.OptionalScopes} {
		for _, s := range list {
			if !contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// ServiceAccount is the role mapping of a client's own subject.
type ServiceAccount struct {
	Roles       []string            `yaml:"roles"`
	ClientRoles map[string][]string `yaml:"clientRoles"`
}

// Group is a group of users, with its role mappings and subgroups; its
// path is /parent/name.
type Group struct {
	Name        string              `yaml:"name"`
	Roles       []string            `yaml:"roles"`
	ClientRoles map[string][]string `yaml:"clientRoles"`
	SubGroups   []Group             `yaml:"subGroups"`
}

// RealmManagementClient is Keycloak's built-in client whose roles grant
// administration; its roles exist without being declared.
const RealmManagementClient = "realm-management"

// RealmManagementRoles are the roles of the realm-management client.
var RealmManagementRoles = []string{"view-users", "manage-users", "query-users", "view-events", "manage-events", "view-clients", "view-realm", "realm-admin"}

// RoleMapping is what a subject holds: realm roles, client roles by
// client, and group paths.
type RoleMapping struct {
	Realm   []string
	Clients map[string][]string
	Groups  []string
}

// RolesOf returns the effective role mapping of the user with email (its
// own, its groups' and their parents', and the default roles).
func (c *Config) RolesOf(email string) RoleMapping {
	if m, ok := c.roleMap[email]; ok {
		return m
	}
	return RoleMapping{Realm: c.DefaultRoles}
}

// Public reports whether the client has no secret.
func (c Client) Public() bool { return c.Secret == "" }

// ExecutionDef is one execution as written in realm.yaml.
type ExecutionDef struct {
	Authenticator string         `yaml:"authenticator"`
	Flow          string         `yaml:"flow"`
	Requirement   string         `yaml:"requirement"`
	Executions    []ExecutionDef `yaml:"executions"`
	Config        yaml.Node      `yaml:"config"`
}

// User is an account declared in realm.yaml: created at start when missing,
// and at every start the fields the entry writes are applied to it (the
// admin's declared truth). Fields it leaves out (nil) stay as they are, so
// changes made later through an API survive.
type User struct {
	Email           string   `yaml:"email"`
	FirstName       *string  `yaml:"firstName"`
	LastName        *string  `yaml:"lastName"`
	EmailVerified   *bool    `yaml:"emailVerified"`
	Disabled        *bool    `yaml:"disabled"`
	PasswordHash    string   `yaml:"passwordHash"`    // bcrypt; or set with `latchkey users set-password`
	RequiredActions []string `yaml:"requiredActions"` // nil: not declared; [] clears them
	// Roles, ClientRoles and Groups (paths like /team/eng) are the user's
	// role mappings.
	Roles       []string            `yaml:"roles"`
	ClientRoles map[string][]string `yaml:"clientRoles"`
	Groups      []string            `yaml:"groups"`
	// Locale is the user's language (BCP 47, one of i18n.supportedLocales).
	Locale *string `yaml:"locale"`
}

// Branding is how the hosted pages and mails look. A client's branding
// (clients[].branding) overrides the realm's field by field.
type Branding struct {
	DisplayName string `yaml:"displayName"`
	// Colours are CSS hex (#2d5bd7); URLs are https, or a file in the
	// theme's static folder (logo.png).
	PrimaryColor    string `yaml:"primaryColor"`
	BackgroundColor string `yaml:"backgroundColor"`
	TextColor       string `yaml:"textColor"`
	FontFamily      string `yaml:"fontFamily"` // a CSS font list: Inter, Helvetica Neue, sans-serif
	LogoURL         string `yaml:"logoUrl"`
	FaviconURL      string `yaml:"faviconUrl"`
	HeaderImageURL  string `yaml:"headerImageUrl"`
	// Title and Description are the heading and text of the sign-in page.
	Title        string       `yaml:"title"`
	Description  string       `yaml:"description"`
	HelperLinks  []HelperLink `yaml:"helperLinks"`
	SupportEmail string       `yaml:"supportEmail"`
	PrivacyURL   string       `yaml:"privacyUrl"`
	TermsURL     string       `yaml:"termsUrl"`
	// CustomCSS is a stylesheet in the theme's static folder, loaded after
	// the built-in one.
	CustomCSS string `yaml:"customCss"`
	// ThemeDir holds templates/ and static/ files that override the built-in ones by name.
	ThemeDir string `yaml:"themeDir"`
}

// HelperLink is a link shown under the sign-in form.
type HelperLink struct {
	Label string `yaml:"label"`
	URL   string `yaml:"url"`
}

// Over returns b with the fields o sets replaced (a client's branding
// over the realm's).
func (b Branding) Over(o *Branding) Branding {
	if o == nil {
		return b
	}
	for _, f := range []struct {
		dst *string
		src string
	}{
		{&b.DisplayName, o.DisplayName}, {&b.PrimaryColor, o.PrimaryColor}, {&b.BackgroundColor, o.BackgroundColor},
		{&b.TextColor, o.TextColor}, {&b.FontFamily, o.FontFamily}, {&b.LogoURL, o.LogoURL}, {&b.FaviconURL, o.FaviconURL},
		{&b.HeaderImageURL, o.HeaderImageURL}, {&b.Title, o.Title}, {&b.Description, o.Description},
		{&b.SupportEmail, o.SupportEmail}, {&b.PrivacyURL, o.PrivacyURL}, {&b.TermsURL, o.TermsURL}, {&b.CustomCSS, o.CustomCSS},
	} {
		if f.src != "" {
			*f.dst = f.src
		}
	}
	if o.HelperLinks != nil {
		b.HelperLinks = o.HelperLinks
	}
	return b
}

// I18n is the realm's languages. A login's language is picked from
// ui_locales, kc_locale, the page's language switcher (a cookie), the
// user's locale and Accept-Language, among SupportedLocales.
type I18n struct {
	DefaultLocale string `yaml:"defaultLocale"`
	// SupportedLocales: empty means every shipped locale (i18n.Shipped).
	SupportedLocales []string `yaml:"supportedLocales"`
}

// APIKey authorises calls to the management API.
type APIKey struct {
	Name       string   `yaml:"name"`
	Key        string   `yaml:"key"` // from the environment: ${LATCHKEY_API_KEY}
	Operations []string `yaml:"operations"`
}

// Operations of the management API.
var Operations = []string{"magic-links:create", "magic-links:read", "magic-links:revoke", "users:read", "users:write", "events:read"}

// DisplayName is the realm's name on pages and in mail.
func (c *Config) DisplayName() string {
	if c.Branding.DisplayName != "" {
		return c.Branding.DisplayName
	}
	return c.Realm
}

// PublicURLFor is the public URL of a listen address when realm.yaml sets
// none: http://localhost:PORT for loopback and all-interfaces addresses,
// else http://HOST:PORT.
func PublicURLFor(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://localhost:8080"
	}
	if ip, err := netip.ParseAddr(host); host == "" || host == "localhost" || (err == nil && (ip.IsLoopback() || ip.IsUnspecified())) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// SetListen overrides server.listen (--listen). Without a publicURL in
// realm.yaml, the public URL moves with it; the development mailbox is
// still refused off localhost.
func (c *Config) SetListen(addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("--listen: must be host:port, like 127.0.0.1:8080")
	}
	if addr == c.Server.ManagementListen {
		return fmt.Errorf("--listen: must differ from server.managementListen (%s)", addr)
	}
	c.Server.Listen = addr
	if c.Server.derivedPublicURL {
		c.Server.PublicURL = PublicURLFor(addr)
		if c.SMTP.DevMailbox && !isLocalHTTP(c.Server.PublicURL) {
			return fmt.Errorf("--listen: smtp.devMailbox needs a localhost public URL, and %s would be %s: set server.publicURL", addr, c.Server.PublicURL)
		}
	}
	return nil
}

// Issuer is the realm's OIDC issuer URL.
func (c *Config) Issuer() string { return c.Server.PublicURL + "/realms/" + c.Realm }

// Client returns the client with id.
func (c *Config) Client(id string) (Client, bool) {
	for _, cl := range c.Clients {
		if cl.ClientID == id {
			return cl, true
		}
	}
	return Client{}, false
}

func defaults() Config {
	return Config{
		Server:   Server{Listen: "127.0.0.1:8080", ManagementListen: "127.0.0.1:9000"},
		Database: Database{Driver: "sqlite", DSN: "latchkey.db", MaxOpenConns: 16, MaxIdleConns: 16, ConnMaxLifetime: Duration(30 * time.Minute)},
		SMTP:     SMTP{Port: 587, TLS: "starttls"},
		Tokens: Tokens{
			AccessTokenTTL: Duration(5 * time.Minute), IDTokenTTL: Duration(5 * time.Minute),
			RefreshTokenTTL: Duration(720 * time.Hour), AuthorizationCodeTTL: Duration(time.Minute),
			SigningAlgorithm: "RS256", AccessTokenFormat: "jwt", KeyCacheTTL: Duration(30 * time.Second),
		},
		Outbox:   Outbox{PollInterval: Duration(time.Second), Lease: Duration(time.Minute), MaxAttempts: 12, Parallel: 8},
		Sessions: Sessions{AuthSessionTTL: Duration(time.Hour), SSOSessionTTL: Duration(10 * time.Hour), SSOIdleTimeout: Duration(30 * time.Minute), AuthSessionsPerMinutePerIP: 120},
		I18n:     I18n{DefaultLocale: "en"},
		Events:   Events{Expiration: Duration(30 * 24 * time.Hour)},
	}
}

// Options looks up an authenticator's config schema by id.
type Options func(authenticator string) ([]flows.Option, bool)

// Schema is what realm.yaml is checked against beyond its own fields: the
// registered authenticators' options and the required actions' ids.
type Schema struct {
	Options         Options
	RequiredActions []string
	// Uses are the top-level keys (server, database, smtp, ...) a command
	// reads; nil is all. Problems in the others, such as an environment
	// variable only SMTP needs, do not stop a command that sends no mail.
	Uses []string
}

// FromRegistry builds the schema from the registry and required actions
// the engine will run.
func FromRegistry(r flows.Registry, actions []flows.RequiredAction) Schema {
	s := Schema{Options: func(id string) ([]flows.Option, bool) {
		f, ok := r.Lookup(id)
		if !ok {
			return nil, false
		}
		return f.Options(), true
	}}
	for _, a := range actions {
		s.RequiredActions = append(s.RequiredActions, a.ID())
	}
	return s
}

// Load reads, expands and validates the file. Errors are of type Errors.
func Load(path string, opts Schema) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, raw, opts)
}

// Parse is Load for bytes already read; file names the source in errors.
func Parse(file string, raw []byte, opts Schema) (*Config, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&root); errors.Is(err, io.EOF) {
		return nil, Errors{fmt.Sprintf("%s:1: the file is empty", file)}
	} else if err != nil {
		// yaml.v3 says "yaml: line N: problem"; say it as every other error.
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		line := 1
		if n, rest, ok := strings.Cut(strings.TrimPrefix(msg, "line "), ": "); ok && strings.HasPrefix(msg, "line ") {
			if v, err := strconv.Atoi(n); err == nil {
				line, msg = v, rest
				// yaml.v3 counts lines from 0 in its parser's errors (its
				// scanner's are right): these are the parser's.
				if slices.Contains(yamlParserErrors, msg) {
					line++
				}
			}
		}
		return nil, Errors{fmt.Sprintf("%s:%d: YAML syntax: %s", file, line, msg)}
	}
	if len(root.Content) == 0 {
		return nil, Errors{fmt.Sprintf("%s:1: the file is empty", file)}
	}
	d := &decoder{file: file, lines: map[string]int{}, uses: opts.Uses}
	d.expandEnv(&root, "")
	cfg := defaults()
	d.decode(root.Content[0], reflect.ValueOf(&cfg).Elem(), "")
	if len(d.errs) == 0 {
		d.validate(&cfg, opts)
	}
	if len(d.errs) > 0 {
		return nil, d.errs
	}
	cfg.File = file
	return &cfg, nil
}

// yamlParserErrors are the messages of yaml.v3's parser (parserc.go).
var yamlParserErrors = []string{"found undefined tag handle", "did not find expected node content",
	"did not find expected '-' indicator", "did not find expected key", "did not find expected ',' or ']'",
	"did not find expected ',' or '}'"}

var realmName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

func (d *decoder) validate(c *Config, opts Schema) {
	if !realmName.MatchString(c.Realm) {
		d.failAt("realm", "must be 1-63 lower-case letters, digits, '-' or '_'")
	}
	c.Server.PublicURL = strings.TrimSuffix(c.Server.PublicURL, "/")
	if c.Server.PublicURL == "" {
		c.Server.derivedPublicURL = true
		c.Server.PublicURL = PublicURLFor(c.Server.Listen)
	}
	if u, err := url.Parse(c.Server.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		d.failAt("server.publicURL", "must be an absolute http(s) URL without query, like https://id.example.com")
	}
	if _, _, err := net.SplitHostPort(c.Server.Listen); err != nil {
		d.failAt("server.listen", "must be host:port, like 127.0.0.1:8080")
	}
	if m := c.Server.ManagementListen; m != "" {
		if _, _, err := net.SplitHostPort(m); err != nil {
			d.failAt("server.managementListen", `must be host:port, like 127.0.0.1:9000, or "" for none`)
		} else if m == c.Server.Listen {
			d.failAt("server.managementListen", "must differ from server.listen: metrics and health stay off the public listener")
		}
	}
	if s := c.Server.CookieSecret; s != "" && len(s) < 32 {
		d.failAt("server.cookieSecret", "must be at least 32 characters (use: openssl rand -base64 48)")
	}
	if c.Database.Driver == "postgres" && c.Server.CookieSecret == "" {
		d.failAt("database.driver", "postgres needs server.cookieSecret: every node must read the others' cookies (set it from the environment, e.g. cookieSecret: ${LATCHKEY_COOKIE_SECRET})")
	}
	d.validateEvents(c.Events)
	if f := c.Server.LogFormat; f != "" && f != "text" && f != "json" {
		d.failAt("server.logFormat", "must be text or json")
	}
	for i, p := range c.Server.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err := netip.ParseAddr(p); err != nil {
				d.failAt(fmt.Sprintf("server.trustedProxies[%d]", i), "must be an address or CIDR, like 10.0.0.0/8")
			}
		}
	}
	switch c.Database.Driver {
	case "sqlite", "postgres":
	default:
		d.failAt("database.driver", "must be sqlite or postgres")
	}
	if c.Database.DSN == "" {
		d.failAt("database.dsn", "must not be empty")
	}
	if c.Database.MaxOpenConns < 1 {
		d.failAt("database.maxOpenConns", "must be at least 1")
	}
	if ci := c.Database.CheckpointInterval.D(); ci < 0 || ci > 0 && ci < time.Millisecond || ci > time.Minute {
		d.failAt("database.checkpointInterval", "must be 0 (checkpoints by the WAL's size) or between 1ms and 1m")
	}
	d.validateSMTP(c.SMTP, c.Server.PublicURL)
	for _, t := range []struct {
		path string
		v    Duration
	}{
		{"tokens.accessTokenTTL", c.Tokens.AccessTokenTTL}, {"tokens.idTokenTTL", c.Tokens.IDTokenTTL},
		{"tokens.refreshTokenTTL", c.Tokens.RefreshTokenTTL}, {"tokens.authorizationCodeTTL", c.Tokens.AuthorizationCodeTTL},
		{"sessions.authSessionTTL", c.Sessions.AuthSessionTTL}, {"sessions.ssoSessionTTL", c.Sessions.SSOSessionTTL},
		{"sessions.ssoIdleTimeout", c.Sessions.SSOIdleTimeout},
		{"tokens.keyCacheTTL", c.Tokens.KeyCacheTTL}, {"outbox.pollInterval", c.Outbox.PollInterval}, {"outbox.lease", c.Outbox.Lease},
	} {
		if t.v <= 0 {
			d.failAt(t.path, "must be a positive duration")
		}
	}
	if c.Outbox.Parallel < 1 || c.Outbox.Parallel > 64 {
		d.failAt("outbox.parallel", "must be between 1 and 64")
	}
	if c.Sessions.AuthSessionsPerMinutePerIP < 1 {
		d.failAt("sessions.authSessionsPerMinutePerIP", "must be at least 1")
	}
	if c.Outbox.MaxAttempts < 1 {
		d.failAt("outbox.maxAttempts", "must be at least 1")
	}
	if c.Outbox.Lease.D() < 2*time.Second {
		d.failAt("outbox.lease", "must be at least 2s (a send must fit in half of it)")
	}
	if c.Tokens.AuthorizationCodeTTL.D() > 10*time.Minute {
		d.failAt("tokens.authorizationCodeTTL", "must be at most 10m (codes are short-lived by design)")
	}
	switch c.Tokens.AccessTokenFormat {
	case "jwt", "opaque":
	default:
		d.failAt("tokens.accessTokenFormat", "must be jwt or opaque")
	}
	switch c.Tokens.SigningAlgorithm {
	case "RS256", "ES256", "EdDSA":
	default:
		d.failAt("tokens.signingAlgorithm", "must be RS256, ES256 or EdDSA")
	}
	d.validateI18n(c)
	d.validateBranding("branding", c.Branding, c.Branding.ThemeDir)
	d.validateClients(c)
	d.authSessionTTL = c.Sessions.AuthSessionTTL.D()
	d.validateFlows(c, opts.Options)
	d.validateUsers(c, opts.RequiredActions)
	d.validateRoles(c)
	d.validateAPIKeys(c)
}

var (
	hexColor   = regexp.MustCompile(`^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)
	fontFamily = regexp.MustCompile(`^[A-Za-z0-9 ,-]{1,200}$`)
)

// validateBranding checks colours, URLs and texts of a branding block.
func (d *decoder) validateBranding(p string, b Branding, themeDir string) {
	for _, f := range []struct{ key, v string }{{"primaryColor", b.PrimaryColor}, {"backgroundColor", b.BackgroundColor}, {"textColor", b.TextColor}} {
		if f.v != "" && !hexColor.MatchString(f.v) {
			d.failAt(p+"."+f.key, "must be a CSS hex colour like #2d5bd7")
		}
	}
	if b.FontFamily != "" && !fontFamily.MatchString(b.FontFamily) {
		d.failAt(p+".fontFamily", "must be a CSS font list of names, commas and spaces (no quotes), like Inter, Helvetica Neue, sans-serif")
	}
	for _, f := range []struct{ key, v string }{{"logoUrl", b.LogoURL}, {"faviconUrl", b.FaviconURL}, {"headerImageUrl", b.HeaderImageURL},
		{"privacyUrl", b.PrivacyURL}, {"termsUrl", b.TermsURL}} {
		if f.v != "" {
			if msg := CheckAssetURL(f.v, themeDir); msg != "" {
				d.failAt(p+"."+f.key, "%s", msg)
			}
		}
	}
	if b.CustomCSS != "" {
		if !strings.HasSuffix(b.CustomCSS, ".css") || strings.Contains(b.CustomCSS, "://") {
			d.failAt(p+".customCss", "must be a .css file in the theme's static folder")
		} else if msg := CheckAssetURL(b.CustomCSS, themeDir); msg != "" {
			d.failAt(p+".customCss", "%s", msg)
		}
	}
	for i, l := range b.HelperLinks {
		lp := fmt.Sprintf("%s.helperLinks[%d]", p, i)
		if l.Label == "" || utf8.RuneCountInString(l.Label) > 60 || strings.ContainsAny(l.Label, "\r\n") {
			d.failAt(lp+".label", "must be 1-60 characters on one line")
		}
		if msg := CheckAssetURL(l.URL, themeDir); l.URL == "" || msg != "" {
			d.failAt(lp+".url", "must be an https URL (%s)", msg)
		}
	}
	if b.SupportEmail != "" {
		if _, err := flows.ParseEmail(b.SupportEmail); err != nil {
			d.failAt(p+".supportEmail", "must be an email address")
		}
	}
	if utf8.RuneCountInString(b.Title) > 120 || strings.ContainsAny(b.Title, "\r\n") {
		d.failAt(p+".title", "must be at most 120 characters on one line")
	}
	if utf8.RuneCountInString(b.Description) > 500 {
		d.failAt(p+".description", "must be at most 500 characters")
	}
}

// CheckAssetURL checks a branding URL: https, or a file of the theme's
// static folder (served at /realms/{realm}/static/). It returns what is
// wrong, or "".
func CheckAssetURL(raw, themeDir string) string {
	if strings.Contains(raw, "://") {
		if !IsHTTPSURL(raw) {
			return "must be an https URL or a file in the theme's static folder"
		}
		return ""
	}
	if strings.HasPrefix(raw, "/") || strings.Contains(raw, "..") || strings.ContainsAny(raw, "?#\\ ") {
		return "must be an https URL or a file name in the theme's static folder (like logo.png)"
	}
	if themeDir == "" {
		return "names a file of the theme, but branding.themeDir is not set"
	}
	if st, err := os.Stat(filepath.Join(themeDir, "static", raw)); err != nil || st.IsDir() {
		return fmt.Sprintf("%s is not a file", filepath.Join(themeDir, "static", raw))
	}
	return ""
}

// SupportedLocale returns raw in its canonical form (pt-br: pt-BR) when it
// is one of i18n.supportedLocales.
func (c *Config) SupportedLocale(raw string) (string, bool) {
	t, err := language.Parse(raw)
	if err != nil || !slices.Contains(c.I18n.SupportedLocales, t.String()) {
		return "", false
	}
	return t.String(), true
}

// IsHexColor reports whether s is a CSS hex colour (#2d5bd7, #fff).
func IsHexColor(s string) bool { return hexColor.MatchString(s) }

// IsHTTPSURL reports whether raw is an absolute https URL without
// credentials.
func IsHTTPSURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Scheme == "https" && u.Host != "" && u.User == nil
}

// validateI18n checks the locales are BCP 47 tags and the default is
// supported; whether each has messages is the renderer's check.
func (d *decoder) validateI18n(c *Config) {
	if len(c.I18n.SupportedLocales) == 0 {
		c.I18n.SupportedLocales = slices.Clone(i18n.Shipped)
	}
	for i, l := range c.I18n.SupportedLocales {
		t, err := language.Parse(l)
		if err != nil {
			d.failAt(fmt.Sprintf("i18n.supportedLocales[%d]", i), "%q is not a language tag (like en, de or pt-BR)", l)
			continue
		}
		c.I18n.SupportedLocales[i] = t.String()
	}
	t, err := language.Parse(c.I18n.DefaultLocale)
	if err != nil {
		d.failAt("i18n.defaultLocale", "%q is not a language tag (like en, de or pt-BR)", c.I18n.DefaultLocale)
		return
	}
	c.I18n.DefaultLocale = t.String()
	if !slices.Contains(c.I18n.SupportedLocales, c.I18n.DefaultLocale) {
		d.failAt("i18n.defaultLocale", "%s is not one of i18n.supportedLocales (%s)", c.I18n.DefaultLocale, strings.Join(c.I18n.SupportedLocales, ", "))
	}
}

func (d *decoder) validateAPIKeys(c *Config) {
	names := map[string]int{}
	keys := map[string]int{}
	for i, k := range c.APIKeys {
		p := fmt.Sprintf("apiKeys[%d]", i)
		if k.Name == "" {
			d.failAt(p+".name", "must not be empty")
		} else if j, dup := names[k.Name]; dup {
			d.failAt(p+".name", "duplicate API key name (also apiKeys[%d])", j)
		}
		names[k.Name] = i
		if len(k.Key) < 32 {
			d.failAt(p+".key", "must be at least 32 characters; set it from the environment, like ${LATCHKEY_API_KEY}")
		} else if j, dup := keys[k.Key]; dup {
			d.failAt(p+".key", "the same key is also apiKeys[%d]", j)
		}
		keys[k.Key] = i
		if len(k.Operations) == 0 {
			d.failAt(p+".operations", "list the operations this key may use: %s", strings.Join(Operations, ", "))
		}
		for j, op := range k.Operations {
			if !contains(Operations, op) {
				d.failAt(fmt.Sprintf("%s.operations[%d]", p, j), "unknown operation %q (known: %s)", op, strings.Join(Operations, ", "))
			}
		}
	}
}

func (d *decoder) validateSMTP(s SMTP, publicURL string) {
	switch {
	case s.DevMailbox && s.Host != "":
		d.failAt("smtp.devMailbox", "cannot be used with smtp.host: mail either goes to the SMTP server or stays in the development mailbox")
	case s.DevMailbox && !isLocalHTTP(publicURL):
		d.failAt("smtp.devMailbox", "is for development only: it shows every sign-in link to anyone who can open it, so it needs a server.publicURL of http://localhost, http://127.0.0.1 or http://[::1] (set smtp.host instead)")
	case !s.DevMailbox && s.Host == "":
		d.failAt("smtp.host", "must be set: mail would go nowhere (for development on this machine, set smtp.devMailbox: true instead)")
	}
	switch s.TLS {
	case "none", "starttls", "tls":
	default:
		d.failAt("smtp.tls", "must be none, starttls or tls")
	}
	if s.Port < 1 || s.Port > 65535 {
		d.failAt("smtp.port", "must be a port number")
	}
	if s.Host != "" || s.From != "" {
		if _, err := mail.ParseAddress(s.From); err != nil {
			d.failAt("smtp.from", "must be an address like \"Demo <no-reply@example.com>\"")
		}
	}
}

func (d *decoder) validateClients(c *Config) {
	if len(c.Clients) == 0 {
		d.failAt("clients", "at least one client is needed")
	}
	seen := map[string]int{}
	for i, cl := range c.Clients {
		p := fmt.Sprintf("clients[%d]", i)
		if cl.ClientID == "" {
			d.failAt(p+".clientId", "must not be empty")
		} else if j, dup := seen[cl.ClientID]; dup {
			d.failAt(p+".clientId", "duplicate client %q (also clients[%d])", cl.ClientID, j)
		}
		seen[cl.ClientID] = i
		if cl.BaseURL != "" {
			if msg := CheckRedirectURI(cl.BaseURL); msg != "" {
				d.failAt(p+".baseUrl", "%s", msg)
			}
		}
		if cl.Branding != nil {
			if cl.Branding.ThemeDir != "" {
				d.failAt(p+".branding.themeDir", "is realm-wide: set branding.themeDir")
			}
			d.validateBranding(p+".branding", *cl.Branding, c.Branding.ThemeDir)
		}
		// A service-account-only client (client_credentials) has no redirects.
		if len(cl.RedirectURIs) == 0 && !cl.ServiceAccountsEnabled {
			d.failAt(p+".redirectUris", "at least one redirect URI is needed (none only for a serviceAccountsEnabled client that logs in with client_credentials)")
		}
		for j, u := range cl.RedirectURIs {
			if msg := CheckRedirectURI(u); msg != "" {
				d.failAt(fmt.Sprintf("%s.redirectUris[%d]", p, j), "%s", msg)
			}
		}
		for j, u := range cl.PostLogoutRedirectURIs {
			if msg := CheckRedirectURI(u); msg != "" {
				d.failAt(fmt.Sprintf("%s.postLogoutRedirectUris[%d]", p, j), "%s", msg)
			}
		}
		if len(cl.Scopes) == 0 {
			c.Clients[i].Scopes = []string{"openid", "email", "profile", "offline_access"}
		}
		if !contains(c.Clients[i].Scopes, "openid") {
			d.failAt(p+".scopes", "must include openid")
		}
		if a := cl.IDTokenSignedResponseAlg; a != "" && a != "RS256" && a != c.Tokens.SigningAlgorithm {
			d.failAt(p+".idTokenSignedResponseAlg", "must be RS256 or the realm's tokens.signingAlgorithm (%s)", c.Tokens.SigningAlgorithm)
		}
		if u := cl.BackchannelLogoutURL; u != "" {
			if msg := CheckRedirectURI(u); msg != "" {
				d.failAt(p+".backchannelLogoutUrl", "%s", msg)
			}
		}
		for j, o := range cl.WebOrigins {
			if o == "+" {
				continue
			}
			if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
				d.failAt(fmt.Sprintf("%s.webOrigins[%d]", p, j), "must be an origin like https://app.example.com, or + for the origins of the redirect URIs")
			}
		}
		if cl.DefaultScopes == nil {
			c.Clients[i].DefaultScopes = []string{"profile", "email", "roles", "web-origins", "acr"}
		}
		if cl.OptionalScopes == nil {
			c.Clients[i].OptionalScopes = []string{"offline_access", "groups", "address", "phone"}
		}
		for _, list := range []struct {
			key    string
			scopes []string
		}{{"scopes", cl.Scopes}, {"defaultScopes", cl.DefaultScopes}, {"optionalScopes", cl.OptionalScopes}} {
			for j, sc := range list.scopes {
				if sc == "" || strings.ContainsAny(sc, " \t\"\\") {
					d.failAt(fmt.Sprintf("%s.%s[%d]", p, list.key, j), "must be a scope name without spaces or quotes")
				}
			}
		}
	}
}

func (d *decoder) validateEvents(e Events) {
	if e.Expiration.D() < time.Hour {
		d.failAt("events.expiration", "must be at least 1h (like 30d)")
	}
	if len(e.Webhooks) > 0 && !e.On() {
		d.failAt("events.enabled", "webhooks need events: remove events.enabled: false or the webhooks")
	}
	for i, w := range e.Webhooks {
		p := fmt.Sprintf("events.webhooks[%d]", i)
		if u, err := url.Parse(w.URL); err != nil || u.Host == "" || u.User != nil ||
			!(u.Scheme == "https" || (u.Scheme == "http" && isLoopbackHost(u.Hostname()))) {
			d.failAt(p+".url", "must be an https URL (plain http only to a loopback address)")
		}
		if raw, ok := strings.CutPrefix(w.Secret, "whsec_"); !ok {
			d.failAt(p+".secret", "must be a Standard Webhooks secret: whsec_ and base64 of 24 to 64 random bytes (from the environment)")
		} else if b, err := base64.StdEncoding.DecodeString(raw); err != nil || len(b) < 24 || len(b) > 64 {
			d.failAt(p+".secret", "must be whsec_ and base64 of 24 to 64 random bytes (openssl rand -base64 32)")
		}
		for j, t := range w.Types {
			if !slices.Contains(EventTypes, t) {
				d.failAt(fmt.Sprintf("%s.types[%d]", p, j), "unknown event type %q (known: %s)", t, strings.Join(EventTypes, ", "))
			}
		}
	}
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.IsLoopback()
}

// CheckRedirectURI returns why u cannot be a registered redirect URI, or "".
// Only https is allowed, and http for loopback hosts (development), because
// fosite would otherwise accept schemes such as javascript:.
func CheckRedirectURI(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return "must be an absolute URL"
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return "must not contain a fragment"
	}
	switch u.Scheme {
	case "https":
	case "http":
		h := u.Hostname()
		if h != "localhost" && !strings.HasSuffix(h, ".localhost") && !isLoopback(h) {
			return "must use https (http is allowed only for localhost)"
		}
	default:
		return "must use https (http is allowed only for localhost)"
	}
	if strings.Contains(u.Path, "*") || strings.Contains(u.Host, "*") {
		return "must not contain wildcards (redirect URIs are matched exactly)"
	}
	return ""
}

// isLocalHTTP reports whether u is a plain-http URL of this machine.
func isLocalHTTP(u string) bool {
	p, err := url.Parse(u)
	if err != nil || p.Scheme != "http" {
		return false
	}
	h := p.Hostname()
	return h == "localhost" || h == "127.0.0.1" || h == "::1"
}

func isLoopback(h string) bool {
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (d *decoder) validateUsers(c *Config, actions []string) {
	seen := map[string]int{}
	for i, u := range c.Users {
		p := fmt.Sprintf("users[%d]", i)
		email, err := flows.ParseEmail(u.Email)
		if err != nil {
			d.failAt(p+".email", "must be a valid email address")
			continue
		}
		if j, dup := seen[email]; dup {
			d.failAt(p+".email", "duplicate user (also users[%d])", j)
		}
		seen[email] = i
		c.Users[i].Email = email
		for j, a := range u.RequiredActions {
			if !contains(actions, a) {
				d.failAt(fmt.Sprintf("%s.requiredActions[%d]", p, j), "unknown required action %q (known: %s)", a, strings.Join(actions, ", "))
			}
		}
		if u.Locale != nil {
			if l, ok := c.SupportedLocale(*u.Locale); !ok {
				d.failAt(p+".locale", "must be one of i18n.supportedLocales (%s)", strings.Join(c.I18n.SupportedLocales, ", "))
			} else {
				*c.Users[i].Locale = l
			}
		}
		if h := u.PasswordHash; h != "" && !strings.HasPrefix(h, "$2a$") && !strings.HasPrefix(h, "$2b$") && !strings.HasPrefix(h, "$2y$") {
			d.failAt(p+".passwordHash", "must be a bcrypt hash ($2b$...); create one with `latchkey users hash-password`")
		}
	}
}

// validateRoles checks every role, client and group a mapping names, and
// builds the users' effective mappings.
func (d *decoder) validateRoles(c *Config) {
	realm := map[string]bool{}
	for i, r := range c.Roles {
		if r == "" || realm[r] {
			d.failAt(fmt.Sprintf("roles[%d]", i), "must be a unique, non-empty role name")
		}
		realm[r] = true
	}
	clientRoles := map[string]map[string]bool{RealmManagementClient: {}}
	for _, r := range RealmManagementRoles {
		clientRoles[RealmManagementClient][r] = true
	}
	for i, cl := range c.Clients {
		if cl.ClientID == RealmManagementClient {
			d.failAt(fmt.Sprintf("clients[%d].clientId", i), "%s is built in", RealmManagementClient)
		}
		set := map[string]bool{}
		for j, r := range cl.Roles {
			if r == "" || set[r] {
				d.failAt(fmt.Sprintf("clients[%d].roles[%d]", i, j), "must be a unique, non-empty role name")
			}
			set[r] = true
		}
		clientRoles[cl.ClientID] = set
	}
	checkRealm := func(path string, roles []string) {
		for i, r := range roles {
			if !realm[r] {
				d.failAt(fmt.Sprintf("%s[%d]", path, i), "unknown realm role %q (declare it under roles)", r)
			}
		}
	}
	checkClients := func(path string, m map[string][]string) {
		for client, roles := range m {
			set, ok := clientRoles[client]
			if !ok {
				d.failAt(path+"."+client, "unknown client %q", client)
				continue
			}
			for i, r := range roles {
				if !set[r] {
					d.failAt(fmt.Sprintf("%s.%s[%d]", path, client, i), "unknown role %q of client %s", r, client)
				}
			}
		}
	}
	checkRealm("defaultRoles", c.DefaultRoles)
	for i, cl := range c.Clients {
		if sa := cl.ServiceAccount; sa != nil {
			p := fmt.Sprintf("clients[%d].serviceAccount", i)
			checkRealm(p+".roles", sa.Roles)
			checkClients(p+".clientRoles", sa.ClientRoles)
		}
	}
	groups := map[string]Group{} // by path, with the roles of its ancestors merged in
	var walk func(path string, parent Group, gs []Group, base string)
	walk = func(path string, parent Group, gs []Group, base string) {
		seen := map[string]bool{}
		for i, g := range gs {
			p := fmt.Sprintf("%s[%d]", path, i)
			if g.Name == "" || strings.Contains(g.Name, "/") || seen[g.Name] {
				d.failAt(p+".name", "must be a unique, non-empty group name without /")
			}
			seen[g.Name] = true
			checkRealm(p+".roles", g.Roles)
			checkClients(p+".clientRoles", g.ClientRoles)
			merged := Group{Roles: append(slices.Clone(parent.Roles), g.Roles...), ClientRoles: mergeClientRoles(parent.ClientRoles, g.ClientRoles)}
			groups[base+"/"+g.Name] = merged
			walk(p+".subGroups", merged, g.SubGroups, base+"/"+g.Name)
		}
	}
	walk("groups", Group{}, c.Groups, "")
	c.roleMap = map[string]RoleMapping{}
	for i, u := range c.Users {
		p := fmt.Sprintf("users[%d]", i)
		checkRealm(p+".roles", u.Roles)
		checkClients(p+".clientRoles", u.ClientRoles)
		m := RoleMapping{Realm: append(slices.Clone(c.DefaultRoles), u.Roles...), Clients: mergeClientRoles(nil, u.ClientRoles), Groups: u.Groups}
		for j, gp := range u.Groups {
			g, ok := groups[gp]
			if !ok {
				d.failAt(fmt.Sprintf("%s.groups[%d]", p, j), "unknown group %q (a path like /team/eng)", gp)
				continue
			}
			m.Realm = append(m.Realm, g.Roles...)
			m.Clients = mergeClientRoles(m.Clients, g.ClientRoles)
		}
		m.Realm = dedupe(m.Realm)
		c.roleMap[u.Email] = m
	}
}

func mergeClientRoles(a, b map[string][]string) map[string][]string {
	out := map[string][]string{}
	for _, m := range []map[string][]string{a, b} {
		for client, roles := range m {
			out[client] = dedupe(append(out[client], roles...))
		}
	}
	return out
}

func dedupe(xs []string) []string {
	var out []string
	for _, x := range xs {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}
