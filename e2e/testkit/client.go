package testkit

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// Client is a cookie-keeping HTTP client that fills in forms, for tests of
// the protocol without a browser.
type Client struct {
	HTTP *http.Client
	t    testing.TB
}

// NewClient returns a client with an empty cookie jar that follows redirects.
func NewClient(t testing.TB) *Client {
	jar, _ := cookiejar.New(nil)
	return &Client{HTTP: &http.Client{Jar: jar}, t: t}
}

// NewClientFrom returns a client whose requests come, as a trusted proxy
// says with X-Forwarded-For, from the client address ip.
func NewClientFrom(t testing.TB, ip string) *Client {
	c := NewClient(t)
	c.HTTP.Transport = forwardedFor{ip}
	return c
}

type forwardedFor struct{ ip string }

func (f forwardedFor) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", f.ip)
	return http.DefaultTransport.RoundTrip(r)
}

// Page is a fetched page.
type Page struct {
	URL    *url.URL
	Status int
	Body   string
	Header http.Header
	Forms  []Form
}

// Form is an HTML form with its current field values.
type Form struct {
	Action string
	Fields url.Values
}

// Get fetches u, following redirects.
func (c *Client) Get(u string) *Page {
	c.t.Helper()
	resp, err := c.HTTP.Get(u)
	if err != nil {
		c.t.Fatalf("GET %s: %v", u, err)
	}
	return c.page(resp)
}

// Do sends a request the test built (headers of its own).
func (c *Client) Do(req *http.Request) *Page {
	c.t.Helper()
	resp, err := c.HTTP.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	return c.page(resp)
}

// Submit posts a form with some fields changed.
func (c *Client) Submit(p *Page, f Form, set map[string]string) *Page {
	c.t.Helper()
	vals := url.Values{}
	for k, v := range f.Fields {
		vals[k] = append([]string(nil), v...)
	}
	for k, v := range set {
		vals.Set(k, v)
	}
	action, err := p.URL.Parse(f.Action)
	if err != nil {
		c.t.Fatal(err)
	}
	resp, err := c.HTTP.PostForm(action.String(), vals)
	if err != nil {
		c.t.Fatalf("POST %s: %v", action, err)
	}
	return c.page(resp)
}

// Post posts raw form values to u (a forged or hand-made form).
func (c *Client) Post(u string, vals url.Values) *Page {
	c.t.Helper()
	resp, err := c.HTTP.PostForm(u, vals)
	if err != nil {
		c.t.Fatalf("POST %s: %v", u, err)
	}
	return c.page(resp)
}

func (c *Client) page(resp *http.Response) *Page {
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return &Page{URL: resp.Request.URL, Status: resp.StatusCode, Body: string(b), Header: resp.Header, Forms: parseForms(string(b))}
}

// Form returns the first form with a field named field.
func (p *Page) Form(t testing.TB, field string) Form {
	t.Helper()
	for _, f := range p.Forms {
		if _, ok := f.Fields[field]; ok {
			return f
		}
	}
	t.Fatalf("no form with field %q on %s (status %d):\n%s", field, p.URL, p.Status, p.Body)
	return Form{}
}

// FormTo returns the first form whose action's path ends with suffix.
func (p *Page) FormTo(t testing.TB, suffix string) Form {
	t.Helper()
	for _, f := range p.Forms {
		if u, err := url.Parse(f.Action); err == nil && strings.HasSuffix(u.Path, suffix) {
			return f
		}
	}
	t.Fatalf("no form posting to ...%s on %s:\n%s", suffix, p.URL, p.Body)
	return Form{}
}

// FormWith returns the first form whose field has value.
func (p *Page) FormWith(t testing.TB, field, value string) Form {
	t.Helper()
	for _, f := range p.Forms {
		if f.Fields.Get(field) == value {
			return f
		}
	}
	t.Fatalf("no form with %s=%q on %s:\n%s", field, value, p.URL, p.Body)
	return Form{}
}

// Has reports whether the page's text contains s.
func (p *Page) Has(s string) bool { return strings.Contains(html.UnescapeString(p.Body), s) }

func parseForms(doc string) []Form {
	var forms []Form
	z := html.NewTokenizer(strings.NewReader(doc))
	var cur *Form
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return forms
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			attr := func(k string) (string, bool) {
				for _, a := range tok.Attr {
					if a.Key == k {
						return a.Val, true
					}
				}
				return "", false
			}
			switch tok.Data {
			case "form":
				action, _ := attr("action")
				forms = append(forms, Form{Action: action, Fields: url.Values{}})
				cur = &forms[len(forms)-1]
			case "input":
				if cur != nil {
					if name, ok := attr("name"); ok {
						v, _ := attr("value")
						cur.Fields.Add(name, v)
					}
				}
			}
		case html.EndTagToken:
			if z.Token().Data == "form" {
				cur = nil
			}
		}
	}
}
