// Package observe is what operators watch: Prometheus metrics and the
// health checks, served on the management listener
// (server.managementListen), apart from the public one.
package observe

import (
	"context"
	"database/sql"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the server's counters and histograms, in a registry of their
// own (nothing global: several servers may run in one test process).
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	logins   *prometheus.CounterVec
	links    *prometheus.CounterVec
	failures *prometheus.CounterVec
}

// New registers the metrics, the Go runtime's and the process's.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_http_requests_total", Help: "HTTP requests by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "latchkey_http_request_duration_seconds", Help: "Time to answer an HTTP request, by route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_logins_total", Help: "Finished logins by result (success, failure) and the methods used (amr).",
		}, []string{"result", "methods"}),
		links: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_magic_links_total", Help: "Magic link events (sent, confirmed, rejected, approved, declined) by reason or method.",
		}, []string{"event", "reason"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_outbox_delivery_failures_total", Help: "Failed delivery attempts by kind (mail is SMTP, webhook, backchannel-logout) and whether it was the last (final).",
		}, []string{"kind", "final"}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.logins, m.links, m.failures,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// DeliveryFailed counts a failed outbox delivery attempt.
func (m *Metrics) DeliveryFailed(kind string, final bool) {
	m.failures.WithLabelValues(kind, strconv.FormatBool(final)).Inc()
}

// OutboxStats reads the outbox: entries waiting for delivery, and when the
// oldest of those that are due was due (zero: none due).
type OutboxStats func(ctx context.Context, now time.Time) (waiting int64, oldestDue time.Time, err error)

// Outbox exports the outbox's depth and the age of its oldest due entry,
// read at each scrape (bounded to 2 s).
func (m *Metrics) Outbox(stats OutboxStats) error {
	read := func() (int64, float64) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		now := time.Now()
		n, oldest, err := stats(ctx, now)
		if err != nil {
			return -1, -1
		}
		if oldest.IsZero() {
			return n, 0
		}
		return n, now.Sub(oldest).Seconds()
	}
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "latchkey_outbox_waiting", Help: "Outbox entries (mail, webhooks, logout tokens) not yet delivered or given up; -1: unreadable."},
			func() float64 { n, _ := read(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "latchkey_outbox_oldest_due_seconds", Help: "How long the oldest due outbox entry has waited; 0: none due."},
			func() float64 { _, age := read(); return age }),
	} {
		if err := m.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// DBStats exports a database pool's statistics.
func (m *Metrics) DBStats(db *sql.DB, name string) error {
	return m.reg.Register(collectors.NewDBStatsCollector(db, name))
}

// Login counts a finished login.
func (m *Metrics) Login(success bool, methods []string) {
	result := "failure"
	if success {
		result = "success"
	}
	m.logins.WithLabelValues(result, strings.Join(methods, "+")).Inc()
}

// LinkEvent counts a magic link event.
func (m *Metrics) LinkEvent(event, reason string) { m.links.WithLabelValues(event, reason).Inc() }

// Handler serves /metrics in Prometheus' exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Instrument counts and times every request by the route pattern the mux
// chose (never the raw path: ids and tokens stay out of label values).
func (m *Metrics) Instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		route := r.Pattern // set by http.ServeMux on this request
		if route == "" {
			route = "unmatched"
		}
		m.requests.WithLabelValues(route, r.Method, strconv.Itoa(sw.status)).Inc()
		m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (flush, deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Check is one readiness check: nil when ready.
type Check struct {
	Name string
	Run  func(ctx context.Context) error
}

// Health serves Keycloak's /health/live and /health/ready (and /health,
// the same): {"status": "UP"|"DOWN", "checks": [{"name", "status"}]}, 503
// when down. A failing check's error goes to the log, not to the caller.
func Health(log *slog.Logger, checks ...Check) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health/live", func(w http.ResponseWriter, r *http.Request) { report(w, nil) })
	ready := func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		results := make([]checkResult, len(checks))
		for i, c := range checks {
			results[i] = checkResult{Name: c.Name, Status: "UP"}
			if err := c.Run(ctx); err != nil {
				results[i].Status = "DOWN"
				log.Warn("readiness check failed", "check", c.Name, "err", err)
			}
		}
		report(w, results)
	}
	mux.HandleFunc("GET /health/ready", ready)
	mux.HandleFunc("GET /health", ready)
	return mux
}

type checkResult struct {
	Name   string `json:"name"`
	Status string `json:"status"`
}

func report(w http.ResponseWriter, checks []checkResult) {
	status, code := "UP", http.StatusOK
	for _, c := range checks {
		if c.Status != "UP" {
			status, code = "DOWN", http.StatusServiceUnavailable
		}
	}
	if checks == nil {
		checks = []checkResult{}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"status": status, "checks": checks})
}
