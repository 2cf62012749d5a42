package testkit

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds the latchkey command once per test process.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "latchkey-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "latchkey")
		out, err := exec.Command("go", "build", "-o", binPath, "latchkey").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Node is one Latchkey process.
type Node struct {
	Name string
	Addr string
	URL  string
	cmd  *exec.Cmd
	logs *SyncBuffer
	done chan error
}

// StartNode runs `latchkey serve --config cfg --listen 127.0.0.1:PORT` and
// waits until it answers.
func StartNode(t testing.TB, name, cfg string) *Node {
	t.Helper()
	addr := FreePort(t)
	n := &Node{Name: name, Addr: addr, URL: "http://" + addr, logs: &SyncBuffer{}, done: make(chan error, 1)}
	n.cmd = exec.Command(Binary(t), "serve", "--config", cfg, "--listen", addr)
	n.cmd.Stdout, n.cmd.Stderr = n.logs, n.logs
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.done <- n.cmd.Wait() }()
	t.Cleanup(func() {
		if n.cmd.ProcessState == nil {
			_ = n.cmd.Process.Kill()
			<-n.done
		}
		if t.Failed() {
			t.Logf("node %s log:\n%s", n.Name, n.logs.String())
		}
	})
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(n.URL + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return n
			}
		}
		select {
		case err := <-n.done:
			n.done <- err
			t.Fatalf("node %s exited at start: %v\n%s", name, err, n.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s did not come up:\n%s", name, n.logs.String())
		}
	}
}

// Reload sends SIGHUP: the node reads its realm.yaml again.
func (n *Node) Reload() { _ = n.cmd.Process.Signal(syscall.SIGHUP) }

// Kill sends SIGKILL: the node dies without any cleanup.
func (n *Node) Kill() {
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
}

// Terminate sends SIGTERM and returns the exit code.
func (n *Node) Terminate(timeout time.Duration) (int, error) {
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-n.done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), nil
		}
		return 0, err
	case <-time.After(timeout):
		return -1, errors.New("node did not stop in time")
	}
}

// Logs returns what the node printed.
func (n *Node) Logs() string { return n.logs.String() }

// Proxy is a round-robin reverse proxy in front of the nodes, as a load
// balancer would be. Route pins requests to a node; a node that fails is
// taken out of rotation.
type Proxy struct {
	URL string

	mu     sync.Mutex
	nodes  []*Node
	dead   map[int]bool
	next   int
	route  func(r *http.Request) int // -1: round robin
	served []Served
	srv    *httptest.Server
}

// Served records which node answered a request.
type Served struct {
	Node, Method, Path string
}

// StartProxy starts the proxy; add nodes with SetNodes.
func StartProxy(t testing.TB) *Proxy {
	p := &Proxy{dead: map[int]bool{}}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	p.URL = p.srv.URL
	t.Cleanup(p.srv.Close)
	return p
}

// SetNodes sets the backends.
func (p *Proxy) SetNodes(nodes ...*Node) {
	p.mu.Lock()
	p.nodes = nodes
	p.mu.Unlock()
}

// Route pins requests: f returns a node index, or -1 for round robin.
func (p *Proxy) Route(f func(r *http.Request) int) {
	p.mu.Lock()
	p.route = f
	p.mu.Unlock()
}

// Served returns the log of who answered what.
func (p *Proxy) Served() []Served {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Served(nil), p.served...)
}

func (p *Proxy) pick(r *http.Request) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.route != nil {
		if i := p.route(r); i >= 0 && !p.dead[i] {
			return i
		}
	}
	for range p.nodes {
		i := p.next % len(p.nodes)
		p.next++
		if !p.dead[i] {
			return i
		}
	}
	return -1
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	i := p.pick(r)
	if i < 0 {
		http.Error(w, "no node alive", http.StatusBadGateway)
		return
	}
	p.mu.Lock()
	n := p.nodes[i]
	p.served = append(p.served, Served{Node: n.Name, Method: r.Method, Path: r.URL.Path})
	p.mu.Unlock()
	target, _ := url.Parse(n.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, err error) {
		p.mu.Lock()
		p.dead[i] = true
		p.mu.Unlock()
		http.Error(w, "node "+n.Name+" failed: "+err.Error(), http.StatusBadGateway)
	}
	rp.ServeHTTP(w, r)
}
