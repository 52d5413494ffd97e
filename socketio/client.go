package socketio

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/duplexrt/duplex/engineio"
)

// client is one Engine.IO session and the sockets it has in namespaces
// (the JavaScript server's Client).
type client struct {
	srv  *Server
	sess *engineio.Session
	dec  *decoder // used by the session's reader only

	sendMu sync.Mutex // a packet's text and its attachments go out together

	mu          sync.Mutex
	sockets     map[string]*Socket // by namespace name
	timer       *time.Timer        // the connect timeout, until a namespace is joined
	closeReason string             // set before this side closes the session
	closed      bool
	overLimit   bool // a CONNECT was refused for MaxNamespacesPerConnection (logged once)
}

func newClient(s *Server, sess *engineio.Session) *client {
	c := &client{
		srv:     s,
		sess:    sess,
		dec:     newDecoder(s.limits),
		sockets: make(map[string]*Socket),
	}
	c.timer = time.AfterFunc(s.connectTimeout, func() {
		c.mu.Lock()
		joined := len(c.sockets) > 0
		c.mu.Unlock()
		if !joined {
			s.log.Debug("socketio: no namespace joined in time, closing", "sid", sess.ID())
			c.close(ReasonForcedServerClose)
		}
	})
	return c
}

// onMessage decodes a message of the session and acts on the packet.
func (c *client) onMessage(typ engineio.MessageType, data []byte) {
	var p *Packet
	var err error
	if typ == engineio.MessageBinary {
		p, err = c.dec.decodeBinary(data)
	} else {
		p, err = c.dec.decodeText(data)
	}
	if err != nil {
		c.srv.log.Warn("socketio: closing a connection that sent a malformed packet", "sid", c.sess.ID(), "err", err)
		c.close(ReasonParseError)
		return
	}
	if p == nil {
		return // waiting for attachments
	}
	c.mu.Lock()
	s := c.sockets[p.Namespace]
	c.mu.Unlock()
	switch {
	case s == nil && p.Type == PacketConnect:
		c.connect(p)
	case s != nil && p.Type != PacketConnect && p.Type != PacketConnectError:
		s.onPacket(p)
	default:
		// A packet for a namespace not joined, a second CONNECT, or a
		// CONNECT_ERROR from a client: the JavaScript server closes.
		c.srv.log.Warn("socketio: closing a connection that sent a packet out of turn", "sid", c.sess.ID(), "type", p.Type, "nsp", p.Namespace)
		c.close(ReasonForcedServerClose)
	}
}

// connect handles a CONNECT packet for a namespace not joined yet.
func (c *client) connect(p *Packet) {
	// The limit is checked first, so that a refused CONNECT makes no
	// dynamic namespace. CONNECTs come one at a time (the session's
	// reader), so the count cannot grow between the check and the add.
	if max := c.srv.maxNamespaces; max > 0 {
		c.mu.Lock()
		n := len(c.sockets)
		first := n >= max && !c.overLimit
		if first {
			c.overLimit = true
		}
		c.mu.Unlock()
		if n >= max {
			if first {
				c.srv.log.Warn("socketio: refusing CONNECTs past ServerOptions.MaxNamespacesPerConnection", "sid", c.sess.ID(), "nsp", p.Namespace, "max", max)
			}
			msg := fmt.Sprintf("Too many namespaces on this connection (at most %d)", max)
			c.refuse(p.Namespace, fmt.Errorf("%w: %d joined, ServerOptions.MaxNamespacesPerConnection is %d", ErrNamespaceLimit, n, max),
				connectErrorData(errors.New(msg)))
			return
		}
	}
	ns, err := c.srv.lookup(p.Namespace)
	if err != nil {
		c.refuse(p.Namespace, err, json.RawMessage(`{"message":"Invalid namespace"}`))
		return
	}
	auth := p.Data
	if auth == nil {
		auth = json.RawMessage(`{}`)
	}
	s := newSocket(ns, c, auth)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.sockets[ns.name] = s // events that follow wait behind the middleware
	c.mu.Unlock()
	s.exec.run(func() { ns.connect(s) })
}

// refuse answers a CONNECT to nsp with a CONNECT_ERROR carrying data,
// and tells OnConnectError of err.
func (c *client) refuse(nsp string, err error, data json.RawMessage) {
	_ = c.sendPacket(&Packet{Type: PacketConnectError, Namespace: nsp, ID: -1, Data: data})
	c.srv.connectError(c.sess.Request(), nsp, err)
}

// joined is called when s has joined its namespace.
func (c *client) joined() {
	c.mu.Lock()
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	c.mu.Unlock()
}

// remove forgets s, which has left its namespace.
func (c *client) remove(s *Socket) {
	c.mu.Lock()
	if c.sockets[s.nsp.name] == s {
		delete(c.sockets, s.nsp.name)
	}
	c.mu.Unlock()
}

// sendPacket encodes p and queues it, with its attachments.
func (c *client) sendPacket(p *Packet) error {
	text := encodePacket(make([]byte, 0, 64+len(p.Data)), p)
	return c.send(text, p.Attachments, nil)
}

// send queues an encoded packet and its attachments, as opts (which may
// be nil) says: a volatile packet is dropped when the session has data
// queued already.
func (c *client) send(text []byte, attachments [][]byte, opts *BroadcastOptions) error {
	var so engineio.SendOptions
	if opts != nil {
		so.NoCompress = opts.NoCompress
	}
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if opts != nil && opts.Volatile && c.sess.Buffered() > 0 {
		return nil
	}
	if err := c.sess.SendWith(engineio.MessageText, text, so); err != nil {
		return err
	}
	for _, a := range attachments {
		if err := c.sess.SendWith(engineio.MessageBinary, a, so); err != nil {
			return err
		}
	}
	return nil
}

// disconnectAll disconnects every socket of the client (each client
// socket gets a DISCONNECT, reason "server namespace disconnect"), then
// closes the connection, as the JavaScript server's disconnect(true).
func (c *client) disconnectAll() {
	c.mu.Lock()
	sockets := make([]*Socket, 0, len(c.sockets))
	for _, s := range c.sockets {
		sockets = append(sockets, s)
	}
	c.mu.Unlock()
	for _, s := range sockets {
		s.Disconnect(false)
	}
	c.close(ReasonForcedServerClose)
}

// close closes the session; reason, if not empty, is what the sockets
// are told instead of the Engine.IO reason.
func (c *client) close(reason string) {
	c.mu.Lock()
	if c.closeReason == "" {
		c.closeReason = reason
	}
	c.mu.Unlock()
	_ = c.sess.Close()
}

// onClose disconnects every socket of the session, which has closed.
func (c *client) onClose(reason engineio.CloseReason, err error) {
	c.mu.Lock()
	c.closed = true
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	why := c.closeReason
	sockets := make([]*Socket, 0, len(c.sockets))
	for _, s := range c.sockets {
		sockets = append(sockets, s)
	}
	c.sockets = map[string]*Socket{}
	c.mu.Unlock()
	c.dec.reset()
	if why == "" {
		why = engineReason(reason)
	}
	for _, s := range sockets {
		s.closed(why)
	}
}

// engineReason names an Engine.IO close reason as the JavaScript
// Socket.IO server does for its sockets: the same words.
func engineReason(r engineio.CloseReason) string { return string(r) }

func (c *client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}
