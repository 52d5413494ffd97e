package nats

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/duplexrt/duplex/socketio"
	natsgo "github.com/nats-io/nats.go"
)

// receive handles the messages of the subscriptions, in order, until
// Close.
func (a *Adapter) receive() {
	defer a.wg.Done()
	for {
		select {
		case <-a.ctx.Done():
			return
		case m := <-a.msgs:
			a.handle(m)
		}
	}
}

// handle handles one message; a malformed one is logged and dropped,
// never a panic.
func (a *Adapter) handle(m *natsgo.Msg) {
	defer func() {
		if v := recover(); v != nil {
			a.log.Error("nats: panic handling a message", "subject", m.Subject, "panic", v)
		}
	}()
	if err := a.dispatch(m); err != nil {
		a.log.Warn("nats: message dropped", "subject", m.Subject, "err", err)
	}
}

func (a *Adapter) dispatch(m *natsgo.Msg) error {
	if len(m.Data) > maxMessageSize {
		return fmt.Errorf("a message of %d bytes, more than %d", len(m.Data), maxMessageSize)
	}
	room, isRoom := strings.CutPrefix(m.Subject, a.roomPrefix)
	if isRoom {
		name, err := untoken(room)
		if err != nil {
			return err
		}
		if a.mem.RoomSize(name) == 0 {
			return nil // nobody here in that room
		}
	}
	var e envelope
	if err := json.Unmarshal(m.Data, &e); err != nil {
		return fmt.Errorf("not a message: %w", err)
	}
	if e.UID == a.uid {
		return nil // ours: done locally already
	}
	if len(e.Att) > maxAttachments {
		return fmt.Errorf("%d attachments, more than %d", len(e.Att), maxAttachments)
	}
	switch {
	case isRoom || m.Subject == a.broadcastSubj:
		return a.onBroadcast(&e)
	case m.Subject == a.requestSubj:
		return a.onRequest(&e)
	case m.Subject == a.responseSubj:
		return a.onResponse(&e)
	case m.Subject == a.presenceSubj:
		return a.onPresence(&e)
	}
	return nil
}

// onBroadcast delivers another server's broadcast to this process's
// sockets.
func (a *Adapter) onBroadcast(e *envelope) error {
	if e.Type != typeBroadcast {
		return fmt.Errorf("a message of type %d on a broadcast subject", e.Type)
	}
	p, err := eventPacket(a.ns.Name(), e.Data, e.Att)
	if err != nil {
		return fmt.Errorf("a broadcast: %w", err)
	}
	return a.mem.Broadcast(p, e.Opts.options())
}

// onPresence records another server's hello or goodbye.
func (a *Adapter) onPresence(e *envelope) error {
	if e.UID == "" || len(e.UID) > 64 {
		return errors.New("a presence message without a valid uid")
	}
	switch e.Type {
	case typeHello:
		a.heard(e.UID)
	case typeHelloNew:
		a.heard(e.UID)
		// The newcomer does not know this server yet. At most
		// maxHelloAnswers a second, so that a flood of hello-new does
		// not make every server publish as much; a newcomer left
		// unanswered hears the next heartbeat.
		now := time.Now()
		if now.Sub(a.helloWindow) > time.Second {
			a.helloWindow, a.helloAnswers = now, 0
		}
		if a.helloAnswers < maxHelloAnswers {
			a.helloAnswers++
			a.sendPresence(typeHello)
		}
	case typeBye:
		a.mu.Lock()
		delete(a.peers, e.UID)
		a.mu.Unlock()
	default:
		return fmt.Errorf("a presence message of type %d", e.Type)
	}
	return nil
}

// heard records that server uid is alive.
func (a *Adapter) heard(uid string) {
	if uid == "" || len(uid) > 64 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.heardLocked(uid)
}

func (a *Adapter) heardLocked(uid string) {
	if uid == "" || len(uid) > 64 {
		return
	}
	if _, ok := a.peers[uid]; ok || len(a.peers) < maxPeers {
		a.peers[uid] = time.Now()
	}
}

// respond publishes the answer r to request e, on the requester's
// response subject.
func (a *Adapter) respond(e *envelope, r *envelope) {
	if e.UID == "" || strings.ContainsAny(e.UID, ".*> \t\r\n") || len(e.UID) > 64 {
		a.log.Warn("nats: a request from an invalid uid not answered", "uid", e.UID)
		return
	}
	r.UID = a.uid
	r.RequestID = e.RequestID
	a.publishLog(a.base+".response."+e.UID, r)
}

// onRequest answers a request of another server.
func (a *Adapter) onRequest(e *envelope) error {
	switch e.Type {
	case typeRemoteJoin:
		a.mem.AddSockets(e.Opts.options(), e.Rooms)
	case typeRemoteLeave:
		a.mem.DelSockets(e.Opts.options(), e.Rooms)
	case typeRemoteDisconnect:
		a.mem.DisconnectSockets(e.Opts.options(), e.Close)
	case typeAllRooms:
		if e.RequestID == "" {
			return errors.New("an allRooms request without rid")
		}
		a.respond(e, &envelope{Type: typeAllRooms, Rooms: a.mem.Rooms()})
	case typeFetch:
		if e.RequestID == "" {
			return errors.New("a fetchSockets request without rid")
		}
		infos, _ := a.mem.FetchSockets(a.ctx, e.Opts.options())
		socks := make([]wireSocket, len(infos))
		for i := range infos {
			socks[i] = toWireSocket(&infos[i])
		}
		a.respond(e, &envelope{Type: typeFetch, Sockets: socks})
	case typeServerSideEmit:
		return a.onServerSideEmit(e)
	case typeBroadcastAck:
		if e.RequestID == "" {
			return errors.New("a broadcast request without rid")
		}
		p, err := eventPacket(a.ns.Name(), e.Data, e.Att)
		if err != nil {
			return fmt.Errorf("a broadcast request: %w", err)
		}
		return a.mem.BroadcastWithAck(a.ctx, p, e.Opts.options(),
			func(n int) { a.respond(e, &envelope{Type: typeClientCount, Count: &n}) },
			func(args *socketio.Args) {
				// Only the first argument travels, as with the Redis
				// adapter.
				r := &envelope{Type: typeAck}
				if args.Len() > 0 {
					r.Data, r.Att = firstArg(args)
				}
				a.respond(e, r)
			})
	default:
		return fmt.Errorf("a request of type %d", e.Type)
	}
	return nil
}

// firstArg returns [first argument] of args, with its attachments.
func firstArg(args *socketio.Args) (json.RawMessage, [][]byte) {
	raw := append(append(json.RawMessage{'['}, args.Raw(0)...), ']')
	return raw, args.Attachments()
}

// onServerSideEmit hands a server-side event to the namespace's
// handlers, on the adapter's server-side goroutine.
func (a *Adapter) onServerSideEmit(e *envelope) error {
	p, err := eventPacket(a.ns.Name(), e.Data, e.Att)
	if err != nil {
		return fmt.Errorf("a server-side event: %w", err)
	}
	var ack func(*socketio.Packet) error
	if e.RequestID != "" {
		p.ID = 0
		ack = func(ap *socketio.Packet) error {
			args, err := socketio.NewArgs(ap.Data, ap.Attachments)
			if err != nil {
				return err
			}
			r := &envelope{Type: typeServerSideEmit}
			if args.Len() > 0 {
				r.Data, r.Att = firstArg(args)
			}
			a.respond(e, r)
			return nil
		}
	}
	select {
	case a.sseq <- func() { a.ns.ServeServerSideEmit(p, ack) }:
		return nil
	default:
		return errors.New("too many server-side events waiting for their handlers")
	}
}

// serveServerSide runs the server-side event handlers one at a time, in
// order, so that a slow handler does not hold the subscriptions up.
func (a *Adapter) serveServerSide() {
	defer a.wg.Done()
	for {
		select {
		case <-a.ctx.Done():
			return
		case fn := <-a.sseq:
			func() {
				defer func() {
					if v := recover(); v != nil {
						a.log.Error("nats: panic in a server-side event handler", "panic", v)
					}
				}()
				fn()
			}()
		}
	}
}

// onResponse routes an answer to the request of this server it is for.
func (a *Adapter) onResponse(e *envelope) error {
	if e.RequestID == "" {
		return errors.New("an answer without rid")
	}
	id := e.RequestID
	a.mu.Lock()
	r := a.requests[id]
	if r == nil || r.finished {
		a.mu.Unlock()
		return nil // too late
	}
	// An answer to a request of ours shows its server alive.
	a.heardLocked(e.UID)
	// answer records one server's answer; false if it answered already.
	answer := func() bool {
		if _, dup := r.answered[e.UID]; dup {
			return false
		}
		r.answered[e.UID] = struct{}{}
		return true
	}
	switch {
	case r.typ == typeBroadcastAck && e.Type == typeClientCount:
		if e.Count != nil && *e.Count >= 0 && !r.countDone && answer() {
			r.clients += *e.Count
			if len(r.answered) >= r.expected {
				r.countDone = true
				close(r.counted)
			}
		}
		a.mu.Unlock()
	case r.typ == typeBroadcastAck && e.Type == typeAck:
		args, err := ackArgs(e)
		if err != nil {
			a.mu.Unlock()
			return fmt.Errorf("an acknowledgement: %w", err)
		}
		r.acks++
		ack := r.ack
		if r.countDone && r.acks >= r.clients {
			a.finishLocked(id, r)
		}
		a.mu.Unlock()
		ack(args)
	case r.typ == typeFetch && e.Type == typeFetch:
		if answer() {
			for i := range e.Sockets {
				r.sockets = append(r.sockets, e.Sockets[i].info())
			}
			if len(r.answered) >= r.expected {
				a.finishLocked(id, r)
			}
		}
		a.mu.Unlock()
	case r.typ == typeAllRooms && e.Type == typeAllRooms:
		if answer() {
			r.rooms = append(r.rooms, e.Rooms...)
			if len(r.answered) >= r.expected {
				a.finishLocked(id, r)
			}
		}
		a.mu.Unlock()
	case r.typ == typeServerSideEmit && e.Type == typeServerSideEmit:
		args, err := ackArgs(e)
		if err != nil || !answer() {
			a.mu.Unlock()
			return err
		}
		ack := r.ack
		if len(r.answered) >= r.expected {
			a.finishLocked(id, r)
		}
		a.mu.Unlock()
		ack(args)
	default:
		a.mu.Unlock()
		return fmt.Errorf("an answer of type %d to a request of type %d", e.Type, r.typ)
	}
	return nil
}

// ackArgs returns the arguments of an acknowledgement answer.
func ackArgs(e *envelope) (*socketio.Args, error) {
	if len(e.Data) == 0 {
		return socketio.NewArgs(json.RawMessage("[]"), nil)
	}
	return socketio.NewArgs(e.Data, e.Att)
}
