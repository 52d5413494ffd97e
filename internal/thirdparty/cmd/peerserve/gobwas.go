package main

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// startGobwas serves with gobwas/ws on the listener itself, without
// net/http: its zero-copy ws.Upgrader parses the handshake in place, the
// way its README sets up servers under high load. A goroutine per
// connection reads frames with wsutil.Reader through a 4 KiB bufio.Reader
// and answers control frames with wsutil.ControlFrameHandler, as
// wsutil.ReadClientData does, but into a buffer the connection keeps
// instead of a new one per message.
//
// Echo sends header and payload in one writev, without copying the
// payload again. Broadcast compiles each frame once (ws.CompileFrame) and
// queues the bytes in a hub; the connection's writer goroutine writes them
// under the lock its control-frame answers take too.
func startGobwas(ln net.Listener) error {
	var h hub[[]byte]
	go func() {
		var delay time.Duration
		for {
			conn, err := ln.Accept()
			if err != nil {
				// Out of file descriptors, most likely: back off as
				// net/http does, up to a second.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			delay = 0
			go serveGobwas(conn, &h)
		}
	}()
	return nil
}

// gobwasConn is one upgraded connection.
type gobwasConn struct {
	conn net.Conn
	rd   wsutil.Reader
	msg  bytes.Buffer // the message being read, reused

	mu      sync.Mutex // held by every write to conn
	head    bytes.Buffer
	scratch [ws.MaxHeaderSize]byte
	iov     [2][]byte
	bufs    net.Buffers // over iov; a field, so that writev allocates nothing
}

func serveGobwas(conn net.Conn, h *hub[[]byte]) {
	defer conn.Close()
	var path string
	up := ws.Upgrader{
		OnRequest: func(uri []byte) error {
			path = string(uri)
			if path != "/ws/echo" && path != "/ws/broadcast" {
				return ws.RejectConnectionError(ws.RejectionStatus(http.StatusNotFound))
			}
			return nil
		},
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second)) // slow handshakes
	if _, err := up.Upgrade(conn); err != nil {
		return // Upgrade has answered with an HTTP error
	}
	_ = conn.SetDeadline(time.Time{})

	c := &gobwasConn{conn: conn}
	c.rd = wsutil.Reader{
		Source:         bufio.NewReaderSize(conn, 4<<10),
		State:          ws.StateServerSide,
		MaxMessageSize: readLimit,
		OnIntermediate: wsutil.ControlFrameHandler(c, ws.StateServerSide),
	}
	if path == "/ws/echo" {
		for {
			op, p, err := c.read()
			if err != nil {
				return
			}
			if err := c.send(op, p); err != nil {
				return
			}
		}
	}

	m := h.join()
	var writer sync.WaitGroup
	writer.Go(func() {
		if err := m.run(func(frame []byte) error { _, err := c.Write(frame); return err }); err != nil {
			h.leave(m)
			_ = conn.Close() // ends the read below
		}
	})
	defer func() {
		h.leave(m)
		writer.Wait()
	}()
	for {
		op, p, err := c.read()
		if err != nil {
			return
		}
		frame, err := ws.CompileFrame(ws.NewFrame(op, true, p)) // a copy: c.msg is reused
		if err != nil {
			return
		}
		h.publish(frame)
	}
}

// read returns the next text or binary message, which is valid until the
// next call, answering the control frames that come first.
func (c *gobwasConn) read() (ws.OpCode, []byte, error) {
	for {
		hdr, err := c.rd.NextFrame()
		if err != nil {
			return 0, nil, err
		}
		if hdr.OpCode.IsControl() {
			// A close is answered, then returned as wsutil.ClosedError.
			if err := c.rd.OnIntermediate(hdr, &c.rd); err != nil {
				return 0, nil, err
			}
			continue
		}
		c.msg.Reset()
		if _, err := c.msg.ReadFrom(&c.rd); err != nil {
			return 0, nil, err
		}
		return hdr.OpCode, c.msg.Bytes(), nil
	}
}

// send writes p as one unfragmented message.
func (c *gobwasConn) send(op ws.OpCode, p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.head.Reset()
	hdr := ws.Header{Fin: true, OpCode: op, Length: int64(len(p))}
	if err := ws.WriteHeaderBuffer(&c.head, hdr, c.scratch[:]); err != nil {
		return err
	}
	c.iov = [2][]byte{c.head.Bytes(), p}
	c.bufs = c.iov[:]
	_, err := c.bufs.WriteTo(c.conn)
	return err
}

// Write writes p, a frame or frames, to the connection; the control frame
// handler writes its answers here.
func (c *gobwasConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn.Write(p)
}
