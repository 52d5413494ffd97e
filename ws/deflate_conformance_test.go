package ws_test

import (
	"bytes"
	"compress/flate"
	"io"
	"strings"
	"testing"

	"github.com/duplexrt/duplex/ws"
)

// compression is what the Conn under test is given when lim.deflate is set:
// no context takeover either way, so the raw peer can use a fresh
// compress/flate per message.
func (lim limits) compression() *ws.Compression {
	if !lim.deflate {
		return nil
	}
	return &ws.Compression{NoContextTakeover: true, RequestPeerNoContextTakeover: true}
}

// deflateForTest compresses p as RFC 7692 §7.2.1 says, with the standard
// library, independently of the package.
func deflateForTest(p []byte) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestSpeed)
	_, _ = w.Write(p)
	_ = w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// inflateForTest undoes deflateForTest (RFC 7692 §7.2.2).
func inflateForTest(t *testing.T, p []byte) []byte {
	t.Helper()
	r := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff})))
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("raw peer: inflating the echo: %v", err)
	}
	return out
}

// compressed is a one-frame compressed message.
func compressed(op byte, p []byte) frame {
	return frame{b0: finBit | rsv1Bit | op, payload: deflateForTest(p)}
}

// RFC 7692 §6 and §7.2: compressed messages, whole and fragmented, and the
// violations that fail the connection.
func TestConformanceDeflate(t *testing.T) {
	long := []byte(strings.Repeat("permessage-deflate compresses repeated text well. ", 40))
	dl := limits{deflate: true}
	cases := []conformanceCase{
		{name: "compressed text", lim: dl, script: func(p *peer) {
			p.send(compressed(opText, long))
			p.expectMessage(opText, long)
			p.closeHandshake(1000)
		}},
		{name: "compressed binary, short", lim: dl, script: func(p *peer) {
			p.send(compressed(opBin, []byte("hi")))
			p.expectMessage(opBin, []byte("hi"))
			p.closeHandshake(1000)
		}},
		{name: "compressed empty message", lim: dl, script: func(p *peer) {
			p.send(compressed(opText, nil))
			p.expectMessage(opText, nil)
			p.closeHandshake(1000)
		}},
		{name: "uncompressed message with deflate negotiated", lim: dl, script: func(p *peer) {
			p.send(text("plain"))
			p.expectMessage(opText, []byte("plain"))
			p.closeHandshake(1000)
		}},
		{name: "compressed in three fragments with a ping between", lim: dl, script: func(p *peer) {
			c := deflateForTest(long)
			a, b := len(c)/3, 2*len(c)/3
			p.send(
				frame{b0: rsv1Bit | opText, payload: c[:a]},
				fin(opPing, "x"),
				frame{b0: opCont, payload: c[a:b]},
				frame{b0: finBit | opCont, payload: c[b:]},
			)
			p.expectFrame(fin(opPong, "x"))
			p.expectMessage(opText, long)
			p.closeHandshake(1000)
		}},
		{name: "compressed, chopped into 7-byte writes", lim: dl, script: func(p *peer) {
			p.sendChopped(7, compressed(opText, long))
			p.expectMessage(opText, long)
			p.closeHandshake(1000)
		}},
		{name: "RSV1 on a continuation frame", lim: dl, fail: ws.StatusProtocolError, script: func(p *peer) {
			c := deflateForTest(long)
			p.send(frame{b0: rsv1Bit | opText, payload: c[:10]}, frame{b0: finBit | rsv1Bit | opCont, payload: c[10:]})
			p.expectFail(ws.StatusProtocolError)
		}},
		{name: "RSV1 on a ping", lim: dl, fail: ws.StatusProtocolError, script: func(p *peer) {
			p.send(frame{b0: finBit | rsv1Bit | opPing, payload: []byte("x")})
			p.expectFail(ws.StatusProtocolError)
		}},
		{name: "RSV1 on a close frame", lim: dl, fail: ws.StatusProtocolError, script: func(p *peer) {
			p.send(frame{b0: finBit | rsv1Bit | opClose, payload: []byte{3, 232}})
			p.expectFail(ws.StatusProtocolError)
		}},
		{name: "RSV1 without the extension", fail: ws.StatusProtocolError, script: func(p *peer) {
			p.send(compressed(opText, long))
			p.expectFail(ws.StatusProtocolError)
		}},
		{name: "compressed text that is not UTF-8", lim: dl, fail: ws.StatusInvalidPayloadData, script: func(p *peer) {
			p.send(compressed(opText, append(bytes.Clone(long), 0xff)))
			p.expectFail(ws.StatusInvalidPayloadData)
		}},
		{name: "corrupt compressed data", lim: dl, fail: ws.StatusInvalidPayloadData, script: func(p *peer) {
			p.send(frame{b0: finBit | rsv1Bit | opBin, payload: []byte{0xff, 0xff, 0xff, 0xff, 0xff}})
			p.expectFail(ws.StatusInvalidPayloadData)
		}},
		{name: "data after the final deflate block", lim: dl, fail: ws.StatusInvalidPayloadData, script: func(p *peer) {
			// A final stored block (BFINAL=1), then bytes that are not deflate.
			p.send(frame{b0: finBit | rsv1Bit | opBin, payload: []byte{0x01, 0x00, 0x00, 0xff, 0xff, 'x', 'y'}})
			p.expectFail(ws.StatusInvalidPayloadData)
		}},
		{name: "compression bomb", lim: limits{deflate: true, readLimit: 1 << 20}, fail: ws.StatusMessageTooBig, script: func(p *peer) {
			bomb := deflateForTest(make([]byte, 64<<20)) // 64 MiB of zeros in ~64 KiB
			p.send(frame{b0: finBit | rsv1Bit | opBin, payload: bomb})
			p.expectFail(ws.StatusMessageTooBig)
		}},
	}
	runCases(t, cases)
}
