// Package web renders the hosted pages and mails, and sets the security
// headers every page carries.
package web

import (
	"bytes"
	htmltemplate "html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	texttemplate "text/template"

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

// Renderer renders pages and mails from the built-in templates, overridden
// file by file from a theme folder.
type Renderer struct {
	theme fs.FS // nil: built-in only
	log   *slog.Logger
	pages map[string]*htmltemplate.Template
}

// NewRenderer parses every page once at start, so a broken theme fails early.
func NewRenderer(themeDir string, log *slog.Logger) (*Renderer, error) {
	r := &Renderer{log: log, pages: map[string]*htmltemplate.Template{}}
	if themeDir != "" {
		r.theme = os.DirFS(filepath.Join(themeDir, "templates"))
	}
	names, err := fs.Glob(templates.FS, "*.html")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if n == "layout.html" || strings.HasPrefix(n, "mail-") {
			continue
		}
		layout, err := r.read("layout.html")
		if err != nil {
			return nil, err
		}
		page, err := r.read(n)
		if err != nil {
			return nil, err
		}
		t, err := htmltemplate.New("layout").Parse(layout)
		if err == nil {
			_, err = t.Parse(page)
		}
		if err != nil {
			return nil, err
		}
		r.pages[strings.TrimSuffix(n, ".html")] = t
	}
	return r, nil
}

// read returns a template file from the theme, or the built-in one.
func (r *Renderer) read(name string) (string, error) {
	if r.theme != nil {
		if b, err := fs.ReadFile(r.theme, name); err == nil {
			return string(b), nil
		}
	}
	b, err := fs.ReadFile(templates.FS, name)
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
	tt, err := texttemplate.New(name).Parse(src)
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
	ht, err := htmltemplate.New(name).Parse(hsrc)
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
