package ws

import (
	"bufio"
	"errors"
	"net"
	"sync"
	"sync/atomic"
)

// A connection held by a Poller keeps no buffer while idle: it borrows a
// read buffer from a pool when input arrives and gives it back when all
// input is consumed, and borrows its write buffer for each frame.

// errWouldBlock is returned by reads in yield mode when no input is
// buffered between messages. It never leaves the package.
var errWouldBlock = errors.New("ws: no input buffered")

// readerPools and writeBufPools hold a pool per buffer size, of
// *bufio.Reader and of *writeBuf.
var readerPools, writeBufPools sync.Map // int → *sizedPool

// sizedPool is a pool and the buffer size it holds. lastReaderPool and
// lastWriteBufPool remember the last one looked up: a server uses one
// size, and the lookup is per message.
type sizedPool struct {
	size int
	pool *sync.Pool
}

var lastReaderPool, lastWriteBufPool atomic.Pointer[sizedPool]

func readerPool(size int) *sync.Pool {
	if sp := lastReaderPool.Load(); sp != nil && sp.size == size {
		return sp.pool
	}
	return lookupPool(&readerPools, &lastReaderPool, size, newReaderItem)
}

func writeBufPool(size int) *sync.Pool {
	if sp := lastWriteBufPool.Load(); sp != nil && sp.size == size {
		return sp.pool
	}
	return lookupPool(&writeBufPools, &lastWriteBufPool, size, newWriteBufItem)
}

func newReaderItem(size int) func() any {
	return func() any { return bufio.NewReaderSize(nil, size) }
}

func newWriteBufItem(size int) func() any {
	return func() any { return &writeBuf{b: make([]byte, 0, size)} }
}

// writeBuf is what a connection writes frames with: a buffer for frame
// headers and small or masked payloads, and the vector of a header and a
// large payload written together. It is borrowed for each frame by a
// pooled connection, so that an idle one holds none of it.
type writeBuf struct {
	b    []byte // its capacity is the connection's write buffer size
	iov  [2][]byte
	bufs net.Buffers

	// owed is the unsent rest of a frame a deadline cut short, sent
	// before the next frame. A connection keeps its buffer while it owes.
	owed []byte
}

// lookupPool finds (or makes) the pool of size in pools and remembers it
// in last; it allocates only the first time a size is seen.
func lookupPool(pools *sync.Map, last *atomic.Pointer[sizedPool], size int, newItem func(size int) func() any) *sync.Pool {
	v, ok := pools.Load(size)
	if !ok {
		v, _ = pools.LoadOrStore(size, &sizedPool{size: size, pool: &sync.Pool{New: newItem(size)}})
	}
	sp := v.(*sizedPool)
	last.Store(sp)
	return sp.pool
}

// borrowReader gives the connection a read buffer if it has none. readMu
// must be held.
func (c *Conn) borrowReader() {
	if c.br != nil {
		return
	}
	br := readerPool(c.cfg.readBufferSize).Get().(*bufio.Reader)
	if c.prefix != nil {
		br.Reset(c.prefix)
	} else {
		br.Reset(c.nc)
	}
	c.br = br
}

// releaseReader gives the read buffer back to the pool if it holds no
// input. readMu must be held.
func (c *Conn) releaseReader() {
	if c.br == nil || c.br.Buffered() > 0 {
		return
	}
	c.br.Reset(nil)
	readerPool(c.cfg.readBufferSize).Put(c.br)
	c.br = nil
}

// bufferedInput returns the bytes read from the network and not yet
// parsed: in the read buffer, and in the handshake's leftovers.
func (c *Conn) bufferedInput() int {
	n := 0
	if c.br != nil {
		n = c.br.Buffered()
	}
	if c.prefix != nil {
		n += len(c.prefix.prefix)
	}
	return n
}

// pollRead reads the next message into dst if its first bytes have
// arrived, and returns errWouldBlock if nothing is buffered between
// messages; with ready, the first frame header is read from the socket
// even if nothing is buffered yet (the socket has input). Once a message
// has begun it waits for the rest. readMu must be held.
func (c *Conn) pollRead(dst []byte, ready bool) (MessageType, []byte, error) {
	c.borrowReader()
	if c.pending != nil {
		m := c.popPending()
		return m.typ, append(dst, m.data...), nil
	}
	// Once the connection is closed, read what is left: the buffered
	// messages, then the error that tells how the connection ended.
	if !c.isClosed.Load() {
		c.yield, c.yieldSkip = true, ready
		defer func() { c.yield, c.yieldSkip = false, false }()
	}
	return c.readMessage(dst)
}

// borrowWriteBuf gives the connection a write buffer if it has none.
// writeFrameMu must be held.
func (c *Conn) borrowWriteBuf() {
	if c.wb == nil {
		c.wb = writeBufPool(c.cfg.writeBufferSize).Get().(*writeBuf)
	}
}

// releaseWriteBuf gives the write buffer back if the connection is pooled.
// writeFrameMu must be held.
func (c *Conn) releaseWriteBuf() {
	if c.wb == nil || !c.pooled.Load() || len(c.wb.owed) > 0 {
		return
	}
	wb := c.wb
	c.wb = nil
	wb.b = wb.b[:0]
	writeBufPool(c.cfg.writeBufferSize).Put(wb)
}
