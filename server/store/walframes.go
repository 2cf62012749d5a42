package store

import (
	"encoding/binary"
	"fmt"
	"io"
)

// walGeneration tells one use of the WAL file from the next: the salts of
// its header, which SQLite changes whenever it restarts the WAL from the
// beginning.
type walGeneration [8]byte

// walFrames counts the frames of the WAL's current generation, reading
// the WAL file format (https://www.sqlite.org/fileformat2.html#walformat):
// a 32-byte header (magic, version, page size, checkpoint sequence, two
// salts, checksum), then frames of a 24-byte header (page number, commit
// size, the two salts, checksum) and a page. A restart writes a header
// with new salts and frames from the start again, over the old ones, so
// the current frames are the run from the first that carry the header's
// salts: found by a binary search, a few small reads. size is the file's.
//
// A frame being written as it is read may be missed: the count is for
// deciding when to checkpoint, where one frame more or less is nothing.
func walFrames(f io.ReaderAt, size int64) (int64, walGeneration, error) {
	var gen walGeneration
	var hdr [32]byte
	if size < int64(len(hdr)) {
		return 0, gen, nil // created, nothing written yet
	}
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return 0, gen, fmt.Errorf("read the WAL header: %w", err)
	}
	if magic := binary.BigEndian.Uint32(hdr[0:]); magic&^1 != 0x377f0682 {
		return 0, gen, fmt.Errorf("WAL header: magic %#x is not SQLite's", magic)
	}
	pageSize := int64(binary.BigEndian.Uint32(hdr[8:]))
	if pageSize == 1 {
		pageSize = 65536 // the one size 32 bits of big-endian 16 cannot hold
	}
	if pageSize < 512 || pageSize > 65536 {
		return 0, gen, fmt.Errorf("WAL header: page size %d", pageSize)
	}
	copy(gen[:], hdr[16:24])
	frameSize := 24 + pageSize
	var salts walGeneration
	lo, hi := int64(0), (size-int64(len(hdr)))/frameSize
	for lo < hi { // the first frame not of this generation is in [lo, hi]
		mid := lo + (hi-lo)/2
		if _, err := f.ReadAt(salts[:], int64(len(hdr))+mid*frameSize+8); err != nil {
			return 0, gen, fmt.Errorf("read WAL frame %d: %w", mid, err)
		}
		if salts == gen {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, gen, nil
}
