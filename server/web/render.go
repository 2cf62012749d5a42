// Package web renders the hosted pages and mails, and sets the security
// headers every page carries.
package web

import (
	"bytes"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	texttemplate "text/template"
	"text/template/parse"
	"time"

	"latchkey/flows"
	"latchkey/server/i18n"
	"latchkey/static"
	"latchkey/templates"
)

// View is what every page template sees; Data is the page's own.
type View struct {
	Title      string
	RealmName  string
	StaticURL  string
	CSRF       string
	Action     string // where the form posts
	Exec       string // the execution the form answers
	SelectURL  string
	RestartURL string
	Choices    []flows.Choice
	Message    string
	Data       any
	// Locale is the page's language (<html lang>, every msg); SwitchURL,
	// when set, is a GET address that shows this page again: the language
	// switcher links to it with kc_locale.
	Locale    string
	SwitchURL string
	// Locales is the switcher, filled by Page; LocaleNav is it rendered as
	// the layout's language menu (a theme's layout may range over Locales
	// to build its own).
	Locales   []LocaleLink
	LocaleNav htmltemplate.HTML
	// Brand is the page's look; Nonce, set by Page, admits its style block.
	Brand Brand
	Nonce string
}

// LocaleLink is one entry of the language switcher.
type LocaleLink struct {
	Locale, Name, URL string
	Current           bool
}

// Options are the realm's rendering settings.
type Options struct {
	ThemeDir         string
	DefaultLocale    string
	SupportedLocales []string
}

// Renderer renders pages and mails: the core templates and those the
// steps bring, each overridable by file name from a theme folder, in
// every supported locale.
type Renderer struct {
	files map[string]fs.FS // template file name -> where it is read from
	log   *slog.Logger
	// pages are parsed once per locale: msg is bound to the locale.
	pages map[string]map[string]*htmltemplate.Template
	cat   *i18n.Catalog
	// mails holds parsed mails by "locale\x00name", parsed on first use
	// (a mail's templates may come from a step's files only).
	mails sync.Map
}

// mailTemplates are one mail's parsed text (with its subject) and HTML.
type mailTemplates struct {
	text *texttemplate.Template
	html *htmltemplate.Template
}

// NewRenderer collects the templates of the core and of every step, lets
// the theme override them by name (and single messages by id), and parses
// every page once at start: a broken theme, two steps claiming one name,
// or a theme file that replaces nothing (a typo) fails the start, not a
// login.
func NewRenderer(opts Options, log *slog.Logger, steps ...fs.FS) (*Renderer, error) {
	r := &Renderer{log: log, files: map[string]fs.FS{}, pages: map[string]map[string]*htmltemplate.Template{}}
	for _, src := range append([]fs.FS{templates.FS}, steps...) {
		names, err := fs.Glob(src, "*.*")
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if _, dup := r.files[n]; dup {
				return nil, fmt.Errorf("template %s is provided twice", n)
			}
			r.files[n] = src
		}
	}
	var builtin, theme []i18n.File
	for _, n := range slices.Sorted(maps.Keys(r.files)) {
		if strings.HasSuffix(n, ".json") {
			raw, err := r.read(n)
			if err != nil {
				return nil, err
			}
			builtin = append(builtin, i18n.File{Name: n, Data: []byte(raw)})
		}
	}
	if opts.ThemeDir != "" {
		dir := filepath.Join(opts.ThemeDir, "templates")
		fsys := os.DirFS(dir)
		names, err := fs.Glob(fsys, "*.*")
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if strings.HasSuffix(n, ".json") {
				// Catalogs are layered over the built-in ones, message by message.
				raw, err := fs.ReadFile(fsys, n)
				if err != nil {
					return nil, err
				}
				theme = append(theme, i18n.File{Name: filepath.Join(dir, n), Data: raw})
				continue
			}
			if _, known := r.files[n]; !known {
				return nil, fmt.Errorf("theme template %s: no page or mail has this name (known: %s)", filepath.Join(dir, n), strings.Join(r.templateNames(), ", "))
			}
			r.files[n] = fsys
		}
	}
	supported := opts.SupportedLocales
	if len(supported) == 0 {
		supported = i18n.Shipped
	}
	cat, err := i18n.New(opts.DefaultLocale, supported, builtin, theme)
	if err != nil {
		return nil, err
	}
	r.cat = cat
	layout, err := r.read("layout.html")
	if err != nil {
		return nil, err
	}
	for _, l := range cat.Supported() {
		r.pages[l] = map[string]*htmltemplate.Template{}
	}
	// partial-*.html files define blocks every page may use (a form two
	// pages of a step share); a theme overrides them by name like pages.
	var partials []string
	for _, n := range slices.Sorted(maps.Keys(r.files)) {
		if strings.HasPrefix(n, "partial-") && strings.HasSuffix(n, ".html") {
			src, err := r.read(n)
			if err != nil {
				return nil, err
			}
			partials = append(partials, src)
		}
	}
	for n := range r.files {
		if n == "layout.html" || !strings.HasSuffix(n, ".html") || strings.HasPrefix(n, "mail-") || strings.HasPrefix(n, "partial-") {
			continue
		}
		page, err := r.read(n)
		if err != nil {
			return nil, err
		}
		t, err := htmltemplate.New("layout").Funcs(r.funcs(cat.Default())).Parse(layout)
		for _, src := range append(partials, page) {
			if err == nil {
				_, err = t.Parse(src)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", n, err)
		}
		for _, l := range cat.Supported() {
			c, err := t.Clone()
			if err != nil {
				return nil, fmt.Errorf("template %s: %w", n, err)
			}
			r.foldMessages(l, htmlTrees(c))
			foldEscaped(c.Funcs(r.funcs(l)), "layout")
			r.pages[l][strings.TrimSuffix(n, ".html")] = c
		}
	}
	return r, nil
}

// foldMessages puts the locale's text of every argument-free {{msg "id"}}
// into trees (fold.go).
func (r *Renderer) foldMessages(locale string, trees []*parse.Tree) {
	foldMessages(trees, func(id string) string { return r.Text(locale, flows.M(id)) })
}

func htmlTrees(t *htmltemplate.Template) []*parse.Tree {
	var out []*parse.Tree
	for _, x := range t.Templates() {
		out = append(out, x.Tree)
	}
	return out
}

// templateNames are the pages' and mails' file names (not the catalogs).
func (r *Renderer) templateNames() []string {
	var out []string
	for n := range r.files {
		if !strings.HasSuffix(n, ".json") {
			out = append(out, n)
		}
	}
	return slices.Sorted(slices.Values(out))
}

// Catalog is the realm's messages and locales.
func (r *Renderer) Catalog() *i18n.Catalog { return r.cat }

// funcs are what every template may call, in the page's locale: msg
// renders a message (a flows.Msg, or an id and key/value pairs), msgHTML
// one whose catalog text holds markup, duration a time.Duration and ago
// a time that far in the past.
func (r *Renderer) funcs(locale string) map[string]any {
	return map[string]any{
		"msg":      func(m any, kv ...any) string { return r.Text(locale, message(m, kv)) },
		"msgHTML":  func(m any, kv ...any) htmltemplate.HTML { return htmltemplate.HTML(r.html(locale, message(m, kv))) },
		"duration": func(d time.Duration) string { return r.cat.Duration(locale, d) },
		"ago":      func(d time.Duration) string { return r.cat.Ago(locale, d) },
	}
}

// message reads msg's arguments: a flows.Msg as is, or an id followed by
// key/value pairs.
func message(m any, kv []any) flows.Msg {
	switch v := m.(type) {
	case flows.Msg:
		return v
	case string:
		if len(kv) == 0 {
			return flows.Msg{ID: v} // most messages: no arguments to collect
		}
		args := make(map[string]any, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			if k, ok := kv[i].(string); ok {
				args[k] = kv[i+1]
			}
		}
		return flows.Msg{ID: v, Args: args}
	}
	return flows.Literal(fmt.Sprint(m))
}

// Text renders a message in a locale. An id no catalog has is shown as
// the id (and logged, and reported by Missing): visible, never silently
// empty.
func (r *Renderer) Text(locale string, m flows.Msg) string {
	out := r.cat.Text(locale, m)
	r.noteMissing(m, out)
	return out
}

func (r *Renderer) html(locale string, m flows.Msg) string {
	out := r.cat.HTML(locale, m)
	r.noteMissing(m, out)
	return out
}

// noteMissing logs an id no catalog has (the catalog records it for Missing).
func (r *Renderer) noteMissing(m flows.Msg, out string) {
	if m.ID != "" && out == m.ID {
		r.log.Error("message missing from the catalogs", "message_id", m.ID)
	}
}

// Missing lists the "locale id" pairs asked for that the locale's
// catalogs lack (shown in English) or that no catalog has (shown as the id).
func (r *Renderer) Missing() []string { return r.cat.Missing() }

// Has reports whether a page template exists.
func (r *Renderer) Has(page string) bool { _, ok := r.pages[r.cat.Default()][page]; return ok }

// read returns a template file from wherever it is provided.
func (r *Renderer) read(name string) (string, error) {
	src, ok := r.files[name]
	if !ok {
		return "", fmt.Errorf("no template %s", name)
	}
	b, err := fs.ReadFile(src, name)
	return string(b), err
}

// SecurityHeaders are set on every response of the hosted pages.
func SecurityHeaders(h http.Header) { securityHeaders(h, "", nil) }

func securityHeaders(h http.Header, nonce string, imgOrigins []string) {
	h.Set("Content-Security-Policy", csp(nonce, imgOrigins))
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// Page renders a page with status.
func (r *Renderer) Page(w http.ResponseWriter, status int, name string, v View) {
	v.Locale = r.cat.Locale(v.Locale)
	t, ok := r.pages[v.Locale][name]
	if !ok {
		r.log.Error("unknown page template", "page", name)
		name, t = "error", r.pages[v.Locale]["error"]
		v.Title, v.Message, status = r.Text(v.Locale, flows.M("page.failedTitle")), r.Text(v.Locale, flows.M("page.missing")), http.StatusInternalServerError
	}
	v.Locales = r.switcher(v)
	v.LocaleNav = r.localeNav(v.Locale, v.Locales)
	if v.Brand.Name == "" {
		v.Brand.Name = v.RealmName
	}
	if v.Brand.Styled() {
		v.Nonce = newNonce()
	}
	buf := getBuffer()
	defer putBuffer(buf)
	if err := t.ExecuteTemplate(buf, "layout", v); err != nil {
		r.log.Error("render page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	securityHeaders(w.Header(), v.Nonce, v.Brand.imageOrigins())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// buffers hold rendered pages and mails: grown to a page's size once,
// not from empty (doubling) for every render.
var buffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getBuffer() *bytes.Buffer { return buffers.Get().(*bytes.Buffer) }

func putBuffer(b *bytes.Buffer) {
	if b.Cap() > 256<<10 {
		return // an outsized render is not kept
	}
	b.Reset()
	buffers.Put(b)
}

// switcher lists the supported locales, each linking to the page in it.
func (r *Renderer) switcher(v View) []LocaleLink {
	locales := r.cat.Supported()
	if v.SwitchURL == "" || len(locales) < 2 {
		return nil
	}
	u, err := url.Parse(v.SwitchURL)
	if err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(u.Path, "/") {
		return nil // only this server's own pages
	}
	// The page's own query without kc_locale, encoded once; each link adds
	// its kc_locale.
	query := u.Query()
	query.Del("kc_locale")
	u.RawQuery, u.Fragment = query.Encode(), ""
	base := u.String()
	if u.RawQuery == "" {
		base += "?kc_locale="
	} else {
		base += "&kc_locale="
	}
	out := make([]LocaleLink, 0, len(locales))
	for _, l := range locales {
		out = append(out, LocaleLink{Locale: l, Name: r.cat.Name(l), URL: base + url.QueryEscape(l), Current: l == v.Locale})
	}
	return out
}

// localeNav renders the language menu. It is built here, not by the
// layout: its ~40 escaped template actions were 40% of rendering a page
// (BenchmarkLoginPage). Every value is escaped for a quoted attribute or
// text; URLs are relative (switcher).
func (r *Renderer) localeNav(locale string, links []LocaleLink) htmltemplate.HTML {
	if len(links) == 0 {
		return ""
	}
	esc := htmltemplate.HTMLEscapeString
	var b strings.Builder
	b.Grow(128 * len(links))
	b.WriteString(`<nav class="locales" aria-label="`)
	b.WriteString(esc(r.Text(locale, flows.M("layout.language"))))
	b.WriteString("\"><ul>\n")
	for _, l := range links {
		lang, name := esc(l.Locale), esc(l.Name)
		if l.Current {
			b.WriteString(`<li><span aria-current="true" lang="` + lang + `">` + name + "</span></li>\n")
		} else {
			b.WriteString(`<li><a href="` + esc(l.URL) + `" lang="` + lang + `" hreflang="` + lang + `">` + name + "</a></li>\n")
		}
	}
	b.WriteString("</ul></nav>")
	return htmltemplate.HTML(b.String())
}

// Mail renders mail-NAME.txt (with a "subject" block) and mail-NAME.html
// in a locale.
func (r *Renderer) Mail(locale, name string, data any) (subject, text, html string, err error) {
	locale = r.cat.Locale(locale)
	m, err := r.mail(locale, name)
	if err != nil {
		return "", "", "", err
	}
	sb, tb, hb := getBuffer(), getBuffer(), getBuffer()
	defer putBuffer(sb)
	defer putBuffer(tb)
	defer putBuffer(hb)
	if err := m.text.ExecuteTemplate(sb, "subject", data); err != nil {
		return "", "", "", err
	}
	if err := m.text.Execute(tb, data); err != nil {
		return "", "", "", err
	}
	if err := m.html.Execute(hb, data); err != nil {
		return "", "", "", err
	}
	return strings.TrimSpace(sb.String()), tb.String(), hb.String(), nil
}

// mail returns a mail's templates in a locale, parsing them once.
func (r *Renderer) mail(locale, name string) (*mailTemplates, error) {
	key := locale + "\x00" + name
	if m, ok := r.mails.Load(key); ok {
		return m.(*mailTemplates), nil
	}
	src, err := r.read(name + ".txt")
	if err != nil {
		return nil, err
	}
	tt, err := texttemplate.New(name).Funcs(r.funcs(locale)).Parse(src)
	if err != nil {
		return nil, err
	}
	hsrc, err := r.read(name + ".html")
	if err != nil {
		return nil, err
	}
	ht, err := htmltemplate.New(name).Funcs(r.funcs(locale)).Parse(hsrc)
	if err != nil {
		return nil, err
	}
	// mail-layout.html, when a step brings one, holds the blocks its HTML
	// mails share (only {{define}}s: it never replaces the mail's body).
	if layout, err := r.read("mail-layout.html"); err == nil {
		if _, err := ht.Parse(layout); err != nil {
			return nil, fmt.Errorf("mail-layout.html: %w", err)
		}
	}
	var trees []*parse.Tree
	for _, t := range tt.Templates() {
		trees = append(trees, t.Tree)
	}
	r.foldMessages(locale, append(trees, htmlTrees(ht)...))
	foldConstantText(trees)
	foldEscaped(ht, name)
	m, _ := r.mails.LoadOrStore(key, &mailTemplates{text: tt, html: ht})
	return m.(*mailTemplates), nil
}

// Static serves CSS and images, theme files first.
func (r *Renderer) Static(themeDir string) http.Handler {
	var fsys fs.FS = static.FS
	if themeDir != "" {
		fsys = overlay{os.DirFS(filepath.Join(themeDir, "static")), static.FS}
	}
	files := http.FileServer(http.FS(fsys))
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, req)
	})
}

type overlay struct{ top, bottom fs.FS }

func (o overlay) Open(name string) (fs.File, error) {
	if f, err := o.top.Open(name); err == nil {
		return f, nil
	}
	return o.bottom.Open(name)
}
