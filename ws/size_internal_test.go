package ws

import (
	"testing"
	"unsafe"
)

// A server holds a Conn per connection, idle or not: state that only some
// connections or only some moments need (a send queue, pings, the write
// scratch, context registrations) lives in structures made on first use,
// so that the Conn stays within the 384-byte size class.
func TestConnSize(t *testing.T) {
	if n := unsafe.Sizeof(Conn{}); n > 384 {
		t.Errorf("a Conn is %d bytes, more than 384: move what an idle connection does not need out of it", n)
	}
}
