// Command bench is Latchkey's load generator: complete magic-link logins
// driven exactly as browsers and apps do them (authorization request with
// PKCE, login page, email form with CSRF, the mail over SMTP, the link, the
// confirm POST, the code exchange, ID token verification, userinfo), then
// refresh grants and discovery/JWKS requests.
//
//	go run ./bench -concurrency 16 -duration 30s -users 10000 -new-users 0.1
//	go run ./bench -smoke
//
// By default it builds and starts its own Latchkey (SQLite in a temporary
// folder, or -postgres DSN) so that it can read the server's CPU time and
// peak RSS; -url points it at a running one instead.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
)

type options struct {
	url          string
	concurrency  int
	duration     time.Duration
	users        int
	newUsers     float64
	postgres     string
	conns        int
	checkpoint   string
	jsonOut      string
	smoke        bool
	refreshFor   time.Duration
	discoveryFor time.Duration
	profile      string
	quietServer  bool
	keep         bool
	genProfile   string
	signingAlg   string
	// serverCPUs and generatorCPUs pin the two to their own cores
	// (CPU lists like "0" and "1"); empty: unpinned.
	serverCPUs, generatorCPUs string
	// peer runs the logins against the Node peer (bench/peer) instead.
	peer bool
}

func main() {
	var o options
	flag.StringVar(&o.url, "url", "", "issuer of a running Latchkey (realm with client \"bench\"); empty: start one")
	flag.IntVar(&o.concurrency, "concurrency", 16, "virtual users logging in at once")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "how long to run logins")
	flag.IntVar(&o.users, "users", 1000, "existing users seeded before the run")
	flag.Float64Var(&o.newUsers, "new-users", 0.1, "fraction of logins by unknown addresses (force-created)")
	flag.StringVar(&o.postgres, "postgres", "", "PostgreSQL DSN (default: a SQLite file)")
	flag.IntVar(&o.conns, "db-conns", 16, "server database pool size (database.maxOpenConns)")
	flag.StringVar(&o.checkpoint, "checkpoint-interval", "", "SQLite background checkpoint interval (database.checkpointInterval; 0: the writer's own; empty: the realm default)")
	flag.StringVar(&o.jsonOut, "json", "", "write the report as JSON to this file")
	flag.BoolVar(&o.smoke, "smoke", false, "a few seconds at low load; exit 1 on any error (CI)")
	flag.DurationVar(&o.refreshFor, "refresh-duration", 5*time.Second, "how long to run refresh grants")
	flag.DurationVar(&o.discoveryFor, "discovery-duration", 5*time.Second, "how long to run discovery + JWKS requests")
	flag.StringVar(&o.profile, "cpuprofile", "", "write a CPU profile of the server during the login phase to this file")
	flag.BoolVar(&o.quietServer, "quiet-server", true, "run the server with LATCHKEY_LOG_LEVEL=warn (per-login info logs cost CPU)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary folder (database, server log)")
	flag.StringVar(&o.signingAlg, "signing-alg", "RS256", "the realm's tokens.signingAlgorithm (RS256, ES256, EdDSA)")
	flag.StringVar(&o.genProfile, "gen-cpuprofile", "", "write the generator's own CPU profile during the login phase to this file")
	flag.StringVar(&o.serverCPUs, "server-cpus", "", `pin the server to these CPUs ("0"); with -generator-cpus: "pinned mode", reporting logins/s per server core`)
	flag.StringVar(&o.generatorCPUs, "generator-cpus", "", `pin the generator to these CPUs ("1")`)
	flag.BoolVar(&o.peer, "peer", false, "run against the Node peer of issue 17's comparison (panva's oidc-provider, in memory, password form; npm ci --prefix bench/peer first) instead of Latchkey")
	flag.Parse()
	if o.smoke {
		o.concurrency, o.duration, o.users, o.refreshFor, o.discoveryFor = 2, 3*time.Second, 50, time.Second, time.Second
	}
	rep, err := run(context.Background(), o, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if o.smoke && (rep.Logins.Errors > 0 || rep.Logins.Completed == 0 || rep.Refresh.Errors > 0 || rep.Discovery.Errors > 0) {
		fmt.Fprintln(os.Stderr, "bench: smoke run failed")
		os.Exit(1)
	}
}

// Report is the benchmark's result (also written as JSON).
type Report struct {
	Machine      string             `json:"machine"`
	Options      map[string]any     `json:"options"`
	Logins       Phase              `json:"logins"`
	Steps        map[string]Latency `json:"stepsMs"`
	Refresh      Phase              `json:"refresh"`
	Discovery    Phase              `json:"discoveryAndJWKS"`
	Server       ServerFigures      `json:"server"`
	ErrorsByKind map[string]int64   `json:"errorsByKind"`
}

// Phase is one load phase.
type Phase struct {
	Completed int64   `json:"completed"`
	Errors    int64   `json:"errors"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"perSecond"`
}

// Latency is a step's percentiles in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// ServerFigures are read from the server process.
type ServerFigures struct {
	CPUSecondsPerLogin float64 `json:"cpuSecondsPerLogin"`
	// GeneratorCPUSecondsPerLogin is this load generator's own CPU per
	// login: on a shared machine it is capacity the server does not get.
	GeneratorCPUSecondsPerLogin float64 `json:"generatorCpuSecondsPerLogin"`
	// CPUBoundLoginsPerSecond is what the machine's cores could do at these
	// CPU costs (server + generator) if they were never idle: the ceiling
	// the measured rate is to be read against.
	CPUBoundLoginsPerSecond float64 `json:"cpuBoundLoginsPerSecond"`
	PeakRSSMB               float64 `json:"peakRssMB"`
	// Pinned mode (-server-cpus, -generator-cpus): the server's cores, the
	// measured logins/s per server core, and what one core does at the
	// measured CPU per login (1 / CPU per login).
	ServerCores                  int     `json:"serverCores,omitempty"`
	LoginsPerSecondPerServerCore float64 `json:"loginsPerSecondPerServerCore,omitempty"`
	CoreCapacityLoginsPerSecond  float64 `json:"coreCapacityLoginsPerSecond,omitempty"`
	DBSizeBeforeMB               float64 `json:"dbSizeBeforeMB"`
	DBSizeAfterMB                float64 `json:"dbSizeAfterMB"`
}

type recorder struct {
	mu    sync.Mutex
	steps map[string][]float64
	errs  map[string]int64
}

func (r *recorder) add(step string, d time.Duration) {
	r.mu.Lock()
	r.steps[step] = append(r.steps[step], float64(d.Microseconds())/1000)
	r.mu.Unlock()
}

func (r *recorder) fail(kind string) {
	r.mu.Lock()
	r.errs[kind]++
	r.mu.Unlock()
}

func run(ctx context.Context, o options, out io.Writer) (*Report, error) {
	sink, err := startMailSink()
	if err != nil {
		return nil, err
	}
	defer sink.srv.Close()
	var t *target
	issuer := o.url
	if issuer == "" {
		dir, err := os.MkdirTemp("", "latchkey-bench-")
		if err != nil {
			return nil, err
		}
		if !o.keep {
			defer os.RemoveAll(dir)
		} else {
			fmt.Fprintln(out, "keeping", dir)
		}
		if o.peer {
			fmt.Fprintln(out, "starting the Node peer...")
			t, err = launchPeer(o, dir)
		} else {
			fmt.Fprintf(out, "building and starting latchkey (seeding %d users)...\n", o.users)
			t, err = launch(ctx, o, sink.port(), dir)
		}
		if err != nil {
			return nil, err
		}
		defer t.stop()
		issuer = t.Issuer
	}
	serverCores := 0
	if o.serverCPUs != "" {
		_, serverCores, _ = cpuSet(o.serverCPUs) // launch checked it
	}
	if o.generatorCPUs != "" {
		set, n, err := cpuSet(o.generatorCPUs)
		if err != nil {
			return nil, fmt.Errorf("-generator-cpus: %w", err)
		}
		if err := pinSelf(set, n); err != nil {
			return nil, err
		}
	}
	r, err := newRP(ctx, issuer, sink, o.concurrency)
	if err != nil {
		return nil, err
	}
	login := r.login
	if o.peer {
		login = r.peerLogin
	}
	rep := &Report{
		Machine: fmt.Sprintf("%s/%s, %d CPUs, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version()),
		Options: map[string]any{"concurrency": o.concurrency, "duration": o.duration.String(), "users": o.users,
			"newUsers": o.newUsers, "signingAlgorithm": o.signingAlg, "checkpointInterval": o.checkpoint, "serverCPUs": o.serverCPUs, "generatorCPUs": o.generatorCPUs, "database": database(o)},
		Steps: map[string]Latency{}, ErrorsByKind: map[string]int64{},
	}
	if t != nil {
		rep.Server.DBSizeBeforeMB = t.dbSizeMB(ctx)
	}
	rec := &recorder{steps: map[string][]float64{}, errs: map[string]int64{}}
	cpu0, _ := t.procStats()
	gen0 := selfCPU()

	// Phase 1: complete logins.
	var profileDone chan error
	if o.profile != "" && t != nil {
		profileDone = make(chan error, 1)
		go func() { profileDone <- fetchProfile(t.pprof, o.profile, o.duration) }()
	}
	if o.genProfile != "" {
		f, err := os.Create(o.genProfile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(out, "logins: %d virtual users for %s...\n", o.concurrency, o.duration)
	var done, failed atomic.Int64
	tokens := make([]string, o.concurrency)
	start := time.Now()
	deadline := start.Add(o.duration)
	var wg sync.WaitGroup
	for w := range o.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				email := pickEmail(o, w)
				tok, err := login(ctx, email, rec.add)
				if err != nil {
					failed.Add(1)
					var le *loginError
					if errors.As(err, &le) {
						rec.fail(le.kind)
					} else {
						rec.fail(err.Error())
					}
					continue
				}
				done.Add(1)
				tokens[w] = tok.RefreshToken
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	if o.genProfile != "" {
		pprof.StopCPUProfile()
	}
	rep.Logins = Phase{Completed: done.Load(), Errors: failed.Load(), Seconds: elapsed, PerSecond: float64(done.Load()) / elapsed}
	cpu1, rss := t.procStats()
	if done.Load() > 0 && t != nil {
		rep.Server.CPUSecondsPerLogin = (cpu1 - cpu0) / float64(done.Load())
	}
	if done.Load() > 0 {
		rep.Server.GeneratorCPUSecondsPerLogin = (selfCPU() - gen0) / float64(done.Load())
		if per := rep.Server.CPUSecondsPerLogin + rep.Server.GeneratorCPUSecondsPerLogin; t != nil && per > 0 {
			rep.Server.CPUBoundLoginsPerSecond = float64(runtime.NumCPU()) / per
		}
	}
	if serverCores > 0 && t != nil {
		rep.Server.ServerCores = serverCores
		rep.Server.LoginsPerSecondPerServerCore = rep.Logins.PerSecond / float64(serverCores)
		if c := rep.Server.CPUSecondsPerLogin; c > 0 {
			rep.Server.CoreCapacityLoginsPerSecond = 1 / c
		}
	}
	for _, s := range steps {
		rep.Steps[s] = percentiles(rec.steps[s])
	}
	if profileDone != nil {
		if err := <-profileDone; err != nil {
			fmt.Fprintln(out, "cpu profile:", err)
		}
	}

	// Phase 2: refresh grants, each worker following its own rotating chain.
	rep.Refresh = r.refreshPhase(ctx, tokens, o.refreshFor, rec)
	// Phase 3: discovery and JWKS.
	rep.Discovery = r.discoveryPhase(ctx, o.concurrency, o.discoveryFor, rec)

	if t != nil {
		_, rss = t.procStats()
		rep.Server.PeakRSSMB = rss
		rep.Server.DBSizeAfterMB = t.dbSizeMB(ctx)
	}
	rep.ErrorsByKind = rec.errs
	printReport(out, rep, sink)
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(o.jsonOut, b, 0o644); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// pickEmail draws an address for worker w. Existing users are partitioned
// between workers: two logins of one address at once would have their
// mails cross, as they would for a person in two tabs.
func pickEmail(o options, w int) string {
	per := o.users / o.concurrency
	if per == 0 || rand.Float64() < o.newUsers {
		return "new-" + uuid.NewString() + "@bench.example"
	}
	return userEmail(w + o.concurrency*rand.IntN(per))
}

func (r *rp) refreshPhase(ctx context.Context, tokens []string, d time.Duration, rec *recorder) Phase {
	var done, failed atomic.Int64
	c := &http.Client{Transport: r.http, Timeout: 30 * time.Second}
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for _, rt := range tokens {
		if rt == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				resp, err := c.PostForm(r.conf.Endpoint.TokenURL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"bench"}})
				if err != nil {
					failed.Add(1)
					rec.fail("refresh: transport")
					return
				}
				var body struct {
					RefreshToken string `json:"refresh_token"`
				}
				err = json.NewDecoder(resp.Body).Decode(&body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || err != nil || body.RefreshToken == "" {
					failed.Add(1)
					rec.fail(fmt.Sprintf("refresh: status %d", resp.StatusCode))
					return
				}
				rt = body.RefreshToken
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	s := time.Since(start).Seconds()
	return Phase{Completed: done.Load(), Errors: failed.Load(), Seconds: s, PerSecond: float64(done.Load()) / s}
}

func (r *rp) discoveryPhase(ctx context.Context, workers int, d time.Duration, rec *recorder) Phase {
	var done, failed atomic.Int64
	c := &http.Client{Transport: r.http, Timeout: 30 * time.Second}
	urls := []string{r.issuer + "/.well-known/openid-configuration", r.jwksURL}
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; time.Now().Before(deadline); i++ {
				resp, err := c.Get(urls[i%2])
				if err != nil {
					failed.Add(1)
					rec.fail("discovery: transport")
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
					rec.fail(fmt.Sprintf("discovery: status %d", resp.StatusCode))
					continue
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	s := time.Since(start).Seconds()
	return Phase{Completed: done.Load(), Errors: failed.Load(), Seconds: s, PerSecond: float64(done.Load()) / s}
}

func percentiles(v []float64) Latency {
	if len(v) == 0 {
		return Latency{}
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	at := func(p float64) float64 { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return Latency{P50: at(0.50), P95: at(0.95), P99: at(0.99), Max: s[len(s)-1]}
}

// fetchProfile takes a CPU profile from the server's pprof listener
// (LATCHKEY_PPROF, set by launch).
func fetchProfile(addr, path string, d time.Duration) error {
	if addr == "" {
		return errors.New("no pprof listener")
	}
	secs := max(1, int(d.Seconds())-1)
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

func printReport(w io.Writer, r *Report, sink *mailSink) {
	fmt.Fprintf(w, "\nmachine: %s\n", r.Machine)
	fmt.Fprintf(w, "options: %v\n\n", r.Options)
	fmt.Fprintf(w, "complete logins:   %8d in %.1fs = %8.1f/s   errors %d\n", r.Logins.Completed, r.Logins.Seconds, r.Logins.PerSecond, r.Logins.Errors)
	fmt.Fprintf(w, "refresh grants:    %8d in %.1fs = %8.1f/s   errors %d\n", r.Refresh.Completed, r.Refresh.Seconds, r.Refresh.PerSecond, r.Refresh.Errors)
	fmt.Fprintf(w, "discovery + JWKS:  %8d in %.1fs = %8.1f/s   errors %d\n\n", r.Discovery.Completed, r.Discovery.Seconds, r.Discovery.PerSecond, r.Discovery.Errors)
	fmt.Fprintf(w, "%-14s %9s %9s %9s %9s\n", "step (ms)", "p50", "p95", "p99", "max")
	for _, s := range steps {
		l := r.Steps[s]
		if l.Max == 0 {
			continue // a step this server does not have (login_page: the authorization answers with it)
		}
		fmt.Fprintf(w, "%-14s %9.2f %9.2f %9.2f %9.2f\n", s, l.P50, l.P95, l.P99, l.Max)
	}
	fmt.Fprintf(w, "\nserver: %.2f ms CPU per login, peak RSS %.1f MB, database %.1f MB before, %.1f MB after\n",
		r.Server.CPUSecondsPerLogin*1000, r.Server.PeakRSSMB, r.Server.DBSizeBeforeMB, r.Server.DBSizeAfterMB)
	fmt.Fprintf(w, "generator: %.2f ms CPU per login (its share of the machine)\n", r.Server.GeneratorCPUSecondsPerLogin*1000)
	if b := r.Server.CPUBoundLoginsPerSecond; b > 0 {
		fmt.Fprintf(w, "CPU bound: %.0f logins/s would keep all %d cores busy at these costs; measured %.0f%% of it\n",
			b, runtime.NumCPU(), 100*r.Logins.PerSecond/b)
	}
	if r.Server.ServerCores > 0 {
		fmt.Fprintf(w, "pinned: %.1f logins/s per server core (%d core(s)); one core at %.2f ms per login would do %.0f/s\n",
			r.Server.LoginsPerSecondPerServerCore, r.Server.ServerCores, r.Server.CPUSecondsPerLogin*1000, r.Server.CoreCapacityLoginsPerSecond)
	}
	fmt.Fprintf(w, "mail received: %d (unclaimed %d)\n", sink.received.Load(), sink.orphans.Load())
	if len(r.ErrorsByKind) > 0 {
		var kinds []string
		for k, n := range r.ErrorsByKind {
			kinds = append(kinds, fmt.Sprintf("  %6d  %s", n, k))
		}
		sort.Strings(kinds)
		fmt.Fprintf(w, "errors by kind:\n%s\n", strings.Join(kinds, "\n"))
	}
}

// database names what the server under test keeps its data in.
func database(o options) string {
	switch {
	case o.peer:
		return "node peer (in memory)"
	case o.postgres != "":
		return "postgres"
	}
	return "sqlite"
}

// selfCPU is this process's user+system CPU seconds so far.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
