package nats

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/duplexrt/duplex/socketio"
)

// msgType numbers the messages on the request and response subjects. The
// numbers of the Redis adapter (and of @socket.io/redis-adapter) are kept
// for the operations both have; presence has its own.
type msgType int

const (
	typeAllRooms         msgType = 1  // allRooms, and its answer
	typeRemoteJoin       msgType = 2  // socketsJoin
	typeRemoteLeave      msgType = 3  // socketsLeave
	typeRemoteDisconnect msgType = 4  // disconnectSockets
	typeFetch            msgType = 5  // fetchSockets, and its answer
	typeServerSideEmit   msgType = 6  // serverSideEmit (with acks when it has a rid), and an answer
	typeBroadcastAck     msgType = 7  // a broadcast with acks
	typeClientCount      msgType = 8  // answer: clients a broadcast with acks reached
	typeAck              msgType = 9  // answer: one client's acknowledgement
	typeBroadcast        msgType = 10 // a broadcast, on the broadcast and room subjects
	typeHello            msgType = 20 // presence: this server is alive
	typeHelloNew         msgType = 21 // presence: alive, and new (or back): answer with a hello
	typeBye              msgType = 22 // presence: this server leaves
)

// envelope is every message between servers, as JSON. Binary parts of the
// event data are placeholders {"_placeholder":true,"num":N} into Att,
// which JSON carries as base64. Unknown fields are ignored, so fields can
// be added without breaking older servers.
type envelope struct {
	UID       string          `json:"uid"`
	Type      msgType         `json:"type"`
	RequestID string          `json:"rid,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"` // event or ack arguments: a JSON array
	Att       attachments     `json:"att,omitempty"`
	Opts      *wireOpts       `json:"opts,omitempty"`
	Rooms     []string        `json:"rooms,omitempty"`
	Close     bool            `json:"close,omitempty"`
	Count     *int            `json:"count,omitempty"`
	Sockets   []wireSocket    `json:"sockets,omitempty"`
}

// attachments are the binary attachments of a message: a JSON array of
// base64 strings. Decoding counts the elements before it allocates for
// them, so that a rogue message of 350,000 empty attachments ("","",…:
// 3 bytes each) costs a scan; decoded first and counted after, that 1 MiB
// message allocated 40 MiB (TestAttachmentFloodAllocates).
type attachments [][]byte

// UnmarshalJSON decodes a JSON array of base64 strings into at most
// maxAttachments attachments; null leaves a as it is.
func (a *attachments) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	n, err := countElements(b, maxAttachments)
	if err != nil {
		return err
	}
	if n > maxAttachments {
		return fmt.Errorf("more than %d attachments", maxAttachments)
	}
	att := make([][]byte, 0, n)
	if err := json.Unmarshal(b, &att); err != nil {
		return err
	}
	*a = att
	return nil
}

// countElements returns the number of elements of the JSON array b,
// scanning no further once it has counted more than limit. b is the text
// of one value, which encoding/json has checked is valid JSON.
func countElements(b []byte, limit int) (int, error) {
	b = bytes.TrimSpace(b)
	if len(b) < 2 || b[0] != '[' {
		return 0, errors.New("attachments that are not an array")
	}
	n, depth, inString, empty := 0, 0, false, true
	for i := 1; i < len(b)-1; i++ {
		c := b[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '"':
			inString = true
		case '[', '{':
			depth++
		case ']', '}':
			depth--
		case ',':
			if depth == 0 {
				if n++; n > limit {
					return n, nil
				}
			}
		}
		empty = false
	}
	if empty {
		return 0, nil
	}
	return n + 1, nil
}

// wireOpts are the broadcast options, in the Redis adapter's shape
// {rooms, except, flags}.
type wireOpts struct {
	Rooms  []string  `json:"rooms,omitempty"`
	Except []string  `json:"except,omitempty"`
	Flags  wireFlags `json:"flags"`
}

type wireFlags struct {
	Volatile   bool `json:"volatile,omitempty"`
	NoCompress bool `json:"noCompress,omitempty"`
}

func toWireOpts(o *socketio.BroadcastOptions) *wireOpts {
	return &wireOpts{
		Rooms:  dedup(o.Rooms),
		Except: dedup(o.Except),
		Flags:  wireFlags{Volatile: o.Volatile, NoCompress: o.NoCompress},
	}
}

// options returns the options for this process's part of a remote
// operation (always Local).
func (w *wireOpts) options() *socketio.BroadcastOptions {
	if w == nil {
		return &socketio.BroadcastOptions{Local: true}
	}
	return &socketio.BroadcastOptions{
		Rooms:      w.Rooms,
		Except:     w.Except,
		Volatile:   w.Flags.Volatile,
		NoCompress: w.Flags.NoCompress,
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

// wireSocket is a socket as fetchSockets describes it between servers.
type wireSocket struct {
	ID        string             `json:"id"`
	Handshake socketio.Handshake `json:"handshake"`
	Rooms     []string           `json:"rooms"`
	Data      json.RawMessage    `json:"data,omitempty"`
}

func toWireSocket(s *socketio.SocketInfo) wireSocket {
	w := wireSocket{ID: s.ID, Handshake: s.Handshake, Rooms: s.Rooms}
	if len(w.Handshake.Auth) == 0 {
		w.Handshake.Auth = json.RawMessage("{}")
	}
	if s.Data != nil {
		if raw, ok := s.Data.(json.RawMessage); ok && json.Valid(raw) {
			w.Data = raw
		} else if b, err := json.Marshal(s.Data); err == nil {
			w.Data = b
		}
	}
	return w
}

func (w *wireSocket) info() socketio.SocketInfo {
	info := socketio.SocketInfo{ID: w.ID, Handshake: w.Handshake, Rooms: w.Rooms}
	if len(w.Data) > 0 && string(w.Data) != "null" {
		info.Data = w.Data
	}
	return info
}

// Subject tokens. A namespace or room name may hold any character, a NATS
// subject token only some (no '.', no whitespace, no '*' or '>'), so names
// travel as unpadded base64url (A–Z a–z 0–9 - _), and the empty name as
// "-", which no base64 output is.

func token(name string) string {
	if name == "" {
		return "-"
	}
	return base64.RawURLEncoding.EncodeToString([]byte(name))
}

func untoken(tok string) (string, error) {
	if tok == "-" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return "", fmt.Errorf("a subject token not in base64url: %.40q", tok)
	}
	return string(b), nil
}

// maxRoomToken bounds the token of a room subject; a broadcast to a
// longer room name goes to the broadcast subject (the receivers select
// by its options anyway), keeping subjects short.
const maxRoomToken = 256

// CheckPrefix reports whether prefix can start the adapter's subjects:
// one or more dot-separated tokens of printable ASCII without whitespace,
// '*' or '>'.
func CheckPrefix(prefix string) error {
	if prefix == "" {
		return errors.New("nats: empty subject prefix")
	}
	for tok := range strings.SplitSeq(prefix, ".") {
		if tok == "" {
			return fmt.Errorf("nats: subject prefix %q has an empty token", prefix)
		}
		for _, c := range []byte(tok) {
			if c <= ' ' || c >= 0x7f || c == '*' || c == '>' {
				return fmt.Errorf("nats: subject prefix %q has a character not allowed in a subject: %q", prefix, c)
			}
		}
	}
	return nil
}

// checkEventData checks data as the payload of an EVENT from a client
// would be: a JSON array, bounded in depth, whose first element is the
// event name, and placeholders that name attachments.
func checkEventData(data json.RawMessage, attachments [][]byte) error {
	if jsonDepth(data) > maxDepth {
		return fmt.Errorf("values nested deeper than %d", maxDepth)
	}
	args, err := socketio.NewArgs(data, attachments)
	if err != nil {
		return err
	}
	if args.Len() == 0 || args.Raw(0)[0] != '"' {
		return errors.New("an event without a name")
	}
	return nil
}

// eventPacket returns the EVENT packet of namespace nsp carrying data.
func eventPacket(nsp string, data json.RawMessage, att [][]byte) (*socketio.Packet, error) {
	if err := checkEventData(data, att); err != nil {
		return nil, err
	}
	p := &socketio.Packet{Type: socketio.PacketEvent, Namespace: nsp, ID: -1, Data: data}
	if len(att) > 0 {
		p.Type = socketio.PacketBinaryEvent
		p.Attachments = att
	}
	return p, nil
}

// maxDepth bounds the nesting of arrays and objects in the data of a
// message, as adapter/redis bounds its MessagePack: a client's event is
// at most 32 deep (socketio's parser), a relayed one a few more.
const maxDepth = 128

// jsonDepth returns the deepest nesting of arrays and objects in data,
// which need not be valid JSON; it does not recurse.
func jsonDepth(data []byte) int {
	depth, deepest := 0, 0
	inString := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			depth++
			deepest = max(deepest, depth)
		case ']', '}':
			depth--
		}
	}
	return deepest
}
