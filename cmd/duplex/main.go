// Command duplex is a ready real-time server (serve: a chat page, raw
// WebSocket endpoints, Socket.IO, metrics, clustering through Redis or
// NATS), a wscat-like client (connect) and a load generator (bench). Run "duplex help" for the
// commands and their flags.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

const usage = `duplex — real-time WebSocket and Socket.IO server, client and load generator

Usage:
  duplex serve   [flags]                run a server: the chat page at /, /ws/echo, /ws/broadcast,
                                        /ws/chat, /socket.io/, /healthz and /metrics
  duplex connect [flags] URL            talk to a WebSocket server from the terminal or a pipe
  duplex bench   SCENARIO [flags] URL   load a server: echo, idle, connect, fanout or socketio
  duplex version                        print the version, the Go version and the platform
  duplex help [command]                 show help

Run "duplex help serve", "duplex help connect" or "duplex help bench" for
their flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "serve":
		err = serveCmd(rest, stderr)
	case "connect":
		err = connectCmd(rest, stdin, stdout, stderr)
	case "bench":
		err = benchCmd(rest, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "duplex", versionString())
		return 0
	case "help", "-h", "--help", "-help":
		if len(rest) > 0 {
			return run([]string{rest[0], "--help"}, stdin, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "duplex: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintf(stderr, "duplex %s: %v\n", cmd, err)
	return 1
}

// errUsage is returned after a usage message has been printed.
var errUsage = errors.New("usage")

// parseFlags parses flags placed before and after the positional
// arguments ("connect URL --echo" as well as "connect --echo URL").
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ", ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// newLogger builds the process logger from --log-level and --log-format.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	hopts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, hopts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, hopts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}
