package ws

import (
	"io"
	"net"
)

// NewH2StreamConn exposes the HTTP/2 stream adapter to the tests of
// ws_test, which play a raw peer over an HTTP/2 stream: body is what the
// peer sends, w (flushed with flush, if not nil) what goes to it, and
// stop ends our side when the stream is closed.
func NewH2StreamConn(body io.ReadCloser, w io.Writer, flush func() error, stop func(abort bool)) net.Conn {
	return newH2Stream(body, w, flush, stop, h2Addr("local"), h2Addr("remote"), DefaultBufferSize)
}
