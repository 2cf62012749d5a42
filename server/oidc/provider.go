// Package oidc is Latchkey's OpenID Connect provider: fosite composed with
// the handlers Latchkey enables, at Keycloak's paths, plus discovery, JWKS
// and userinfo. The hosted login (package login) decides who the user is;
// this package turns that into codes and tokens.
package oidc

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/handler/pkce"
	fositestorage "github.com/ory/fosite/storage"
	"github.com/ory/fosite/token/jwt"

	"latchkey/flows"
	"latchkey/server/config"
	"latchkey/server/events"
	"latchkey/server/store"
)

// Store is what the provider needs from storage: the storage of the fosite
// handlers New composes (compose type-asserts each one and panics on a
// missing method, so New is the test), how to resolve a stored request's
// client, and the user behind a session for userinfo and refreshed claims.
type Store interface {
	oauth2.CoreStorage
	// Transactional makes fosite's multi-step writes atomic: redeeming a
	// code (spend it, store its tokens) and rotating a refresh token.
	fositestorage.Transactional
	oauth2.TokenRevocationStorage
	openid.OpenIDConnectRequestStorage
	pkce.PKCERequestStorage
	ClientAssertionJWTValid(ctx context.Context, jti string) error
	SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error
	SetClients(lookup store.ClientLookup)
	UserByID(ctx context.Context, id string) (*flows.User, error)
}

// Provider serves the realm's OIDC endpoints.
type Provider struct {
	cfg     *config.Config
	store   Store
	Keys    *KeySet
	oauth2  fosite.OAuth2Provider
	clients map[string]*fosite.DefaultResponseModeClient
	log     *slog.Logger
	// discovery is the encoded discovery document, built on first use.
	discovery func() []byte
	// Events records the token endpoint's events; nil: none.
	Events EventRecorder
	// jwtAccessTokens: access tokens are signed JWTs (tokens.accessTokenFormat).
	jwtAccessTokens bool
}

// New composes fosite over the store. hmacSecret (32+ bytes, the same on
// every node) signs opaque tokens; refreshKey (32 bytes, the same on every
// node) signs refresh tokens.
func New(cfg *config.Config, st Store, keys *KeySet, hmacSecret, refreshKey []byte, log *slog.Logger) *Provider {
	p := &Provider{cfg: cfg, store: st, Keys: keys, clients: map[string]*fosite.DefaultResponseModeClient{}, log: log,
		jwtAccessTokens: cfg.Tokens.AccessTokenFormat == "jwt"}
	p.discovery = sync.OnceValue(p.discoveryDocument)
	for _, c := range cfg.Clients {
		dc := &fosite.DefaultClient{
			ID:            c.ClientID,
			RedirectURIs:  c.RedirectURIs,
			GrantTypes:    grantTypes(c),
			ResponseTypes: []string{"code"},
			Scopes:        c.AllowedScopes(),
			Public:        c.Public(),
			Audience:      []string{c.ClientID}, // JWT access tokens name their client
		}
		if !c.Public() {
			sum := sha256.Sum256([]byte(c.Secret))
			dc.Secret = sum[:]
		}
		// Every client may ask for any response mode, as with Keycloak
		// (keycloak-js uses fragment by default).
		p.clients[c.ClientID] = &fosite.DefaultResponseModeClient{DefaultClient: dc, ResponseModes: []fosite.ResponseModeType{
			fosite.ResponseModeDefault, fosite.ResponseModeQuery, fosite.ResponseModeFragment, fosite.ResponseModeFormPost}}
	}
	st.SetClients(p.GetClient)

	fc := &fosite.Config{
		IDTokenIssuer:                  cfg.Issuer(),
		AccessTokenIssuer:              cfg.Issuer(),
		AccessTokenLifespan:            cfg.Tokens.AccessTokenTTL.D(),
		IDTokenLifespan:                cfg.Tokens.IDTokenTTL.D(),
		RefreshTokenLifespan:           cfg.Tokens.RefreshTokenTTL.D(),
		AuthorizeCodeLifespan:          cfg.Tokens.AuthorizationCodeTTL.D(),
		GlobalSecret:                   hmacSecret,
		EnforcePKCEForPublicClients:    true,
		EnablePKCEPlainChallengeMethod: false,
		RedirectSecureChecker:          fosite.IsRedirectURISecureStrict,
		// Refresh tokens with every code, as Keycloak issues them (keycloak-js
		// refreshes with scope=openid); rotation and reuse detection hold.
		RefreshTokenScopes:         []string{},
		ScopeStrategy:              fosite.ExactScopeStrategy,
		SendDebugMessagesToClients: false,
		ClientSecretsHasher:        sha256Hasher{},
		TokenURL:                   cfg.Issuer() + "/protocol/openid-connect/token",
		// Keycloak's apps send short nonce and state values; OIDC asks for
		// none of this entropy (a missing state is handled in ParseAuthorize).
		MinParameterEntropy:  1,
		FormPostHTMLTemplate: formPostTemplate(cfg.Issuer()),
		// What a code's record keeps of the authorization request's form:
		// fosite's own (code, redirect_uri) and the PKCE challenge, which the
		// code's record holds instead of a record of its own (records.go).
		SanitationWhiteList: []string{"code", "redirect_uri", "code_challenge", "code_challenge_method"},
	}
	var core oauth2.CoreStrategy = compose.NewOAuth2HMACStrategy(fc)
	if p.jwtAccessTokens {
		// Access tokens as JWTs signed like ID tokens; codes and refresh
		// tokens stay HMAC; every token still has its row, so revocation
		// and logout end JWT access tokens for introspection and userinfo.
		fc.JWTScopeClaimKey = jwt.JWTScopeFieldString
		core = recordedAccessTokens{&oauth2.DefaultJWTStrategy{
			Signer:          accessTokenSigner{DefaultSigner: &jwt.DefaultSigner{GetPrivateKey: keys.PrivateKey}, keys: keys},
			HMACSHAStrategy: core, Config: fc,
		}}
	}
	core = refreshJWT{CoreStrategy: core, key: refreshKey, issuer: cfg.Issuer()}
	strategy := &compose.CommonStrategy{
		CoreStrategy:               core,
		OpenIDConnectTokenStrategy: idTokens{compose.NewOpenIDConnectStrategy(keys.IDTokenKey, fc)},
		Signer:                     &jwt.DefaultSigner{GetPrivateKey: keys.PrivateKey},
	}
	p.oauth2 = compose.Compose(fc, &fositeStorage{Store: recordingStorage{st}, p: p}, strategy,
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OpenIDConnectExplicitFactory,
		compose.OpenIDConnectRefreshFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2TokenRevocationFactory,
		compose.OAuth2PKCEFactory,
	)
	return p
}

// fositeStorage adds client lookup to the store for fosite.
type fositeStorage struct {
	Store
	p *Provider
}

// Commit records the token request's success event (see issuedEvent) in
// the transaction that stores its tokens; if it cannot be recorded, no
// tokens are issued.
func (f *fositeStorage) Commit(ctx context.Context) error {
	if issued, ok := ctx.Value(issuedEventKey{}).(*issuedEvent); ok && !issued.recorded {
		if err := f.p.Events.Record(ctx, *issued.event); err != nil {
			return errors.Join(fmt.Errorf("record %s: %w", issued.event.Type, err), f.Store.Rollback(ctx))
		}
		issued.recorded = true
	}
	return f.Store.Commit(ctx)
}

func (f *fositeStorage) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	return f.p.GetClient(ctx, id)
}

// GetClient resolves a client from realm.yaml.
func (p *Provider) GetClient(_ context.Context, id string) (fosite.Client, error) {
	c, ok := p.clients[id]
	if !ok {
		return nil, fosite.ErrNotFound
	}
	return c, nil
}

// sha256Hasher compares client secrets in constant time. The secrets come
// from realm.yaml (high-entropy, operator-chosen), so a fast hash is enough
// and keeps bcrypt's ~50ms off every token request.
type sha256Hasher struct{}

func (sha256Hasher) Hash(_ context.Context, data []byte) ([]byte, error) {
	sum := sha256.Sum256(data)
	return sum[:], nil
}

func (sha256Hasher) Compare(_ context.Context, hash, data []byte) error {
	sum := sha256.Sum256(data)
	if subtle.ConstantTimeCompare(hash, sum[:]) != 1 {
		return errors.New("client secret mismatch")
	}
	return nil
}

// ErrUnregisteredRedirect is returned by ParseAuthorize when redirect_uri is
// not registered exactly: the error must be shown, never redirected to.
var ErrUnregisteredRedirect = errors.New("redirect_uri is not registered for this client")

// ParseAuthorize validates an authorization request. Beyond fosite's checks,
// redirect_uri must equal a registered URI byte for byte (fosite would
// accept any port on loopback).
func (p *Provider) ParseAuthorize(ctx context.Context, r *http.Request) (fosite.AuthorizeRequester, error) {
	if err := r.ParseForm(); err != nil {
		return nil, fmt.Errorf("parse authorization request: %w", err)
	}
	if c, ok := p.clients[r.Form.Get("client_id")]; ok {
		if ru := r.Form.Get("redirect_uri"); ru != "" && !slices.Contains(c.RedirectURIs, ru) {
			return nil, ErrUnregisteredRedirect
		}
		// Unknown scopes are ignored (OIDC Core 3.1.2.1), not invalid_scope.
		if sc, ok := r.Form["scope"]; ok && len(sc) == 1 {
			var keep []string
			for _, s := range strings.Fields(sc[0]) {
				if slices.Contains(c.Scopes, s) && !slices.Contains(keep, s) {
					keep = append(keep, s)
				}
			}
			r.Form.Set("scope", strings.Join(keep, " "))
		}
	}
	// fosite insists on a state; OAuth only recommends one. A request
	// without it gets a marker state, which issWriter and the form_post
	// template leave out of the response.
	if r.Form.Get("state") == "" {
		r.Form.Set("state", noStatePrefix+randomMarker())
	}
	// RFC 6749 3.1: parameters MUST NOT be included more than once. A
	// repeated client_id or redirect_uri cannot be trusted to redirect to.
	if dup := Repeated(r.Form); dup != "" {
		err := fosite.ErrInvalidRequest.WithHintf("The %s parameter was sent more than once.", dup)
		if dup == "client_id" || dup == "redirect_uri" {
			return nil, err
		}
		ar, perr := p.oauth2.NewAuthorizeRequest(ctx, r)
		if perr != nil {
			return ar, perr
		}
		return ar, err
	}
	// Request objects are not supported (discovery says so): answered
	// request_not_supported by redirect once the redirect URI is verified.
	var unsupported error
	if r.Form.Has("request") {
		unsupported = fosite.ErrRequestNotSupported
	} else if r.Form.Has("request_uri") {
		unsupported = fosite.ErrRequestURINotSupported
	}
	r.Form.Del("request")
	r.Form.Del("request_uri")
	ar, err := p.oauth2.NewAuthorizeRequest(ctx, r)
	if err != nil {
		return ar, err
	}
	if unsupported != nil {
		return ar, unsupported
	}
	prompts := strings.Fields(r.Form.Get("prompt"))
	if slices.Contains(prompts, "none") && len(prompts) > 1 {
		return ar, fosite.ErrInvalidRequest.WithHint("prompt=none cannot be combined with other prompt values.")
	}
	for _, v := range prompts {
		if !slices.Contains(promptValues, v) {
			return ar, fosite.ErrInvalidRequest.WithHintf("Unknown prompt value %q.", v)
		}
	}
	return ar, nil
}

// promptValues are the OIDC prompt values understood (login and none act;
// consent and select_account need no page of their own here).
var promptValues = []string{"none", "login", "consent", "select_account"}

// Repeated returns the first parameter that appears more than once, or "".
func Repeated(form url.Values) string {
	for k, v := range form {
		if len(v) > 1 {
			return k
		}
	}
	return ""
}

// CanRedirectError reports whether an authorization error may be sent to the
// client's redirect URI; otherwise it is shown on an error page.
func CanRedirectError(ar fosite.AuthorizeRequester) bool {
	return ar != nil && ar.IsRedirectURIValid()
}

// WriteAuthorizeError sends an error to the client's redirect URI, with iss.
func (p *Provider) WriteAuthorizeError(ctx context.Context, w http.ResponseWriter, ar fosite.AuthorizeRequester, err error) {
	p.oauth2.WriteAuthorizeError(ctx, issWriter{w, p.cfg.Issuer()}, ar, err)
}

// issWriter adds the RFC 9207 iss parameter to an authorization response
// sent by redirect (query or fragment): it lets a client that talks to
// several servers tell which one answered (mix-up attacks). form_post
// responses carry it through formPostTemplate.
type issWriter struct {
	http.ResponseWriter
	iss string
}

func (w issWriter) WriteHeader(code int) {
	if loc := w.Header().Get("Location"); loc != "" && code >= 300 && code < 400 {
		if u, err := url.Parse(loc); err == nil {
			if u.Fragment != "" {
				f, _ := url.ParseQuery(u.Fragment)
				dropMarkerState(f)
				f.Set("iss", w.iss)
				u.Fragment, u.RawFragment = "", ""
				loc = u.String() + "#" + f.Encode()
			} else {
				q := u.Query()
				dropMarkerState(q)
				q.Set("iss", w.iss)
				u.RawQuery = q.Encode()
				loc = u.String()
			}
			w.Header().Set("Location", loc)
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

// noStatePrefix starts the state fosite is given when the client sent none.
const noStatePrefix = "latchkey-no-state."

func randomMarker() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func isMarkerState(s string) bool { return strings.HasPrefix(s, noStatePrefix) }

// dropMarkerState removes a state the client never sent.
func dropMarkerState(v url.Values) {
	if isMarkerState(v.Get("state")) {
		v.Del("state")
	}
}

// formPostTemplate is fosite's form_post page with the iss parameter added.
func formPostTemplate(issuer string) *template.Template {
	return template.Must(template.New("form_post").Funcs(template.FuncMap{"issuer": func() string { return issuer }, "marker": isMarkerState}).Parse(`<html>
<head><title>Submit This Form</title></head>
<body onload="javascript:document.forms[0].submit()">
<form method="post" action="{{ .RedirURL }}">
{{ range $key, $value := .Parameters }}{{ if ne $key "iss" }}{{ range $parameter := $value }}{{ if not (and (eq $key "state") (marker $parameter)) }}<input type="hidden" name="{{ $key }}" value="{{ $parameter }}"/>
{{ end }}{{ end }}{{ end }}{{ end }}<input type="hidden" name="iss" value="{{ issuer }}"/>
</form>
</body>
</html>`))
}

// Identity is who logged in, and how.
type Identity struct {
	User        *flows.User
	AuthTime    time.Time
	RequestedAt time.Time
	Methods     []string // amr
	SessionID   string   // sid
}

// Authorize issues the authorization response (the code) for an
// authenticated user; its records join the transaction in ctx, if any.
func (p *Provider) Authorize(ctx context.Context, ar fosite.AuthorizeRequester, id Identity) (fosite.AuthorizeResponder, error) {
	for _, s := range ar.GetRequestedScopes() {
		ar.GrantScope(s)
	}
	if ar.GetRequestedScopes().Has("openid") {
		if c, ok := p.cfg.Client(ar.GetClient().GetID()); ok {
			for _, s := range c.DefaultScopes {
				if !slices.Contains(unlistedScopes, s) {
					ar.GrantScope(s)
				}
			}
		}
	}
	ar.GrantAudience(ar.GetClient().GetID()) // the aud of JWT access tokens
	sess := p.session(ar.GetClient().GetID(), ar.GetGrantedScopes(), id)
	// The code's session carries what the ID token needs of the request
	// (the code's record keeps no copy of its form): the nonce, and acr "0"
	// (least confidence, as fosite answers) when acr_values were asked for.
	sess.Claims.Nonce = ar.GetRequestForm().Get("nonce")
	if ar.GetRequestForm().Get("acr_values") != "" && sess.Claims.AuthenticationContextClassReference == "" {
		sess.Claims.AuthenticationContextClassReference = "0"
	}
	resp, err := p.oauth2.NewAuthorizeResponse(ctx, ar, sess)
	if err != nil {
		return nil, err
	}
	// Keycloak's response: code, state, session_state (and iss). An extra
	// scope parameter stays in the app's URL, and keycloak-js then sends
	// that URL as post_logout_redirect_uri, which no longer matches.
	resp.GetParameters().Del("scope")
	if id.SessionID != "" {
		resp.AddParameter("session_state", id.SessionID)
	}
	return resp, nil
}

// WriteAuthorize redirects the browser back to the client with the code and iss.
func (p *Provider) WriteAuthorize(ctx context.Context, w http.ResponseWriter, ar fosite.AuthorizeRequester, resp fosite.AuthorizeResponder) {
	p.oauth2.WriteAuthorizeResponse(ctx, issWriter{w, p.cfg.Issuer()}, ar, resp)
}

// session holds the claims of the tokens a grant issues: the ID token's
// and, for JWT access tokens, the access token's (Keycloak's claim set:
// azp, typ, sid and session_state, preferred_username, email, names).
func (p *Provider) session(clientID string, scopes fosite.Arguments, id Identity) *Session {
	u := id.User
	extra := userClaims(u, scopes)
	if scopes.Has("groups") {
		extra["groups"] = nonNil(p.cfg.RolesOf(u.Email).Groups)
	}
	if id.SessionID != "" {
		extra["sid"] = id.SessionID
	}
	s := &Session{DefaultSession: openid.DefaultSession{
		Subject:  u.ID,
		Username: u.Email,
		Claims: &jwt.IDTokenClaims{
			Subject:                         u.ID,
			AuthTime:                        id.AuthTime.UTC().Truncate(time.Second),
			RequestedAt:                     id.RequestedAt.UTC().Truncate(time.Second),
			AuthenticationMethodsReferences: id.Methods,
			Extra:                           extra,
		},
		Headers: &jwt.Headers{Extra: map[string]interface{}{}},
	}}
	if p.jwtAccessTokens {
		s.Access, s.AccessHeader = p.accessClaims(clientID, u, scopes, id.SessionID)
	}
	return s
}

func nonNil(xs []string) []string {
	if xs == nil {
		return []string{}
	}
	return xs
}

// unlistedScopes act as default scopes without appearing in the token's
// scope (Keycloak's "include in token scope: off" for these).
var unlistedScopes = []string{"roles", "web-origins", "acr", "basic"}

// defaultScope reports whether scope is one of the client's default scopes.
func (p *Provider) defaultScope(clientID, scope string) bool {
	c, ok := p.cfg.Client(clientID)
	return ok && slices.Contains(c.DefaultScopes, scope)
}

// grantTypes are a client's grants: the code flow with refresh, and
// client_credentials for a confidential client with serviceAccountsEnabled.
func grantTypes(c config.Client) []string {
	g := []string{"authorization_code", "refresh_token"}
	if c.ServiceAccountsEnabled && !c.Public() {
		g = append(g, "client_credentials")
	}
	return g
}

// ServiceAccountPrefix names a client's own subject, as Keycloak does.
const ServiceAccountPrefix = "service-account-"

// ErrNotServiceAccount: the token is valid but not a service account's.
var ErrNotServiceAccount = errors.New("not a service account's token")

// ServiceAccount checks a bearer access token (signature, expiry and
// revocation, as introspection does) and returns the client whose service
// account it was issued to, with the roles that account holds now of
// clientRoles's client (realm.yaml as loaded, so a role taken away stops
// working at once, not when the token expires).
func (p *Provider) ServiceAccount(ctx context.Context, token, rolesOf string) (string, []string, error) {
	sess := NewSession()
	use, ar, err := p.oauth2.IntrospectToken(ctx, token, fosite.AccessToken, sess)
	if err != nil {
		return "", nil, fmt.Errorf("access token: %w", err)
	}
	if use != fosite.AccessToken {
		return "", nil, errors.New("not an access token")
	}
	clientID := ar.GetClient().GetID()
	c, ok := p.cfg.Client(clientID)
	if !ok || !c.ServiceAccountsEnabled || sess.Subject != p.serviceAccountSubject(clientID) {
		return "", nil, ErrNotServiceAccount
	}
	var roles []string
	if c.ServiceAccount != nil {
		roles = c.ServiceAccount.ClientRoles[rolesOf]
	}
	return clientID, roles, nil
}

// serviceAccountSubject is a client's service-account user: a stable UUID
// per client, as Keycloak's service-account users have.
func (p *Provider) serviceAccountSubject(clientID string) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte(p.cfg.Issuer()+"#"+ServiceAccountPrefix+clientID)).String()
}

// serviceAccountClaims makes a client_credentials grant's session: the
// client's service-account subject with its roles and the default roles.
func (p *Provider) serviceAccountClaims(ar fosite.AccessRequester) {
	sess, ok := ar.GetSession().(*Session)
	if !ok {
		return
	}
	clientID := ar.GetClient().GetID()
	sub := p.serviceAccountSubject(clientID)
	name := ServiceAccountPrefix + clientID
	sess.Subject, sess.Username = sub, name
	ar.GrantAudience(clientID)
	if !p.jwtAccessTokens {
		return
	}
	c, _ := p.cfg.Client(clientID)
	roles := config.RoleMapping{Realm: slices.Clone(p.cfg.DefaultRoles)}
	if sa := c.ServiceAccount; sa != nil {
		roles.Realm, roles.Clients = append(roles.Realm, sa.Roles...), sa.ClientRoles
	}
	extra := map[string]any{"azp": clientID, "client_id": clientID, "typ": "Bearer", "preferred_username": name}
	addRoleClaims(extra, roles)
	sess.Access = &jwt.JWTClaims{Subject: sub, Extra: extra, ScopeField: jwt.JWTScopeFieldString}
	sess.AccessHeader = &jwt.Headers{Extra: map[string]interface{}{"typ": "at+jwt"}}
}

// addRoleClaims writes Keycloak's role claims: realm_access.roles, and
// resource_access.{clientId}.roles for every client with roles.
func addRoleClaims(extra map[string]any, roles config.RoleMapping) {
	extra["realm_access"] = map[string]any{"roles": nonNil(roles.Realm)}
	access := map[string]any{}
	for client, rs := range roles.Clients {
		if len(rs) > 0 {
			access[client] = map[string]any{"roles": rs}
		}
	}
	if len(access) > 0 {
		extra["resource_access"] = access
	}
}

// userClaims are the user's claims the granted scopes allow.
func userClaims(u *flows.User, scopes fosite.Arguments) map[string]interface{} {
	extra := map[string]interface{}{}
	if scopes.Has("email") {
		extra["email"] = u.Email
		extra["email_verified"] = u.EmailVerified
	}
	if scopes.Has("profile") {
		extra["name"] = u.Name()
		extra["preferred_username"] = u.Email
		if u.FirstName != "" {
			extra["given_name"] = u.FirstName
		}
		if u.LastName != "" {
			extra["family_name"] = u.LastName
		}
		if u.Locale != "" {
			extra["locale"] = u.Locale // OIDC Core 5.1, the profile scope's
		}
	}
	return extra
}

// accessClaims are a JWT access token's claims beyond those fosite sets
// (iss, aud, exp, iat, jti, scope): RFC 9068's client_id and sub, and
// Keycloak's azp, typ, sid, session_state, preferred_username, email and
// names. The header's typ is at+jwt (RFC 9068 2.1).
func (p *Provider) accessClaims(clientID string, u *flows.User, scopes fosite.Arguments, sid string) (*jwt.JWTClaims, *jwt.Headers) {
	extra := userClaims(u, scopes)
	extra["azp"], extra["client_id"], extra["typ"] = clientID, clientID, "Bearer"
	roles := p.cfg.RolesOf(u.Email)
	if scopes.Has("roles") || p.defaultScope(clientID, "roles") {
		addRoleClaims(extra, roles)
	}
	if scopes.Has("groups") {
		extra["groups"] = nonNil(roles.Groups)
	}
	extra["preferred_username"] = u.Email
	if sid != "" {
		extra["sid"], extra["session_state"] = sid, sid
	}
	return &jwt.JWTClaims{Subject: u.ID, Extra: extra, ScopeField: jwt.JWTScopeFieldString},
		&jwt.Headers{Extra: map[string]interface{}{"typ": "at+jwt"}}
}

// Token is the token endpoint.
func (p *Provider) Token(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := r.ParseForm(); err == nil {
		if dup := Repeated(r.Form); dup != "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request",
				"error_description": "The " + dup + " parameter was sent more than once."})
			return
		}
	}
	ctx = withCodeRead(ctx)
	ar, err := p.oauth2.NewAccessRequest(ctx, r, NewSession())
	if err != nil {
		p.logTokenError(r, err)
		p.tokenEvent(ctx, r, ar, err)
		p.oauth2.WriteAccessError(ctx, w, ar, err)
		return
	}
	for _, s := range ar.GetRequestedScopes() {
		ar.GrantScope(s)
	}
	if ar.GetGrantTypes().ExactOne("client_credentials") {
		p.serviceAccountClaims(ar)
	}
	if ar.GetGrantTypes().ExactOne("refresh_token") {
		if err := p.refreshClaims(ctx, ar); err != nil {
			p.logTokenError(r, err)
			p.tokenEvent(ctx, r, ar, err)
			p.oauth2.WriteAccessError(ctx, w, ar, err)
			return
		}
	}
	if c, ok := p.cfg.Client(ar.GetClient().GetID()); ok && c.IDTokenSignedResponseAlg != "" {
		ctx = WithIDTokenAlg(ctx, c.IDTokenSignedResponseAlg)
	}
	issued := &issuedEvent{}
	if e, ok := p.tokenEventOf(r, ar, nil); ok && p.Events != nil {
		issued.event = &e
		ctx = context.WithValue(ctx, issuedEventKey{}, issued)
	}
	resp, err := p.oauth2.NewAccessResponse(ctx, ar)
	if err != nil {
		p.logTokenError(r, err)
		p.tokenEvent(ctx, r, ar, err)
		p.oauth2.WriteAccessError(ctx, w, ar, err)
		return
	}
	if !issued.recorded {
		p.tokenEvent(ctx, r, ar, nil) // a grant fosite writes without a transaction (client_credentials)
	}
	p.oauth2.WriteAccessResponse(ctx, w, ar, resp)
}

// issuedEvent is a token request's success event, recorded by the
// transaction that stores its tokens (fositeStorage.Commit): one commit
// fewer, and no tokens stored without their event.
type issuedEvent struct {
	event    *events.Event
	recorded bool
}

type issuedEventKey struct{}

// EventRecorder records login events (the token endpoint's).
type EventRecorder interface {
	Record(ctx context.Context, e events.Event) error
	Try(ctx context.Context, e events.Event)
}

// tokenEventTypes are Keycloak's event types of the token endpoint.
var tokenEventTypes = map[string]string{
	"authorization_code": "CODE_TO_TOKEN", "refresh_token": "REFRESH_TOKEN", "client_credentials": "CLIENT_LOGIN",
}

// tokenEvent records a token request's outcome (err nil: tokens issued).
func (p *Provider) tokenEvent(ctx context.Context, r *http.Request, ar fosite.AccessRequester, err error) {
	if p.Events == nil {
		return
	}
	if e, ok := p.tokenEventOf(r, ar, err); ok {
		p.Events.Try(ctx, e)
	}
}

// tokenEventOf is the event of a token request's outcome; false for grant
// types without one.
func (p *Provider) tokenEventOf(r *http.Request, ar fosite.AccessRequester, err error) (events.Event, bool) {
	typ, ok := tokenEventTypes[r.PostFormValue("grant_type")]
	if !ok {
		return events.Event{}, false
	}
	e := events.Event{Type: typ}
	if ar != nil && ar.GetClient() != nil {
		e.ClientID = ar.GetClient().GetID()
		if sess, ok := ar.GetSession().(*Session); ok && sess != nil {
			e.UserID, e.SessionID = sess.Subject, sess.SessionRef()
		}
	} else if id, _, ok := r.BasicAuth(); ok {
		e.ClientID, _ = url.QueryUnescape(id)
	} else {
		e.ClientID = r.PostFormValue("client_id")
	}
	if err != nil {
		e.Type += "_ERROR"
		e.Error = fosite.ErrorToRFC6749Error(err).ErrorField
	}
	return e, true
}

// refreshClaims renews the user's claims in a refreshed ID token, and
// refuses refresh for disabled or deleted users.
func (p *Provider) refreshClaims(ctx context.Context, ar fosite.AccessRequester) error {
	sess, ok := ar.GetSession().(*Session)
	if !ok || sess.Claims == nil {
		return nil
	}
	u, err := p.store.UserByID(ctx, sess.Subject)
	if errors.Is(err, flows.ErrUserNotFound) || (err == nil && u.Disabled) {
		return fosite.ErrInvalidGrant.WithHint("The user no longer exists or is disabled.")
	}
	if err != nil {
		return fosite.ErrServerError.WithWrap(err)
	}
	sid, _ := sess.Claims.Extra["sid"].(string)
	fresh := p.session(ar.GetClient().GetID(), ar.GetGrantedScopes(), Identity{User: u, AuthTime: sess.Claims.AuthTime,
		RequestedAt: sess.Claims.RequestedAt, Methods: sess.Claims.AuthenticationMethodsReferences, SessionID: sid})
	sess.Claims.Extra = fresh.Claims.Extra
	sess.Access, sess.AccessHeader = fresh.Access, fresh.AccessHeader
	return nil
}

func (p *Provider) logTokenError(r *http.Request, err error) {
	rfc := fosite.ErrorToRFC6749Error(err)
	p.log.Info("token request refused", "event", "token_error", "error", rfc.ErrorField, "hint", rfc.HintField,
		"debug", rfc.DebugField, "client_id", r.PostFormValue("client_id"), "grant_type", r.PostFormValue("grant_type"))
}

// Revoke is the revocation endpoint (RFC 7009).
func (p *Provider) Revoke(w http.ResponseWriter, r *http.Request) {
	err := p.oauth2.NewRevocationRequest(r.Context(), r)
	p.oauth2.WriteRevocationResponse(r.Context(), w, err)
}

// Introspect is the introspection endpoint (RFC 7662). Only an
// authenticated confidential client may introspect (§2.1): a public
// client's credentials prove nothing, and fosite would otherwise accept any
// live access token as the caller's authorization.
func (p *Provider) Introspect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !p.confidentialCaller(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="`+p.cfg.Realm+`"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client",
			"error_description": "Introspection needs a confidential client's credentials (client_secret_basic or client_secret_post)."})
		return
	}
	ir, err := p.oauth2.NewIntrospectionRequest(ctx, r, NewSession())
	if err != nil {
		p.oauth2.WriteIntrospectionError(ctx, w, err)
		return
	}
	p.oauth2.WriteIntrospectionResponse(ctx, w, ir)
}

// confidentialCaller authenticates the client of an introspection request
// by HTTP Basic (RFC 6749 §2.3.1 form-encoding) or client_secret_post, and
// hands fosite the credentials as Basic, the one form it reads.
func (p *Provider) confidentialCaller(r *http.Request) bool {
	if err := r.ParseForm(); err != nil {
		return false
	}
	id, secret, basic := r.BasicAuth()
	if basic {
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return false
		}
	} else if r.Header.Get("Authorization") == "" {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	c, ok := p.clients[id]
	if !ok || c.IsPublic() || secret == "" || (sha256Hasher{}).Compare(r.Context(), c.GetHashedSecret(), []byte(secret)) != nil {
		return false
	}
	r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	return true
}

// Userinfo returns the claims of the access token's user. The token comes
// in the Authorization header or a form body (RFC 6750 §2.1, §2.2), never
// in the query string (it would reach logs), and must be an access token.
func (p *Provider) Userinfo(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	tok := bearerToken(r)
	if tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token"})
		return
	}
	sess := NewSession()
	use, ar, err := p.oauth2.IntrospectToken(ctx, tok, fosite.AccessToken, sess)
	if err != nil || use != fosite.AccessToken {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token"})
		return
	}
	if !ar.GetGrantedScopes().Has("openid") {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "insufficient_scope"})
		return
	}
	u, err := p.store.UserByID(ctx, sess.Subject)
	if err != nil || u.Disabled {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token"})
		return
	}
	claims := map[string]any{"sub": u.ID}
	for k, v := range userClaims(u, ar.GetGrantedScopes()) {
		claims[k] = v
	}
	if ar.GetGrantedScopes().Has("groups") {
		claims["groups"] = nonNil(p.cfg.RolesOf(u.Email).Groups)
	}
	writeJSON(w, http.StatusOK, claims)
}

// bearerToken reads an access token from the Authorization header, or from
// a form-encoded POST body; the query string is not read.
func bearerToken(r *http.Request) string {
	if auth := r.Header.Get("Authorization"); auth != "" {
		if scheme, tok, ok := strings.Cut(auth, " "); ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	if r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return r.PostFormValue("access_token")
	}
	return ""
}

// Certs is the JWKS endpoint.
func (p *Provider) Certs(w http.ResponseWriter, r *http.Request) {
	doc, err := p.Keys.PublicJSON(r.Context())
	if err != nil {
		p.log.Error("jwks", "err", err)
		http.Error(w, "keys unavailable", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=60")
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(doc)
}

// Discovery is /.well-known/openid-configuration. The document depends on
// realm.yaml only, so it is encoded once.
func (p *Provider) Discovery(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(p.discovery())
}

func (p *Provider) discoveryDocument() []byte {
	iss := p.cfg.Issuer()
	oc := iss + "/protocol/openid-connect"
	scopes := map[string]bool{}
	for _, c := range p.cfg.Clients {
		for _, s := range c.AllowedScopes() {
			scopes[s] = true
		}
	}
	var scopeList []string
	for s := range scopes {
		scopeList = append(scopeList, s)
	}
	slices.Sort(scopeList)
	doc, err := json.Marshal(map[string]any{
		"issuer":                                         iss,
		"authorization_endpoint":                         oc + "/auth",
		"token_endpoint":                                 oc + "/token",
		"userinfo_endpoint":                              oc + "/userinfo",
		"jwks_uri":                                       oc + "/certs",
		"end_session_endpoint":                           oc + "/logout",
		"revocation_endpoint":                            oc + "/revoke",
		"introspection_endpoint":                         oc + "/token/introspect",
		"response_types_supported":                       []string{"code"},
		"response_modes_supported":                       []string{"query", "fragment", "form_post"},
		"grant_types_supported":                          []string{"authorization_code", "refresh_token", "client_credentials"},
		"subject_types_supported":                        []string{"public"},
		"id_token_signing_alg_values_supported":          p.Keys.Algorithms(),
		"scopes_supported":                               scopeList,
		"token_endpoint_auth_methods_supported":          []string{"client_secret_basic", "client_secret_post", "none"},
		"code_challenge_methods_supported":               []string{"S256"},
		"claims_supported":                               []string{"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "amr", "sid", "email", "email_verified", "name", "given_name", "family_name", "locale"},
		"ui_locales_supported":                           p.cfg.I18n.SupportedLocales,
		"prompt_values_supported":                        []string{"none", "login"},
		"claims_parameter_supported":                     false,
		"request_parameter_supported":                    false,
		"request_uri_parameter_supported":                false,
		"authorization_response_iss_parameter_supported": true,
		"frontchannel_logout_supported":                  false,
		"backchannel_logout_supported":                   true,
		"backchannel_logout_session_supported":           true,
	})
	if err != nil {
		panic(err) // strings, bools and slices of them always encode
	}
	return append(doc, '\n')
}

// LogoutToken is an OpenID Back-Channel Logout 1.0 logout token for the
// client: it names the user and the session (sid) that ended.
func (p *Provider) LogoutToken(ctx context.Context, clientID, subject, sid string) (string, error) {
	now := time.Now().UTC()
	signer := &jwt.DefaultSigner{GetPrivateKey: p.Keys.PrivateKey}
	token, _, err := signer.Generate(ctx, jwt.MapClaims{
		"iss": p.cfg.Issuer(), "aud": clientID, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
		"jti": uuid.NewString(), "sub": subject, "sid": sid,
		"events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}},
	}, &jwt.Headers{Extra: map[string]interface{}{"typ": "logout+jwt"}})
	if err != nil {
		return "", fmt.Errorf("sign logout token: %w", err)
	}
	return token, nil
}

// Hint is what an id_token_hint says: the client it was issued to, the
// user, and the SSO session (sid) it came from.
type Hint struct {
	ClientID, Subject, SessionID string
}

// IDTokenHint checks an id_token_hint (signature and issuer; an expired
// token is accepted, as logout usually comes after expiry).
func (p *Provider) IDTokenHint(ctx context.Context, raw string) (Hint, error) {
	tok, err := jwt.Parse(raw, p.Keys.verificationKey(ctx))
	if err != nil && !isOnlyExpired(err) {
		return Hint{}, fmt.Errorf("id_token_hint: %w", err)
	}
	if tok == nil {
		return Hint{}, errors.New("id_token_hint: unparseable")
	}
	claims := tok.Claims
	if iss, _ := claims["iss"].(string); iss != p.cfg.Issuer() {
		return Hint{}, errors.New("id_token_hint: wrong issuer")
	}
	var h Hint
	h.Subject, _ = claims["sub"].(string)
	h.SessionID, _ = claims["sid"].(string)
	switch aud := claims["aud"].(type) {
	case string:
		h.ClientID = aud
	case []interface{}:
		if len(aud) > 0 {
			h.ClientID, _ = aud[0].(string)
		}
	}
	return h, nil
}

func isOnlyExpired(err error) bool {
	var ve *jwt.ValidationError
	return errors.As(err, &ve) && ve.Errors == jwt.ValidationErrorExpired
}

// PostLogoutAllowed reports whether uri is registered for the client.
func (p *Provider) PostLogoutAllowed(clientID, uri string) bool {
	c, ok := p.cfg.Client(clientID)
	return ok && slices.Contains(c.PostLogoutRedirectURIs, uri)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
