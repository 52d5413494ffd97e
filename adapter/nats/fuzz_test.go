package nats

import (
	"strings"
	"testing"
	"time"

	"github.com/duplexrt/duplex/socketio"
	natsgo "github.com/nats-io/nats.go"
)

// FuzzDispatch feeds what another server could publish, on each subject
// a server reads, to the core adapter's dispatch and the JetStream
// adapter's dispatchLog: whatever the bytes, a message is handled or
// refused with an error, never a panic (handle's recover would hide one
// in production, so the fuzzer calls dispatch directly) nor an
// allocation that grows past the message.
//
// The NATS connection never reaches a server (127.0.0.1:1, retried every
// hour): what the adapter publishes in answer waits in nats.go's
// reconnect buffer, so the target needs no NATS and sends nothing.
func FuzzDispatch(f *testing.F) {
	for _, seed := range []struct {
		subject byte
		data    string
	}{
		{0, `{"uid":"peer","type":10,"data":["ev",1],"opts":{"rooms":[],"except":[],"flags":{}}}`},
		{0, `{"uid":"peer","type":10,"data":["ev",{"_placeholder":true,"num":0}],"att":["AAE="],"opts":{"flags":{"volatile":true}}}`},
		{1, `{"uid":"peer","type":10,"data":["ev"],"opts":{"rooms":["red"],"except":["s2"],"flags":{}}}`},
		{2, `{"uid":"peer","type":2,"opts":{"rooms":["red"],"flags":{}},"rooms":["blue"]}`},
		{2, `{"uid":"peer","type":3,"opts":{"flags":{}},"rooms":["red"]}`},
		{2, `{"uid":"peer","type":4,"opts":{"rooms":["nobody"],"flags":{}},"close":true}`},
		{2, `{"uid":"peer","type":5,"rid":"r1","opts":{"rooms":["red"],"flags":{}}}`},
		{2, `{"uid":"peer","type":6,"data":["hello",1]}`},
		{2, `{"uid":"peer","type":6,"rid":"r2","data":["hello"]}`},
		{2, `{"uid":"peer","type":7,"rid":"r3","data":["ev"],"opts":{"flags":{}}}`},
		{3, `{"uid":"peer","type":5,"rid":"r1","sockets":[{"id":"s","handshake":{},"rooms":["a"],"data":null}]}`},
		{3, `{"uid":"peer","type":8,"rid":"r3","count":2}`},
		{3, `{"uid":"peer","type":9,"rid":"r3","data":[1]}`},
		{4, `{"uid":"peer","type":21}`},
		{4, `{"uid":"peer","type":22}`},
		{0, `{"att":[` + strings.Repeat(`"",`, 20) + `""]}`},
		{0, `[`},
	} {
		f.Add(seed.subject, []byte(seed.data), uint64(7), false)
	}
	nc, err := natsgo.Connect("nats://127.0.0.1:1", natsgo.RetryOnFailedConnect(true),
		natsgo.MaxReconnects(-1), natsgo.ReconnectWait(time.Hour), natsgo.ReconnectBufSize(1<<20))
	if err != nil {
		f.Fatalf("a NATS connection that waits to connect: %v", err)
	}
	defer nc.Close()
	srv, err := socketio.NewServer(&socketio.ServerOptions{NewAdapter: New(nc, &Options{Prefix: "fuzz", RequestsTimeout: 10 * time.Millisecond})})
	if err != nil {
		f.Fatal(err)
	}
	defer srv.Close()
	srv.Of("/").OnServerSideEmit("hello", func(ns *socketio.Namespace, e *socketio.Event) {
		if e.WantsAck() {
			_ = e.Ack("ok")
		}
	})
	a := srv.Of("/").Adapter().(*Adapter)
	a.AddAll("s1", []string{"red", "blue"})
	j := &JetStreamAdapter{Adapter: a, restored: map[string]uint64{"s1": 5}}
	subjects := []string{a.broadcastSubj, a.roomPrefix + "red", a.requestSubj, a.responseSubj, a.presenceSubj, a.roomPrefix + "%zz"}
	f.Fuzz(func(t *testing.T, subject byte, data []byte, seq uint64, fromLog bool) {
		subj := subjects[int(subject)%len(subjects)]
		_ = a.dispatch(&natsgo.Msg{Subject: subj, Data: data})
		_ = j.dispatchLog(subj, data, seq, fromLog)
	})
}
