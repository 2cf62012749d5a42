package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"latchkey/flows"
	"latchkey/server/store"
)

// realmTemplate is the realm the benchmark runs: the magic-link flow, send
// and login-attempt limits raised (every virtual user shares 127.0.0.1),
// mail to our sink.
const realmTemplate = `realm: bench
server:
  listen: %[1]s
  publicURL: http://%[1]s
  cookieSecret: bench-cookie-secret-0123456789-0123456789-0123
database:
  driver: %[2]s
  dsn: "%[3]s"
  maxOpenConns: %[6]d
%[8]ssmtp:
  host: 127.0.0.1
  port: %[4]s
  tls: none
  from: "Bench <bench@example.com>"
tokens:
  signingAlgorithm: %[7]s
outbox:
  pollInterval: 100ms
  lease: 30s
sessions:
  authSessionsPerMinutePerIP: 100000000
clients:
  - clientId: bench
    redirectUris: [http://127.0.0.1:9/cb]
  - clientId: bench-confidential
    secret: bench-secret-0123456789-0123456789
    redirectUris: [http://127.0.0.1:9/cb]
flows:
  browser:
    - authenticator: cookie
      requirement: ALTERNATIVE
    - flow: forms
      requirement: ALTERNATIVE
      executions:
        - authenticator: magic-link
          config:
            forceCreateUser: true
            maxPerEmail: 100000000
            maxPerEmailAllIPs: 100000000
            maxPerIP: 100000000
            linkTTL: %[5]s
bindings:
  browser: browser
`

// target is the server under test.
type target struct {
	URL    string
	Issuer string
	cmd    *exec.Cmd
	dbPath string // SQLite file, for its size
	dsn    string
	driver string
	pprof  string // the server's pprof listener, when profiling
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// launch builds latchkey, seeds users and starts it as a child process, so
// its CPU time and peak RSS are its own.
func launch(ctx context.Context, o options, smtpPort string, dir string) (*target, error) {
	bin := filepath.Join(dir, "latchkey")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "latchkey").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build: %v\n%s", err, out)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	t := &target{URL: "http://" + addr, Issuer: "http://" + addr + "/realms/bench", driver: "sqlite"}
	t.dsn = filepath.Join(dir, "bench.db")
	t.dbPath = t.dsn
	if o.postgres != "" {
		t.driver, t.dsn, t.dbPath = "postgres", o.postgres, ""
	}
	if err := seed(ctx, t.driver, t.dsn, o.users); err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "realm.yaml")
	var checkpoint string
	if o.checkpoint != "" {
		checkpoint = "  checkpointInterval: " + o.checkpoint + "\n"
	}
	doc := fmt.Sprintf(realmTemplate, addr, t.driver, t.dsn, smtpPort, "15m", o.conns, o.signingAlg, checkpoint)
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		return nil, err
	}
	t.cmd = exec.Command(bin, "serve", "--config", cfg)
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return nil, err
	}
	t.cmd.Stdout, t.cmd.Stderr = logf, logf
	// The server goes when the bench goes, however it ends (a kill of the
	// bench alone left it holding the management port, and the next run
	// could not start). Linux sends it when the thread that forked exits;
	// the Go runtime ends a thread only when a goroutine locked to it
	// returns without unlocking, which startPinned never does.
	t.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	t.cmd.Env = os.Environ()
	if o.quietServer {
		t.cmd.Env = append(t.cmd.Env, "LATCHKEY_LOG_LEVEL=warn")
	}
	if o.profile != "" {
		if t.pprof, err = freeAddr(); err != nil {
			return nil, err
		}
		t.cmd.Env = append(t.cmd.Env, "LATCHKEY_PPROF="+t.pprof)
	}
	if err := startTarget(o, t); err != nil {
		return nil, err
	}
	if err := t.await(t.URL+"/healthz", filepath.Join(dir, "server.log")); err != nil {
		return nil, err
	}
	return t, nil
}

// startTarget starts the server's process, pinned to -server-cpus if set.
func startTarget(o options, t *target) error {
	if o.serverCPUs == "" {
		return t.cmd.Start()
	}
	set, _, err := cpuSet(o.serverCPUs)
	if err != nil {
		return fmt.Errorf("-server-cpus: %w", err)
	}
	return startPinned(set, t.cmd.Start)
}

// await waits up to 30 s for the server to answer u; if it does not, the
// server is stopped and its log named.
func (t *target) await(u, logPath string) error {
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(u); err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			t.stop()
			return fmt.Errorf("the server did not start; see %s", logPath)
		}
	}
}

// seed inserts the existing users before the server starts.
func seed(ctx context.Context, driver, dsn string, n int) error {
	if n == 0 {
		return nil
	}
	st, err := store.Open(driver, dsn, store.Options{MaxOpenConns: 4})
	if err != nil {
		return err
	}
	defer st.Close()
	have, err := st.CountUsers(ctx)
	if err != nil || have >= int64(n) {
		return err
	}
	const batch = 5000
	for i := int(have); i < n; i += batch {
		var us []*flows.User
		for j := i; j < min(i+batch, n); j++ {
			us = append(us, &flows.User{Email: userEmail(j), EmailVerified: true, FirstName: "User", LastName: strconv.Itoa(j)})
		}
		if err := st.ImportUsers(ctx, us); err != nil {
			return err
		}
	}
	return nil
}

func userEmail(i int) string { return fmt.Sprintf("user%07d@bench.example", i) }

func (t *target) stop() {
	if t.cmd != nil && t.cmd.Process != nil {
		_ = t.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = t.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = t.cmd.Process.Kill()
		}
	}
}

// procStats reads the server's CPU seconds and peak RSS from /proc.
func (t *target) procStats() (cpu float64, peakRSSMB float64) {
	if t == nil || t.cmd == nil || t.cmd.Process == nil {
		return 0, 0
	}
	pid := t.cmd.Process.Pid
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(fields) > 13 {
			ut, _ := strconv.ParseFloat(fields[11], 64)
			st, _ := strconv.ParseFloat(fields[12], 64)
			cpu = (ut + st) / 100 // USER_HZ
		}
	}
	if f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				peakRSSMB = kb / 1024
			}
		}
	}
	return cpu, peakRSSMB
}

// dbSizeMB is the SQLite file plus its WAL, or the PostgreSQL database size
// (0 for the Node peer, which keeps everything in memory).
func (t *target) dbSizeMB(ctx context.Context) float64 {
	if t.driver == "peer" {
		return 0 // in memory
	}
	if t.dbPath != "" {
		var total int64
		for _, f := range []string{t.dbPath, t.dbPath + "-wal"} {
			if fi, err := os.Stat(f); err == nil {
				total += fi.Size()
			}
		}
		return float64(total) / (1 << 20)
	}
	st, err := store.Open("postgres", t.dsn, store.Options{MaxOpenConns: 1})
	if err != nil {
		return -1
	}
	defer st.Close()
	n, err := st.SizeBytes(ctx)
	if err != nil {
		return -1
	}
	return float64(n) / (1 << 20)
}
