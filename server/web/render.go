// Package web renders the hosted pages and mails, and sets the security
// headers every page carries.
package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	texttemplate "text/template"
	"time"

	"github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/language"

	"latchkey/flows"
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
}

// Renderer renders pages and mails: the core templates and those the
// steps bring, each overridable by file name from a theme folder.
type Renderer struct {
	files map[string]fs.FS // template file name -> where it is read from
	log   *slog.Logger
	pages map[string]*htmltemplate.Template
	// messages are the catalogs (NAME.en.json) of the core and the steps.
	messages *i18n.Localizer

	mu      sync.Mutex
	missing map[string]bool // message ids asked for and not found
}

// NewRenderer collects the templates of the core and of every step, lets
// the theme override them by name, and parses every page once at start: a
// broken theme, two steps claiming one name, or a theme file that replaces
// nothing (a typo) fails the start, not a login.
func NewRenderer(themeDir string, log *slog.Logger, steps ...fs.FS) (*Renderer, error) {
	r := &Renderer{log: log, files: map[string]fs.FS{}, pages: map[string]*htmltemplate.Template{}}
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
	if themeDir != "" {
		dir := filepath.Join(themeDir, "templates")
		theme := os.DirFS(dir)
		names, err := fs.Glob(theme, "*.*")
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if _, known := r.files[n]; !known {
				return nil, fmt.Errorf("theme template %s: no page or mail has this name (known: %s)", filepath.Join(dir, n), strings.Join(slices.Sorted(maps.Keys(r.files)), ", "))
			}
			r.files[n] = theme
		}
	}
	bundle := i18n.NewBundle(language.English)
	bundle.RegisterUnmarshalFunc("json", json.Unmarshal)
	for n := range r.files {
		if !strings.HasSuffix(n, ".json") {
			continue
		}
		raw, err := r.read(n)
		if err != nil {
			return nil, err
		}
		if _, err := bundle.ParseMessageFileBytes([]byte(raw), n); err != nil {
			return nil, fmt.Errorf("messages %s: %w", n, err)
		}
	}
	r.messages, r.missing = i18n.NewLocalizer(bundle, "en"), map[string]bool{}
	layout, err := r.read("layout.html")
	if err != nil {
		return nil, err
	}
	for n := range r.files {
		if n == "layout.html" || !strings.HasSuffix(n, ".html") || strings.HasPrefix(n, "mail-") {
			continue
		}
		page, err := r.read(n)
		if err != nil {
			return nil, err
		}
		t, err := htmltemplate.New("layout").Funcs(r.funcs()).Parse(layout)
		if err == nil {
			_, err = t.Parse(page)
		}
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", n, err)
		}
		r.pages[strings.TrimSuffix(n, ".html")] = t
	}
	return r, nil
}

// funcs are what every template may call: msg renders a flows.Msg,
// duration a time.Duration, in the page's language.
func (r *Renderer) funcs() map[string]any {
	return map[string]any{"msg": r.Text, "duration": Duration}
}

// Text renders a message. An id no catalog has is shown as the id (and
// logged, and reported by Missing): visible, never silently empty.
func (r *Renderer) Text(m flows.Msg) string {
	if m.ID == "" {
		return m.Text
	}
	cfg := &i18n.LocalizeConfig{MessageID: m.ID, TemplateData: m.Args, Funcs: map[string]any{"duration": Duration}}
	if n, ok := m.Args["Count"]; ok {
		cfg.PluralCount = n
	}
	out, err := r.messages.Localize(cfg)
	if err != nil {
		r.mu.Lock()
		r.missing[m.ID] = true
		r.mu.Unlock()
		r.log.Error("message missing from the catalogs", "message_id", m.ID, "err", err)
		return m.ID
	}
	return out
}

// Missing lists the message ids asked for that no catalog has.
func (r *Renderer) Missing() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(maps.Keys(r.missing))
}

// Duration renders d as "15 minutes", "2 hours", "3 days".
func Duration(d time.Duration) string {
	unit := func(n int, s string) string {
		if n == 1 {
			return "1 " + s
		}
		return fmt.Sprintf("%d %ss", n, s)
	}
	switch {
	case d < time.Minute:
		return unit(int(d.Seconds()), "second")
	case d < time.Hour:
		return unit(int(d.Round(time.Minute).Minutes()), "minute")
	case d < 48*time.Hour:
		return unit(int(d.Round(time.Hour).Hours()), "hour")
	}
	return unit(int(d.Hours()/24), "day")
}

// Has reports whether a page template exists.
func (r *Renderer) Has(page string) bool { _, ok := r.pages[page]; return ok }

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
func SecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// Page renders a page with status.
func (r *Renderer) Page(w http.ResponseWriter, status int, name string, v View) {
	t, ok := r.pages[name]
	if !ok {
		r.log.Error("unknown page template", "page", name)
		name, t = "error", r.pages["error"]
		v.Title, v.Message, status = "Something went wrong", "This page is missing. Please try again.", http.StatusInternalServerError
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		r.log.Error("render page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	SecurityHeaders(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// Mail renders mail-NAME.txt (with a "subject" block) and mail-NAME.html.
func (r *Renderer) Mail(name string, data any) (subject, text, html string, err error) {
	src, err := r.read(name + ".txt")
	if err != nil {
		return "", "", "", err
	}
	tt, err := texttemplate.New(name).Funcs(r.funcs()).Parse(src)
	if err != nil {
		return "", "", "", err
	}
	var sb, tb, hb bytes.Buffer
	if err := tt.ExecuteTemplate(&sb, "subject", data); err != nil {
		return "", "", "", err
	}
	if err := tt.Execute(&tb, data); err != nil {
		return "", "", "", err
	}
	hsrc, err := r.read(name + ".html")
	if err != nil {
		return "", "", "", err
	}
	ht, err := htmltemplate.New(name).Funcs(r.funcs()).Parse(hsrc)
	if err != nil {
		return "", "", "", err
	}
	if err := ht.Execute(&hb, data); err != nil {
		return "", "", "", err
	}
	return strings.TrimSpace(sb.String()), tb.String(), hb.String(), nil
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
