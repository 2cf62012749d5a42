package e2e

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"latchkey/e2e/testkit"
)

// scrape reads /metrics from the management handler as Prometheus would.
func scrape(t *testing.T, mgmt *httptest.Server) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(mgmt.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value is the sum of a family's samples whose labels include want.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	var sum float64
	f := fams[name]
	if f == nil {
		return 0
	}
next:
	for _, m := range f.GetMetric() {
		for k, v := range want {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

// /metrics, scraped and parsed with Prometheus' own parser after a magic
// link login: the login, link and request counters moved, by route
// pattern (never a raw path with a token in it); the pools and the Go
// runtime are there.
func TestMetricsAfterALogin(t *testing.T) {
	s := start(t, magic(nil))
	mgmt := httptest.NewServer(s.LK.Server.Management)
	t.Cleanup(mgmt.Close)
	before := scrape(t, mgmt)
	c := testkit.NewClient(t)
	s.requestLink(t, c, "alice@example.com")
	confirm(t, c, s.SMTP.WaitFor(t, "alice@example.com", 1, 10*time.Second)[0].Link())
	if res := s.App.Last(); res.Err != "" {
		t.Fatalf("login: %s", res.Err)
	}
	// A login that fails: the address holder says "This wasn't me", and the
	// login's own page then ends it.
	laptop, phone := testkit.NewClient(t), testkit.NewClient(t)
	sent := s.requestLink(t, laptop, "alice@example.com")
	lp := phone.Get(s.SMTP.WaitFor(t, "alice@example.com", 2, 10*time.Second)[1].Link())
	if p := phone.Submit(lp, lp.FormTo(t, "/magic-link/decline"), nil); !p.Has("Sign-in declined") {
		t.Fatalf("decline:\n%s", p.Body)
	}
	if p := laptop.Get(sent.URL.String()); p.Status != http.StatusGone && p.Status != http.StatusForbidden {
		t.Fatalf("the declined login's page: %d\n%s", p.Status, p.Body)
	}
	after := scrape(t, mgmt)
	for _, c := range []struct {
		name   string
		labels map[string]string
	}{
		{"latchkey_logins_total", map[string]string{"result": "success", "methods": "email"}},
		{"latchkey_logins_total", map[string]string{"result": "failure"}},
		{"latchkey_magic_links_total", map[string]string{"event": "declined"}},
		{"latchkey_magic_links_total", map[string]string{"event": "sent", "reason": "login"}},
		{"latchkey_magic_links_total", map[string]string{"event": "confirmed", "reason": "link"}},
		{"latchkey_http_requests_total", map[string]string{"route": "POST /realms/test/login-actions/magic-link", "status": "303"}},
		{"latchkey_http_request_duration_seconds", map[string]string{"route": "GET /realms/test/protocol/openid-connect/auth"}},
	} {
		if d := value(after, c.name, c.labels) - value(before, c.name, c.labels); d < 1 {
			t.Errorf("%s%v moved by %v", c.name, c.labels, d)
		}
	}
	for _, name := range []string{"go_goroutines", "go_sql_open_connections"} {
		if after[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	for _, m := range after["latchkey_http_requests_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "route" && (len(l.GetValue()) > 120 || l.GetValue() == "") {
				t.Errorf("route label %q", l.GetValue())
			}
		}
	}
}

// /health/live and /health/ready answer in Keycloak's shape.
func TestHealthEndpoints(t *testing.T) {
	s := start(t, magic(nil))
	mgmt := httptest.NewServer(s.LK.Server.Management)
	t.Cleanup(mgmt.Close)
	for _, path := range []string{"/health/live", "/health/ready", "/health"} {
		resp, err := http.Get(mgmt.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Status string `json:"status"`
			Checks []struct{ Name, Status string }
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || body.Status != "UP" {
			t.Fatalf("%s: %d %+v %v", path, resp.StatusCode, body, err)
		}
		if path != "/health/live" && len(body.Checks) != 3 {
			t.Fatalf("%s checks: %+v", path, body.Checks)
		}
	}
}

// The served binary runs its garbage collector at the target the README
// gives (200 when GOGC is unset): read from its own /metrics, as an
// operator's Prometheus would.
func TestServedBinaryGCTarget(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "realm.yaml")
	if err := os.WriteFile(path, []byte(binaryRealm(dir, testkit.StartSMTP(t), testkit.StartApp(t), "")), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOGC", "") // the node inherits the environment: GOGC unset
	node := testkit.StartNode(t, "gc", path)
	m := regexp.MustCompile(`management listener.* listen=(127\.0\.0\.1:\d+)`).FindStringSubmatch(node.Logs())
	if m == nil {
		t.Fatalf("no management listener in the log:\n%s", node.Logs())
	}
	fams := scrape(t, &httptest.Server{URL: "http://" + m[1]})
	if got := value(fams, "go_gc_gogc_percent", nil); got != 200 {
		t.Fatalf("go_gc_gogc_percent = %v, want 200", got)
	}
}
