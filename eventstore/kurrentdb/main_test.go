package kurrentdb

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the tests if a goroutine outlives them: every read,
// subscription and client must be released, however its iterator ended.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
