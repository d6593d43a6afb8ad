package entitylog

import (
	"hash/fnv"
	"testing"
)

// TestFingerprintIsFNV1a: fingerprints are stored in checkpoints, so they
// must stay the same function: 64-bit FNV-1a.
func TestFingerprintIsFNV1a(t *testing.T) {
	for _, s := range []string{"", "a", "signal-42", "call:inst:0:7"} {
		h := fnv.New64a()
		h.Write([]byte(s))
		if Fingerprint(s) != h.Sum64() {
			t.Fatalf("Fingerprint(%q) is not FNV-1a", s)
		}
	}
}
