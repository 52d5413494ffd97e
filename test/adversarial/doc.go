// Package adversarial is the adversarial test suite of issue 11: one Go
// test per attack, each against a real server on 127.0.0.1 (ws.Server,
// engineio.Server, socketio.Server, with the options duplex serve uses),
// bounded in time, asserting the documented protection: the close code
// or HTTP status, the connection cut, the memory bounded (the bytes
// allocated or the heap in use, measured around the attack; those tests
// do not run in parallel), the goroutines gone (goleak in TestMain).
// Each test fails on the unprotected behaviour: with MaxFragments -1,
// TestWSFragmentFlood waits in vain for its 1009; with a SendBufferLimit
// of 1 GiB, TestEIOSendBufferLimit sends 64 MiB unrefused.
//
// The Redis and NATS tests need the brokers at 127.0.0.1:6379 and
// 127.0.0.1:4222; without them they skip, or fail when CI=true.
//
// # Attacks and the tests that cover them
//
// Here (file: test), and elsewhere where a test already covers the
// attack as well:
//
//	Attack                                     Test
//	100,000 empty or 1-byte continuation       ws_test.go: TestWSFragmentFlood (1009 past MaxFragments,
//	frames (Node ws CVE-2026-48779)              heap flat; duplex's 16 MiB ReadLimit: no cost per frame);
//	                                           ws/conformance_test.go: TestConformanceLimits (max-fragments/*)
//	64-bit lengths 2^63, 2^64-1, 2^63-1,       ws_test.go: TestWSLengthHeader (1002 for the MSB, 1009 otherwise,
//	ReadLimit+1, and a fragment's total          nothing allocated); ws/conformance_test.go: TestConformanceLimits
//	                                             (read-limit/huge-declared-length, fragment-overflowing-int64)
//	thousands of headers, a 1 MB header line   http_test.go: TestHeaderFlood (431 from MaxHeaderBytes 16 KiB)
//	slowloris handshake                        http_test.go: TestSlowloris (cut by ReadHeaderTimeout)
//	idle keep-alive connection after one       http_test.go: TestIdleKeepAlive (cut by http.Server.IdleTimeout,
//	request                                      which duplex serve sets to 2 minutes; ReadHeaderTimeout does
//	                                             not apply between requests)
//	half-open TCP, WebSocket                   ws_test.go: TestWSHalfOpen (AcceptOptions.Heartbeat: ping after
//	                                             Interval of silence, cut 1006 ErrNoPong after Timeout; duplex
//	                                             serve's /ws/* use 25 s + 20 s); ws/keepalive_test.go:
//	                                             TestHeartbeatHalfOpen, TestHeartbeatNeverReads
//	half-open TCP, Engine.IO / Socket.IO       engineio_test.go: TestEIOHalfOpen (ReasonPingTimeout, both
//	                                             transports); engineio/server_test.go: TestHeartbeat
//	client that never reads, ws                ws_test.go: TestWSNeverReadingClient (queue <= SendQueueLimit,
//	                                             1013); cmd/duplex/broadcast_test.go: TestBroadcastSlowSubscriber
//	client that never reads, Engine.IO         engineio_test.go: TestEIOSendBufferLimit (<= SendBufferLimit,
//	                                             ErrSendBufferFull, session closed); engineio: TestSendBufferFull
//	10,000 polls/posts with unknown sids       engineio_test.go: TestEIOUnknownSIDFlood (400 code 1, no session,
//	                                             heap flat)
//	Engine.IO garbage packets                  engineio_test.go: TestEIOGarbagePackets; engineio/server_test.go:
//	                                             TestInvalidPacketClosesSession, TestMaxPayload (413, 1009)
//	Socket.IO JSON nested 100,000 deep         socketio_test.go: TestSIODeepNesting; socketio/parser_test.go:
//	                                             TestDecodeLimits
//	attachment floods (socket.io-parser        socketio_test.go: TestSIOAttachmentFlood (1e9 and 2^63 announced,
//	CVE-2026-33151)                              11 > MaxAttachments, unannounced binaries)
//	100,000 namespace CONNECTs on one          socketio_test.go: TestSIONamespaceFlood (CONNECT_ERROR past
//	connection                                   MaxNamespacesPerConnection, 100; with it lifted, "Invalid
//	                                             namespace" past MaxDynamicNamespaces; heap bounded);
//	                                             socketio/server_test.go: TestMaxDynamicNamespaces;
//	                                             socketio: TestMaxNamespacesPerConnection
//	events flood while handlers are busy       socketio/server_test.go: TestPendingEventsLimit
//	reconnect storm (2,000 polling, 300 WS     engineio_test.go: TestEIOReconnectStorm (503 + Retry-After past
//	handshakes)                                  MaxSessions, responsive, goroutines back); engineio: TestMaxSessions
//	invalid UTF-8, WebSocket text              ws_test.go: TestWSInvalidUTF8 (1007, as soon as the byte arrives);
//	                                             ws/conformance_test.go: TestConformanceUTF8
//	invalid UTF-8, Engine.IO / Socket.IO       engineio_test.go: TestEIOGarbagePackets (400 / 1007);
//	                                             socketio_test.go: TestSIOInvalidUTF8
//	Origin spoofing, ws                        ws_test.go: TestWSOrigin (suffix, userinfo, scheme, port, null...);
//	                                             cmd/duplex/main_test.go: TestServeOrigin
//	Origin spoofing, Engine.IO                 engineio_test.go: TestEIOOrigin (AllowRequest 403 code 4, no CORS
//	                                             headers, upgrade refused); engineio: TestCORS, TestAllowRequest
//	compression bomb                           ws_test.go: TestWSCompressionBomb (64 MiB in 80 KB: 1009, ~4 MiB
//	                                             allocated); test/interop/deflate_test.go: TestDeflateBomb
//	rogue Redis node                           adapter_test.go: TestRedisRogueNode (2 GiB and 4G lengths, 10^6
//	                                             nesting, 8 MiB garbage); adapter/redis: TestRogueMessages,
//	                                             TestMalformedMsgpack, TestShardedRogueMessages, TestStreamsRogueEntries
//	rogue NATS node                            adapter_test.go: TestNATSRogueNode; adapter/nats: TestRogueMessages,
//	                                             TestHelloFlood, TestAttachmentFloodAllocates (attachments counted
//	                                             before they are decoded)
package adversarial
