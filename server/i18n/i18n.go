// Package i18n holds the realm's message catalogs and picks the locale of
// a request. Catalogs are go-i18n JSON files named NAME.LOCALE.json (the
// core's, each step's, and the theme's, which override single messages).
package i18n

import (
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	texttemplate "text/template"
	"time"
	"unicode"
	"unicode/utf8"

	goi18n "github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/language"
	"golang.org/x/text/language/display"

	"latchkey/flows"
)

// Shipped are the locales every built-in catalog is complete in
// (TestShippedCatalogsAreComplete), the default of i18n.supportedLocales.
var Shipped = []string{"en", "de", "fr", "es", "pt-BR"}

// ErrLocale marks errors in the realm's locales (i18n settings), as
// against errors in catalog files.
var ErrLocale = errors.New("locale")

// File is one catalog file: its name (NAME.LOCALE.json) and content.
type File struct {
	Name string
	Data []byte
}

// Catalog renders message ids in the realm's supported locales.
type Catalog struct {
	def       string
	supported []string
	tags      []language.Tag
	matcher   language.Matcher
	bundle    *goi18n.Bundle
	local     map[string]*goi18n.Localizer
	messages  map[string]map[string]*goi18n.Message // locale -> id -> its message, the theme's over the built-in
	names     map[string]string                     // supported locale -> its name in itself

	mu      sync.Mutex
	missing map[string]bool // "locale id" asked for and not found

	// plain holds the rendered text of messages without arguments by
	// "locale\x00id": a page renders dozens, and go-i18n executes a
	// template for each. A catalog never changes (a reload builds anew).
	plain sync.Map
	// simple holds, by locale and id, the locale's own messages that
	// render without go-i18n (simple.go); written by New only.
	simple map[string]map[string]simpleMessage
	// spans holds rendered durations by spanKey: a login renders the same
	// link lifetime in every mail and page.
	spans sync.Map

	parser localeParser
}

// New loads the built-in catalogs, then the theme's: a theme message
// replaces the built-in one of the same id and locale. A theme message
// whose id nothing has (a typo) and a supported locale without any
// catalog are errors.
func New(defaultLocale string, supported []string, builtin, theme []File) (*Catalog, error) {
	if defaultLocale == "" {
		defaultLocale = "en"
	}
	if len(supported) == 0 {
		supported = []string{defaultLocale}
	}
	c := &Catalog{local: map[string]*goi18n.Localizer{}, messages: map[string]map[string]*goi18n.Message{}, names: map[string]string{}, missing: map[string]bool{},
		simple: map[string]map[string]simpleMessage{}}
	c.parser = localeParser{funcs: c.funcs}
	for _, s := range supported {
		t, err := language.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("%w %q is not a language tag (like en, de or pt-BR)", ErrLocale, s)
		}
		c.tags = append(c.tags, t)
		c.supported = append(c.supported, t.String())
	}
	def, err := language.Parse(defaultLocale)
	if err != nil {
		return nil, fmt.Errorf("default %w %q is not a language tag (like en, de or pt-BR)", ErrLocale, defaultLocale)
	}
	c.def = def.String()
	if !slices.Contains(c.supported, c.def) {
		return nil, fmt.Errorf("default %w %s is not one of the supported locales (%s)", ErrLocale, c.def, strings.Join(c.supported, ", "))
	}
	// The default first: the matcher falls back to its first tag.
	i := slices.Index(c.supported, c.def)
	c.supported[0], c.supported[i] = c.supported[i], c.supported[0]
	c.tags[0], c.tags[i] = c.tags[i], c.tags[0]
	c.matcher = language.NewMatcher(c.tags)

	c.bundle = goi18n.NewBundle(language.English)
	c.bundle.RegisterUnmarshalFunc("json", json.Unmarshal)
	for _, f := range builtin {
		if err := c.add(f, false); err != nil {
			return nil, err
		}
	}
	for _, f := range theme {
		if err := c.add(f, true); err != nil {
			return nil, err
		}
	}
	for _, l := range c.supported {
		if len(c.messages[l]) == 0 {
			return nil, fmt.Errorf("%w %s has no messages: add NAME.%s.json catalogs to the theme's templates folder", ErrLocale, l, l)
		}
		c.local[l] = goi18n.NewLocalizer(c.bundle, l)
		c.names[l] = Name(l)
		c.simple[l] = map[string]simpleMessage{}
		for id, m := range c.messages[l] {
			if s, ok := compileSimple(m); ok {
				c.simple[l][id] = s
			}
		}
	}
	return c, nil
}

func (c *Catalog) add(f File, override bool) error {
	mf, err := goi18n.ParseMessageFileBytes(f.Data, f.Name, map[string]goi18n.UnmarshalFunc{"json": json.Unmarshal})
	if err != nil {
		return fmt.Errorf("messages %s: %w", f.Name, err)
	}
	if mf.Tag == language.Und {
		return fmt.Errorf("messages %s: name it NAME.LOCALE.json (like login.de.json)", f.Name)
	}
	l := mf.Tag.String()
	if override {
		for _, m := range mf.Messages {
			if !c.known(m.ID) {
				return fmt.Errorf("messages %s: %s: no built-in message has this id", f.Name, m.ID)
			}
		}
	}
	if c.messages[l] == nil {
		c.messages[l] = map[string]*goi18n.Message{}
	}
	for _, m := range mf.Messages {
		c.messages[l][m.ID] = m
	}
	return c.bundle.AddMessages(mf.Tag, mf.Messages...)
}

func (c *Catalog) known(id string) bool {
	for _, ids := range c.messages {
		if ids[id] != nil {
			return true
		}
	}
	return false
}

// Default is the realm's default locale.
func (c *Catalog) Default() string { return c.def }

// Supported are the realm's locales, the default first.
func (c *Catalog) Supported() []string { return slices.Clone(c.supported) }

// IDs are the message ids a locale's catalogs have.
func (c *Catalog) IDs(locale string) []string { return slices.Sorted(maps.Keys(c.messages[locale])) }

// Match returns the supported locale that best serves a list of
// preferences, each a tag, a space-separated list (ui_locales) or an
// Accept-Language value; ok is false when none is close enough.
func (c *Catalog) Match(prefs ...string) (string, bool) {
	for _, p := range prefs {
		var tags []language.Tag
		if strings.ContainsAny(p, ",;") {
			tags, _, _ = language.ParseAcceptLanguage(p)
		} else {
			for _, f := range strings.Fields(p) {
				if t, err := language.Parse(f); err == nil {
					tags = append(tags, t)
				}
			}
		}
		if len(tags) == 0 {
			continue
		}
		if _, i, conf := c.matcher.Match(tags...); conf != language.No {
			return c.supported[i], true
		}
	}
	return "", false
}

// CookieName remembers the language switcher's choice (Keycloak's name).
const CookieName = "KEYCLOAK_LOCALE"

// Preferred is the locale a request prefers when nothing more specific
// names one: the switcher's cookie, the user's locale (may be empty),
// Accept-Language, the default.
func (c *Catalog) Preferred(r *http.Request, user string) string {
	prefs := make([]string, 0, 3)
	if ck, err := r.Cookie(CookieName); err == nil {
		prefs = append(prefs, ck.Value)
	}
	if l, ok := c.Match(append(prefs, user, r.Header.Get("Accept-Language"))...); ok {
		return l
	}
	return c.def
}

// Chosen is the locale a request picks with kc_locale (the switcher's
// links, or an app's parameter), if it names a supported one; it is then
// remembered in the switcher's cookie for the pages under path.
func (c *Catalog) Chosen(w http.ResponseWriter, r *http.Request, path string, secure bool) (string, bool) {
	l, ok := c.Match(r.URL.Query().Get("kc_locale"))
	if ok {
		http.SetCookie(w, &http.Cookie{Name: CookieName, Value: l, Path: path, MaxAge: 365 * 24 * 3600,
			HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
	}
	return l, ok
}

// Locale returns locale if it is supported, else the default.
func (c *Catalog) Locale(locale string) string {
	if _, ok := c.local[locale]; ok {
		return locale
	}
	return c.def
}

// Name is a supported locale's name in its own language, for the
// switcher (named once: Name parses the tag and looks up its display).
func (c *Catalog) Name(locale string) string {
	if n, ok := c.names[locale]; ok {
		return n
	}
	return Name(locale)
}

// Name is a locale's name in its own language.
func Name(locale string) string {
	t, err := language.Parse(locale)
	if err != nil {
		return locale
	}
	n := display.Self.Name(t)
	if n == "" {
		return locale
	}
	r, size := utf8.DecodeRuneInString(n)
	return string(unicode.ToUpper(r)) + n[size:]
}

// Text renders a message in a locale. An id no catalog has is shown as
// the id; one the locale lacks falls back to English. Both are logged by
// the caller through Missing, never silently empty.
func (c *Catalog) Text(locale string, m flows.Msg) string {
	if m.ID == "" {
		return m.Text
	}
	var key string
	if _, counted := m.Args["Count"]; len(m.Args) > 0 && !counted {
		// Count picks a plural form: go-i18n's, always.
		l := c.Locale(locale)
		if s, ok := c.simple[l][m.ID]; ok {
			if out, ok := c.render(s, l, m.Args); ok {
				return out
			}
		}
	}
	if len(m.Args) == 0 {
		key = c.Locale(locale) + "\x00" + m.ID // bounded: supported locales, known ids
		if out, ok := c.plain.Load(key); ok {
			return out.(string)
		}
	}
	out, err := c.localize(locale, m.ID, m.Args)
	if err == nil && key != "" {
		c.plain.Store(key, out)
	}
	if err != nil {
		c.mu.Lock()
		c.missing[c.Locale(locale)+" "+m.ID] = true
		c.mu.Unlock()
		if out == "" {
			return m.ID
		}
	}
	return out
}

func (c *Catalog) localize(locale, id string, args map[string]any) (string, error) {
	locale = c.Locale(locale)
	l := c.local[locale]
	cfg := &goi18n.LocalizeConfig{MessageID: id, TemplateData: localeData{locale, args}, TemplateParser: c.parser}
	if n, ok := args["Count"]; ok {
		cfg.PluralCount = n
	}
	return l.Localize(cfg)
}

// HTML renders a message whose catalog text may hold markup (<strong>):
// its arguments are escaped, the catalog's text is trusted (built in, or
// the operator's theme).
func (c *Catalog) HTML(locale string, m flows.Msg) string {
	esc := make(map[string]any, len(m.Args))
	for k, v := range m.Args {
		if s, ok := v.(string); ok {
			v = html.EscapeString(s)
		}
		esc[k] = v
	}
	m.Args = esc
	return c.Text(locale, m)
}

// Missing lists "locale id" pairs asked for that the locale's catalogs
// lack.
func (c *Catalog) Missing() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Sorted(maps.Keys(c.missing))
}

// funcs are what catalog messages may call: duration and ago.
func (c *Catalog) funcs(locale string) texttemplate.FuncMap {
	return texttemplate.FuncMap{
		"duration": func(d time.Duration) string { return c.Duration(locale, d) },
		"ago":      func(d time.Duration) string { return c.Ago(locale, d) },
	}
}

// Duration renders d as "15 minutes", "2 hours", "3 days" in a locale.
func (c *Catalog) Duration(locale string, d time.Duration) string {
	return c.span(locale, "duration.", d)
}

// Ago renders a time d in the past: "20 minutes ago", "vor 20 Minuten".
func (c *Catalog) Ago(locale string, d time.Duration) string {
	return c.span(locale, "ago.", d)
}

func (c *Catalog) span(locale, prefix string, d time.Duration) string {
	unit, n := "days", int(d.Hours()/24)
	switch {
	case d < time.Minute:
		unit, n = "seconds", int(d.Seconds())
	case d < time.Hour:
		unit, n = "minutes", int(d.Round(time.Minute).Minutes())
	case d < 48*time.Hour:
		unit, n = "hours", int(d.Round(time.Hour).Hours())
	}
	locale = c.Locale(locale)
	key := spanKey{locale, prefix + unit, n}
	if out, ok := c.spans.Load(key); ok {
		return out.(string)
	}
	out, err := c.local[locale].Localize(&goi18n.LocalizeConfig{MessageID: prefix + unit, TemplateData: map[string]any{"Count": n}, PluralCount: n})
	if err != nil && out == "" {
		return fmt.Sprintf("%d %s", n, unit)
	}
	if err == nil && (unit != "days" || n <= 366) {
		c.spans.Store(key, out) // bounded: locales x ~540 spans
	}
	return out
}

// spanKey names a rendered duration: locale, message id and count.
type spanKey struct {
	locale, id string
	n          int
}
