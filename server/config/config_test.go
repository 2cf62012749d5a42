package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"latchkey/flows"
)

// testOptions stands in for the authenticator registry.
var testOptions = Schema{Options: testAuthenticators, RequiredActions: []string{"UPDATE_PROFILE", "VERIFY_EMAIL"}}

func testAuthenticators(id string) ([]flows.Option, bool) {
	switch id {
	case "cookie", "username-password-form":
		return nil, true
	case "magic-link":
		return []flows.Option{
			{Name: "forceCreateUser", Type: flows.Bool, Default: false},
			{Name: "updateProfileOnCreate", Type: flows.Bool, Default: false},
			{Name: "linkTTL", Type: flows.Duration, Default: 15 * time.Minute},
		}, true
	}
	return nil, false
}

func TestDefaultRealmLoads(t *testing.T) {
	cfg, err := Load("../../realm.yaml", testOptions)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Issuer() != "http://localhost:8080/realms/demo" {
		t.Errorf("issuer = %s", cfg.Issuer())
	}
	f := cfg.FlowDefs[cfg.Bindings["browser"]]
	ml := f.Executions[1].Flow.Executions[0]
	if ml.Authenticator != "magic-link" || !ml.Config.Bool("forceCreateUser") || ml.Config.Alias != "magic-link" {
		t.Errorf("magic-link execution = %+v", ml)
	}
	if ml.Config.Duration("linkTTL") != 15*time.Minute {
		t.Errorf("default option not applied: %v", ml.Config.Values)
	}
	if !cfg.Clients[0].Public() {
		t.Error("demo-app without secret must be public")
	}
}

const base = `realm: demo
server:
  publicURL: http://localhost:8080
smtp:
  devMailbox: true
clients:
  - clientId: app
    redirectUris: [http://localhost:3000/cb, "%s"]
flows:
  f:
    - authenticator: %s
      config:
        %s
bindings:
  browser: f
`

func TestErrorsNameLineAndField(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"bad redirect URL", fill(base, "/relative", "cookie", "alias: x"), "realm.yaml:8: clients[0].redirectUris[1]: must be an absolute URL"},
		{"javascript redirect", fill(base, "javascript:alert(1)", "cookie", "alias: x"), "realm.yaml:8: clients[0].redirectUris[1]: must be an absolute URL"},
		{"http non-loopback", fill(base, "http://app.example.com/cb", "cookie", "alias: x"), "clients[0].redirectUris[1]: must use https"},
		{"unknown authenticator", fill(base, "https://a.example/cb", "magic-lnk", "alias: x"), "realm.yaml:11: flows.f[0].authenticator: unknown authenticator \"magic-lnk\""},
		{"unknown option", fill(base, "https://a.example/cb", "magic-link", "forceCreate: true"), "realm.yaml:13: flows.f[0].config.forceCreate: unknown option"},
		{"wrong option type", fill(base, "https://a.example/cb", "magic-link", "forceCreateUser: yes-please"), "realm.yaml:13: flows.f[0].config.forceCreateUser: must be true or false"},
		{"bad duration option", fill(base, "https://a.example/cb", "magic-link", "linkTTL: soon"), "flows.f[0].config.linkTTL: invalid duration"},
		{"unknown key", strings.Replace(fill(base, "https://a.example/cb", "cookie", "alias: x"), "  publicURL", "  publicUrl", 1), "realm.yaml:3: server.publicUrl: unknown key"},
		{"duplicate client", strings.Replace(fill(base, "https://a.example/cb", "cookie", "alias: x"), "flows:", "  - clientId: app\n    redirectUris: [https://b.example/cb]\nflows:", 1), "realm.yaml:9: clients[1].clientId: duplicate client \"app\""},
		{"unset env", strings.Replace(fill(base, "https://a.example/cb", "cookie", "alias: x"), "realm: demo", "realm: ${LATCHKEY_TEST_UNSET_VAR}", 1), "realm.yaml:1: realm: environment variable LATCHKEY_TEST_UNSET_VAR is not set"},
		{"missing binding", strings.Replace(fill(base, "https://a.example/cb", "cookie", "alias: x"), "  browser: f", "  browser: g", 1), "bindings.browser: names unknown flow \"g\""},
		{"conditional authenticator", strings.Replace(fill(base, "https://a.example/cb", "cookie", "alias: x"), "      config:", "      requirement: CONDITIONAL\n      config:", 1), "flows.f[0].requirement: CONDITIONAL applies to sub-flows only"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("realm.yaml", []byte(tc.yaml), testOptions)
			if err == nil {
				t.Fatalf("no error for:\n%s", tc.yaml)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error:\n%v\nwant it to contain:\n%s", err, tc.want)
			}
		})
	}
}

func TestEnvExpansion(t *testing.T) {
	t.Setenv("LATCHKEY_TEST_SECRET", "s3cret-value")
	doc := strings.Replace(fill(base, "https://a.example/cb", "cookie", "alias: x"), "  - clientId: app\n", "  - clientId: app\n    secret: ${LATCHKEY_TEST_SECRET}\n", 1)
	doc = strings.Replace(doc, "realm: demo", "realm: ${LATCHKEY_TEST_REALM:-fallback}", 1)
	cfg, err := Parse("realm.yaml", []byte(doc), testOptions)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Clients[0].Secret != "s3cret-value" || cfg.Realm != "fallback" {
		t.Fatalf("secret=%q realm=%q", cfg.Clients[0].Secret, cfg.Realm)
	}
}

func fill(format string, args ...string) string {
	for _, a := range args {
		format = strings.Replace(format, "%s", a, 1)
	}
	return format
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), testOptions)
	if err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Fatalf("err = %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func FuzzParse(f *testing.F) {
	raw, err := os.ReadFile("../../realm.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(raw))
	f.Add("realm: [")
	f.Fuzz(func(t *testing.T, doc string) {
		cfg, err := Parse("f.yaml", []byte(doc), testOptions)
		if err == nil && (cfg.Realm == "" || len(cfg.Clients) == 0 || cfg.FlowDefs[cfg.Bindings["browser"]] == nil) {
			t.Fatalf("accepted an incomplete config: %+v", cfg)
		}
	})
}

// --listen moves the public URL (issuer, links, the "Log in:" banner) unless
// realm.yaml sets one.
func TestListenMovesADerivedPublicURL(t *testing.T) {
	raw, err := os.ReadFile("../../realm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	parse := func(publicURL string) *Config {
		t.Helper()
		doc := strings.Replace(string(raw), "publicURL: ${LATCHKEY_PUBLIC_URL:-}", publicURL, 1)
		cfg, err := Parse("realm.yaml", []byte(doc), testOptions)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	for _, tc := range []struct{ publicURL, listen, want string }{
		{"publicURL: ${LATCHKEY_TEST_UNSET_URL:-}", "127.0.0.1:9191", "http://localhost:9191"},
		{"# no publicURL", "0.0.0.0:9292", "http://localhost:9292"},
		{"publicURL: http://localhost:8080", "127.0.0.1:9393", "http://localhost:8080"},
	} {
		cfg := parse(tc.publicURL)
		if cfg.Issuer() != "http://localhost:8080/realms/demo" {
			t.Errorf("%s: issuer before --listen %s", tc.publicURL, cfg.Issuer())
		}
		if err := cfg.SetListen(tc.listen); err != nil {
			t.Fatal(err)
		}
		if cfg.Server.PublicURL != tc.want {
			t.Errorf("%s, --listen %s: publicURL %s, want %s", tc.publicURL, tc.listen, cfg.Server.PublicURL, tc.want)
		}
	}
	if err := parse("# none").SetListen("192.0.2.10:8080"); err == nil || !strings.Contains(err.Error(), "devMailbox") {
		t.Errorf("--listen on a LAN address with the development mailbox: %v", err)
	}
}
