package store

import (
	"context"
	"database/sql"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// The background checkpointer copies the SQLite WAL's new pages into the
// database every Options.CheckpointEvery (database.checkpointInterval)
// while there are some; an idle database is looked at less and less
// often, down to every checkpointIdle. Without it the WAL syncer
// checkpoints by the WAL's size instead (walsync.go).
//
// Checkpointing a little at a time on another connection (PASSIVE: it
// never blocks the writer nor waits for it) leaves the writer's own
// checkpoint (the backstop) nothing, and the WAL restarts from its
// beginning whenever one catches up. The price is CPU (~10% a login,
// pinned): a page written often is copied more often, and each
// checkpoint syncs twice; so it is the operator's choice (README,
// "Storage and durability").
const checkpointIdle = 2 * time.Second

// checkpointer runs PASSIVE checkpoints until stopped.
type checkpointer struct {
	log  *slog.Logger
	stop chan struct{}
	done sync.WaitGroup
	// frames and copied are the newest checkpoint's outcome: the WAL's
	// frames, and how many of them are in the database.
	frames, copied atomic.Int64
}

func (s *Store) startCheckpointer(every time.Duration, log *slog.Logger) {
	c := &checkpointer{log: log, stop: make(chan struct{})}
	c.done.Add(1)
	go func() {
		defer c.done.Done()
		wait := every
		t := time.NewTimer(wait)
		defer t.Stop()
		failing := false
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
			}
			frames, copied, err := checkpointWAL(s.rsql)
			switch {
			case err != nil:
				// Once per failing spell: the writer's own checkpoints go on.
				if !failing && c.log != nil {
					c.log.Warn("background WAL checkpoint failed; the writer checkpoints alone", "err", err)
				}
			case frames == c.frames.Load() && copied == c.copied.Load():
				wait = min(2*wait, checkpointIdle) // nothing was written since
			default:
				wait = every
				c.frames.Store(frames)
				c.copied.Store(copied)
			}
			failing = err != nil
			t.Reset(wait)
		}
	}()
	s.ckpt = c
}

// checkpointWAL runs a PASSIVE checkpoint on one of db's connections: the
// WAL's frames and how many of them are now in the database.
func checkpointWAL(db *sql.DB) (frames, copied int64, err error) {
	var busy int64
	err = db.QueryRowContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied)
	return frames, copied, err
}

// stopCheckpointer ends the checkpointer and waits for it.
func (s *Store) stopCheckpointer() {
	if s.ckpt != nil {
		close(s.ckpt.stop)
		s.ckpt.done.Wait()
		s.ckpt = nil
	}
}
