package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/duplexrt/duplex/socketio"
	"github.com/duplexrt/duplex/ws"
)

// The chat of duplex serve: rooms of people with nicknames, on /ws/chat (a
// raw WebSocket carrying JSON, which the page at / uses) and on the /chat
// namespace of /socket.io/ (the same events, for Socket.IO clients). Both
// kinds of client share the rooms, and with --redis or --nats so do the
// clients of every process on the broker.
//
// The /ws/chat protocol: every message is a JSON object in a text message.
// A client sends
//
//	{"type":"join","room":"lobby","nick":"ann"}  join a room (leaving the one it was in), and/or take a nickname
//	{"type":"nick","nick":"ann"}                 change nickname
//	{"type":"say","text":"hello"}                say something in the room
//
// A client may name its room and nickname in the URL,
// /ws/chat?room=lobby&nick=ann, and so join at once (a bad one is refused
// with an error event, and the client starts as a guest of the lobby). It
// receives
//
//	{"type":"welcome","id":"…","nick":"…","room":"…","online":3}  on open and after each join: who it is, where, and how many are in the room
//	{"type":"message","room":"…","id":"…","nick":"…","text":"…","time":1733400000000}
//	{"type":"join","room":"…","id":"…","nick":"…","online":3}    someone came in (the client itself too)
//	{"type":"leave","room":"…","id":"…","nick":"…","online":2}
//	{"type":"nick","room":"…","id":"…","nick":"new","old":"old"}
//	{"type":"error","message":"…"}                               a refused message, e.g. an unknown type, a bad room name, or too many messages per second
//
// time is Unix milliseconds, online counts the clients of the room across
// the cluster. Without room and nick in its URL, a client starts as
// "guest-xxxx" in room "lobby". Room names
// are 1–32 letters, digits, '-' or '_'; nicknames 1–32 printable
// characters; a line at most 2,000 bytes. A client may send 20 requests a
// second (in bursts of 40); more are refused with an error event. Binary
// messages close the connection with 1003.
//
// The Socket.IO /chat namespace: the client emits "join" ({room, nick}),
// "nick" (nick) and "say" (text), each with an optional acknowledgement
// (the welcome object for join, true for the others, or {error}); the
// handshake's auth may carry {nick, room}. The server emits "welcome",
// "message", "join", "leave", "nick" with the objects above.

const (
	chatDefaultRoom = "lobby"
	chatMaxText     = 2000
	chatMaxNick     = 32
	chatReadLimit   = 16 << 10
	chatQueueBytes  = 1 << 20
	chatRate        = 20 // messages per second per client
	chatBurst       = 40
	// presenceEvery is how often a process tells the others how many
	// chat clients it has in each room; a process not heard from for
	// presenceExpiry has left the cluster.
	presenceEvery  = 5 * time.Second
	presenceExpiry = 3 * presenceEvery
)

var chatRoomName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// chatEvent is one event of the chat, as clients see it and as it travels
// on the bus (with Node and Count).
type chatEvent struct {
	Type    string `json:"type"`
	Room    string `json:"room,omitempty"`
	ID      string `json:"id,omitempty"`
	Nick    string `json:"nick,omitempty"`
	Old     string `json:"old,omitempty"`
	Text    string `json:"text,omitempty"`
	Time    int64  `json:"time,omitempty"`
	Online  int    `json:"online,omitempty"`
	Message string `json:"message,omitempty"`

	// On the bus only: the publishing process, and for join and leave its
	// clients in Room after the change.
	Node  string `json:"node,omitempty"`
	Count int    `json:"count,omitempty"`
}

// chatMember is one client of the chat: a /ws/chat connection or a
// Socket.IO socket of /chat.
type chatMember struct {
	id   string
	conn *ws.Conn         // nil for a Socket.IO client
	sock *socketio.Socket // nil for a raw client
	want [2]string        // the room and nick of a raw client's URL

	// Owned by the member's reader (one goroutine at a time).
	tokens float64
	last   time.Time

	// Guarded by chat.mu.
	nick, room string
}

// allow spends one token of the member's rate limit.
func (m *chatMember) allow(now time.Time) bool {
	if m.last.IsZero() {
		m.tokens = chatBurst
	} else {
		m.tokens = min(chatBurst, m.tokens+now.Sub(m.last).Seconds()*chatRate)
	}
	m.last = now
	if m.tokens < 1 {
		return false
	}
	m.tokens--
	return true
}

// chat holds this process's chat clients, what it knows of the other
// processes' clients, and is the Handler of /ws/chat.
type chat struct {
	log  *slog.Logger
	bus  bus
	node string
	m    *endpointMetrics
	sm   *endpointMetrics // the /chat namespace's counters
	ns   *socketio.Namespace

	brokerFailures interface{ Inc() }

	mu      sync.Mutex
	raw     map[*ws.Conn]*chatMember
	sockets map[string]*chatMember // by Socket.IO id
	rooms   map[string]map[*chatMember]struct{}
	remote  map[string]*nodePresence

	stop chan struct{}
	done chan struct{}
}

// nodePresence is another process's chat clients per room.
type nodePresence struct {
	rooms map[string]int
	seen  time.Time
}

// presenceMsg travels on the presence topic.
type presenceMsg struct {
	Node  string         `json:"node"`
	Rooms map[string]int `json:"rooms,omitempty"`
	// Ask asks every process to send its presence now (a process that
	// just started), Gone says the process is leaving.
	Ask  bool `json:"ask,omitempty"`
	Gone bool `json:"gone,omitempty"`
}

func newChat(log *slog.Logger, m, sm *endpointMetrics) *chat {
	return &chat{
		log:     log,
		node:    randomID(8),
		m:       m,
		sm:      sm,
		raw:     make(map[*ws.Conn]*chatMember),
		sockets: make(map[string]*chatMember),
		rooms:   make(map[string]map[*chatMember]struct{}),
		remote:  make(map[string]*nodePresence),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
}

// start announces this process and sends its presence every
// presenceEvery until close.
func (c *chat) start() {
	c.publishPresence(true, false)
	go func() {
		defer close(c.done)
		t := time.NewTicker(presenceEvery)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				c.publishPresence(false, true)
				return
			case <-t.C:
				c.publishPresence(false, false)
			}
		}
	}()
}

func (c *chat) close() {
	close(c.stop)
	<-c.done
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// --- /ws/chat ---

// onAccept (ws.Server.OnAccept) reads where the client wants to be, from
// the query of its URL: /ws/chat?room=lobby&nick=ann.
func (c *chat) onAccept(r *http.Request, conn *ws.Conn) {
	q := r.URL.Query()
	m := &chatMember{id: randomID(6), conn: conn, want: [2]string{q.Get("room"), q.Get("nick")}}
	m.nick = "guest-" + m.id[:4]
	c.mu.Lock()
	c.raw[conn] = m
	c.mu.Unlock()
}

// OnOpen puts the client in the room it asked for, with the nickname it
// asked for, or makes it a guest of the lobby.
func (c *chat) OnOpen(conn *ws.Conn) {
	c.m.conns.Inc()
	c.mu.Lock()
	m := c.raw[conn]
	c.mu.Unlock()
	if m == nil {
		return
	}
	room, nick := m.want[0], m.want[1]
	if room == "" {
		room = chatDefaultRoom
	}
	if err := c.join(m, room, nick); err != nil {
		_ = c.join(m, chatDefaultRoom, "")
		c.sendTo(m, &chatEvent{Type: "error", Message: err.Error()})
	}
}

// OnMessage handles one request of a /ws/chat client.
func (c *chat) OnMessage(conn *ws.Conn, typ ws.MessageType, data []byte) {
	c.m.received(len(data))
	c.mu.Lock()
	m := c.raw[conn]
	c.mu.Unlock()
	if m == nil {
		return
	}
	if typ != ws.MessageText {
		_ = conn.Close(ws.StatusUnsupportedData, "the chat speaks JSON in text messages")
		return
	}
	if err := c.request(m, data); err != nil {
		c.sendTo(m, &chatEvent{Type: "error", Message: err.Error()})
	}
}

// request does what a /ws/chat client's message asks: {"type": "join",
// "room", "nick"}, {"type": "nick", "nick"} or {"type": "say", "text"}.
func (c *chat) request(m *chatMember, data []byte) error {
	var req struct {
		Type string `json:"type"`
		Room string `json:"room"`
		Nick string `json:"nick"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(data, &req); err != nil {
		return fmt.Errorf("not a JSON object: %w", err)
	}
	switch req.Type {
	case "join":
		return c.join(m, req.Room, req.Nick)
	case "nick":
		return c.rename(m, req.Nick)
	case "say":
		return c.say(m, req.Text)
	}
	return fmt.Errorf("unknown type %q: use join, nick or say", req.Type)
}

// OnError logs a client that broke the protocol.
func (c *chat) OnError(conn *ws.Conn, err error) {
	c.log.Debug("chat connection failed", "remote", conn.RemoteAddr().String(), "err", err)
}

// OnClose takes the client out of its room.
func (c *chat) OnClose(conn *ws.Conn, err error) {
	c.m.conns.Dec()
	c.mu.Lock()
	m := c.raw[conn]
	delete(c.raw, conn)
	c.mu.Unlock()
	if m != nil {
		c.leave(m)
	}
}

// --- /socket.io/ namespace /chat ---

// serveSocketIO installs the chat on a Socket.IO namespace.
func (c *chat) serveSocketIO(ns *socketio.Namespace) {
	c.ns = ns
	ns.OnConnection(func(s *socketio.Socket) {
		c.sm.conns.Inc()
		var auth struct {
			Nick string `json:"nick"`
			Room string `json:"room"`
		}
		_ = json.Unmarshal(s.Handshake().Auth, &auth)
		m := &chatMember{id: s.ID(), sock: s}
		m.nick = "guest-" + randomID(2)
		c.mu.Lock()
		c.sockets[s.ID()] = m
		c.mu.Unlock()
		room := auth.Room
		if room == "" {
			room = chatDefaultRoom
		}
		if err := c.join(m, room, auth.Nick); err != nil {
			_ = c.join(m, chatDefaultRoom, "")
			c.sendTo(m, &chatEvent{Type: "error", Message: err.Error()})
		}
		answer := func(ack func(...any), err error, ok any) {
			if err != nil {
				ack(map[string]string{"error": err.Error()})
				return
			}
			ack(ok)
		}
		s.On("join", func(s *socketio.Socket, req struct {
			Room string `json:"room"`
			Nick string `json:"nick"`
		}, ack func(...any)) {
			c.sm.received(len(req.Room) + len(req.Nick))
			err := c.join(m, req.Room, req.Nick)
			answer(ack, err, c.welcome(m))
		})
		s.On("nick", func(s *socketio.Socket, nick string, ack func(...any)) {
			c.sm.received(len(nick))
			answer(ack, c.rename(m, nick), true)
		})
		s.On("say", func(s *socketio.Socket, text string, ack func(...any)) {
			c.sm.received(len(text))
			answer(ack, c.say(m, text), true)
		})
		s.OnDisconnect(func(s *socketio.Socket, reason string) {
			c.sm.conns.Dec()
			c.mu.Lock()
			delete(c.sockets, s.ID())
			c.mu.Unlock()
			c.leave(m)
		})
	})
}

// --- what both kinds of client do ---

// join moves m to room (if not empty) and renames it (if nick is not
// empty).
func (c *chat) join(m *chatMember, room, nick string) error {
	if !m.allow(time.Now()) {
		return errChatRate
	}
	if room == "" && nick == "" {
		return errors.New("join needs a room, a nick or both")
	}
	if room != "" && !chatRoomName.MatchString(room) {
		return fmt.Errorf("room %q: use 1 to 32 letters, digits, '-' or '_'", room)
	}
	if nick != "" {
		if err := checkNick(nick); err != nil {
			return err
		}
	}
	if room == "" {
		return c.doRename(m, nick)
	}
	c.mu.Lock()
	old, oldNick := m.room, m.nick
	if old == room {
		c.mu.Unlock()
		if nick != "" && nick != oldNick {
			return c.doRename(m, nick)
		}
		c.sendTo(m, c.welcome(m))
		return nil
	}
	var leaveCount int
	if old != "" {
		leaveCount = c.removeLocked(m)
	}
	if nick != "" {
		m.nick = nick
	}
	set := c.rooms[room]
	if set == nil {
		set = make(map[*chatMember]struct{})
		c.rooms[room] = set
	}
	set[m] = struct{}{}
	m.room = room
	count := len(set)
	c.mu.Unlock()
	if m.sock != nil {
		if old != "" {
			m.sock.Leave(old)
		}
		m.sock.Join(room)
	}
	// The welcome first: the client's own join comes after it, on any
	// bus.
	c.sendTo(m, c.welcome(m))
	if old != "" {
		c.publish(&chatEvent{Type: "leave", Room: old, ID: m.id, Nick: oldNick, Count: leaveCount})
	}
	c.publish(&chatEvent{Type: "join", Room: room, ID: m.id, Nick: m.nickname(c), Count: count})
	return nil
}

func (m *chatMember) nickname(c *chat) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return m.nick
}

func checkNick(nick string) error {
	if !utf8.ValidString(nick) || utf8.RuneCountInString(nick) > chatMaxNick || strings.TrimSpace(nick) == "" ||
		strings.ContainsFunc(nick, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return fmt.Errorf("nick: use 1 to %d printable characters", chatMaxNick)
	}
	return nil
}

// welcome is m's welcome event.
func (c *chat) welcome(m *chatMember) *chatEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return &chatEvent{Type: "welcome", ID: m.id, Nick: m.nick, Room: m.room, Online: c.onlineLocked(m.room)}
}

func (c *chat) rename(m *chatMember, nick string) error {
	if !m.allow(time.Now()) {
		return errChatRate
	}
	return c.doRename(m, nick)
}

func (c *chat) doRename(m *chatMember, nick string) error {
	if err := checkNick(nick); err != nil {
		return err
	}
	c.mu.Lock()
	old, room := m.nick, m.room
	m.nick = nick
	c.mu.Unlock()
	if old != nick {
		c.publish(&chatEvent{Type: "nick", Room: room, ID: m.id, Nick: nick, Old: old})
	}
	return nil
}

var errChatRate = fmt.Errorf("too many messages: at most %d a second", chatRate)

func (c *chat) say(m *chatMember, text string) error {
	if !m.allow(time.Now()) {
		return errChatRate
	}
	if text = strings.TrimSpace(text); text == "" {
		return errors.New("say needs a text")
	}
	if len(text) > chatMaxText {
		return fmt.Errorf("text of %d bytes: at most %d", len(text), chatMaxText)
	}
	if !utf8.ValidString(text) {
		return errors.New("text is not valid UTF-8")
	}
	c.mu.Lock()
	room, nick := m.room, m.nick
	c.mu.Unlock()
	c.publish(&chatEvent{Type: "message", Room: room, ID: m.id, Nick: nick, Text: text, Time: time.Now().UnixMilli()})
	return nil
}

// leave takes m out of its room, for good.
func (c *chat) leave(m *chatMember) {
	c.mu.Lock()
	room, nick := m.room, m.nick
	if room == "" {
		c.mu.Unlock()
		return
	}
	count := c.removeLocked(m)
	m.room = ""
	c.mu.Unlock()
	c.publish(&chatEvent{Type: "leave", Room: room, ID: m.id, Nick: nick, Count: count})
}

// removeLocked takes m out of its room's set and returns how many stay.
func (c *chat) removeLocked(m *chatMember) int {
	set := c.rooms[m.room]
	delete(set, m)
	if len(set) == 0 {
		delete(c.rooms, m.room)
	}
	return len(set)
}

// onlineLocked counts room's clients in the cluster.
func (c *chat) onlineLocked(room string) int {
	n := len(c.rooms[room])
	now := time.Now()
	for id, p := range c.remote {
		if now.Sub(p.seen) > presenceExpiry {
			delete(c.remote, id)
			continue
		}
		n += p.rooms[room]
	}
	return n
}

// publish sends ev to the chat of every process (this one included).
func (c *chat) publish(ev *chatEvent) {
	ev.Node = c.node
	data, err := json.Marshal(ev)
	if err != nil {
		c.log.Error("chat: cannot encode an event", "err", err)
		return
	}
	if err := c.bus.Publish(context.Background(), topicChat, data); err != nil {
		c.brokerFailures.Inc()
		c.log.Debug("chat: broker did not take the event; delivering it here only", "err", err)
		c.receive(data)
	}
}

// receive delivers an event of the bus to this process's clients in its
// room.
func (c *chat) receive(data []byte) {
	var ev chatEvent
	if err := json.Unmarshal(data, &ev); err != nil || ev.Room == "" {
		c.log.Warn("chat: dropped a malformed event from the bus", "err", err)
		return
	}
	c.mu.Lock()
	if ev.Node != c.node && (ev.Type == "join" || ev.Type == "leave") {
		c.notePresenceLocked(ev.Node, map[string]int{ev.Room: ev.Count}, false)
	}
	if ev.Type == "join" || ev.Type == "leave" {
		ev.Online = c.onlineLocked(ev.Room)
	}
	var conns []*ws.Conn
	for m := range c.rooms[ev.Room] {
		if m.conn != nil {
			conns = append(conns, m.conn)
		}
	}
	c.mu.Unlock()
	ev.Node, ev.Count = "", 0
	out, err := json.Marshal(&ev)
	if err != nil {
		return
	}
	if len(conns) > 0 {
		pm, err := ws.NewPreparedMessage(ws.MessageText, out)
		if err == nil {
			n := 0
			for _, conn := range conns {
				switch err := conn.SendPrepared(pm); {
				case err == nil:
					n++
				case errors.Is(err, ws.ErrSendQueueFull):
					c.m.slowOut.Inc()
					c.log.Warn("chat client too slow, closing with 1013", "remote", conn.RemoteAddr().String())
				}
			}
			c.m.fanout.Observe(float64(n))
			c.m.sent(n, n*len(out))
		}
	}
	if c.ns != nil {
		// The Socket.IO clients of this process only: the other
		// processes deliver to theirs.
		if err := c.ns.To(ev.Room).Local().Emit(ev.Type, &ev); err != nil {
			c.log.Warn("chat: Socket.IO broadcast failed", "err", err)
		}
	}
}

// sendTo sends ev to m alone.
func (c *chat) sendTo(m *chatMember, ev *chatEvent) {
	if m.sock != nil {
		_ = m.sock.Emit(ev.Type, ev)
		c.sm.sent(1, 0)
		return
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return
	}
	if err := m.conn.Send(ws.MessageText, data); err == nil {
		c.m.sent(1, len(data))
	}
}

// --- presence ---

func (c *chat) publishPresence(ask, gone bool) {
	p := presenceMsg{Node: c.node, Ask: ask, Gone: gone}
	if !gone {
		c.mu.Lock()
		p.Rooms = make(map[string]int, len(c.rooms))
		for r, set := range c.rooms {
			p.Rooms[r] = len(set)
		}
		c.mu.Unlock()
	}
	data, _ := json.Marshal(&p)
	_ = c.bus.Publish(context.Background(), topicPresence, data)
}

// receivePresence notes another process's presence.
func (c *chat) receivePresence(data []byte) {
	var p presenceMsg
	if err := json.Unmarshal(data, &p); err != nil || p.Node == "" || p.Node == c.node {
		return
	}
	c.mu.Lock()
	if p.Gone {
		delete(c.remote, p.Node)
	} else {
		c.notePresenceLocked(p.Node, p.Rooms, true)
	}
	c.mu.Unlock()
	if p.Ask {
		c.publishPresence(false, false)
	}
}

// notePresenceLocked records node's counts: all its rooms, or only those
// given.
func (c *chat) notePresenceLocked(node string, rooms map[string]int, all bool) {
	p := c.remote[node]
	if p == nil {
		if len(c.remote) >= 1024 { // a bound against a flood of made-up nodes
			return
		}
		p = &nodePresence{rooms: make(map[string]int)}
		c.remote[node] = p
	}
	p.seen = time.Now()
	if all {
		clear(p.rooms)
	}
	for r, n := range rooms {
		if len(p.rooms) >= 10_000 {
			break
		}
		if n <= 0 {
			delete(p.rooms, r)
		} else {
			p.rooms[r] = n
		}
	}
}
