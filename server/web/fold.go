package web

import (
	"strconv"
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
