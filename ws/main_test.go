package ws

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves a goroutine behind: a Conn must
// stop every goroutine it starts by the time it is closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
