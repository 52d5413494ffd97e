package redis

import (
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/duplexrt/duplex/socketio"
)

var subscriptionModes = []SubscriptionMode{SubscriptionDynamic, SubscriptionStatic, SubscriptionDynamicPrivate}

// TestSharded runs the scenarios of the classic adapter on the sharded
// variant, in each subscription mode.
func TestSharded(t *testing.T) {
	for _, mode := range subscriptionModes {
		t.Run(string(mode), func(t *testing.T) {
			base := &Options{Sharded: true, SubscriptionMode: mode}
			t.Run("ServerCount", func(t *testing.T) { testServerCount(t, base) })
			t.Run("Broadcasts", func(t *testing.T) { testBroadcasts(t, base) })
			t.Run("FetchJoinLeaveDisconnect", func(t *testing.T) { testFetchJoinLeaveDisconnect(t, base) })
			t.Run("ServerSideEmit", func(t *testing.T) { testServerSideEmit(t, base) })
			t.Run("ServerSideEmitTimeout", func(t *testing.T) { testServerSideEmitTimeout(t, base) })
			t.Run("BroadcastWithAck", func(t *testing.T) { testBroadcastWithAck(t, base) })
			if mode == SubscriptionDynamic {
				t.Run("RedisRestart", func(t *testing.T) { testRedisRestart(t, base) })
			}
		})
	}
}

// TestShardedChannels watches the shard channels: which channel each
// message goes to in each mode, and that the dynamic subscriptions
// follow the rooms.
func TestShardedChannels(t *testing.T) {
	for _, mode := range subscriptionModes {
		t.Run(string(mode), func(t *testing.T) {
			rdb := redisClient(t)
			key := testKey(t)
			a, b := pair(t, &Options{Key: key, Sharded: true, SubscriptionMode: mode}, nil)
			b1 := dial(t, b, "red")
			ch := key + "#/#"
			count := func(c string) int64 {
				m, err := rdb.PubSubShardNumSub(ctxStep(t), c).Result()
				must(t, err)
				return m[c]
			}
			// Who listens to red's and b1's channels.
			wantRed, wantPriv := int64(1), int64(0)
			switch mode {
			case SubscriptionStatic:
				wantRed = 0
			case SubscriptionDynamicPrivate:
				wantPriv = 1
			}
			if n := count(ch + "red#"); n != wantRed {
				t.Errorf("%d subscribers of red's channel, want %d", n, wantRed)
			}
			if n := count(ch + b1.s.ID() + "#"); n != wantPriv {
				t.Errorf("%d subscribers of b1's channel, want %d", n, wantPriv)
			}
			if n := count(ch); n != 2 {
				t.Errorf("%d subscribers of %s, want 2", n, ch)
			}
			ps := rdb.SSubscribe(ctxStep(t), ch, ch+"red#", ch+b1.s.ID()+"#")
			defer ps.Close()
			for range 3 {
				if _, err := ps.Receive(ctxStep(t)); err != nil {
					t.Fatal(err)
				}
			}
			must(t, a.srv.To("red").Emit("x", 1))
			m, err := ps.ReceiveMessage(ctxStep(t))
			must(t, err)
			if want := map[bool]string{true: ch + "red#", false: ch}[mode != SubscriptionStatic]; m.Channel != want {
				t.Errorf("a broadcast to red went to %s, want %s", m.Channel, want)
			}
			b1.waitFor(t, "x 1")
			must(t, a.srv.To(b1.s.ID()).Emit("y", 2))
			m, err = ps.ReceiveMessage(ctxStep(t))
			must(t, err)
			if want := map[bool]string{true: ch + b1.s.ID() + "#", false: ch}[mode == SubscriptionDynamicPrivate]; m.Channel != want {
				t.Errorf("a broadcast to b1 went to %s, want %s", m.Channel, want)
			}
			b1.waitFor(t, "y 2")
			// Once red is empty, b unsubscribes from its channel.
			must(t, ps.Close())
			if _, err := b1.s.EmitWithAck(ctxStep(t), "leave", "red"); err != nil {
				t.Fatal(err)
			}
			eventually(t, "unsubscribed from red", func() bool { return count(ch+"red#") == 0 })
		})
	}
}

// What socket.io-adapter 2.5.9's ClusterAdapter (the Node sharded
// adapter) publishes, JSON.stringify'd or notepack.io-encoded.
func TestClusterEncoding(t *testing.T) {
	a := &Adapter{uid: "0123456789abcdef", opts: Options{Sharded: true}}
	srv, err := socketio.NewServer(nil)
	must(t, err)
	defer srv.Close()
	a.ns = srv.Of("/")
	p := &socketio.Packet{Type: socketio.PacketEvent, Namespace: "/", ID: -1, Data: json.RawMessage(`["ev",1,"é"]`)}
	data := (&jsonObject{}).raw("packet", clusterPacket(p)).value("opts", toWireOpts(&socketio.BroadcastOptions{Rooms: []string{"r"}, Volatile: true})).bytes()
	b, err := a.clusterEncode(cmBroadcast, data, nil)
	must(t, err)
	// JSON.stringify({type: 3, data: {packet: {type: 2, data: ["ev", 1, "é"]}, opts: {rooms: ["r"], except: [], flags: {volatile: true}}}, uid, nsp: "/"})
	want := `{"type":3,"data":{"packet":{"type":2,"data":["ev",1,"é"]},"opts":{"rooms":["r"],"except":[],"flags":{"volatile":true}}},"uid":"0123456789abcdef","nsp":"/"}`
	if string(b) != want {
		t.Errorf("got\n%s\nwant\n%s", b, want)
	}
	// With binary: notepack.io's encoding of
	// {type: 9, data: {packet: ["e", Buffer.from([1])]}, uid: "u", nsp: "/"}
	a.uid = "u"
	b, err = a.clusterEncode(cmServerSideEmit, []byte(`{"packet":["e",{"_placeholder":true,"num":0}]}`), [][]byte{{1}})
	must(t, err)
	const notepack = "84a47479706509a46461746181a67061636b657492a165c40101a3756964a175a36e7370a12f"
	if got := hex.EncodeToString(b); got != notepack {
		t.Errorf("got\n%s\nwant\n%s", got, notepack)
	}
	var cm clusterMessage
	text, _, err := msgpackToJSON(nil, b, new([][]byte))
	must(t, err)
	must(t, json.Unmarshal(text, &cm))
	if cm.Type != cmServerSideEmit || cm.UID != "u" || !strings.Contains(string(cm.Data.Packet), "_placeholder") {
		t.Errorf("decoded %+v", cm)
	}
}

// TestShardedRogueMessages: malformed messages on the shard channels are
// dropped, never a panic.
func TestShardedRogueMessages(t *testing.T) {
	rdb := redisClient(t)
	key := testKey(t)
	a, b := pair(t, &Options{Key: key, Sharded: true}, nil)
	b1 := dial(t, b, "red")
	ctx := ctxStep(t)
	uid := b.srv.Of("/").Adapter().(*Adapter).UID()
	for _, m := range []struct{ ch, payload string }{
		{key + "#/#", ""},
		{key + "#/#", "{"},
		{key + "#/#", "\xc1"},
		{key + "#/#", `{"type":3,"nsp":"/","uid":"x"}`},
		{key + "#/#", `{"type":3,"nsp":"/","uid":"x","data":{"packet":{"type":2,"data":[]},"opts":{"rooms":[],"except":[]}}}`},
		{key + "#/#", `{"type":3,"nsp":"/","uid":"x","data":{"packet":{"type":2,"data":[{"_placeholder":true,"num":0}]}}}`},
		{key + "#/#", `{"type":3,"nsp":"/","uid":"x","data":{"requestId":"r","packet":{"type":2}}}`},
		{key + "#/#", `{"type":4,"nsp":"/","uid":"x","data":{"rooms":["y"]}}`},
		{key + "#/#", `{"type":7,"nsp":"/","uid":"x","data":{}}`},
		{key + "#/#", `{"type":9,"nsp":"/","uid":"x","data":{"packet":"x"}}`},
		{key + "#/#", `{"type":99,"nsp":"/","uid":"x"}`},
		{key + "#/#red#", strings.Repeat("\x91", 10000) + "\xc0"},
		{key + "#/#" + uid + "#", `{"type":12,"data":{"requestId":"zz"}}`},
		{key + "#/#" + uid + "#", `{"type":3,"nsp":"/","uid":"x","data":{"packet":{"type":2,"data":["no"]},"opts":{"rooms":[],"except":[]}}}`},
	} {
		must(t, rdb.SPublish(ctx, m.ch, m.payload).Err())
	}
	must(t, a.srv.To("red").Emit("after"))
	if got := b1.waitFor(t, "after"); len(got) != 0 {
		t.Errorf("b1 got %q", got)
	}
}
