package ws

import (
	"context"
	"sync"
	"sync/atomic"
)

// PreparedMessage is a message to be sent to many connections, such as a
// broadcast: it is compressed at most once per set of compression
// parameters, however many connections it goes to, and the same bytes are
// written to each.
//
// A connection compresses a prepared message from the shared copy when it
// negotiated no context takeover for its own messages
// (Compression.NoContextTakeover on a server); with context takeover each
// connection's output depends on its history, so it compresses for itself,
// as Write does. Client connections mask every frame with a fresh key and
// write it as Write does.
//
// A PreparedMessage is safe for concurrent use. Its data must not change
// after NewPreparedMessage.
type PreparedMessage struct {
	typ  MessageType
	data []byte

	// first is the first compressed variant, read without the lock: a
	// server's connections share one set of parameters, so a broadcast
	// to many connections takes no lock per connection.
	first      atomic.Pointer[preparedVariant]
	mu         sync.Mutex
	compressed map[[2]int][]byte // by {level, window bits}
}

type preparedVariant struct {
	key  [2]int
	data []byte
}

// NewPreparedMessage prepares data to be sent as a message of type typ.
// It keeps data without copying it.
func NewPreparedMessage(typ MessageType, data []byte) (*PreparedMessage, error) {
	if _, err := dataOpcode(typ); err != nil {
		return nil, err
	}
	return &PreparedMessage{typ: typ, data: data}, nil
}

// deflated returns the message compressed with level and bits, without
// history, computing it once.
func (pm *PreparedMessage) deflated(level, bits int) []byte {
	key := [2]int{level, bits}
	if v := pm.first.Load(); v != nil && v.key == key {
		return v.data
	}
	pm.mu.Lock()
	defer pm.mu.Unlock()
	if out, ok := pm.compressed[key]; ok {
		return out
	}
	s := deflateState{level: level, sendBits: bits}
	out := s.compress(nil, pm.data)
	if pm.compressed == nil {
		pm.compressed = make(map[[2]int][]byte, 1)
	}
	pm.compressed[key] = out
	if pm.first.Load() == nil {
		pm.first.Store(&preparedVariant{key, out})
	}
	return out
}

// WritePrepared sends a prepared message, as Write would send its data.
func (c *Conn) WritePrepared(ctx context.Context, pm *PreparedMessage) error {
	d := c.deflate
	if c.client || d == nil || d.sendTakeover || !d.shouldCompress(len(pm.data)) {
		return c.Write(ctx, pm.typ, pm.data)
	}
	op, _ := dataOpcode(pm.typ)
	payload := pm.deflated(d.level, d.sendBits)
	if err := c.writeMsgMu.lock(ctx, c); err != nil {
		return c.lockError(err)
	}
	defer c.writeMsgMu.unlock()
	_, err := c.writeFrameRSV(ctx, true, true, op, payload, nil)
	return err
}
