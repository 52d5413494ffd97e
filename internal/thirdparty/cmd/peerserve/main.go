// Command peerserve serves the two WebSocket endpoints of duplex serve on
// another Go WebSocket library, so that duplex bench can load Duplex and its
// peers on the same machine in the same run (../../compare.sh):
//
//	/ws/echo       every message comes back unchanged, text as text, binary
//	               as binary
//	/ws/broadcast  every message goes to every connection on /ws/broadcast,
//	               the sender included
//
// Usage:
//
//	peerserve --lib gorilla|gws|nbio|gobwas|coder [--addr 127.0.0.1:8080]
//
// Each library is used the way its README and examples set up a fast echo
// server, with the same limits everywhere: no compression, messages up to
// readLimit, buffers of the library's default size (4 KiB where it has
// one), and at most queueLimit messages (nbio: writeBufferLimit bytes) waiting
// for a /ws/broadcast connection, which is closed when it falls further
// behind. The files gorilla.go, gws.go, nbio.go, gobwas.go and coder.go say
// what each does and why.
//
// Once it listens, peerserve prints one line, "peerserve LIB listening on
// ADDR", to standard output. It runs until SIGINT or SIGTERM and then exits
// at once, dropping its connections: it is a load target, not a server to
// deploy.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"
)

// The limits shared by every library. readLimit is duplex serve's default
// --max-message. queueLimit and writeBufferLimit are the bounds of duplex
// serve's /ws/broadcast queue (broadcastQueueMessages and
// broadcastQueueBytes in cmd/duplex/broadcast.go).
const (
	readLimit        = 16 << 20
	queueLimit       = 256
	writeBufferLimit = 4 << 20
)

// A starter serves /ws/echo and /ws/broadcast on ln in the background and
// returns once it is ready to accept. It returns an error only when the
// server could not start.
type starter func(ln net.Listener) error

var libs = map[string]starter{
	"gorilla": startGorilla,
	"gws":     startGWS,
	"nbio":    startNbio,
	"gobwas":  startGobwas,
	"coder":   startCoder,
}

func main() {
	lib := flag.String("lib", "", "the library to serve with: "+libNames())
	addr := flag.String("addr", "127.0.0.1:8080", "listen `address`")
	flag.Parse()
	start, ok := libs[*lib]
	if !ok || flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "peerserve: --lib must be one of %s\n", libNames())
		flag.Usage()
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "peerserve: %v\n", err)
		os.Exit(1)
	}
	if err := start(ln); err != nil {
		fmt.Fprintf(os.Stderr, "peerserve: %s: %v\n", *lib, err)
		os.Exit(1)
	}
	fmt.Printf("peerserve %s listening on %s\n", *lib, ln.Addr())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
}

func libNames() string {
	names := make([]string, 0, len(libs))
	for name := range libs {
		names = append(names, name)
	}
	slices.Sort(names)
	return fmt.Sprint(names)
}

// serveHTTP serves handler on ln with the net/http settings of duplex
// serve, for the libraries that upgrade from net/http.
func serveHTTP(ln net.Listener, handler http.Handler) {
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	err := srv.Serve(ln)
	fmt.Fprintf(os.Stderr, "peerserve: %v\n", err)
	os.Exit(1)
}
