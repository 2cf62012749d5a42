package main

import (
	"context"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"golang.org/x/oauth2"
)

// peerDir is where the Node peer is (bench/peer in the repository):
// panva's oidc-provider, in memory, with its development password form.
// Issue 17 compares Latchkey's logins/s with it, measured the same way.
func peerDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "bench", "peer"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("-peer: run from inside the repository (no go.mod above the working directory)")
		}
		dir = parent
	}
}

// launchPeer starts the Node peer as the server under test, pinned like
// Latchkey would be, so that its CPU time and RSS are read the same way.
func launchPeer(o options, dir string) (*target, error) {
	if o.signingAlg != "ES256" && o.signingAlg != "RS256" {
		return nil, fmt.Errorf("-peer signs with ES256 or RS256, not %q", o.signingAlg)
	}
	peer, err := peerDir()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(peer, "node_modules", "oidc-provider")); err != nil {
		return nil, fmt.Errorf("-peer: the peer is not installed: run npm ci --prefix %s", peer)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("-peer needs Node.js: %w", err)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := strings.Cut(addr, ":")
	t := &target{URL: "http://" + addr, Issuer: "http://" + addr, driver: "peer"}
	t.cmd = exec.Command(node, filepath.Join(peer, "provider.mjs"))
	logf, err := os.Create(filepath.Join(dir, "peer.log"))
	if err != nil {
		return nil, err
	}
	t.cmd.Stdout, t.cmd.Stderr = logf, logf
	t.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	t.cmd.Env = append(os.Environ(), "NODE_ENV=production", "PORT="+port, "SIGNING_ALG="+o.signingAlg)
	if err := startTarget(o, t); err != nil {
		return nil, err
	}
	if err := t.await(t.Issuer+"/.well-known/openid-configuration", filepath.Join(dir, "peer.log")); err != nil {
		return nil, err
	}
	return t, nil
}

// peerLogin is one complete login at the Node peer, as a browser and an
// app do it: the authorization request (redirected to the login form),
// the form, the password POST (redirected back to the authorization,
// which redirects to the consent form), the consent POST, the resumed
// authorization (redirected with the code), then what every login ends
// with (finish). Any login is accepted; there is no mail.
func (r *rp) peerLogin(ctx context.Context, email string, rec func(step string, d time.Duration)) (*oauth2.Token, error) {
	v := r.visit(email, rec)
	c, lap := v.c, v.lap
	loc, err := follow(c, v.authURL())
	if err != nil {
		return nil, fail("authorize", "%v", err)
	}
	lap("authorize")
	action, err := peerForm(c, loc)
	if err != nil {
		return nil, fail("login_page", "%v", err)
	}
	lap("login_page")
	if loc, err = submit(c, action, url.Values{"prompt": {"login"}, "login": {email}, "password": {"bench"}}); err != nil {
		return nil, fail("password_post", "%v", err)
	}
	lap("password_post")
	if loc, err = follow(c, loc); err == nil {
		action, err = peerForm(c, loc)
	}
	if err != nil {
		return nil, fail("consent_page", "%v", err)
	}
	lap("consent_page")
	if loc, err = submit(c, action, url.Values{"prompt": {"consent"}}); err != nil {
		return nil, fail("consent_post", "%v", err)
	}
	lap("consent_post")
	cbURL, err := follow(c, loc)
	if err != nil {
		return nil, fail("resume", "%v", err)
	}
	cb, _ := url.Parse(cbURL)
	if cb.Query().Get("state") != v.state || cb.Query().Get("code") == "" {
		return nil, fail("resume", "no code or wrong state")
	}
	lap("resume")
	return v.finish(ctx, cb.Query().Get("code"))
}

var peerFormRe = regexp.MustCompile(`<form autocomplete="off" action="([^"]+)" method="post">`)

// peerForm GETs one of the peer's interaction pages and returns where its
// form posts.
func peerForm(c *http.Client, page string) (string, error) {
	body, err := get(c, page)
	if err != nil {
		return "", err
	}
	action := find(peerFormRe, body)
	if action == "" {
		return "", errors.New("no form")
	}
	return resolve(page, html.UnescapeString(action)), nil
}

// submit POSTs a form and returns where its 303 points, resolved.
func submit(c *http.Client, action string, form url.Values) (string, error) {
	resp, err := c.PostForm(action, form)
	return seeOther(action, resp, err)
}

// follow GETs u and returns where its 303 points, resolved against u.
func follow(c *http.Client, u string) (string, error) {
	resp, err := c.Get(u)
	return seeOther(u, resp, err)
}

// seeOther is where a request to u was sent on: its 303's Location,
// resolved against u.
func seeOther(u string, resp *http.Response, err error) (string, error) {
	if err != nil {
		return "", errors.New("transport")
	}
	loc, err := redirect(resp, http.StatusSeeOther)
	if err != nil {
		return "", err
	}
	return resolve(u, loc), nil
}
