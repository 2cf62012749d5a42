package i18n

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"latchkey/flows"
)

func catalog(t *testing.T, def string, supported []string, theme ...File) (*Catalog, error) {
	t.Helper()
	builtin := []File{
		{Name: "core.en.json", Data: []byte(`{"hi": "Hello {{.Name}}", "bye": "Bye"}`)},
		{Name: "core.de.json", Data: []byte(`{"hi": "Hallo {{.Name}}", "bye": "Tschüss"}`)},
		{Name: "core.fr.json", Data: []byte(`{"hi": "Bonjour {{.Name}}"}`)},
	}
	return New(def, supported, builtin, theme)
}

func TestMatchPicksTheClosestSupportedLocale(t *testing.T) {
	c, err := catalog(t, "en", []string{"en", "de", "fr"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		prefs []string
		want  string
		ok    bool
	}{
		{[]string{"de-CH"}, "de", true},
		{[]string{"it fr"}, "fr", true}, // ui_locales: space-separated, in order
		{[]string{"it;q=0.9, fr;q=0.8"}, "fr", true},
		{[]string{"nl"}, "", false},
		{[]string{"", "xx-not-a-tag", "de"}, "de", true},
		{[]string{"en-GB,en;q=0.9"}, "en", true},
	} {
		got, ok := c.Match(tc.prefs...)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Match(%q) = %q, %v; want %q, %v", tc.prefs, got, ok, tc.want, tc.ok)
		}
	}
}

func TestTextFallsBackToEnglishAndSaysSo(t *testing.T) {
	c, err := catalog(t, "en", []string{"en", "de", "fr"})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Text("de", flows.M("hi", "Name", "Ada")); got != "Hallo Ada" {
		t.Fatalf("de: %q", got)
	}
	if got := c.Text("fr", flows.M("bye")); got != "Bye" {
		t.Fatalf("a message French lacks is shown in English, got %q", got)
	}
	if got := c.Text("de", flows.M("nope")); got != "nope" {
		t.Fatalf("an unknown id shows as itself, got %q", got)
	}
	if m := c.Missing(); strings.Join(m, ",") != "de nope,fr bye" {
		t.Fatalf("missing %v", m)
	}
	if got := c.HTML("en", flows.M("hi", "Name", "<b>x</b>")); got != "Hello &lt;b&gt;x&lt;/b&gt;" {
		t.Fatalf("HTML escapes its arguments: %q", got)
	}
}

func TestThemeOverridesSingleMessagesAndCatchesTypos(t *testing.T) {
	c, err := catalog(t, "en", []string{"en", "de"}, File{Name: "theme/mine.de.json", Data: []byte(`{"hi": "Servus {{.Name}}"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Text("de", flows.M("hi", "Name", "Ada")); got != "Servus Ada" {
		t.Fatalf("theme message not applied: %q", got)
	}
	if got := c.Text("de", flows.M("bye")); got != "Tschüss" {
		t.Fatalf("the rest of the built-in catalog is lost: %q", got)
	}
	if _, err := catalog(t, "en", []string{"en"}, File{Name: "theme/mine.de.json", Data: []byte(`{"hii": "x"}`)}); err == nil || !strings.Contains(err.Error(), "hii: no built-in message has this id") {
		t.Fatalf("a theme message with an unknown id: %v", err)
	}
	if _, err := catalog(t, "en", []string{"en"}, File{Name: "theme/mine.json", Data: []byte(`{"hi": "x"}`)}); err == nil || !strings.Contains(err.Error(), "NAME.LOCALE.json") {
		t.Fatalf("a catalog without a locale in its name: %v", err)
	}
}

func TestLocalesAreChecked(t *testing.T) {
	if _, err := catalog(t, "en", []string{"en", "it"}); err == nil || !strings.Contains(err.Error(), "locale it has no messages") {
		t.Fatalf("a supported locale without messages: %v", err)
	}
	if _, err := catalog(t, "de", []string{"en"}); err == nil || !strings.Contains(err.Error(), "not one of the supported") {
		t.Fatalf("a default that is not supported: %v", err)
	}
	c, err := catalog(t, "de", []string{"en", "de"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Supported()[0] != "de" || c.Locale("xx") != "de" {
		t.Fatalf("the default comes first and stands in for the unsupported: %v", c.Supported())
	}
	if Name("pt-BR") == "pt-BR" || Name("de") != "Deutsch" {
		t.Fatalf("names: %q %q", Name("pt-BR"), Name("de"))
	}
}

// A message is parsed once, yet each locale that renders it (here German,
// through the English fallback) keeps its own duration words.
func TestAParsedMessageSpeaksEachLocalesDurations(t *testing.T) {
	builtin := []File{
		{Name: "core.en.json", Data: []byte(`{"wait": "Try again in {{duration .Wait}}.", "duration.minutes": {"one": "{{.Count}} minute", "other": "{{.Count}} minutes"}}`)},
		{Name: "core.de.json", Data: []byte(`{"duration.minutes": {"one": "{{.Count}} Minute", "other": "{{.Count}} Minuten"}}`)},
	}
	c, err := New("en", []string{"en", "de"}, builtin, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		for _, tc := range []struct{ locale, want string }{
			{"en", "Try again in 15 minutes."},
			{"de", "Try again in 15 Minuten."},
			{"en", "Try again in 1 minute."},
		} {
			wait := 15 * time.Minute
			if strings.HasSuffix(tc.want, "1 minute.") {
				wait = time.Minute
			}
			if got := c.Text(tc.locale, flows.M("wait", "Wait", wait)); got != tc.want {
				t.Fatalf("%s: %q, want %q", tc.locale, got, tc.want)
			}
		}
	}
}

func BenchmarkTextWithArguments(b *testing.B) {
	c, err := New("en", []string{"en"}, []File{{Name: "core.en.json", Data: []byte(`{"hi": "Hello {{.Name}}, {{duration .Wait}}", "duration.minutes": {"one": "{{.Count}} minute", "other": "{{.Count}} minutes"}}`)}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	m := flows.M("hi", "Name", "Ada", "Wait", 15*time.Minute)
	for b.Loop() {
		c.Text("en", m)
	}
}

// Messages rendered without go-i18n (simple.go) read exactly as go-i18n
// renders them, for every message of every shipped catalog, and those it
// cannot print exactly are left to go-i18n.
func TestSimpleMessagesRenderAsGoI18n(t *testing.T) {
	var files []File
	for _, pattern := range []string{"../../templates/*.json", "../../authenticators/*/templates/*.json"} {
		names, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			data, err := os.ReadFile(n)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, File{Name: filepath.Base(n), Data: data})
		}
	}
	c, err := New("en", Shipped, files, nil)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, l := range c.Supported() {
		for id, s := range c.simple[l] {
			for _, value := range []any{`<b>"Ann" & 'Bob'</b>`, 7} {
				args := map[string]any{}
				for _, seg := range s {
					switch {
					case seg.fn != "":
						args[seg.arg] = 90 * time.Minute
					case seg.arg == "Count": // a plural count: go-i18n's path either way
						args[seg.arg] = 7
					case seg.arg != "":
						args[seg.arg] = value
					}
				}
				if len(args) == 0 {
					args["Unused"] = value
				}
				want, err := c.localize(l, id, args)
				if err != nil {
					t.Fatalf("%s %s: %v", l, id, err)
				}
				if got := c.Text(l, flows.Msg{ID: id, Args: args}); got != want {
					t.Errorf("%s %s: %q, go-i18n renders %q", l, id, got, want)
				}
				checked++
			}
		}
	}
	if len(c.simple["de"]["mail.login.lifetime"]) != 3 || len(c.simple["en"]["confirm.opened"]) != 3 {
		t.Errorf("messages with an argument are not simple: %v %v", c.simple["de"]["mail.login.lifetime"], c.simple["en"]["confirm.opened"])
	}
	if _, ok := c.simple["en"]["duration.minutes"]; ok {
		t.Error("a message with plural forms is simple")
	}
	t.Logf("%d renderings compared", checked)
}

// What the fast path cannot print exactly goes to go-i18n: an argument it
// does not know the printing of, one missing, a Count.
func TestSimpleMessagesLeaveTheRestToGoI18n(t *testing.T) {
	c, err := New("en", []string{"en"}, []File{{Name: "core.en.json", Data: []byte(`{
		"hi": "Hello {{.Name}}",
		"wait": "Wait {{duration .Wait}}",
		"n": "{{.Count}} left",
		"cond": "{{if .Name}}yes{{end}}",
		"minutes": "{{.Wait}}",
		"duration.minutes": {"one": "{{.Count}} minute", "other": "{{.Count}} minutes"}}`)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		m    flows.Msg
		want string
	}{
		{flows.M("hi", "Name", 1.5), "Hello 1.5"},
		{flows.M("hi", "Other", "x"), "Hello <no value>"},
		{flows.M("wait", "Wait", "soon"), "wait"}, // go-i18n fails: the id, as ever
		{flows.M("n", "Count", 1), "1 left"},
		{flows.M("cond", "Name", "a"), "yes"},
		{flows.M("minutes", "Wait", 2*time.Minute), "2m0s"},
		{flows.M("wait", "Wait", 2*time.Minute), "Wait 2 minutes"},
	} {
		if got := c.Text("en", tc.m); got != tc.want {
			t.Errorf("%s %v: %q, want %q", tc.m.ID, tc.m.Args, got, tc.want)
		}
	}
	if _, ok := c.simple["en"]["cond"]; ok {
		t.Error("a condition is simple")
	}
}
