package socketio

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// connectErrors records what ServerOptions.OnConnectError is told.
type connectErrors chan connectErrorCall

type connectErrorCall struct {
	nsp string
	err error
}

func (ce connectErrors) record(r *http.Request, nsp string, err error) {
	if r == nil {
		err = errors.Join(err, errors.New("OnConnectError got a nil request"))
	}
	ce <- connectErrorCall{nsp, err}
}

func (ce connectErrors) next(t *testing.T) connectErrorCall {
	t.Helper()
	select {
	case c := <-ce:
		return c
	case <-time.After(step):
		t.Fatal("OnConnectError was not called")
		return connectErrorCall{}
	}
}

// TestMaxNamespacesPerConnection: one connection joins at most
// MaxNamespacesPerConnection namespaces; a CONNECT past it gets a
// CONNECT_ERROR, makes no dynamic namespace, and leaves the connection
// open; leaving a namespace makes room.
func TestMaxNamespacesPerConnection(t *testing.T) {
	t.Parallel()
	ce := make(connectErrors, 16)
	srv, url := newTestServer(t, &ServerOptions{MaxNamespacesPerConnection: 3, OnConnectError: ce.record})
	var made atomic.Int64
	srv.OfFunc(func(name string) bool { return strings.HasPrefix(name, "/dyn-") }, func(*Namespace) { made.Add(1) })
	srv.Of("/static")
	rc := dialRaw(t, url)
	rc.connect("/", "")
	rc.connect("/static", "")
	rc.connect("/dyn-1", "")
	const refusal = `{"message":"Too many namespaces on this connection (at most 3)"}`
	for _, nsp := range []string{"/dyn-2", "/dyn-3", "/nope"} {
		rc.send("0" + nsp + ",")
		rc.expect("4" + nsp + "," + refusal)
		if c := ce.next(t); c.nsp != nsp || !errors.Is(c.err, ErrNamespaceLimit) {
			t.Errorf("OnConnectError(%q, %v), want %q and ErrNamespaceLimit", c.nsp, c.err, nsp)
		}
	}
	if n := made.Load(); n != 1 {
		t.Errorf("%d dynamic namespaces made, want 1: refused CONNECTs make none", n)
	}
	// The connection is still usable, and leaving makes room.
	rc.send("1/static,")
	rc.connect("/dyn-2", "")
	rc.send("0/dyn-3,")
	rc.expect("4/dyn-3," + refusal)
	ce.next(t)
	// Another connection has its own count.
	rc2 := dialRaw(t, url)
	rc2.connect("/dyn-3", "")
	if n := made.Load(); n != 3 {
		t.Errorf("%d dynamic namespaces made, want 3", n)
	}
}

// TestMaxNamespacesPerConnectionDefault: 100 namespaces, then refusals;
// a negative limit lifts it.
func TestMaxNamespacesPerConnectionDefault(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		limit, want int
	}{{0, DefaultMaxNamespacesPerConnection}, {-1, 150}} {
		t.Run(fmt.Sprint(tc.limit), func(t *testing.T) {
			t.Parallel()
			srv, url := newTestServer(t, &ServerOptions{MaxNamespacesPerConnection: tc.limit})
			srv.OfFunc(func(name string) bool { return strings.HasPrefix(name, "/n") }, func(*Namespace) {})
			rc := dialRaw(t, url)
			joined := 0
			for i := range 150 {
				nsp := fmt.Sprintf("/n%d", i)
				rc.send("0" + nsp + ",")
				if strings.HasPrefix(rc.expect("*"), "0"+nsp+",") {
					joined++
				}
			}
			if joined != tc.want {
				t.Errorf("%d namespaces joined, want %d", joined, tc.want)
			}
		})
	}
}

// TestOnConnectError: an unknown namespace, a dynamic one past
// MaxDynamicNamespaces and a middleware's refusal each reach
// OnConnectError with an error that says which.
func TestOnConnectError(t *testing.T) {
	t.Parallel()
	ce := make(connectErrors, 16)
	srv, url := newTestServer(t, &ServerOptions{MaxDynamicNamespaces: 1, OnConnectError: ce.record})
	srv.OfFunc(func(name string) bool { return strings.HasPrefix(name, "/dyn-") }, func(*Namespace) {})
	denied := &ConnectError{Message: "unauthorized", Data: map[string]int{"code": 401}}
	srv.Of("/admin").Use(func(*Socket) error { return denied })
	rc := dialRaw(t, url)

	rc.send("0/nope,")
	rc.expect(`4/nope,{"message":"Invalid namespace"}`)
	if c := ce.next(t); c.nsp != "/nope" || !errors.Is(c.err, ErrInvalidNamespace) {
		t.Errorf("unknown namespace: OnConnectError(%q, %v)", c.nsp, c.err)
	}
	rc.connect("/dyn-1", "")
	rc.send("0/dyn-2,")
	rc.expect(`4/dyn-2,{"message":"Invalid namespace"}`)
	if c := ce.next(t); !errors.Is(c.err, ErrInvalidNamespace) || !strings.Contains(c.err.Error(), "MaxDynamicNamespaces") {
		t.Errorf("past MaxDynamicNamespaces: OnConnectError(%q, %v)", c.nsp, c.err)
	}
	rc.send("0/admin,")
	rc.expect(`4/admin,{"message":"unauthorized","data":{"code":401}}`)
	if c := ce.next(t); c.nsp != "/admin" || !errors.Is(c.err, denied) {
		t.Errorf("middleware: OnConnectError(%q, %v), want the middleware's error", c.nsp, c.err)
	}
	select {
	case c := <-ce:
		t.Errorf("OnConnectError(%q, %v) once more", c.nsp, c.err)
	case <-time.After(50 * time.Millisecond):
	}
}
