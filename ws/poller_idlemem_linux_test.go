//go:build linux

package ws_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/duplexrt/duplex/ws"
)

// idleMemClientEnv, when set ("addr n"), makes TestPollerIdleMemory the
// client holder: the process dials n connections to addr, completes each
// handshake, prints "ready" and holds them until its standard input ends.
const idleMemClientEnv = "DUPLEX_IDLEMEM_CLIENT"

// TestPollerIdleMemory measures what an idle server connection costs, in
// the Poller and in the portable (goroutine) mode, with and without a
// heartbeat: heap (HeapInuse after two collections), goroutine stacks, and
// resident memory (VmRSS after debug.FreeOSMemory), each as the difference
// with the same before the connections opened, divided by their number,
// in a second round of the same after a first that warms the process up.
// The clients are held by a child process (this test binary re-executed),
// so the figures are the server's alone. N is 10,000, or what the file
// limit allows, or DUPLEX_IDLEMEM_N; DUPLEX_IDLEMEM_PROFILE=dir writes a
// heap profile of each mode's idle connections there. It fails if an idle connection's
// heap grows past a generous bound, and logs the figures:
//
//	go test -run TestPollerIdleMemory -v ./ws
func TestPollerIdleMemory(t *testing.T) {
	if v := os.Getenv(idleMemClientEnv); v != "" {
		idleMemClient(v)
		return
	}
	if testing.Short() {
		t.Skip("opens thousands of sockets: not with -short")
	}
	if raceEnabled {
		t.Skip("the race detector changes what memory costs")
	}
	n := idleMemConns(t)
	t.Logf("N=%d connections, GOMAXPROCS=%d, %s", n, runtime.GOMAXPROCS(0), runtime.Version())
	t.Logf("%-20s %12s %12s %12s", "mode", "heap/conn", "stack/conn", "RSS/conn")
	modes := []struct {
		name      string
		poll      bool
		heartbeat bool
		maxHeap   float64 // bytes per connection
	}{
		{"poller", true, false, 1536},
		{"poller+heartbeat", true, true, 1536},
		{"goroutine", false, false, 1536},
		{"goroutine+heartbeat", false, true, 1536},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			// A first round warms the process up (the runtime's own
			// tables, the pools, the kernel's): what is left is what the
			// connections keep.
			idleMemServer(t, n, m.poll, m.heartbeat)
			r := idleMemServer(t, n, m.poll, m.heartbeat)
			t.Logf("%-20s %12.0f %12.0f %12.0f", m.name, r.heap, r.stack, r.rss)
			if r.heap > m.maxHeap {
				t.Errorf("an idle %s connection keeps %.0f B of heap, more than %.0f", m.name, r.heap, m.maxHeap)
			}
		})
	}
}

// idleMemConns returns how many connections the test opens: half the
// open-file limit at most, since the server's process holds its own end
// of each and its other files.
func idleMemConns(t *testing.T) int {
	n := 10000
	if s := os.Getenv("DUPLEX_IDLEMEM_N"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n <= 0 {
			t.Fatalf("DUPLEX_IDLEMEM_N=%q", s)
		}
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
	if limit := int(rl.Cur/2) - 100; n > limit {
		n = limit
	}
	if n < 100 {
		t.Skipf("the open-file limit (%d) is too low", rl.Cur)
	}
	return n
}

type idleMemResult struct {
	heap, stack, rss float64 // bytes per connection
}

func idleMemServer(t *testing.T, n int, poll, heartbeat bool) idleMemResult {
	var opened, closed atomic.Int64
	s := &ws.Server{
		Handler: ws.HandlerFuncs{
			Open:  func(*ws.Conn) { opened.Add(1) },
			Close: func(*ws.Conn, error) { closed.Add(1) },
		},
		Options: &ws.AcceptOptions{},
	}
	if heartbeat {
		// Long enough that no ping goes out while the test runs.
		s.Options.Heartbeat = &ws.Heartbeat{Interval: time.Hour}
	}
	if poll {
		p, err := ws.NewPoller(&ws.PollerOptions{WorkerIdleTimeout: 50 * time.Millisecond})
		if err != nil {
			t.Skipf("no poller here: %v", err)
		}
		defer func() { _ = p.Close() }()
		s.Poller = p
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: s}
	go func() { _ = hs.Serve(ln) }()
	defer func() { _ = hs.Close() }()

	profile := os.Getenv("DUPLEX_IDLEMEM_PROFILE") // a directory for heap profiles
	if profile != "" {
		runtime.MemProfileRate = 1
		defer func() { runtime.MemProfileRate = 512 << 10 }()
	}
	before := idleMemSettled(t)

	cmd := exec.Command(os.Args[0], "-test.run=^TestPollerIdleMemory$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d", idleMemClientEnv, ln.Addr(), n))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		_ = stdin.Close()
		_ = cmd.Wait()
		t.Fatalf("client holder: %q, %v; stderr:\n%s", line, err, stderr.String())
	}
	for opened.Load() < int64(n) {
		time.Sleep(20 * time.Millisecond)
	}
	if poll {
		for s.Poller.Len() < n {
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Let the handlers' goroutines park (portable mode) and the poller's
	// workers time out.
	time.Sleep(500 * time.Millisecond)
	after := idleMemSettled(t)
	if profile != "" {
		f, err := os.Create(fmt.Sprintf("%s/%s.heap", profile, strings.ReplaceAll(t.Name(), "/", "_")))
		if err != nil {
			t.Fatal(err)
		}
		_ = pprof.Lookup("heap").WriteTo(f, 0)
		_ = f.Close()
	}
	if c := closed.Load(); c != 0 {
		t.Fatalf("%d connections closed while idle", c)
	}

	_ = stdin.Close() // the holder exits, closing every connection
	_ = cmd.Wait()
	for closed.Load() < int64(n) {
		time.Sleep(20 * time.Millisecond)
	}
	runtime.KeepAlive(s)
	return idleMemResult{
		heap:  (float64(after.heap) - float64(before.heap)) / float64(n),
		stack: (float64(after.stack) - float64(before.stack)) / float64(n),
		rss:   (float64(after.rss) - float64(before.rss)) / float64(n),
	}
}

type idleMemSample struct{ heap, stack, rss uint64 }

// idleMemSettled collects garbage, returns freed memory to the system and
// samples the heap, the stacks and the resident set.
func idleMemSettled(t *testing.T) idleMemSample {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return idleMemSample{heap: m.HeapInuse, stack: m.StackInuse, rss: vmRSS(t)}
}

// vmRSS returns the process's resident set size in bytes.
func vmRSS(t *testing.T) uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS: %q", v)
			}
			return kib << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// idleMemClient is the client holder's side (see idleMemClientEnv): raw
// sockets that send a handshake and read the answer, nothing more.
func idleMemClient(arg string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	addr, ns, _ := strings.Cut(arg, " ")
	n, err := strconv.Atoi(ns)
	if err != nil {
		fail(err)
	}
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
	req := []byte("GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	conns := make([]net.Conn, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	for range 16 {
		wg.Go(func() {
			buf := make([]byte, 512)
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				nc, err := net.Dial("tcp", addr)
				if err == nil {
					_, err = nc.Write(req)
				}
				// The answer is short and comes in one segment: read up to
				// its blank line.
				got := 0
				for err == nil && !bytes.Contains(buf[:got], []byte("\r\n\r\n")) {
					var k int
					k, err = nc.Read(buf[got:])
					got += k
				}
				if err == nil && !bytes.HasPrefix(buf[:got], []byte("HTTP/1.1 101 ")) {
					err = fmt.Errorf("handshake answered %q", buf[:got])
				}
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				conns[i] = nc
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		fail(firstErr)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}
