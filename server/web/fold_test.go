package web

import (
	htmltemplate "html/template"
	"strings"
	"testing"
	texttemplate "text/template"
	"text/template/parse"
)

// A folded template renders exactly what the unfolded one does, in every
// context html/template escapes for, and a msg that is not argument-free
// is left to run.
func TestFoldedMessagesRenderTheSame(t *testing.T) {
	catalog := map[string]string{
		"plain":  "Sign in",
		"markup": `<b>"Tom" & 'Jerry'</b> </script>`,
		"url":    "javascript:alert(1)",
		"piped":  "x",
	}
	calls := 0
	funcs := map[string]any{"msg": func(id string, kv ...any) string {
		calls++
		if len(kv) > 0 {
			return id + "(" + texttemplate.HTMLEscaper(kv...) + ")"
		}
		return catalog[id]
	}}
	const src = `{{define "part"}}<i>{{.}}</i>{{end}}` +
		`<title>{{msg "markup"}}</title>` +
		`<p title="{{msg "markup"}}">{{msg "plain"}}</p>` +
		`<a href="{{msg "url"}}">{{msg "url"}}</a>` +
		`<a href="/x?q={{msg "markup"}}">q</a>` +
		`<script>var s = {{msg "markup"}};</script>` +
		`<style>p { font-family: {{msg "plain"}} }</style>` +
		`{{if .On}}{{msg "plain" | printf "%q"}}{{else}}{{msg "markup"}}{{end}}` +
		`{{range .List}}{{msg "plain"}}{{.}}{{end}}` +
		`{{with .On}}{{printf "%s-%s" (msg "piped") (msg "plain")}}{{end}}` +
		`{{template "part" (msg "markup")}}` +
		`{{.Name | msg "withArg"}}{{msg "withArg" "k" .Name}}`
	data := map[string]any{"On": true, "List": []string{"a", "b"}, "Name": "<n>"}

	render := func(fold bool) (htmlOut, textOut string) {
		h := htmltemplate.Must(htmltemplate.New("page").Funcs(funcs).Parse(src))
		x := texttemplate.Must(texttemplate.New("mail").Funcs(funcs).Parse(src))
		if fold {
			trees := htmlTrees(h)
			for _, t := range x.Templates() {
				trees = append(trees, t.Tree)
			}
			foldMessages(trees, func(id string) string { return catalog[id] })
		}
		var hb, tb strings.Builder
		if err := h.Execute(&hb, data); err != nil {
			t.Fatal(err)
		}
		if err := x.Execute(&tb, data); err != nil {
			t.Fatal(err)
		}
		return hb.String(), tb.String()
	}
	wantHTML, wantText := render(false)
	calls = 0
	gotHTML, gotText := render(true)
	if gotHTML != wantHTML {
		t.Errorf("html/template, folded:\n%s\nunfolded:\n%s", gotHTML, wantHTML)
	}
	if gotText != wantText {
		t.Errorf("text/template, folded:\n%s\nunfolded:\n%s", gotText, wantText)
	}
	// Only the two calls with an argument are left, in each template.
	if calls != 4 {
		t.Errorf("msg called %d times after folding, want 4 (the calls with arguments)", calls)
	}
	if !strings.Contains(gotHTML, "&lt;b&gt;") || strings.Contains(gotHTML, "<b>") {
		t.Errorf("the folded markup is not escaped: %s", gotHTML)
	}
}

// Trees with no root (a {{define}} of nothing) and nil branches are walked
// without a panic.
func TestFoldSkipsEmptyTrees(t *testing.T) {
	foldMessages([]*parse.Tree{nil, {}}, func(string) string { return "" })
}
