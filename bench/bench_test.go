package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"latchkey/server/testenv"
)

// TestSmoke runs the benchmark for a few seconds at low load, so that it
// cannot rot: every login, refresh and discovery request must succeed.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server")
	}
	rep, err := run(context.Background(), options{
		concurrency: 2, duration: 2 * time.Second, users: 20, newUsers: 0.2, conns: 8,
		refreshFor: 500 * time.Millisecond, discoveryFor: 500 * time.Millisecond, quietServer: true,
		serverCPUs: "0", // the server pinned (the test process itself is left alone)
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	phasesSucceeded(t, "smoke run", rep)
	if rep.Server.ServerCores != 1 || rep.Server.LoginsPerSecondPerServerCore <= 0 || rep.Server.CoreCapacityLoginsPerSecond <= 0 {
		t.Errorf("pinned figures: %+v", rep.Server)
	}
	if rep.Steps["total"].P50 <= 0 || rep.Server.PeakRSSMB <= 0 {
		t.Fatalf("figures missing: %+v %+v", rep.Steps["total"], rep.Server)
	}
}

// TestPeerSmoke runs the Node peer of issue 17's comparison the same way
// (-peer), so that the comparison cannot rot either: logins, refresh
// grants and discovery against panva's oidc-provider all succeed, and its
// CPU is read like Latchkey's.
func TestPeerSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the Node peer")
	}
	if _, err := exec.LookPath("node"); err != nil {
		testenv.Unavailable(t, "node-peer", "no node on PATH")
	}
	dir, err := peerDir()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "oidc-provider")); err != nil {
		testenv.Unavailable(t, "node-peer", "npm ci --prefix bench/peer has not been run")
	}
	rep, err := run(context.Background(), options{
		peer: true, concurrency: 2, duration: 2 * time.Second, signingAlg: "ES256",
		refreshFor: 500 * time.Millisecond, discoveryFor: 500 * time.Millisecond, serverCPUs: "0",
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	phasesSucceeded(t, "peer run", rep)
	if rep.Server.CPUSecondsPerLogin <= 0 || rep.Steps["password_post"].P50 <= 0 || rep.Steps["consent_post"].P50 <= 0 || rep.Steps["resume"].P50 <= 0 {
		t.Fatalf("figures missing: %+v %+v", rep.Server, rep.Steps)
	}
}

// The peer signs only what its key generation supports; anything else is
// refused before it starts, not after a run of failed logins.
func TestPeerRefusesOtherSigningAlgorithms(t *testing.T) {
	_, err := launchPeer(options{signingAlg: "EdDSA"}, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "ES256 or RS256") {
		t.Fatalf("launchPeer with EdDSA: %v, want a refusal naming ES256 and RS256", err)
	}
}

// phasesSucceeded fails the test unless every phase of the run (logins,
// refresh grants, discovery) completed some and failed none.
func phasesSucceeded(t *testing.T, run string, rep *Report) {
	t.Helper()
	if rep.Logins.Completed == 0 || rep.Logins.Errors != 0 || rep.Refresh.Completed == 0 || rep.Refresh.Errors != 0 ||
		rep.Discovery.Completed == 0 || rep.Discovery.Errors != 0 {
		t.Fatalf("%s: logins %+v refresh %+v discovery %+v errors %v", run, rep.Logins, rep.Refresh, rep.Discovery, rep.ErrorsByKind)
	}
}

func TestCPUSet(t *testing.T) {
	for list, want := range map[string]int{"0": 1, "0,1": 2, "0-1": 2, "1,1": 1} {
		if _, n, err := cpuSet(list); err != nil || n != want {
			t.Errorf("cpuSet(%q) = %d, %v; want %d", list, n, err, want)
		}
	}
	for _, bad := range []string{"", "x", "-1", "1-0", "99999"} {
		if _, _, err := cpuSet(bad); err == nil {
			t.Errorf("cpuSet(%q) accepted", bad)
		}
	}
}
