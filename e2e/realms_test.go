package e2e

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/url"
	"strings"
	"sync"
	"testing"

	"latchkey/authenticators/password"
	"latchkey/e2e/testkit"
)

// realm is the realm.yaml the end-to-end tests start from; {{BINDING}} and
// {{ML_OPTIONS}} are set per test.
const realm = `realm: test
server:
  listen: {{LISTEN}}
  publicURL: {{PUBLIC}}
database:
  driver: {{DRIVER}}
  dsn: {{DSN}}
smtp:
  host: "{{SMTP_HOST}}"
  devMailbox: {{DEV_MAILBOX}}
  port: {{SMTP_PORT}}
  tls: none
  from: "Test Realm <no-reply@example.com>"
branding:
  displayName: Test Realm
clients:
  - clientId: app
    redirectUris: [{{REDIRECT}}, {{APPLOGIN}}]
    postLogoutRedirectUris: [{{REDIRECT}}/bye]
  - clientId: confidential
    secret: s3cret-for-the-confidential-client
    redirectUris: [{{REDIRECT}}]
flows:
  browser-password:
    - authenticator: cookie
      requirement: ALTERNATIVE
    - flow: forms
      requirement: ALTERNATIVE
      executions:
        - authenticator: username-password-form
          requirement: REQUIRED
  browser-magic-link:
    - authenticator: cookie
      requirement: ALTERNATIVE
    - flow: forms
      requirement: ALTERNATIVE
      executions:
        - authenticator: magic-link
          requirement: REQUIRED
          config:
            alias: magic-link
{{ML_OPTIONS}}
bindings:
  browser: {{BINDING}}
apiKeys:
  - name: backend
    key: test-api-key-0123456789-0123456789-abcdef
    operations: [magic-links:create, magic-links:read, magic-links:revoke]
  - name: reader
    key: reader-api-key-0123456789-0123456789-abcd
    operations: [magic-links:read]
  - name: people
    key: people-api-key-0123456789-0123456789-abcd
    operations: [users:read, users:write, events:read]
users:
  - email: alice@example.com
    firstName: Alice
    lastName: Example
    emailVerified: true
    passwordHash: "{{HASH}}"
  - email: newbie@example.com
    passwordHash: "{{HASH}}"
    requiredActions: [UPDATE_PROFILE]
`

const alicePassword = "correct horse battery staple"

var (
	hashOnce sync.Once
	hash     string
)

// setup is one test's world: SMTP server, app, Latchkey.
type setup struct {
	SMTP *testkit.SMTPServer
	App  *testkit.App
	LK   *testkit.Latchkey
}

type opts struct {
	binding   string            // default browser-password
	mlOptions map[string]string // magic-link options
	noSMTP    bool              // the development sink
	dsn       string
	driver    string
}

func start(t testing.TB, o opts) *setup {
	t.Helper()
	return startDoc(t, realm, o)
}

// startDoc starts a world from a realm.yaml template of the test's own.
func startDoc(t testing.TB, doc string, o opts) *setup {
	t.Helper()
	hashOnce.Do(func() {
		var err error
		if hash, err = password.Hash(alicePassword); err != nil {
			panic(err)
		}
	})
	if o.binding == "" {
		o.binding = "browser-password"
	}
	var ml strings.Builder
	for k, v := range o.mlOptions {
		ml.WriteString("            " + k + ": " + v + "\n")
	}
	doc = strings.NewReplacer("{{BINDING}}", o.binding, "{{ML_OPTIONS}}", strings.TrimRight(ml.String(), "\n"), "{{HASH}}", hash).Replace(doc)
	s := &setup{App: testkit.StartApp(t)}
	doc = strings.ReplaceAll(doc, "{{APPLOGIN}}", s.App.URL+"/login")
	v := testkit.Vars{RedirectURI: s.App.RedirectURI(), DSN: o.dsn, Driver: o.driver}
	if !o.noSMTP {
		s.SMTP = testkit.StartSMTP(t)
		v.SMTPPort = s.SMTP.Port()
	}
	s.LK = testkit.StartLatchkey(t, doc, v)
	s.App.Connect(s.LK.Issuer, "app", "")
	return s
}

// passwordLogin signs in through the password form with a cookie-keeping client.
func (s *setup) passwordLogin(t *testing.T, c *testkit.Client, extra url.Values, email, pw string) *testkit.Page {
	t.Helper()
	p := c.Get(s.App.LoginURL(extra))
	f := p.Form(t, "password")
	return c.Submit(p, f, map[string]string{"email": email, "password": pw})
}

func base64URL(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
