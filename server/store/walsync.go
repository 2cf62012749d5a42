package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// The WAL syncer fsyncs SQLite's WAL file in the background while it
// changes. With synchronous=NORMAL a commit only writes its frames; the
// WAL is synced by the checkpoint, in the writer's commit once the WAL
// passes wal_autocheckpoint pages, and every write waits for it: that
// sync of ~40 MB of frames was about half of each checkpoint's stall and
// made the slowest 1% of logins (pinned ES256 bench, three pairs: login
// p99 46-51 -> 27-29 ms, no CPU difference measured). Syncing every
// walSyncInterval leaves the checkpoint only the frames written since,
// and it bounds what a power loss takes to the last moments'
// transactions.
//
// It opens the WAL read-only and never writes it. SQLite's POSIX locks,
// which any close of a file by the process would drop, are on the
// database and -shm files, never on the WAL.
const walSyncInterval = 50 * time.Millisecond

// walSyncer syncs one WAL file until stopped.
type walSyncer struct {
	path string
	log  *slog.Logger
	stop chan struct{}
	done sync.WaitGroup
	// synced is the WAL's fs.FileInfo as of the newest sync (looked at
	// just before it), nil before the first.
	synced atomic.Value
}

// startWALSyncer starts the syncer for the database's WAL; an in-memory
// database has none.
func (s *Store) startWALSyncer(log *slog.Logger) error {
	var seq int
	var name, file string
	if err := s.wsql.QueryRowContext(context.Background(), "PRAGMA database_list").Scan(&seq, &name, &file); err != nil {
		return fmt.Errorf("find the database file: %w", err)
	}
	if file == "" {
		return nil
	}
	w := &walSyncer{path: file + "-wal", log: log, stop: make(chan struct{})}
	w.done.Add(1)
	go w.run()
	s.walSync = w
	return nil
}

func (w *walSyncer) run() {
	defer w.done.Done()
	t := time.NewTicker(walSyncInterval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		fi, err := os.Stat(w.path)
		if errors.Is(err, fs.ErrNotExist) || err == nil && w.upToDate(fi) {
			continue // no WAL until the first write; or nothing written since
		}
		if err == nil {
			err = syncFile(w.path)
		}
		if err == nil {
			w.synced.Store(fi)
		} else if !failing && w.log != nil {
			// Once per failing spell: checkpoints still sync the WAL.
			w.log.Warn("background WAL sync failed; checkpoints sync it alone", "err", err)
		}
		failing = err != nil
	}
}

// upToDate reports whether the WAL, as fi shows it, is the one last
// synced: a commit changes its modification time, and its size until the
// WAL restarts from the beginning.
func (w *walSyncer) upToDate(fi fs.FileInfo) bool {
	synced, ok := w.synced.Load().(fs.FileInfo)
	return ok && fi.ModTime().Equal(synced.ModTime()) && fi.Size() == synced.Size() && os.SameFile(fi, synced)
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// stopWALSyncer ends the syncer and waits for it.
func (s *Store) stopWALSyncer() {
	if s.walSync != nil {
		close(s.walSync.stop)
		s.walSync.done.Wait()
		s.walSync = nil
	}
}
