package store

import (
	"context"
	"database/sql"
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
// transactions. It also runs the checkpoints, by the WAL's size
// (walCheckpointFrames), unless database.checkpointInterval sets a timer.
//
// It opens the WAL read-only and never writes it. SQLite's POSIX locks,
// which any close of a file by the process would drop, are on the
// database and -shm files, never on the WAL.
const walSyncInterval = 50 * time.Millisecond

// walCheckpointFrames is how many frames (~20 MB of 4 KiB pages) wait in
// the WAL before the syncer copies them into the database (unless
// database.checkpointInterval sets a timer instead). The copy and the
// database's sync used to be the writer's, in a commit, every 10,000
// pages, and every write waited: on a growing database the slowest 1% of
// logins (pinned ES256 bench, 5 minutes, 10,000 users: login p99 57 -> 39
// ms, max 360 -> 129 ms, server CPU per login 3.02 -> 3.00 ms). Now that
// checkpoint is a backstop (walBackstopPages). Going by how much waits
// rather than by a timer, a page that many commits rewrite is copied once
// per ~5,000 frames, not every tick: 20 s runs show no CPU difference
// (nor one between 5,000 and 10,000).
const walCheckpointFrames = 5000

// walCatchUpFrames is the most a checkpoint on the writer's connection is
// given to copy, holding every write meanwhile.
const walCatchUpFrames = 1000

// walSyncer syncs one WAL file until stopped, and checkpoints it when
// writer is set.
type walSyncer struct {
	path string
	log  *slog.Logger
	stop chan struct{}
	done sync.WaitGroup
	// synced is the WAL's fs.FileInfo as of the newest sync (looked at
	// just before it), nil before the first.
	synced atomic.Value
	// readers and writer, set when the syncer checkpoints, are the pools
	// its checkpoints run on.
	readers, writer *sql.DB
	// copiedGen and copied are the newest checkpoint's generation of the
	// WAL and how many of its frames were then in the database (copied is
	// atomic for the tests to read).
	copiedGen walGeneration
	copied    atomic.Int64
}

// startWALSyncer starts the syncer for the database's WAL; an in-memory
// database has none. With checkpoints, it also copies the WAL into the
// database once walCheckpointFrames frames wait for it.
func (s *Store) startWALSyncer(log *slog.Logger, checkpoints bool) error {
	var seq int
	var name, file string
	if err := s.wsql.QueryRowContext(context.Background(), "PRAGMA database_list").Scan(&seq, &name, &file); err != nil {
		return fmt.Errorf("find the database file: %w", err)
	}
	if file == "" {
		return nil
	}
	w := &walSyncer{path: file + "-wal", log: log, stop: make(chan struct{})}
	if checkpoints {
		w.readers, w.writer = s.rsql, s.wsql
	}
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
			err = w.syncAndCheckpoint(fi)
		}
		if err != nil && !failing && w.log != nil {
			// Once per failing spell: the writer's checkpoints sync and copy
			// the WAL alone.
			w.log.Warn("background WAL sync or checkpoint failed; the writer's checkpoints go on", "err", err)
		}
		failing = err != nil
	}
}

// syncAndCheckpoint syncs the WAL that fi describes and, when enough of it
// waits to be copied, checkpoints it.
func (w *walSyncer) syncAndCheckpoint(fi fs.FileInfo) error {
	f, err := os.Open(w.path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return err
	}
	w.synced.Store(fi)
	if w.writer == nil {
		return nil
	}
	frames, gen, err := walFrames(f, fi.Size())
	if err != nil {
		return err
	}
	waiting := frames
	if gen == w.copiedGen {
		waiting -= w.copied.Load()
	}
	if waiting < walCheckpointFrames {
		return nil
	}
	_, copied, err := checkpointWAL(w.readers)
	if err != nil {
		return err
	}
	w.copiedGen = gen
	w.copied.Store(copied)
	// Writes went on during that checkpoint, on a reader's connection. If
	// they added little, it is copied on the writer's, where no write adds
	// frames meanwhile: a write that begins with the whole WAL copied
	// restarts it from its beginning, where otherwise it would grow on (to
	// the backstop at worst).
	if fi, err = f.Stat(); err == nil {
		frames, gen, err = walFrames(f, fi.Size())
	}
	if err != nil || gen != w.copiedGen || frames-copied > walCatchUpFrames {
		return err
	}
	if _, copied, err = checkpointWAL(w.writer); err == nil {
		w.copied.Store(copied)
	}
	return err
}

// upToDate reports whether the WAL, as fi shows it, is the one last
// synced: a commit changes its modification time, and its size until the
// WAL restarts from the beginning.
func (w *walSyncer) upToDate(fi fs.FileInfo) bool {
	synced, ok := w.synced.Load().(fs.FileInfo)
	return ok && fi.ModTime().Equal(synced.ModTime()) && fi.Size() == synced.Size() && os.SameFile(fi, synced)
}

// stopWALSyncer ends the syncer and waits for it.
func (s *Store) stopWALSyncer() {
	if s.walSync != nil {
		close(s.walSync.stop)
		s.walSync.done.Wait()
		s.walSync = nil
	}
}
