package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// cpuSet parses "0" or "0,2" or "0-1" into an affinity mask.
func cpuSet(list string) (unix.CPUSet, int, error) {
	var set unix.CPUSet
	n := 0
	for _, part := range strings.Split(list, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || a < 0 || b < a || b >= runtime.NumCPU() {
			return set, 0, fmt.Errorf("cpu list %q: want ids like 0 or 0,1 or 0-1 below %d", list, runtime.NumCPU())
		}
		for c := a; c <= b; c++ {
			if !set.IsSet(c) {
				set.Set(c)
				n++
			}
		}
	}
	return set, n, nil
}

// startPinned runs start (which forks the server) on a thread whose
// affinity is set: the child inherits the mask from the forking thread, so
// every thread of the server runs on those CPUs, and its Go runtime sizes
// GOMAXPROCS to them.
func startPinned(set unix.CPUSet, start func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return fmt.Errorf("read affinity: %w", err)
	}
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pin the server: %w", err)
	}
	err := start()
	if rerr := unix.SchedSetaffinity(0, &old); err == nil && rerr != nil {
		err = fmt.Errorf("restore affinity: %w", rerr)
	}
	return err
}

// pinSelf pins every thread of this process to set (a thread's affinity
// is its own; threads started later inherit their creator's) and sizes
// GOMAXPROCS to it.
func pinSelf(set unix.CPUSet, n int) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("pin the generator: %w", err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil {
			return fmt.Errorf("pin the generator's thread %d: %w", tid, err)
		}
	}
	runtime.GOMAXPROCS(n)
	return nil
}
