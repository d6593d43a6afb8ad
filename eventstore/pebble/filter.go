package pebble

import (
	"hash/maphash"
	"math/bits"

	"github.com/cockroachdb/pebble/v2"
)

// streamFilter is a Bloom filter of the streams that have a state record.
// Before the committer reads a stream's state from Pebble it asks the
// filter; for a stream that was never written (every new orchestration
// instance) the answer is a certain no, and the read, which costs tens of
// microseconds under load, is skipped. A false yes only costs that read.
//
// The committer alone uses it. It is rebuilt from the state records at open
// and, doubled in size, whenever it holds more names than it was sized for.
type streamFilter struct {
	seed     maphash.Seed
	bits     []uint64
	mask     uint64
	count    int
	capacity int
}

// filterBitsPerName gives a false-positive rate of about 1% with k = 7.
const (
	filterBitsPerName = 10
	filterHashes      = 7
	minFilterCapacity = 1 << 16
)

func newStreamFilter(capacity int) *streamFilter {
	capacity = max(capacity, minFilterCapacity)
	words := 1 << bits.Len(uint(capacity*filterBitsPerName/64))
	return &streamFilter{seed: maphash.MakeSeed(), bits: make([]uint64, words), mask: uint64(words*64 - 1), capacity: capacity}
}

func (f *streamFilter) positions(name string) (h1, h2 uint64) {
	h := maphash.String(f.seed, name)
	return h, h>>32 | h<<32 | 1
}

func (f *streamFilter) add(name string) {
	h1, h2 := f.positions(name)
	for i := range uint64(filterHashes) {
		b := (h1 + i*h2) & f.mask
		f.bits[b/64] |= 1 << (b % 64)
	}
	f.count++
}

func (f *streamFilter) mayContain(name string) bool {
	h1, h2 := f.positions(name)
	for i := range uint64(filterHashes) {
		b := (h1 + i*h2) & f.mask
		if f.bits[b/64]&(1<<(b%64)) == 0 {
			return false
		}
	}
	return true
}

func (f *streamFilter) full() bool { return f.count > f.capacity }

// loadFilter is loadStreamFilter; a test replaces it to make a rebuild fail.
var loadFilter = loadStreamFilter

// loadStreamFilter builds a filter of every stream with a state record,
// sized for at least capacity names.
func loadStreamFilter(db *pebble.DB, capacity int) (*streamFilter, error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixMeta}, UpperBound: []byte{prefixMeta + 1}})
	if err != nil {
		return nil, err
	}
	var names []string
	for it.First(); it.Valid(); it.Next() {
		names = append(names, string(it.Key()[1:]))
	}
	if err := it.Close(); err != nil {
		return nil, err
	}
	f := newStreamFilter(max(capacity, 2*len(names)))
	for _, n := range names {
		f.add(n)
	}
	return f, nil
}
