package i18n

import (
	"fmt"
	"strings"
	"sync"
	texttemplate "text/template"

	"github.com/nicksnyder/go-i18n/v2/i18n/template"
)

// localeParser lets go-i18n keep each parsed message. go-i18n caches a
// message's parse only when its parser has no functions, and ours
// (duration, ago) speak the locale being rendered, which is not always
// the message's own (a message German lacks is the English one, with
// German durations). So a message is parsed once, and cloned once per
// locale with that locale's functions; the locale travels with the data.
type localeParser struct {
	funcs func(locale string) texttemplate.FuncMap
}

// localeData is the template data localize hands to go-i18n.
type localeData struct {
	locale string
	args   map[string]any
}

func (p localeParser) Cacheable() bool { return true }

func (p localeParser) Parse(src, left, right string) (template.ParsedTemplate, error) {
	if left == "" {
		left = "{{"
	}
	if right == "" {
		right = "}}"
	}
	if !strings.Contains(src, left) {
		return plainMessage(src), nil
	}
	t, err := texttemplate.New("").Delims(left, right).Option("missingkey=default").Funcs(p.funcs("")).Parse(src)
	if err != nil {
		return nil, err
	}
	return &localeTemplate{parsed: t, funcs: p.funcs}, nil
}

type plainMessage string

func (m plainMessage) Execute(any) (string, error) { return string(m), nil }

type localeTemplate struct {
	parsed   *texttemplate.Template
	funcs    func(locale string) texttemplate.FuncMap
	byLocale sync.Map // locale -> *texttemplate.Template; bounded by the supported locales
}

func (t *localeTemplate) Execute(data any) (string, error) {
	d, ok := data.(localeData)
	if !ok {
		return "", fmt.Errorf("i18n: template data %T is not the catalog's", data)
	}
	tmpl, err := t.forLocale(d.locale)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, d.args); err != nil {
		return "", err
	}
	return b.String(), nil
}

func (t *localeTemplate) forLocale(locale string) (*texttemplate.Template, error) {
	if v, ok := t.byLocale.Load(locale); ok {
		return v.(*texttemplate.Template), nil
	}
	c, err := t.parsed.Clone()
	if err != nil {
		return nil, fmt.Errorf("i18n: %w", err)
	}
	v, _ := t.byLocale.LoadOrStore(locale, c.Funcs(t.funcs(locale)))
	return v.(*texttemplate.Template), nil
}
