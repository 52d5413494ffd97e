package thirdparty

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestIdleMemory measures the heap an idle compressed connection keeps.
// It is off unless DUPLEX_MEMBENCH=1 (it opens tens of thousands of
// sockets and takes a minute):
//
//	DUPLEX_MEMBENCH=1 go test -run=TestIdleMemory -v -timeout=30m
//
// DUPLEX_MEMBENCH_N sets the number of connection pairs (default 10000),
// DUPLEX_MEMBENCH_IMPLS the libraries and modes to run (default
// "duplex/takeover,coder/takeover,duplex/none,gorilla/none,coder/none"),
// DUPLEX_MEMBENCH_READERS=0 leaves the connections without a goroutine
// blocked in a read.
//
// For each library: N client+server pairs over loopback TCP with
// compression negotiated (15-bit windows), each sends 4 messages of 12 KiB
// of varied JSON each way (48 KiB: more than the 32 KiB window, so that
// any history is full), read on the other end; then, by default, each end
// gets a goroutine blocked in a read, as a server's read loop and a
// client's would be, and the connections go idle. runtime.GC twice, and
// MemStats against the same before dialing: the difference divided by N
// is per pair, both ends of a connection in one process. Goroutine stacks
// are in StackInuse, not the heap; the reading goroutines discard what
// they read, so the application holds nothing. Pools the libraries keep
// (sync.Pool) are emptied by the two collections: the number is what a
// connection keeps for itself.
func TestIdleMemory(t *testing.T) {
	if os.Getenv("DUPLEX_MEMBENCH") != "1" {
		t.Skip("set DUPLEX_MEMBENCH=1 to run (opens 2×N sockets)")
	}
	n := 10000
	if s := os.Getenv("DUPLEX_MEMBENCH_N"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n <= 0 {
			t.Fatalf("DUPLEX_MEMBENCH_N=%q", s)
		}
	}
	readers := os.Getenv("DUPLEX_MEMBENCH_READERS") != "0"
	want := "duplex/takeover,coder/takeover,duplex/none,gorilla/none,coder/none"
	if s := os.Getenv("DUPLEX_MEMBENCH_IMPLS"); s != "" {
		want = s
	}
	raiseFileLimit(t, uint64(2*n+100))

	t.Logf("N=%d pairs, readers=%v, GOMAXPROCS=%d, %s", n, readers, runtime.GOMAXPROCS(0), runtime.Version())
	t.Logf("%-16s %14s %14s %14s %10s", "impl/ctx", "HeapInuse/pair", "HeapAlloc/pair", "StackInuse/pair", "goroutines")
	for _, name := range strings.Split(want, ",") {
		var im *compressImpl
		for i := range compressImpls {
			if compressImpls[i].impl+"/"+compressImpls[i].ctx == name {
				im = &compressImpls[i]
			}
		}
		if im == nil {
			t.Fatalf("DUPLEX_MEMBENCH_IMPLS: no %q", name)
		}
		r := idleMemory(t, *im, n, readers)
		t.Logf("%-16s %14.0f %14.0f %14.0f %10d", name, r.heapInuse, r.heapAlloc, r.stackInuse, r.goroutines)
	}
}

type memResult struct {
	heapInuse, heapAlloc, stackInuse float64 // bytes per pair
	goroutines                       int     // while idle, in the process
}

func idleMemory(t *testing.T, im compressImpl, n int, readers bool) memResult {
	s := newWSServer(t, im)
	defer s.srv.Close()
	msgs := variedText(12<<10, 8)

	before := settledMemStats()

	type pair struct{ client, server wsEnd }
	pairs := make([]pair, n)
	var rwg sync.WaitGroup // reading goroutines
	var mu sync.Mutex
	var firstErr error
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	var next sync.Mutex
	i := 0
	var wg sync.WaitGroup
	start := time.Now()
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				next.Lock()
				k := i
				i++
				next.Unlock()
				if k >= n {
					return
				}
				c, sv, ext, err := s.pair(nil)
				if err == nil {
					err = checkExt(im, ext)
				}
				if err != nil {
					fail(err)
					return
				}
				pairs[k] = pair{c, sv}
				for j := range 4 {
					if err := c.write(msgs[(k+j)%len(msgs)]); err != nil {
						fail(err)
						return
					}
				}
				for range 4 {
					if err := sv.discard(); err != nil {
						fail(err)
						return
					}
				}
				for j := range 4 {
					if err := sv.write(msgs[(k+j+4)%len(msgs)]); err != nil {
						fail(err)
						return
					}
				}
				for range 4 {
					if err := c.discard(); err != nil {
						fail(err)
						return
					}
				}
				if readers {
					rwg.Add(2)
					for _, e := range []wsEnd{c, sv} {
						go func() {
							defer rwg.Done()
							for e.discard() == nil {
							}
						}()
					}
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	setup := time.Since(start)
	time.Sleep(200 * time.Millisecond) // let the readers block
	after := settledMemStats()
	goroutines := runtime.NumGoroutine()

	for _, p := range pairs {
		p.client.close()
		p.server.close()
	}
	rwg.Wait()
	runtime.KeepAlive(pairs)
	r := memResult{
		heapInuse:  (float64(after.HeapInuse) - float64(before.HeapInuse)) / float64(n),
		heapAlloc:  (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / float64(n),
		stackInuse: (float64(after.StackInuse) - float64(before.StackInuse)) / float64(n),
		goroutines: goroutines,
	}
	t.Logf("%s/%s: set up in %v; HeapInuse %s → %s, HeapAlloc %s → %s, StackInuse %s → %s, Sys %s → %s",
		im.impl, im.ctx, setup.Round(time.Millisecond),
		mib(before.HeapInuse), mib(after.HeapInuse), mib(before.HeapAlloc), mib(after.HeapAlloc),
		mib(before.StackInuse), mib(after.StackInuse), mib(before.Sys), mib(after.Sys))
	return r
}

func settledMemStats() runtime.MemStats {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// raiseFileLimit makes room for want open files, raising the hard limit
// too where the process may (root).
func raiseFileLimit(t *testing.T, want uint64) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur >= want {
		return
	}
	nl := syscall.Rlimit{Cur: want, Max: max(rl.Max, want)}
	err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &nl)
	if err != nil && rl.Max >= want {
		nl.Max = rl.Max
		err = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &nl)
	}
	if err != nil {
		t.Fatalf("need %d open files for N=%d, the limit is %d (hard %d) and cannot be raised (%v): lower DUPLEX_MEMBENCH_N",
			want, (want-100)/2, rl.Cur, rl.Max, err)
	}
}
