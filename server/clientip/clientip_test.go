package clientip

import (
	"net/http"
	"testing"
)

func TestOf(t *testing.T) {
	r, err := New([]string{"10.0.0.0/8", "192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ remote, xff, want string }{
		{"203.0.113.5:4000", "", "203.0.113.5"},                       // direct client
		{"203.0.113.5:4000", "1.2.3.4", "203.0.113.5"},                // untrusted peer: header ignored
		{"10.1.2.3:4000", "198.51.100.9", "198.51.100.9"},             // behind the balancer
		{"10.1.2.3:4000", "6.6.6.6, 198.51.100.9", "198.51.100.9"},    // client-forged entry on the left
		{"10.1.2.3:4000", "198.51.100.9, 10.9.9.9", "198.51.100.9"},   // two proxies
		{"192.0.2.7:4000", "198.51.100.9, 192.0.2.7", "198.51.100.9"}, // single trusted address
		{"10.1.2.3:4000", "", "10.1.2.3"},                             // balancer health check
		{"10.1.2.3:4000", "not-an-ip, 198.51.100.9", "198.51.100.9"},  // garbage left of a real hop
		{"[::ffff:10.1.2.3]:4000", "198.51.100.9", "198.51.100.9"},    // v4-mapped peer
	}
	for _, c := range cases {
		req, _ := http.NewRequest("GET", "/", nil)
		req.RemoteAddr = c.remote
		if c.xff != "" {
			req.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := r.Of(req); got != c.want {
			t.Errorf("remote %s xff %q: %s, want %s", c.remote, c.xff, got, c.want)
		}
	}
	var none *Resolver
	req, _ := http.NewRequest("GET", "/", nil)
	req.RemoteAddr, _ = "10.1.2.3:1", req.Header
	req.Header.Set("X-Forwarded-For", "198.51.100.9")
	if got := none.Of(req); got != "10.1.2.3" {
		t.Errorf("without trusted proxies: %s", got)
	}
	if _, err := New([]string{"nonsense"}); err == nil {
		t.Error("accepted a bad CIDR")
	}
}
