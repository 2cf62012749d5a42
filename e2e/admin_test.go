package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"latchkey/e2e/testkit"
)

const apiKey = "test-api-key-0123456789-0123456789-abcdef"

// api calls the management API and decodes the JSON answer.
func api(t *testing.T, s *setup, method, path, key string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		if raw, ok := body.(string); ok {
			rd = strings.NewReader(raw)
		} else {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
	}
	code, _, b := call(t, method, s.LK.Issuer+path, key, rd)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return code, out
}

// call sends a JSON request, with a bearer key unless it is empty, and
// returns the answer's status, headers and body.
func call(t *testing.T, method, url, key string, body io.Reader) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, body)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func mint(t *testing.T, s *setup, req map[string]any) map[string]any {
	t.Helper()
	base := map[string]any{"clientId": "app", "redirectUri": s.App.URL + "/login"}
	for k, v := range req {
		base[k] = v
	}
	code, out := api(t, s, http.MethodPost, "/magic-links", apiKey, base)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, out)
	}
	return out
}

func TestMintedLinkLogsInThroughBrowser(t *testing.T) {
	ctx := testkit.Browser(t)
	s := start(t, magic(nil))
	out := mint(t, s, map[string]any{"email": "alice@example.com", "ttl": "1h", "send": false})
	for _, k := range []string{"id", "url", "userId", "type", "redirectUri", "expiresAt", "sent"} {
		if _, ok := out[k]; !ok {
			t.Errorf("answer lacks %s: %v", k, out)
		}
	}
	exp, _ := time.Parse(time.RFC3339, out["expiresAt"].(string))
	if d := time.Until(exp); d < 59*time.Minute || d > 61*time.Minute || out["sent"] != false || out["type"] != "login" {
		t.Fatalf("answer %v", out)
	}
	do(t, ctx, chromedp.Navigate(out["url"].(string)), chromedp.WaitVisible(chromedp.ID("confirm")),
		chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.ID("result")))
	if r := text(t, ctx, "#result"); r != "Logged in as alice@example.com" {
		t.Fatalf("app shows %q", r)
	}
	res := s.App.Last()
	if res.Err != "" || res.Claims["email"] != "alice@example.com" {
		t.Fatalf("result %q claims %v", res.Err, res.Claims)
	}
	// After use: status used, and the link is refused.
	code, got := api(t, s, http.MethodGet, "/magic-links/"+out["id"].(string), apiKey, nil)
	if code != http.StatusOK || got["status"] != "used" || got["usedAt"] == nil || got["openedAt"] == nil {
		t.Fatalf("get after use: %d %v", code, got)
	}
	for _, k := range []string{"url", "token", "tokenHash"} {
		if _, leaked := got[k]; leaked {
			t.Errorf("get shows %s", k)
		}
	}
	if p := testkit.NewClient(t).Get(out["url"].(string)); p.Status != http.StatusGone {
		t.Fatalf("used minted link: %d", p.Status)
	}
}

func TestMintedLinkSentByMail(t *testing.T) {
	s := start(t, magic(nil))
	out := mint(t, s, map[string]any{"email": "alice@example.com", "send": true})
	m := s.SMTP.WaitFor(t, "alice@example.com", 1, 10*time.Second)[0]
	if m.Link() != out["url"] || out["sent"] != true {
		t.Fatalf("mailed link %q, minted %v", m.Link(), out["url"])
	}
}

func TestMintedLinkListRevokeAndReject(t *testing.T) {
	s := start(t, magic(nil))
	a := mint(t, s, map[string]any{"email": "alice@example.com"})
	b := mint(t, s, map[string]any{"email": "alice@example.com"})
	if code, _ := api(t, s, http.MethodDelete, "/magic-links/"+a["id"].(string), apiKey, nil); code != http.StatusNoContent {
		t.Fatalf("revoke: %d", code)
	}
	if code, _ := api(t, s, http.MethodDelete, "/magic-links/"+a["id"].(string), apiKey, nil); code != http.StatusConflict {
		t.Fatalf("second revoke: %d", code)
	}
	p := testkit.NewClient(t).Get(a["url"].(string))
	if p.Status != http.StatusGone {
		t.Fatalf("revoked link opened: %d", p.Status)
	}
	for status, want := range map[string]string{"revoked": a["id"].(string), "pending": b["id"].(string)} {
		code, list := api(t, s, http.MethodGet, "/magic-links?status="+status+"&email=alice@example.com", "reader-api-key-0123456789-0123456789-abcd", nil)
		items, _ := list["items"].([]any)
		if code != http.StatusOK || len(items) != 1 || items[0].(map[string]any)["id"] != want {
			t.Fatalf("list %s: %d %v", status, code, list)
		}
	}
	code, page := api(t, s, http.MethodGet, "/magic-links?limit=1", apiKey, nil)
	if code != http.StatusOK || page["total"] != float64(2) || page["nextOffset"] != float64(1) {
		t.Fatalf("paging: %v", page)
	}
	// The read-only key cannot mint or revoke.
	if code, _ := api(t, s, http.MethodDelete, "/magic-links/"+b["id"].(string), "reader-api-key-0123456789-0123456789-abcd", nil); code != http.StatusForbidden {
		t.Fatalf("reader revoked: %d", code)
	}
}

func TestMintValidation(t *testing.T) {
	s := start(t, magic(nil))
	ok := map[string]any{"email": "alice@example.com", "clientId": "app", "redirectUri": s.App.URL + "/login"}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for a, b := range ok {
			m[a] = b
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	cases := []struct {
		name  string
		body  any
		field string
	}{
		{"unknown redirect URI", with("redirectUri", "https://evil.example/"), "redirectUri"},
		{"ttl over 30 days", with("ttl", "31d"), "ttl"},
		{"ttl nonsense", with("ttl", "soon"), "ttl"},
		{"both email and userId", with("userId", "u-1"), "email"},
		{"neither email nor userId", with("email", nil), "email"},
		{"unknown client", with("clientId", "nope"), "clientId"},
		{"unknown field", with("redirect_uri", "x"), "redirect_uri"},
		{"wrong type", with("send", "yes"), "send"},
		{"bad link type", with("type", "reset"), "type"},
		{"unknown email without forceCreate", with("email", "ghost@example.com"), "email"},
		{"not JSON", "{", ""},
	}
	for _, tc := range cases {
		code, out := api(t, s, http.MethodPost, "/magic-links", apiKey, tc.body)
		if code != http.StatusBadRequest || out["field"] != tc.field || out["message"] == "" {
			t.Errorf("%s: %d %v, want 400 naming %q", tc.name, code, out, tc.field)
		}
	}
	if _, list := api(t, s, http.MethodGet, "/magic-links", apiKey, nil); list["total"] != float64(0) {
		t.Fatalf("bad requests created links: %v", list)
	}
	for _, key := range []string{"", "wrong-key-0123456789-0123456789-0123456789"} {
		code, out := api(t, s, http.MethodPost, "/magic-links", key, ok)
		if code != http.StatusUnauthorized || len(out) != 1 {
			t.Errorf("key %q: %d %v, want 401 with no detail", key, code, out)
		}
	}
	if strings.Contains(s.LK.Logs(), apiKey) {
		t.Fatal("the API key appears in the log")
	}
}

func TestVerifyEmailLinkIssuesNoSession(t *testing.T) {
	s := start(t, magic(nil))
	out := mint(t, s, map[string]any{"email": "newbie@example.com", "type": "verify-email"})
	c := testkit.NewClient(t)
	p := confirm(t, c, out["url"].(string))
	if !p.Has("is verified") {
		t.Fatalf("verify page:\n%s", p.Body)
	}
	u, err := s.LK.Server.Store.UserByEmail(t.Context(), "newbie@example.com")
	if err != nil || !u.EmailVerified {
		t.Fatalf("user %+v %v", u, err)
	}
	c.Get(s.App.LoginURL(url.Values{"prompt": {"none"}}))
	if res := s.App.Last(); res.Err != "login_required" {
		t.Fatalf("a verify-email link opened a session: %q", res.Err)
	}
}

func TestMintedLinkStillRunsRequiredActions(t *testing.T) {
	s := start(t, magic(nil))
	out := mint(t, s, map[string]any{"email": "erin@example.com", "forceCreate": true, "updateProfile": true,
		"profile": map[string]string{"firstName": "Erin"}})
	c := testkit.NewClient(t)
	p := confirm(t, c, out["url"].(string))
	if !p.Has("Complete your profile") || len(s.App.Results()) != 0 {
		t.Fatalf("the minted link skipped the pending required action:\n%s", p.Body)
	}
	f := p.Form(t, "firstName")
	if f.Fields.Get("firstName") != "Erin" {
		t.Fatalf("profile attribute not set on the created user: %v", f.Fields)
	}
	p = c.Submit(p, f, map[string]string{"lastName": "Example"})
	res := s.App.Last()
	if res.Err != "" || res.Claims["name"] != "Erin Example" || res.Claims["email_verified"] != true {
		t.Fatalf("result %q claims %v\n%s", res.Err, res.Claims, p.Body)
	}
}
