package web

import (
	htmltemplate "html/template"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/template/parse"
)

// foldMessages replaces each argument-free {{msg "id"}} in trees (and each
// (msg "id") inside an action) by the message's text as a string constant.
// Such a message is a constant of the locale (the catalog caches it), yet
// looking it up cost a call through reflection on every render: ~75 of
// them a login. Only the lookup is done early: html/template still escapes
// the constant for where it stands, as it escaped what msg returned.
//
// It must run before the trees are first executed (html/template escapes
// them then) and on trees of this locale only (html/template's Clone
// copies them; text/template's does not).
func foldMessages(trees []*parse.Tree, text func(id string) string) {
	for _, t := range trees {
		if t != nil && t.Root != nil {
			foldNode(t.Root, text)
		}
	}
}

func foldNode(n parse.Node, text func(string) string) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			foldNode(c, text)
		}
	case *parse.ActionNode:
		foldPipe(n.Pipe, text)
	case *parse.TemplateNode:
		foldPipe(n.Pipe, text)
	case *parse.IfNode:
		foldBranch(&n.BranchNode, text)
	case *parse.RangeNode:
		foldBranch(&n.BranchNode, text)
	case *parse.WithNode:
		foldBranch(&n.BranchNode, text)
	case *parse.PipeNode:
		foldPipe(n, text)
	case *parse.ChainNode:
		foldNode(n.Node, text)
	}
}

func foldBranch(b *parse.BranchNode, text func(string) string) {
	foldPipe(b.Pipe, text)
	foldNode(b.List, text)
	foldNode(b.ElseList, text)
}

// foldPipe folds the pipeline's first command when it is msg with one
// constant id: a later command gets the previous result as its last
// argument, so msg there is never argument-free.
func foldPipe(p *parse.PipeNode, text func(string) string) {
	if p == nil {
		return
	}
	for i, c := range p.Cmds {
		if id, ok := constantMsg(c); ok && i == 0 {
			s := text(id)
			c.Args = []parse.Node{&parse.StringNode{NodeType: parse.NodeString, Pos: c.Args[0].Position(), Quoted: strconv.Quote(s), Text: s}}
			continue
		}
		for _, a := range c.Args {
			foldNode(a, text)
		}
	}
}

// constantMsg reports the id of a command `msg "id"`.
func constantMsg(c *parse.CommandNode) (string, bool) {
	if len(c.Args) != 2 {
		return "", false
	}
	fn, ok := c.Args[0].(*parse.IdentifierNode)
	if !ok || fn.Ident != "msg" {
		return "", false
	}
	id, ok := c.Args[1].(*parse.StringNode)
	if !ok {
		return "", false
	}
	return id.Text, true
}

// foldEscaped replaces each action of t's escaped trees that prints a
// string constant through html/template's escapers alone (what a folded
// msg becomes: {{"Sign in" | _html_template_htmlescaper}}) by the text
// those escapers make of it, computed once by html/template itself for the
// context it escaped the action in. Each escaper was a call through
// reflection on every render, for an output that never changes.
//
// html/template escapes a template, and those it calls, when first
// executed: entry is executed once with data that has no fields, which
// stops at the first field (before any function that takes one is called)
// with the escaping done. So this runs after foldMessages and Funcs,
// before the template is shared. Only actions that carry
// html/template's escapers are folded: a template entry does not reach is
// not escaped, and its actions are left as they are.
func foldEscaped(t *htmltemplate.Template, entry string) {
	_ = t.ExecuteTemplate(io.Discard, entry, struct{}{})
	for _, x := range t.Templates() {
		tree := x.Tree
		if tree == nil || tree.Root == nil {
			continue
		}
		foldActions(tree.Root, func(a *parse.ActionNode) (string, bool) {
			if !printsEscapedConstant(a.Pipe) {
				return "", false
			}
			// The action alone, executed as the tree it belongs to: the
			// escapers are that template's functions.
			root := tree.Root
			tree.Root = &parse.ListNode{NodeType: parse.NodeList, Pos: a.Pos, Nodes: []parse.Node{a}}
			var b strings.Builder
			err := t.ExecuteTemplate(&b, x.Name(), nil)
			tree.Root = root
			return b.String(), err == nil
		})
	}
}

// foldConstantText replaces each action of text/template trees that only
// prints a string constant ({{"Sign in"}}) by the string.
func foldConstantText(trees []*parse.Tree) {
	for _, t := range trees {
		if t == nil || t.Root == nil {
			continue
		}
		foldActions(t.Root, func(a *parse.ActionNode) (string, bool) {
			if !printsConstant(a.Pipe) {
				return "", false
			}
			return constantString(a.Pipe.Cmds[0])
		})
	}
}

// printsConstant reports whether a pipeline is a string constant alone.
func printsConstant(p *parse.PipeNode) bool {
	if p == nil || len(p.Decl) > 0 || len(p.Cmds) != 1 {
		return false
	}
	_, ok := constantString(p.Cmds[0])
	return ok
}

// printsEscapedConstant reports whether a pipeline is a string constant
// passed through html/template's escapers and nothing else.
func printsEscapedConstant(p *parse.PipeNode) bool {
	if p == nil || len(p.Decl) > 0 || len(p.Cmds) < 2 {
		return false
	}
	if _, ok := constantString(p.Cmds[0]); !ok {
		return false
	}
	for _, c := range p.Cmds[1:] {
		if len(c.Args) != 1 {
			return false
		}
		if fn, ok := c.Args[0].(*parse.IdentifierNode); !ok || !strings.HasPrefix(fn.Ident, "_html_template_") {
			return false
		}
	}
	return true
}

// constantString reports the string of a command that is one.
func constantString(c *parse.CommandNode) (string, bool) {
	if len(c.Args) != 1 {
		return "", false
	}
	s, ok := c.Args[0].(*parse.StringNode)
	if !ok {
		return "", false
	}
	return s.Text, true
}

// foldActions replaces, in every list under n, each action fold turns
// into text, and joins neighbouring texts (one write instead of several).
func foldActions(n parse.Node, fold func(*parse.ActionNode) (string, bool)) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		out := n.Nodes[:0]
		for _, c := range n.Nodes {
			if a, ok := c.(*parse.ActionNode); ok {
				if s, ok := fold(a); ok {
					c = &parse.TextNode{NodeType: parse.NodeText, Pos: a.Pos, Text: []byte(s)}
				}
			} else {
				foldActions(c, fold)
			}
			if text, ok := c.(*parse.TextNode); ok && len(out) > 0 {
				if prev, ok := out[len(out)-1].(*parse.TextNode); ok {
					prev.Text = append(slices.Clip(prev.Text), text.Text...)
					continue
				}
			}
			out = append(out, c)
		}
		n.Nodes = out
	case *parse.IfNode:
		foldActions(n.List, fold)
		foldActions(n.ElseList, fold)
	case *parse.RangeNode:
		foldActions(n.List, fold)
		foldActions(n.ElseList, fold)
	case *parse.WithNode:
		foldActions(n.List, fold)
		foldActions(n.ElseList, fold)
	}
}
