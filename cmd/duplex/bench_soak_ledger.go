package main

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// A said text is "m", its id in 16 hex digits (the sender's index, then
// its sequence number), then filler up to --size.
const soakMinSize = 17

// soakLedger is the soak's book: who is in which room since when, which
// says were acknowledged, who received them. The verdict on lost messages
// rests on it. Its methods are safe for concurrent use.
//
// An acknowledged say is due, at the acknowledgement, to the members of
// its room whose join was acknowledged before it was emitted, the sender
// left out: that snapshot is taken when the acknowledgement arrives. Each
// (say, member) pair is then, --grace after the acknowledgement:
// delivered (received by then); excused (not received, and the member
// left the room or lost its connection since the snapshot); reported
// failed (not received, from one server to another, the say's window
// meeting a Redis outage); or overdue. An overdue pair is watched until
// the end of the run: late if it arrives, excused if the member leaves or
// drops first, lost if neither happens by the end of the run's final
// wait, which lasts while deliveries still come (until none has come for
// --grace, soakFinalWait at most).
type soakLedger struct {
	grace   time.Duration
	tag     string // the run's tag, in every room name
	start   int64  // nanotime when the run began, for the samples
	rooms   []soakRoom
	clients []*soakClient // by index, set before the first operation
	shards  [64]soakShard

	qmu   sync.Mutex
	queue []*soakMsg // acknowledged (or failed) says, waiting for their deadline

	omu     sync.Mutex
	outages []soakOutage

	sent, acked, refused, unacked atomic.Int64
	interrupted                   atomic.Int64 // emitted when the run was interrupted: no verdict
	ackLatency                    histogram
	refusedWhy, unackedWhy        reasons

	received       atomic.Int64 // deliveries of the soak's says, all of them
	receiptLatency histogram    // from the emit to the receipt
	expected       atomic.Int64 // (message, member) pairs in the snapshots
	delivered      atomic.Int64 // of those, received within --grace
	deliveredCross atomic.Int64 // of those, from one server to another
	late           atomic.Int64 // received after --grace
	excused        atomic.Int64 // not received, the member left or dropped first
	reportedFailed atomic.Int64 // not received, across servers during a Redis outage
	lost           atomic.Int64 // not received, and no excuse
	extra          atomic.Int64 // received by a client not in the snapshot (it joined meanwhile)
	duplicates     atomic.Int64
	stray          atomic.Int64 // received by a client that never asked for the room, or malformed

	dmu          sync.Mutex
	overdue      []*soakMsg   // messages with overdue pairs
	overduePairs atomic.Int64 // pairs overdue now

	smu     sync.Mutex
	samples []string // the first lost deliveries, described
}

// soakMaxSamples bounds the lost deliveries described in the summary.
const soakMaxSamples = 10

// soakMaxOverdue bounds the overdue pairs watched at once (a few MiB):
// beyond it, a pair not delivered within --grace is lost at once, so that
// a server that loses everything does not grow the soak's own memory.
const soakMaxOverdue = 100_000

// soakRoom is one room's members, as the ledger knows them: those whose
// join was acknowledged and who have not left or dropped since.
type soakRoom struct {
	mu      sync.Mutex
	members map[int32]struct{}
}

// soakMember is a client's membership of one room: since when (the
// join's acknowledgement, nanotime), and a token that changes with every
// membership, so that a verdict can tell whether it lasted.
type soakMember struct {
	since int64
	token uint32
}

// soakOutage is a Redis outage, in nanotime: from the flush before the
// kill (a say acknowledged before it has crossed) until every server has
// subscribed again and a flush has crossed both ways (0 while that has
// not happened).
type soakOutage struct{ down, healed int64 }

type soakShard struct {
	mu   sync.Mutex
	msgs map[uint64]*soakMsg
}

// soakMsg is one say: sent, then acknowledged (with the snapshot of the
// members that must receive it), then judged at its deadline.
type soakMsg struct {
	id     uint64
	room   int32
	sender *soakClient
	tEmit  int64
	tAck   int64
	judge  bool // acknowledged with true: it gets a verdict

	mu      sync.Mutex
	got     []int32 // clients that received it
	expect  []soakExpect
	decided bool         // --grace has passed: pending holds the overdue pairs
	pending []soakExpect // overdue
}

// soakExpect is a member that must receive a message, with the token of
// its membership when the message was acknowledged.
type soakExpect struct {
	client int32
	token  uint32
}

func newSoakLedger(rooms int, grace time.Duration, tag string) *soakLedger {
	l := &soakLedger{grace: grace, tag: tag, start: nanotime(), rooms: make([]soakRoom, rooms)}
	for i := range l.rooms {
		l.rooms[i].members = make(map[int32]struct{})
	}
	for i := range l.shards {
		l.shards[i].msgs = make(map[uint64]*soakMsg)
	}
	return l
}

// roomName is the name of room r on the wire: the run's tag keeps two
// soaks on one cluster apart.
func (l *soakLedger) roomName(r int32) string { return "soak-" + l.tag + "-" + strconv.Itoa(int(r)) }

// roomIndex parses a room name back; -1 if it is not one of this run's.
func (l *soakLedger) roomIndex(name []byte) int32 {
	prefix := "soak-" + l.tag + "-"
	if !bytes.HasPrefix(name, []byte(prefix)) {
		return -1
	}
	n, err := strconv.Atoi(string(name[len(prefix):]))
	if err != nil || n < 0 || n >= len(l.rooms) {
		return -1
	}
	return int32(n)
}

// joined records that c is in room r from now on, if c is still on the
// connection whose socket id was sid when it asked (else the join went to
// a connection since lost, and the server has forgotten it).
func (l *soakLedger) joined(c *soakClient, r int32, sid string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sid == "" || c.sock.ID() != sid {
		return false
	}
	l.joinLocked(c, r)
	return true
}

// joinLocked makes c a member of room r from now on; c.mu is held.
func (l *soakLedger) joinLocked(c *soakClient, r int32) {
	c.token++
	c.rooms[r] = soakMember{since: nanotime(), token: c.token}
	room := &l.rooms[r]
	room.mu.Lock()
	room.members[c.idx] = struct{}{}
	room.mu.Unlock()
}

// left records that c is no longer in room r: called before the leave is
// emitted, so that messages from then on are not required of c.
func (l *soakLedger) left(c *soakClient, r int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l.leaveLocked(c, r)
}

func (l *soakLedger) leaveLocked(c *soakClient, r int32) {
	if _, ok := c.rooms[r]; !ok {
		return
	}
	delete(c.rooms, r)
	room := &l.rooms[r]
	room.mu.Lock()
	delete(room.members, c.idx)
	room.mu.Unlock()
}

// endAll ends c's memberships (its connection is gone, or going) and
// returns its rooms.
func (l *soakLedger) endAll(c *soakClient) []int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	rooms := make([]int32, 0, len(c.rooms))
	for r := range c.rooms {
		rooms = append(rooms, r)
	}
	for _, r := range rooms {
		l.leaveLocked(c, r)
	}
	return rooms
}

// newMsg records a say about to be emitted.
func (l *soakLedger) newMsg(c *soakClient, seq uint32, r int32) *soakMsg {
	m := &soakMsg{id: uint64(c.idx)<<32 | uint64(seq), room: r, sender: c, tEmit: nanotime()}
	sh := &l.shards[m.id%uint64(len(l.shards))]
	sh.mu.Lock()
	sh.msgs[m.id] = m
	sh.mu.Unlock()
	l.sent.Add(1)
	return m
}

// acknowledged records the acknowledgement of m: reply is its first
// argument, true or the server's reason to refuse.
func (l *soakLedger) acknowledged(m *soakMsg, reply []byte) {
	m.tAck = nanotime()
	if string(reply) != "true" {
		l.refused.Add(1)
		l.refusedWhy.add("refused: " + shorten(string(reply), 80))
		l.enqueue(m)
		return
	}
	l.acked.Add(1)
	l.ackLatency.record(time.Duration(m.tAck - m.tEmit))
	m.judge = true
	room := &l.rooms[m.room]
	room.mu.Lock()
	ids := make([]int32, 0, len(room.members))
	for id := range room.members {
		ids = append(ids, id)
	}
	room.mu.Unlock()
	expect := make([]soakExpect, 0, len(ids))
	for _, id := range ids {
		if id == m.sender.idx {
			continue // said is sent to the room, the sender left out
		}
		c := l.clients[id]
		c.mu.Lock()
		mb, ok := c.rooms[m.room]
		c.mu.Unlock()
		if ok && mb.since < m.tEmit {
			expect = append(expect, soakExpect{client: id, token: mb.token})
		}
	}
	m.mu.Lock()
	m.expect = expect
	m.mu.Unlock()
	l.enqueue(m)
}

// failed records a say that got no acknowledgement.
func (l *soakLedger) failed(m *soakMsg, why string) {
	m.tAck = nanotime()
	l.unacked.Add(1)
	l.unackedWhy.add(why)
	l.enqueue(m)
}

// abandon records a say whose wait for an acknowledgement was
// interrupted (Ctrl-C): it gets no verdict.
func (l *soakLedger) abandon(m *soakMsg) {
	m.tAck = nanotime()
	l.interrupted.Add(1)
	l.enqueue(m)
}

// enqueue puts m in the queue of verdicts, due at its acknowledgement
// plus the grace. A message without verdict stays there too, so that its
// deliveries are still recognized.
func (l *soakLedger) enqueue(m *soakMsg) {
	l.qmu.Lock()
	l.queue = append(l.queue, m)
	l.qmu.Unlock()
}

// receipt records that c received said(room, text, senderId); room and
// text are the event's first arguments, as JSON.
func (l *soakLedger) receipt(c *soakClient, room, text []byte) {
	now := nanotime()
	// "\"m<16 hex digits>...\""
	if len(text) < soakMinSize+2 || text[0] != '"' || text[1] != 'm' {
		l.stray.Add(1)
		return
	}
	id, ok := readStamp(text[2:], false)
	if !ok {
		l.stray.Add(1)
		return
	}
	l.received.Add(1)
	m := l.lookup(id)
	if m == nil {
		l.extra.Add(1) // judged, and nothing was due to c
		return
	}
	if len(room) < 2 || l.roomIndex(room[1:len(room)-1]) != m.room || !c.asked(m.room) {
		l.stray.Add(1)
		return
	}
	m.mu.Lock()
	if containsInt32(m.got, c.idx) {
		m.mu.Unlock()
		l.duplicates.Add(1)
		return
	}
	m.got = append(m.got, c.idx)
	wasOverdue, resolved := false, false
	if m.decided {
		for i, e := range m.pending {
			if e.client == c.idx {
				m.pending = append(m.pending[:i], m.pending[i+1:]...)
				wasOverdue, resolved = true, len(m.pending) == 0
				break
			}
		}
	}
	decided := m.decided
	m.mu.Unlock()
	l.receiptLatency.record(time.Duration(now - m.tEmit))
	switch {
	case wasOverdue:
		l.late.Add(1)
		l.overduePairs.Add(-1)
		if resolved {
			l.forget(m)
		}
	case decided:
		l.extra.Add(1)
	}
}

// lookup returns the message of id, nil once it is forgotten.
func (l *soakLedger) lookup(id uint64) *soakMsg {
	sh := &l.shards[id%uint64(len(l.shards))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.msgs[id]
}

// forget removes m from the book: nothing more is due of it.
func (l *soakLedger) forget(m *soakMsg) {
	sh := &l.shards[m.id%uint64(len(l.shards))]
	sh.mu.Lock()
	delete(sh.msgs, m.id)
	sh.mu.Unlock()
}

// outageBegin records that Redis is about to go down: the flush that
// precedes the kill starts now.
func (l *soakLedger) outageBegin() {
	l.omu.Lock()
	l.outages = append(l.outages, soakOutage{down: nanotime()})
	l.omu.Unlock()
}

// outageEnd records that every server has subscribed again, and a flush
// has crossed each way.
func (l *soakLedger) outageEnd() {
	l.omu.Lock()
	if n := len(l.outages); n > 0 && l.outages[n-1].healed == 0 {
		l.outages[n-1].healed = nanotime()
	}
	l.omu.Unlock()
}

// inOutage reports whether m may have been published while a server was
// not subscribed: acknowledged after an outage began (before, its server
// had queued it before the flush, which crossed) and emitted before the
// outage ended (after, its server queued it after a flush crossed).
func (l *soakLedger) inOutage(m *soakMsg) bool {
	l.omu.Lock()
	defer l.omu.Unlock()
	for _, o := range l.outages {
		if m.tAck >= o.down && (o.healed == 0 || m.tEmit <= o.healed) {
			return true
		}
	}
	return false
}

// judgeDue gives their verdict to the messages whose deadline has passed
// (all of them with all), and reports how many wait still.
func (l *soakLedger) judgeDue(all bool) int {
	now := nanotime()
	l.qmu.Lock()
	n := 0
	for n < len(l.queue) && (all || l.queue[n].tAck+int64(l.grace) <= now) {
		n++
	}
	due := make([]*soakMsg, n)
	copy(due, l.queue[:n])
	clear(l.queue[:n])
	l.queue = l.queue[n:]
	if len(l.queue) == 0 {
		l.queue = nil // let the array go
	}
	left := len(l.queue)
	l.qmu.Unlock()
	for _, m := range due {
		l.judgeOne(m)
	}
	return left
}

func (l *soakLedger) judgeOne(m *soakMsg) {
	if !m.judge {
		m.mu.Lock()
		m.decided = true
		m.mu.Unlock()
		l.forget(m)
		return
	}
	m.mu.Lock()
	m.decided = true
	matched := 0
	var pending []soakExpect
	for _, e := range m.expect {
		c := l.clients[e.client]
		if containsInt32(m.got, e.client) {
			matched++
			l.delivered.Add(1)
			if c.server != m.sender.server {
				l.deliveredCross.Add(1)
			}
			continue
		}
		switch {
		case !l.stillMember(c, m.room, e.token):
			l.excused.Add(1)
		case c.server != m.sender.server && l.inOutage(m):
			l.reportedFailed.Add(1)
		default:
			pending = append(pending, e)
		}
	}
	l.expected.Add(int64(len(m.expect)))
	l.extra.Add(int64(len(m.got) - matched))
	if len(pending) > 0 && l.overduePairs.Load()+int64(len(pending)) > soakMaxOverdue {
		for _, e := range pending {
			l.lose(m, l.clients[e.client])
		}
		pending = nil
	}
	m.pending = pending
	m.mu.Unlock()
	if len(pending) == 0 {
		l.forget(m)
		return
	}
	l.overduePairs.Add(int64(len(pending)))
	l.dmu.Lock()
	l.overdue = append(l.overdue, m)
	l.dmu.Unlock()
}

// stillMember reports whether c's membership of room r is still the one
// of token.
func (l *soakLedger) stillMember(c *soakClient, r int32, token uint32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	mb, ok := c.rooms[r]
	return ok && mb.token == token
}

// lose counts the delivery of m to c lost.
func (l *soakLedger) lose(m *soakMsg, c *soakClient) {
	l.lost.Add(1)
	l.smu.Lock()
	defer l.smu.Unlock()
	if len(l.samples) >= soakMaxSamples {
		return
	}
	l.samples = append(l.samples, fmt.Sprintf("say %016x to %s from client %d (server %d), acknowledged at %.3fs after %v: never received by client %d (server %d), in the room since before it",
		m.id, l.roomName(m.room), m.sender.idx, m.sender.server, time.Duration(m.tAck-l.start).Seconds(), time.Duration(m.tAck-m.tEmit).Round(time.Microsecond), c.idx, c.server))
}

// sweep excuses the overdue pairs whose member has left or dropped
// since; with final, the pairs still overdue are lost.
func (l *soakLedger) sweep(final bool) {
	l.dmu.Lock()
	list := l.overdue
	l.overdue = nil
	l.dmu.Unlock()
	var keep []*soakMsg
	for _, m := range list {
		m.mu.Lock()
		left := m.pending[:0]
		for _, e := range m.pending {
			c := l.clients[e.client]
			switch {
			case !l.stillMember(c, m.room, e.token):
				l.excused.Add(1)
				l.overduePairs.Add(-1)
			case final:
				l.lose(m, c)
				l.overduePairs.Add(-1)
			default:
				left = append(left, e)
			}
		}
		m.pending = left
		m.mu.Unlock()
		if len(left) > 0 {
			keep = append(keep, m)
		} else {
			l.forget(m)
		}
	}
	l.dmu.Lock()
	l.overdue = append(l.overdue, keep...)
	l.dmu.Unlock()
}

// run judges the messages as their deadlines pass, until ctx is done.
func (l *soakLedger) run(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for i := 1; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.judgeDue(false)
			if i%10 == 0 {
				l.sweep(false)
			}
		}
	}
}

// soakFinalWait bounds the final wait for overdue deliveries.
const soakFinalWait = time.Minute

// drain waits until every message has had its first verdict, then for
// the overdue ones while deliveries still come (until none has come for
// --grace, soakFinalWait at most), and gives the final verdict. ctx ends
// the waits early.
func (l *soakLedger) drain(ctx context.Context) {
	t := newStoppedTimer()
	for l.judgeDue(false) > 0 {
		if sleepCtx(ctx, t, 100*time.Millisecond) != nil {
			break
		}
	}
	l.judgeDue(true)
	end := time.Now().Add(soakFinalWait)
	last, lastAt := l.received.Load(), time.Now()
	for l.overduePairs.Load() > 0 && time.Now().Before(end) && time.Since(lastAt) < l.grace {
		if sleepCtx(ctx, t, 100*time.Millisecond) != nil {
			break
		}
		if n := l.received.Load(); n != last {
			last, lastAt = n, time.Now()
		}
		l.sweep(false)
	}
	l.sweep(true)
}

func containsInt32(s []int32, v int32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// shorten cuts s to n bytes at most, marking the cut.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
