package i18n

import (
	"strconv"
	"strings"
	"text/template/parse"
	"time"

	goi18n "github.com/nicksnyder/go-i18n/v2/i18n"
)

// simpleMessage is a message of one form whose placeholders only print an
// argument ({{.Email}}) or pass one to duration or ago: most messages with
// arguments. Rendering it needs neither go-i18n's lookup nor a template
// run through reflection, which cost ~2.7 us a message
// (BenchmarkTextWithArguments), a dozen times a login.
type simpleMessage []segment

// segment is literal text, or an argument to print (through fn, if set).
type segment struct {
	text string
	arg  string
	fn   string // "", "duration" or "ago"
}

// compileSimple returns m as a simpleMessage, if it is one. A message
// with plural forms or its own delimiters, or any other template action
// (a pipe, a condition, a function of several arguments), is left to
// go-i18n.
func compileSimple(m *goi18n.Message) (simpleMessage, bool) {
	if m.Zero != "" || m.One != "" || m.Two != "" || m.Few != "" || m.Many != "" || m.LeftDelim != "" || m.RightDelim != "" {
		return nil, false
	}
	if !strings.Contains(m.Other, "{{") {
		return simpleMessage{{text: m.Other}}, true
	}
	// The parser only asks whether a function exists (a nil one does not).
	trees, err := parse.Parse("m", m.Other, "{{", "}}", map[string]any{"duration": true, "ago": true})
	if err != nil || len(trees) != 1 || trees["m"] == nil {
		return nil, false
	}
	var out simpleMessage
	for _, n := range trees["m"].Root.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			out = append(out, segment{text: string(n.Text)})
		case *parse.ActionNode:
			s, ok := simpleAction(n.Pipe)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		default:
			return nil, false
		}
	}
	return out, true
}

// simpleAction reads {{.Arg}}, {{duration .Arg}} or {{ago .Arg}}.
func simpleAction(p *parse.PipeNode) (segment, bool) {
	if len(p.Decl) > 0 || p.IsAssign || len(p.Cmds) != 1 {
		return segment{}, false
	}
	args := p.Cmds[0].Args
	var fn string
	if len(args) == 2 {
		id, ok := args[0].(*parse.IdentifierNode)
		if !ok || (id.Ident != "duration" && id.Ident != "ago") {
			return segment{}, false
		}
		fn, args = id.Ident, args[1:]
	}
	f, ok := args[0].(*parse.FieldNode)
	if len(args) != 1 || !ok || len(f.Ident) != 1 {
		return segment{}, false
	}
	return segment{arg: f.Ident[0], fn: fn}, true
}

// render writes the message with args in locale. It reports false when an
// argument is missing or of a type it does not print exactly as
// text/template would (go-i18n renders those).
func (c *Catalog) render(s simpleMessage, locale string, args map[string]any) (string, bool) {
	var b strings.Builder
	for _, seg := range s {
		if seg.arg == "" {
			b.WriteString(seg.text)
			continue
		}
		v, ok := args[seg.arg]
		if !ok {
			return "", false
		}
		switch v := v.(type) {
		case string:
			if seg.fn != "" {
				return "", false
			}
			b.WriteString(v)
		case int:
			if seg.fn != "" {
				return "", false
			}
			b.WriteString(strconv.Itoa(v))
		case time.Duration:
			switch seg.fn {
			case "duration":
				b.WriteString(c.Duration(locale, v))
			case "ago":
				b.WriteString(c.Ago(locale, v))
			default:
				return "", false
			}
		default:
			return "", false
		}
	}
	return b.String(), true
}
