package web

import (
	htmltemplate "html/template"
	"io"
	"log/slog"
	"strings"
	"testing"
	texttemplate "text/template"
	"text/template/parse"

	"latchkey/authenticators/magiclink"
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
		`{{define "orphan"}}<p>{{msg "markup"}}</p>{{end}}` +
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
			var textTrees []*parse.Tree
			for _, t := range x.Templates() {
				textTrees = append(textTrees, t.Tree)
			}
			trees := append(htmlTrees(h), textTrees...)
			foldMessages(trees, func(id string) string { return catalog[id] })
			foldConstantText(textTrees)
			foldEscaped(h, "page")
			for _, tree := range trees {
				if n := constantActions(tree.Root); n > 0 && tree.Name != "orphan" {
					t.Errorf("%s: %d actions print a constant after folding", tree.Name, n)
				}
			}
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

// A template the page does not call is not escaped when the page is, so
// its constants are left to be escaped when it runs, for where they stand
// (here a script).
func TestFoldingLeavesTemplatesNotYetEscaped(t *testing.T) {
	h := htmltemplate.Must(htmltemplate.New("page").Parse(`<p>{{"<b>"}}</p>{{define "orphan"}}<script>var s = {{"<b>"}};</script>{{end}}`))
	foldEscaped(h, "page")
	var b strings.Builder
	if err := h.ExecuteTemplate(&b, "orphan", nil); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != `<script>var s = "\u003cb\u003e";</script>` {
		t.Errorf("orphan rendered %q", got)
	}
	b.Reset()
	if err := h.Execute(&b, nil); err != nil || b.String() != "<p>&lt;b&gt;</p>" {
		t.Errorf("page rendered %q, %v", b.String(), err)
	}
	if n := constantActions(h.Tree.Root); n != 0 {
		t.Errorf("%d constant actions left in the page", n)
	}
}

// Folding escapes the template with data that has no fields: no function
// taking one is called for it (msg would note a message missing).
func TestFoldingCallsNoFunctionWithData(t *testing.T) {
	var calls []string
	h := htmltemplate.Must(htmltemplate.New("page").Funcs(map[string]any{"msg": func(id string, kv ...any) string {
		calls = append(calls, id)
		return id
	}}).Parse(`{{msg "a" "Name" .Name}}<p>{{msg "b" "Name" .Name}}</p>`))
	foldEscaped(h, "page")
	if len(calls) != 0 {
		t.Errorf("msg called %v while folding", calls)
	}
}

// The shipped pages and mails are folded when the renderer parses them:
// once escaped (as a render escapes them), none keeps an action that
// prints a constant through the escapers, and no text mail one that
// prints a constant. (A partial a page does not call stays unescaped,
// its constants as written.)
func TestShippedTemplatesKeepNoConstantAction(t *testing.T) {
	r, err := NewRenderer(Options{}, slog.New(slog.DiscardHandler), magiclink.Factory{}.Templates())
	if err != nil {
		t.Fatal(err)
	}
	count := func(name string, trees []*parse.Tree, constant func(*parse.PipeNode) bool) {
		for _, tree := range trees {
			if n := countActions(tree.Root, constant); n > 0 {
				t.Errorf("%s: %s keeps %d constant actions", name, tree.Name, n)
			}
		}
	}
	for locale, pages := range r.pages {
		for name, page := range pages {
			_ = page.ExecuteTemplate(io.Discard, "layout", struct{}{})
			count(locale+" "+name, htmlTrees(page), printsEscapedConstant)
		}
		m, err := r.mail(locale, "mail-login")
		if err != nil {
			t.Fatal(err)
		}
		_ = m.html.Execute(io.Discard, struct{}{})
		count(locale+" mail-login", htmlTrees(m.html), printsEscapedConstant)
		var text []*parse.Tree
		for _, x := range m.text.Templates() {
			text = append(text, x.Tree)
		}
		count(locale+" mail-login", text, printsConstant)
	}
}

// constantActions counts the actions under n that print a constant, as is
// or through html/template's escapers.
func constantActions(n parse.Node) int {
	return countActions(n, func(p *parse.PipeNode) bool { return printsConstant(p) || printsEscapedConstant(p) })
}

// countActions counts the actions under n whose pipeline matches.
func countActions(n parse.Node, match func(*parse.PipeNode) bool) int {
	count := 0
	foldActions(n, func(a *parse.ActionNode) (string, bool) {
		if match(a.Pipe) {
			count++
		}
		return "", false
	})
	return count
}

// Trees with no root (a {{define}} of nothing) and nil branches are walked
// without a panic.
func TestFoldSkipsEmptyTrees(t *testing.T) {
	foldMessages([]*parse.Tree{nil, {}}, func(string) string { return "" })
}
