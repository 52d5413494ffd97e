package redis

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/duplexrt/duplex/socketio"
	"github.com/tinylib/msgp/msgp"
)

// requestType numbers the messages on the request and response channels,
// as @socket.io/redis-adapter 8.x does (its RequestType enum).
type requestType int

const (
	reqSockets              requestType = 0 // ids of the sockets in rooms (Node's allSockets)
	reqAllRooms             requestType = 1 // every room (Node's allRooms)
	reqRemoteJoin           requestType = 2 // socketsJoin, or one socket's join (with sid)
	reqRemoteLeave          requestType = 3 // socketsLeave, or one socket's leave
	reqRemoteDisconnect     requestType = 4 // disconnectSockets, or one socket's
	reqRemoteFetch          requestType = 5 // fetchSockets
	reqServerSideEmit       requestType = 6 // serverSideEmit, with acks when it has a requestId
	reqBroadcast            requestType = 7 // a broadcast with acks (MessagePack)
	reqBroadcastClientCount requestType = 8 // response: clients a broadcast with acks reached
	reqBroadcastAck         requestType = 9 // response: one client's ack (MessagePack)
)

// message is a request or a response, in the JSON (or, with binary,
// MessagePack) form of the Node adapter. Unknown fields are ignored.
type message struct {
	UID         string          `json:"uid,omitempty"`
	RequestID   *string         `json:"requestId,omitempty"`
	Type        requestType     `json:"type"`
	Rooms       []jsRoom        `json:"rooms,omitempty"`
	Opts        *wireOpts       `json:"opts,omitempty"`
	SID         string          `json:"sid,omitempty"`
	Room        *jsRoom         `json:"room,omitempty"`
	Close       bool            `json:"close,omitempty"`
	Data        json.RawMessage `json:"data,omitempty"`
	Packet      json.RawMessage `json:"packet,omitempty"`
	ClientCount *int            `json:"clientCount,omitempty"`
	Sockets     json.RawMessage `json:"sockets,omitempty"`
}

// jsRoom is a room name; JavaScript lets numbers be rooms too.
type jsRoom string

func (r *jsRoom) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*r = jsRoom(s)
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("a room is neither a string nor a number: %.40s", b)
	}
	*r = jsRoom(appendJSNumber(nil, f))
	return nil
}

func rooms(rs []jsRoom) []string {
	if len(rs) == 0 {
		return nil
	}
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}

func jsRooms(rs []string) []jsRoom {
	out := make([]jsRoom, len(rs))
	for i, r := range rs {
		out[i] = jsRoom(r)
	}
	return out
}

// wireOpts are the broadcast options of the Node adapter:
// {rooms: [], except: [], flags: {}}.
type wireOpts struct {
	Rooms  []jsRoom  `json:"rooms"`
	Except []jsRoom  `json:"except"`
	Flags  wireFlags `json:"flags"`
}

// wireFlags are the flags of a broadcast that matter to the receiving
// process; the others (timeout, local…) are ignored.
type wireFlags struct {
	Volatile bool  `json:"volatile,omitempty"`
	Compress *bool `json:"compress,omitempty"`
}

func toWireOpts(o *socketio.BroadcastOptions) *wireOpts {
	w := &wireOpts{Rooms: jsRooms(dedup(o.Rooms)), Except: jsRooms(dedup(o.Except))}
	w.Flags.Volatile = o.Volatile
	if o.NoCompress {
		f := false
		w.Flags.Compress = &f
	}
	return w
}

func (w *wireOpts) options() *socketio.BroadcastOptions {
	if w == nil {
		return &socketio.BroadcastOptions{}
	}
	return &socketio.BroadcastOptions{
		Rooms:      rooms(w.Rooms),
		Except:     rooms(w.Except),
		Volatile:   w.Flags.Volatile,
		NoCompress: w.Flags.Compress != nil && !*w.Flags.Compress,
		Local:      true,
	}
}

func dedup(rs []string) []string {
	if len(rs) < 2 {
		return rs
	}
	seen := make(map[string]struct{}, len(rs))
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		if _, ok := seen[r]; !ok {
			seen[r] = struct{}{}
			out = append(out, r)
		}
	}
	return out
}

// appendOptsMsgpack appends the MessagePack form of o.
func appendOptsMsgpack(b []byte, o *wireOpts) []byte {
	b = msgp.AppendMapHeader(b, 3)
	b = msgp.AppendString(b, "rooms")
	b = msgp.AppendArrayHeader(b, uint32(len(o.Rooms)))
	for _, r := range o.Rooms {
		b = msgp.AppendString(b, string(r))
	}
	b = msgp.AppendString(b, "except")
	b = msgp.AppendArrayHeader(b, uint32(len(o.Except)))
	for _, r := range o.Except {
		b = msgp.AppendString(b, string(r))
	}
	b = msgp.AppendString(b, "flags")
	n := uint32(0)
	if o.Flags.Volatile {
		n++
	}
	if o.Flags.Compress != nil {
		n++
	}
	b = msgp.AppendMapHeader(b, n)
	if o.Flags.Volatile {
		b = msgp.AppendString(b, "volatile")
		b = msgp.AppendBool(b, true)
	}
	if o.Flags.Compress != nil {
		b = msgp.AppendString(b, "compress")
		b = msgp.AppendBool(b, *o.Flags.Compress)
	}
	return b
}

// jsPacketType is the type a packet has between processes: the Node
// server broadcasts EVENT (2) and lets its encoder turn it into
// BINARY_EVENT when the data holds binary.
func jsPacketType(t socketio.PacketType) int {
	switch t {
	case socketio.PacketBinaryEvent:
		return int(socketio.PacketEvent)
	case socketio.PacketBinaryAck:
		return int(socketio.PacketAck)
	}
	return int(t)
}

// appendPacketMsgpack appends the JavaScript packet {type, data, nsp} of
// p (without its id: each process numbers its own acknowledgements).
func appendPacketMsgpack(b []byte, p *socketio.Packet, nsp string) ([]byte, error) {
	b = msgp.AppendMapHeader(b, 3)
	b = msgp.AppendString(b, "type")
	b = msgp.AppendInt(b, jsPacketType(p.Type))
	b = msgp.AppendString(b, "data")
	var err error
	if b, err = appendMsgpackFromJSON(b, p.Data, p.Attachments); err != nil {
		return b, fmt.Errorf("redis: encoding the packet: %w", err)
	}
	b = msgp.AppendString(b, "nsp")
	return msgp.AppendString(b, nsp), nil
}

// jsPacket is a packet in the JSON form msgpackToJSON gives.
type jsPacket struct {
	Type int             `json:"type"`
	Data json.RawMessage `json:"data"`
	Nsp  *string         `json:"nsp"`
	ID   *int64          `json:"id"`
}

// packet returns the socketio packet of j, with attachments.
func (j *jsPacket) packet(attachments [][]byte) (*socketio.Packet, error) {
	t := socketio.PacketType(j.Type)
	if t != socketio.PacketEvent && t != socketio.PacketBinaryEvent {
		return nil, fmt.Errorf("a packet of type %d, not an event", j.Type)
	}
	if len(j.Data) == 0 || j.Data[0] != '[' {
		return nil, fmt.Errorf("the packet's data is not an array")
	}
	if err := checkEventData(j.Data, attachments); err != nil {
		return nil, err
	}
	p := &socketio.Packet{Type: socketio.PacketEvent, ID: -1, Data: j.Data, Attachments: attachments}
	if len(attachments) > 0 {
		p.Type = socketio.PacketBinaryEvent
	}
	p.Namespace = "/"
	if j.Nsp != nil {
		p.Namespace = *j.Nsp
	}
	return p, nil
}

// A socket as fetchSockets describes it between processes.
type jsSocket struct {
	ID        string          `json:"id"`
	Handshake jsHandshake     `json:"handshake"`
	Rooms     []jsRoom        `json:"rooms"`
	Data      json.RawMessage `json:"data,omitempty"`
}

// jsHandshake is the handshake of a Node socket (its sessionStore left
// out, as the Node adapter does).
type jsHandshake struct {
	Headers map[string]any  `json:"headers"`
	Time    string          `json:"time"`
	Address string          `json:"address"`
	XDomain bool            `json:"xdomain"`
	Secure  bool            `json:"secure"`
	Issued  float64         `json:"issued"`
	URL     string          `json:"url"`
	Query   map[string]any  `json:"query"`
	Auth    json.RawMessage `json:"auth"`
}

func toJSSocket(s *socketio.SocketInfo) jsSocket {
	h := &s.Handshake
	js := jsSocket{ID: s.ID, Rooms: jsRooms(s.Rooms)}
	js.Handshake = jsHandshake{
		Headers: make(map[string]any, len(h.Headers)),
		Time:    jsDateString(h.Time),
		Address: h.Address,
		XDomain: h.XDomain,
		Secure:  h.Secure,
		Issued:  float64(h.Time.UnixMilli()),
		URL:     h.URL,
		Query:   make(map[string]any, len(h.Query)),
		Auth:    h.Auth,
	}
	for k, v := range h.Headers {
		k = strings.ToLower(k)
		switch {
		case len(v) == 1:
			js.Handshake.Headers[k] = v[0]
		case k == "set-cookie":
			js.Handshake.Headers[k] = v
		case len(v) > 1:
			js.Handshake.Headers[k] = strings.Join(v, ", ")
		}
	}
	for k, v := range h.Query {
		if len(v) == 1 {
			js.Handshake.Query[k] = v[0]
		} else {
			js.Handshake.Query[k] = v
		}
	}
	if len(js.Handshake.Auth) == 0 {
		js.Handshake.Auth = json.RawMessage("{}")
	}
	if s.Data != nil {
		if raw, ok := s.Data.(json.RawMessage); ok {
			js.Data = raw
		} else if b, err := json.Marshal(s.Data); err == nil {
			js.Data = b
		}
	}
	return js
}

func (js *jsSocket) info() socketio.SocketInfo {
	h := &js.Handshake
	info := socketio.SocketInfo{ID: js.ID, Rooms: rooms(js.Rooms)}
	info.Handshake = socketio.Handshake{
		Headers: make(http.Header, len(h.Headers)),
		Time:    time.UnixMilli(int64(h.Issued)),
		Address: h.Address,
		XDomain: h.XDomain,
		Secure:  h.Secure,
		URL:     h.URL,
		Query:   make(url.Values, len(h.Query)),
		Auth:    h.Auth,
	}
	for k, v := range h.Headers {
		info.Handshake.Headers[http.CanonicalHeaderKey(k)] = jsStrings(v)
	}
	for k, v := range h.Query {
		info.Handshake.Query[k] = jsStrings(v)
	}
	if len(js.Data) > 0 && string(js.Data) != "null" {
		info.Data = js.Data
	}
	return info
}

func jsStrings(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// jsDateString formats t as JavaScript's Date.prototype.toString does in
// UTC, the form of a Node handshake's time.
func jsDateString(t time.Time) string {
	return t.UTC().Format("Mon Jan 02 2006 15:04:05 GMT+0000") + " (Coordinated Universal Time)"
}

// checkEventData checks data as the payload of an EVENT from a client
// would be: a JSON array whose first element is the event name, and
// placeholders that name attachments. What goes to the clients must not
// make them close the connection.
func checkEventData(data json.RawMessage, attachments [][]byte) error {
	args, err := socketio.NewArgs(data, attachments)
	if err != nil {
		return err
	}
	if args.Len() == 0 || args.Raw(0)[0] != '"' {
		return fmt.Errorf("an event without a name")
	}
	return nil
}
