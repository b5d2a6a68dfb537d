use super::*;
use bytes::Bytes;
use proptest::prelude::*;

const SECOND: Duration = Duration::from_secs(1);

fn config() -> ClientConfig {
    ClientConfig::default()
}

/// A client with its clock.
struct Fixture {
    client: Client,
    now: Instant,
}

impl Fixture {
    fn new(config: ClientConfig) -> Self {
        Fixture {
            client: Client::with_seed(config, 7),
            now: Instant::now(),
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.client.handle_timeout(self.now);
    }

    fn transmits(&mut self) -> Vec<ClientTransmit> {
        std::iter::from_fn(|| self.client.poll_transmit()).collect()
    }

    fn events(&mut self) -> Vec<ClientEvent> {
        std::iter::from_fn(|| self.client.poll_event()).collect()
    }

    fn receive(&mut self, text: &str) {
        let now = self.now;
        self.client
            .handle_engine_message(MessageData::Text(text.to_owned().into()), now);
    }

    fn receive_binary(&mut self, data: &[u8]) {
        let now = self.now;
        self.client
            .handle_engine_message(MessageData::Binary(Bytes::copy_from_slice(data)), now);
    }

    fn open(&mut self, sid: &str) {
        let now = self.now;
        self.client.handle_engine_open(sid, now);
    }

    /// Connects `/` over a new session, with the server's answer.
    fn connected(config: ClientConfig) -> Self {
        let mut f = Fixture::new(config);
        let now = f.now;
        f.client.connect("/", None, now);
        assert_eq!(f.transmits(), [ClientTransmit::Open]);
        f.open("e1");
        assert_eq!(f.transmits(), [send("0")]);
        f.receive(r#"0{"sid":"s1"}"#);
        assert_eq!(
            f.events(),
            [ClientEvent::Connect {
                namespace: "/".into(),
                sid: "s1".into()
            }]
        );
        f
    }
}

fn send(text: &str) -> ClientTransmit {
    ClientTransmit::Send(MessageData::Text(text.to_owned().into()))
}

fn send_binary(data: &[u8]) -> ClientTransmit {
    ClientTransmit::Send(MessageData::Binary(Bytes::copy_from_slice(data)))
}

fn disconnect(namespace: &'static str, reason: DisconnectReason) -> ClientEvent {
    ClientEvent::Disconnect {
        namespace: namespace.into(),
        reason,
    }
}

#[test]
fn connect_with_auth() {
    let mut f = Fixture::new(config());
    let now = f.now;
    let auth = RawJson::new(r#"{"token":"abc"}"#).unwrap();
    f.client.connect("/", Some(auth), now);
    assert_eq!(f.transmits(), [ClientTransmit::Open]);
    assert!(!f.client.is_connected("/"));
    assert!(f.client.is_active("/"));
    f.open("e1");
    assert_eq!(f.transmits(), [send(r#"0{"token":"abc"}"#)]);
    f.receive(r#"0{"sid":"s1"}"#);
    assert_eq!(
        f.events(),
        [ClientEvent::Connect {
            namespace: "/".into(),
            sid: "s1".into()
        }]
    );
    assert_eq!(f.client.sid("/"), Some("s1"));
    assert_eq!(f.client.poll_timeout(), None);
}

#[test]
fn namespaces_share_one_session() {
    let mut f = Fixture::new(config());
    let now = f.now;
    f.client.connect("/", None, now);
    f.client.connect("/admin", None, now);
    // One session for both.
    assert_eq!(f.transmits(), [ClientTransmit::Open]);
    f.open("e1");
    assert_eq!(f.transmits(), [send("0"), send("0/admin,")]);
    f.receive(r#"0/admin,{"sid":"a1"}"#);
    f.receive(r#"0{"sid":"m1"}"#);
    assert_eq!(
        f.events(),
        [
            ClientEvent::Connect {
                namespace: "/admin".into(),
                sid: "a1".into()
            },
            ClientEvent::Connect {
                namespace: "/".into(),
                sid: "m1".into()
            }
        ]
    );
    // A third one, on the open session: its CONNECT goes at once.
    let auth = RawJson::new(r#"{"token":"secret"}"#).unwrap();
    f.client.connect("/custom", Some(auth), now);
    assert_eq!(f.transmits(), [send(r#"0/custom,{"token":"secret"}"#)]);
    // Connecting a connected namespace again does nothing.
    f.client.connect("/admin", None, now);
    assert_eq!(f.transmits(), []);
}

#[test]
fn connect_error_with_message_and_data() {
    let mut f = Fixture::connected(config());
    let now = f.now;
    f.client.connect("/admin", None, now);
    assert_eq!(f.transmits(), [send("0/admin,")]);
    f.receive(r#"4/admin,{"message":"not authorized","data":{"code":7}}"#);
    assert_eq!(
        f.events(),
        [ClientEvent::ConnectError {
            namespace: "/admin".into(),
            error: ConnectError::Refused {
                message: "not authorized".into(),
                data: Some(serde_json::json!({"code": 7}))
            }
        }]
    );
    assert!(!f.client.is_active("/admin"));
    // `/` is still connected: the session stays.
    assert_eq!(f.transmits(), []);
    assert!(f.client.is_connected("/"));
    // Trying again sends a new CONNECT.
    let auth = RawJson::new(r#"{"token":"secret"}"#).unwrap();
    f.client.connect("/admin", Some(auth), now);
    assert_eq!(f.transmits(), [send(r#"0/admin,{"token":"secret"}"#)]);
}

#[test]
fn refusal_of_the_only_namespace_closes_the_session() {
    let mut f = Fixture::new(config());
    let now = f.now;
    f.client.connect("/admin", None, now);
    assert_eq!(f.transmits(), [ClientTransmit::Open]);
    f.open("e1");
    assert_eq!(f.transmits(), [send("0/admin,")]);
    f.receive(r#"4/admin,{"message":"not authorized"}"#);
    assert!(matches!(
        &f.events()[..],
        [ClientEvent::ConnectError { error: ConnectError::Refused { message, data: None }, .. }]
            if message == "not authorized"
    ));
    assert_eq!(f.transmits(), [ClientTransmit::Close]);
    assert_eq!(f.client.poll_timeout(), None, "no reconnection");
    assert!(!f.client.is_engine_open());
}

#[test]
fn events_and_acks_both_ways() {
    let mut f = Fixture::connected(config());
    let now = f.now;
    f.client.emit("/", "hello", &("world", 1)).unwrap();
    assert_eq!(f.transmits(), [send(r#"2["hello","world",1]"#)]);

    let id = f
        .client
        .emit_with_ack("/", "sum", &(1, 2), Some(SECOND), now)
        .unwrap();
    assert_eq!(f.transmits(), [send(&format!("2{id}[\"sum\",1,2]"))]);
    assert_eq!(f.client.poll_timeout(), Some(now + SECOND));
    f.receive(&format!("3{id}[3]"));
    let events = f.events();
    let [
        ClientEvent::Ack {
            id: answered,
            packet,
            ..
        },
    ] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(*answered, id);
    assert_eq!(packet.args::<(u32,)>().unwrap(), (3,));
    assert_eq!(f.client.poll_timeout(), None);
    assert_eq!(f.client.pending_acks(), 0);

    // The server asks; the application answers.
    f.receive(r#"27["question","why?"]"#);
    let events = f.events();
    let [
        ClientEvent::Event {
            namespace,
            connection,
            packet,
        },
    ] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(namespace.as_str(), "/");
    assert_eq!(packet.event_name().as_deref(), Some("question"));
    assert_eq!(packet.id, Some(7));
    f.client.ack("/", *connection, 7, &("because",)).unwrap();
    assert_eq!(f.transmits(), [send(r#"37["because"]"#)]);
}

#[test]
fn binary_both_ways() {
    let mut f = Fixture::connected(config());
    let blob = crate::socketio::Binary::from(vec![0u8, 1, 255]);
    f.client.emit("/", "upload", &("a.bin", &blob)).unwrap();
    assert_eq!(
        f.transmits(),
        [
            send(r#"51-["upload","a.bin",{"_placeholder":true,"num":0}]"#),
            send_binary(&[0, 1, 255])
        ]
    );
    f.receive(r#"52-["file",{"_placeholder":true,"num":1},{"_placeholder":true,"num":0}]"#);
    assert_eq!(f.events(), []);
    f.receive_binary(b"first");
    f.receive_binary(b"second");
    let events = f.events();
    let [ClientEvent::Event { packet, .. }] = &events[..] else {
        panic!("{events:?}")
    };
    let (a, b): (crate::socketio::Binary, crate::socketio::Binary) = packet.args().unwrap();
    assert_eq!((&a[..], &b[..]), (&b"second"[..], &b"first"[..]));
}

#[test]
fn ack_timeout() {
    let mut f = Fixture::connected(config());
    let now = f.now;
    let id = f
        .client
        .emit_with_ack("/", "slow", &(), Some(SECOND), now)
        .unwrap();
    f.transmits();
    f.advance(SECOND - Duration::from_millis(1));
    assert_eq!(f.events(), []);
    f.advance(Duration::from_millis(1));
    assert_eq!(
        f.events(),
        [ClientEvent::AckFailed {
            namespace: "/".into(),
            id,
            error: AckError::Timeout
        }]
    );
    // A late answer is dropped.
    f.receive(&format!("3{id}[]"));
    assert_eq!(f.events(), []);
    assert_eq!(f.client.poll_timeout(), None);
}

#[test]
fn ack_without_timeout_and_unknown_acks() {
    let mut f = Fixture::connected(config());
    let now = f.now;
    let id = f.client.emit_with_ack("/", "x", &(), None, now).unwrap();
    f.transmits();
    assert_eq!(f.client.poll_timeout(), None);
    // An ack on another namespace, or an unknown id, is dropped.
    f.receive(&format!("3/other,{id}[]"));
    f.receive("3999[]");
    assert_eq!(f.events(), []);
    f.receive(&format!("3{id}[]"));
    assert!(matches!(&f.events()[..], [ClientEvent::Ack { .. }]));
}

#[test]
fn emits_are_buffered_until_connected() {
    let mut f = Fixture::new(ClientConfig {
        max_buffered_packets: 2,
        ..config()
    });
    let now = f.now;
    f.client.emit("/", "early", &1).unwrap();
    f.client.connect("/", None, now);
    f.client.emit("/", "early", &2).unwrap();
    assert!(matches!(
        f.client.emit("/", "early", &3),
        Err(EmitError::BufferFull)
    ));
    assert!(matches!(
        f.client.emit_with_ack("/", "early", &3, Some(SECOND), now),
        Err(EmitError::BufferFull)
    ));
    assert_eq!(f.client.pending_acks(), 0);
    assert_eq!(f.client.buffered("/"), 2);
    assert_eq!(f.transmits(), [ClientTransmit::Open]);
    f.open("e1");
    // Nothing but the CONNECT before the server's answer.
    assert_eq!(f.transmits(), [send("0")]);
    f.receive(r#"0{"sid":"s1"}"#);
    assert_eq!(
        f.transmits(),
        [send(r#"2["early",1]"#), send(r#"2["early",2]"#)]
    );
    assert_eq!(f.client.buffered("/"), 0);
}

#[test]
fn a_buffered_packet_whose_ack_timed_out_is_not_sent() {
    let mut f = Fixture::new(config());
    let now = f.now;
    f.client.connect("/", None, now);
    let id = f
        .client
        .emit_with_ack("/", "late", &(), Some(SECOND), now)
        .unwrap();
    f.client.emit("/", "kept", &()).unwrap();
    f.advance(SECOND);
    assert_eq!(
        f.events(),
        [ClientEvent::AckFailed {
            namespace: "/".into(),
            id,
            error: AckError::Timeout
        }]
    );
    assert_eq!(f.client.buffered("/"), 1);
    assert_eq!(f.transmits(), [ClientTransmit::Open]);
    f.open("e1");
    f.receive(r#"0{"sid":"s1"}"#);
    assert_eq!(f.transmits(), [send("0"), send(r#"2["kept"]"#)]);
}

#[test]
fn server_disconnect_does_not_reconnect() {
    let mut f = Fixture::connected(config());
    let now = f.now;
    let id = f.client.emit_with_ack("/", "x", &(), None, now).unwrap();
    f.transmits();
    f.receive("1");
    assert_eq!(
        f.events(),
        [
            disconnect("/", DisconnectReason::IoServerDisconnect),
            ClientEvent::AckFailed {
                namespace: "/".into(),
                id,
                error: AckError::Disconnected
            }
        ]
    );
    assert_eq!(f.transmits(), [ClientTransmit::Close]);
    assert_eq!(f.client.poll_timeout(), None);
    f.advance(Duration::from_secs(60));
    assert_eq!(f.transmits(), []);
    assert_eq!(f.events(), []);
    // The application may connect again: a new session.
    let now = f.now;
    f.client.connect("/", None, now);
    assert_eq!(f.transmits(), [ClientTransmit::Open]);
}

#[test]
fn server_disconnect_of_one_namespace_keeps_the_others() {
    let mut f = Fixture::connected(config());
    let now = f.now;
    f.client.connect("/custom", None, now);
    f.receive(r#"0/custom,{"sid":"c1"}"#);
    f.transmits();
    f.events();
    f.receive("1/custom,");
    assert_eq!(
        f.events(),
        [disconnect("/custom", DisconnectReason::IoServerDisconnect)]
    );
    assert_eq!(f.transmits(), []);
    assert!(f.client.is_connected("/"));
    // The next session does not join `/custom` again.
    let now = f.now;
    f.client
        .handle_engine_close(ClientCloseReason::TransportClose, now);
    f.advance(Duration::from_secs(2));
    f.open("e2");
    assert_eq!(f.transmits(), [ClientTransmit::Open, send("0")]);
}

#[test]
fn client_disconnect() {
    let mut f = Fixture::connected(config());
    let now = f.now;
    f.client.connect("/admin", None, now);
    f.receive(r#"0/admin,{"sid":"a1"}"#);
    f.transmits();
    f.events();
    f.client.disconnect("/admin");
    assert_eq!(f.transmits(), [send("1/admin,")]);
    assert_eq!(
        f.events(),
        [disconnect("/admin", DisconnectReason::IoClientDisconnect)]
    );
    f.client.disconnect("/");
    assert_eq!(f.transmits(), [send("1"), ClientTransmit::Close]);
    assert_eq!(
        f.events(),
        [disconnect("/", DisconnectReason::IoClientDisconnect)]
    );
    assert_eq!(f.client.poll_timeout(), None);
    // Events for namespaces left are dropped.
    f.receive(r#"2["late"]"#);
    assert_eq!(f.events(), []);
}

#[test]
fn close_leaves_every_namespace() {
    let mut f = Fixture::connected(config());
    let now = f.now;
    f.client.connect("/custom", None, now);
    f.receive(r#"0/custom,{"sid":"c1"}"#);
    f.transmits();
    f.events();
    f.client.close();
    assert_eq!(
        f.transmits(),
        [send("1"), send("1/custom,"), ClientTransmit::Close]
    );
    assert_eq!(
        f.events(),
        [
            disconnect("/", DisconnectReason::IoClientDisconnect),
            disconnect("/custom", DisconnectReason::IoClientDisconnect)
        ]
    );
    assert_eq!(f.client.poll_timeout(), None);
}

#[test]
fn leaving_while_the_connect_is_on_its_way() {
    let mut f = Fixture::connected(config());
    let now = f.now;
    f.client.connect("/custom", None, now);
    assert_eq!(f.transmits(), [send("0/custom,")]);
    f.client.disconnect("/custom");
    assert_eq!(
        f.transmits(),
        [],
        "no DISCONNECT for a namespace not joined"
    );
    assert_eq!(f.events(), []);
    // The server accepted meanwhile: leave again.
    f.receive(r#"0/custom,{"sid":"c1"}"#);
    assert_eq!(f.transmits(), [send("1/custom,")]);
    assert_eq!(f.events(), []);
}

#[test]
fn transport_close_reconnects_and_joins_again() {
    let mut f = Fixture::new(config());
    let now = f.now;
    let auth = RawJson::new(r#"{"token":"abc"}"#).unwrap();
    f.client.connect("/", Some(auth), now);
    f.client.connect("/custom", None, now);
    f.open("e1");
    f.receive(r#"0{"sid":"s1"}"#);
    f.receive(r#"0/custom,{"sid":"c1"}"#);
    f.transmits();
    f.events();
    let id = f
        .client
        .emit_with_ack("/", "pending", &(), Some(Duration::from_secs(60)), now)
        .unwrap();
    f.transmits();

    f.client
        .handle_engine_close(ClientCloseReason::TransportClose, now);
    assert_eq!(
        f.events(),
        [
            disconnect("/", DisconnectReason::TransportClose),
            ClientEvent::AckFailed {
                namespace: "/".into(),
                id,
                error: AckError::Disconnected
            },
            disconnect("/custom", DisconnectReason::TransportClose),
        ]
    );
    assert!(f.client.is_active("/") && !f.client.is_connected("/"));
    // Emits meanwhile are buffered.
    f.client.emit("/", "meanwhile", &()).unwrap();
    assert_eq!(f.transmits(), []);
    let at = f
        .client
        .poll_timeout()
        .expect("a reconnection is scheduled");
    let delay = at - now;
    assert!(
        delay >= Duration::from_millis(500) && delay <= Duration::from_millis(1500),
        "{delay:?}"
    );
    f.now = at - Duration::from_millis(1);
    f.client.handle_timeout(f.now);
    assert_eq!(f.transmits(), []);
    f.advance(Duration::from_millis(1));
    assert_eq!(f.events(), [ClientEvent::ReconnectAttempt { attempt: 1 }]);
    assert_eq!(f.transmits(), [ClientTransmit::Open]);
    f.open("e2");
    assert_eq!(f.events(), [ClientEvent::Reconnected { attempt: 1 }]);
    // Both namespaces again, with the same auth.
    assert_eq!(
        f.transmits(),
        [send(r#"0{"token":"abc"}"#), send("0/custom,")]
    );
    f.receive(r#"0{"sid":"s2"}"#);
    assert_eq!(
        f.events(),
        [ClientEvent::Connect {
            namespace: "/".into(),
            sid: "s2".into()
        }]
    );
    assert_eq!(f.transmits(), [send(r#"2["meanwhile"]"#)]);
}

#[test]
fn reasons_from_the_engine() {
    for (engine, reason) in [
        (
            ClientCloseReason::TransportClose,
            DisconnectReason::TransportClose,
        ),
        (
            ClientCloseReason::TransportError,
            DisconnectReason::TransportError,
        ),
        (
            ClientCloseReason::PingTimeout,
            DisconnectReason::PingTimeout,
        ),
    ] {
        let mut f = Fixture::connected(config());
        let now = f.now;
        f.client.handle_engine_close(engine, now);
        assert_eq!(f.events(), [disconnect("/", reason)]);
        assert!(f.client.poll_timeout().is_some());
        assert!(reason.reconnects());
    }
    assert_eq!(
        DisconnectReason::IoServerDisconnect.as_str(),
        "io server disconnect"
    );
    assert_eq!(
        DisconnectReason::IoClientDisconnect.to_string(),
        "io client disconnect"
    );
}

#[test]
fn parse_error_closes_and_reconnects() {
    let mut f = Fixture::connected(config());
    f.receive("9nonsense");
    assert_eq!(f.transmits(), [ClientTransmit::Close]);
    assert_eq!(f.events(), [disconnect("/", DisconnectReason::ParseError)]);
    assert!(f.client.poll_timeout().is_some());
    // Messages of the old session are ignored.
    f.receive(r#"2["x"]"#);
    assert_eq!(f.events(), []);
    // A binary message out of turn is a parse error too.
    let mut f = Fixture::connected(config());
    f.receive_binary(b"stray");
    assert_eq!(f.events(), [disconnect("/", DisconnectReason::ParseError)]);
}

#[test]
fn backoff_doubles_up_to_the_cap() {
    let mut f = Fixture::new(ClientConfig {
        randomization_factor: 0.0,
        ..config()
    });
    let now = f.now;
    f.client.connect("/", None, now);
    assert_eq!(f.transmits(), [ClientTransmit::Open]);
    let mut delays = Vec::new();
    for _ in 0..6 {
        let now = f.now;
        f.client.handle_engine_error("connection refused", now);
        let at = f.client.poll_timeout().expect("scheduled");
        delays.push((at - now).as_millis());
        f.now = at;
        f.client.handle_timeout(at);
        assert_eq!(f.transmits(), [ClientTransmit::Open]);
    }
    assert_eq!(delays, [1000, 2000, 4000, 5000, 5000, 5000]);
    let events = f.events();
    assert!(matches!(
        &events[0],
        ClientEvent::ConnectError { error: ConnectError::Transport(message), .. }
            if message == "connection refused"
    ));
    let attempts: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::ReconnectAttempt { attempt } => Some(*attempt),
            _ => None,
        })
        .collect();
    assert_eq!(attempts, [1, 2, 3, 4, 5, 6]);
    // Success resets the count.
    f.open("e1");
    assert_eq!(f.events(), [ClientEvent::Reconnected { attempt: 6 }]);
    f.receive(r#"0{"sid":"s"}"#);
    let now = f.now;
    f.client
        .handle_engine_close(ClientCloseReason::TransportClose, now);
    assert_eq!(f.client.poll_timeout(), Some(now + SECOND));
}

#[test]
fn jitter_stays_within_its_factor() {
    for seed in 0..200 {
        let mut client = Client::with_seed(config(), seed);
        for attempt in 0..8u32 {
            client.attempts = attempt;
            let delay = client.backoff_delay().as_secs_f64();
            let base = 2f64.powi(attempt as i32);
            assert!(
                delay >= (base * 0.5).min(5.0) - 1e-9,
                "{seed} {attempt} {delay}"
            );
            assert!(
                delay <= (base * 1.5).min(5.0) + 1e-9,
                "{seed} {attempt} {delay}"
            );
        }
    }
    // Not always the same.
    let delays: BTreeSet<u128> = (0..50)
        .map(|seed| {
            Client::with_seed(config(), seed)
                .backoff_delay()
                .as_millis()
        })
        .collect();
    assert!(delays.len() > 10);
}

#[test]
fn gives_up_after_the_allowed_attempts() {
    let mut f = Fixture::new(ClientConfig {
        reconnection_attempts: Some(2),
        randomization_factor: 0.0,
        ..config()
    });
    let now = f.now;
    f.client.connect("/", None, now);
    f.transmits();
    for _ in 0..2 {
        let now = f.now;
        f.client.handle_engine_error("refused", now);
        let at = f.client.poll_timeout().unwrap();
        f.now = at;
        f.client.handle_timeout(at);
        assert_eq!(f.transmits(), [ClientTransmit::Open]);
    }
    f.events();
    let now = f.now;
    f.client.handle_engine_error("refused", now);
    assert_eq!(
        f.events(),
        [
            ClientEvent::ConnectError {
                namespace: "/".into(),
                error: ConnectError::Transport("refused".into())
            },
            ClientEvent::ReconnectFailed
        ]
    );
    assert_eq!(f.client.poll_timeout(), None);
    assert!(!f.client.is_active("/"));
    // Connecting again starts afresh.
    f.client.connect("/", None, now);
    assert_eq!(f.transmits(), [ClientTransmit::Open]);
}

#[test]
fn without_reconnection() {
    let mut f = Fixture::connected(ClientConfig {
        reconnection: false,
        ..config()
    });
    let now = f.now;
    f.client
        .handle_engine_close(ClientCloseReason::TransportClose, now);
    assert_eq!(
        f.events(),
        [disconnect("/", DisconnectReason::TransportClose)]
    );
    assert_eq!(f.client.poll_timeout(), None);
    assert_eq!(f.transmits(), []);
    assert!(!f.client.is_active("/"));
}

#[test]
fn connect_during_a_scheduled_reconnection_waits_for_it() {
    let mut f = Fixture::connected(config());
    let now = f.now;
    f.client
        .handle_engine_close(ClientCloseReason::TransportError, now);
    f.events();
    f.client.connect("/admin", None, now);
    assert_eq!(f.transmits(), []);
    let at = f.client.poll_timeout().unwrap();
    f.now = at;
    f.client.handle_timeout(at);
    assert_eq!(f.transmits(), [ClientTransmit::Open]);
    f.open("e2");
    assert_eq!(f.transmits(), [send("0"), send("0/admin,")]);
}

#[test]
fn close_during_a_scheduled_reconnection_cancels_it() {
    let mut f = Fixture::connected(config());
    let now = f.now;
    f.client
        .handle_engine_close(ClientCloseReason::TransportClose, now);
    f.events();
    f.client.close();
    assert_eq!(f.transmits(), []);
    assert_eq!(f.client.poll_timeout(), None);
    f.advance(Duration::from_secs(10));
    assert_eq!(f.transmits(), []);
}

#[test]
fn a_session_opened_for_nobody_is_closed() {
    let mut f = Fixture::new(config());
    let now = f.now;
    f.client.connect("/", None, now);
    f.transmits();
    f.client.disconnect("/");
    // Opening: closed at once.
    assert_eq!(f.transmits(), [ClientTransmit::Close]);
    // A late report about it is ignored.
    f.open("e1");
    assert_eq!(f.transmits(), []);
    assert!(!f.client.is_engine_open());
}

#[test]
fn acks_need_a_connection() {
    let mut f = Fixture::new(config());
    let now = f.now;
    f.client.connect("/", None, now);
    f.open("e1");
    f.transmits();
    assert!(matches!(
        f.client.ack("/", 0, 1, &()),
        Err(EmitError::NotConnected)
    ));
    // Nor on a namespace never connected.
    assert!(matches!(
        f.client.ack("/other", 0, 1, &()),
        Err(EmitError::NotConnected)
    ));
}

#[test]
fn a_connect_without_sid_is_refused() {
    let mut f = Fixture::new(config());
    let now = f.now;
    f.client.connect("/", None, now);
    f.open("e1");
    f.transmits();
    f.receive("0");
    assert!(matches!(
        &f.events()[..],
        [ClientEvent::ConnectError {
            error: ConnectError::Refused { .. },
            ..
        }]
    ));
}

#[test]
fn namespace_names_are_normalized() {
    let mut f = Fixture::connected(config());
    let now = f.now;
    f.client.connect("admin", None, now);
    assert_eq!(f.transmits(), [send("0/admin,")]);
    f.receive(r#"0/admin,{"sid":"a"}"#);
    assert!(f.client.is_connected("/admin") && f.client.is_connected("admin"));
    assert!(f.client.is_connected(""));
    f.client.emit("admin", "x", &()).unwrap();
    assert_eq!(f.transmits(), [send(r#"2/admin,["x"]"#)]);
}

#[test]
fn reserved_event_names_are_refused() {
    let mut f = Fixture::connected(config());
    assert!(matches!(
        f.client.emit("/", "connect", &()),
        Err(EmitError::Encode(EncodeError::ReservedEventName(_)))
    ));
}

#[test]
fn protocol_v4() {
    let mut f = Fixture::new(ClientConfig {
        version: ProtocolVersion::V4,
        ..config()
    });
    let now = f.now;
    f.client.connect("/", None, now);
    let auth = RawJson::new(r#"{"token":"secret"}"#).unwrap();
    f.client.connect("/admin", Some(auth), now);
    assert_eq!(f.transmits(), [ClientTransmit::Open]);
    f.open("eio");
    // `/` is joined implicitly; others with their auth as the query.
    assert_eq!(f.transmits(), [send("0/admin?token=secret,")]);
    f.receive("0");
    f.receive("0/admin,");
    assert_eq!(
        f.events(),
        [
            ClientEvent::Connect {
                namespace: "/".into(),
                sid: "eio".into()
            },
            ClientEvent::Connect {
                namespace: "/admin".into(),
                sid: "/admin#eio".into()
            }
        ]
    );
    f.client.connect("/custom", None, now);
    f.receive(r#"4/custom,"Invalid namespace""#);
    assert!(matches!(
        &f.events()[..],
        [ClientEvent::ConnectError { error: ConnectError::Refused { message, .. }, .. }]
            if message == "Invalid namespace"
    ));
}

#[test]
fn protocol_v4_implicit_main_namespace_not_wanted() {
    let mut f = Fixture::new(ClientConfig {
        version: ProtocolVersion::V4,
        ..config()
    });
    let now = f.now;
    f.client.connect("/admin", None, now);
    f.transmits();
    f.open("eio");
    assert_eq!(f.transmits(), [send("0/admin,")]);
    // The server puts every v2 client in `/`: nothing to do about it.
    f.receive("0");
    assert_eq!(f.events(), []);
    assert_eq!(f.transmits(), []);
}

#[test]
fn events_before_the_connect_wait_for_it() {
    // python-socketio's server runs its connect handler before it sends the
    // CONNECT: what that handler emits arrives first. Node's client keeps
    // it (`receiveBuffer`) and hands it out once connected, before `connect`.
    let mut f = Fixture::new(config());
    let now = f.now;
    f.client.connect("/", None, now);
    f.open("e1");
    assert_eq!(f.transmits(), [ClientTransmit::Open, send("0")]);
    f.receive(r#"2["welcome",1]"#);
    f.receive(r#"23["question"]"#);
    assert_eq!(f.events(), []);
    f.receive(r#"0{"sid":"s1"}"#);
    let events = f.events();
    let [
        ClientEvent::Event { packet: first, .. },
        ClientEvent::Event { packet: second, .. },
        ClientEvent::Connect { sid, .. },
    ] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(first.event_name().as_deref(), Some("welcome"));
    assert_eq!(
        (second.event_name().as_deref(), second.id),
        (Some("question"), Some(3))
    );
    assert_eq!(sid, "s1");
    assert!(f.client.is_connected("/"));
}

#[test]
fn events_before_a_refusal_or_a_lost_session_are_dropped() {
    let mut f = Fixture::connected(ClientConfig {
        max_buffered_packets: 2,
        ..config()
    });
    let now = f.now;
    f.client.connect("/admin", None, now);
    assert_eq!(f.transmits(), [send("0/admin,")]);
    // At most `max_buffered_packets` of them are kept.
    for n in 0..3 {
        f.receive(&format!(r#"2/admin,["early",{n}]"#));
    }
    f.receive(r#"4/admin,{"message":"no"}"#);
    assert!(matches!(
        &f.events()[..],
        [ClientEvent::ConnectError { .. }]
    ));
    f.client.connect("/admin", None, now);
    f.receive(r#"0/admin,{"sid":"a1"}"#);
    assert!(matches!(&f.events()[..], [ClientEvent::Connect { .. }]));
    // Bounded, and not carried over to the next session.
    f.client.disconnect("/admin");
    f.client.connect("/admin", None, now);
    f.transmits();
    f.events();
    for n in 0..3 {
        f.receive(&format!(r#"2/admin,["early",{n}]"#));
    }
    let events = f.events();
    assert_eq!(events, []);
    f.receive(r#"0/admin,{"sid":"a2"}"#);
    let names: Vec<_> = f
        .events()
        .iter()
        .map(|event| match event {
            ClientEvent::Event { packet, .. } => packet.arg::<u32>(0).unwrap().to_string(),
            ClientEvent::Connect { .. } => "connect".to_owned(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(names, ["0", "1", "connect"]);
    f.client.disconnect("/admin");
    f.client.connect("/admin", None, now);
    f.receive(r#"2/admin,["early",9]"#);
    f.client
        .handle_engine_close(ClientCloseReason::TransportClose, now);
    f.advance(Duration::from_secs(2));
    f.open("e2");
    f.receive(r#"0/admin,{"sid":"a3"}"#);
    assert!(
        !f.events()
            .iter()
            .any(|event| matches!(event, ClientEvent::Event { .. }))
    );
}

#[test]
fn an_ack_for_an_event_of_an_earlier_connection_is_refused() {
    // The server's ack ids start again with each connection (ours, and
    // python-socketio's): an answer to the event of a connection that is
    // gone would answer another question on the new one.
    let mut f = Fixture::connected(config());
    let now = f.now;
    f.receive(r#"20["question"]"#);
    let events = f.events();
    let [
        ClientEvent::Event {
            packet, connection, ..
        },
    ] = &events[..]
    else {
        panic!("{events:?}")
    };
    let old = *connection;
    assert_eq!(packet.id, Some(0));
    f.client
        .handle_engine_close(ClientCloseReason::TransportClose, now);
    f.advance(Duration::from_secs(2));
    f.open("e2");
    f.receive(r#"0{"sid":"s2"}"#);
    f.transmits();
    f.events();
    assert!(f.client.is_connected("/"));
    assert!(matches!(
        f.client.ack("/", old, 0, &("late",)),
        Err(EmitError::NotConnected)
    ));
    assert_eq!(f.transmits(), []);
    // The new connection's own question is answered.
    f.receive(r#"20["question"]"#);
    let events = f.events();
    let [ClientEvent::Event { connection, .. }] = &events[..] else {
        panic!("{events:?}")
    };
    assert_ne!(*connection, old);
    f.client.ack("/", *connection, 0, &("now",)).unwrap();
    assert_eq!(f.transmits(), [send(r#"30["now"]"#)]);
    // So is one that came before the CONNECT, on the connection it waited for.
    f.client.connect("/admin", None, now);
    f.receive(r#"2/admin,1["early"]"#);
    f.receive(r#"0/admin,{"sid":"a1"}"#);
    let events = f.events();
    let [
        ClientEvent::Event { connection, .. },
        ClientEvent::Connect { .. },
    ] = &events[..]
    else {
        panic!("{events:?}")
    };
    f.transmits();
    f.client.ack("/admin", *connection, 1, &()).unwrap();
    assert_eq!(f.transmits(), [send("3/admin,1[]")]);
}

// ---------------------------------------------------------------------------
// Random input.

#[derive(Debug, Clone)]
enum Input {
    Connect(u8, bool),
    Disconnect(u8),
    Close,
    Emit(u8, bool),
    EmitWithAck(u8, u16),
    Ack(u8, u64, u64),
    EngineOpen,
    EngineError,
    EngineClose(u8),
    Message(String),
    Binary(Vec<u8>),
    Advance(u16),
}

const NAMESPACES: [&str; 3] = ["/", "/admin", "/custom"];

fn namespace(n: u8) -> &'static str {
    NAMESPACES[usize::from(n) % NAMESPACES.len()]
}

fn server_packet() -> impl Strategy<Value = String> {
    let ns = prop_oneof![Just(""), Just("/admin,"), Just("/custom,"), Just("/x,")];
    let body = prop_oneof![
        Just(r#"{"sid":"abc"}"#.to_owned()),
        Just(r#"{"message":"no"}"#.to_owned()),
        Just(r#"["ev",1,{"a":[2]}]"#.to_owned()),
        Just(r#"["ev",{"_placeholder":true,"num":0}]"#.to_owned()),
        Just("[]".to_owned()),
        Just(String::new()),
        "[ -~]{0,12}",
    ];
    (0u8..8, ns, proptest::option::of(0u64..6), body).prop_map(|(kind, ns, id, body)| {
        let attachments = if kind == 5 || kind == 6 { "1-" } else { "" };
        let id = id.map(|id| id.to_string()).unwrap_or_default();
        format!("{kind}{attachments}{ns}{id}{body}")
    })
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        (any::<u8>(), any::<bool>()).prop_map(|(n, auth)| Input::Connect(n, auth)),
        any::<u8>().prop_map(Input::Disconnect),
        Just(Input::Close),
        (any::<u8>(), any::<bool>()).prop_map(|(n, binary)| Input::Emit(n, binary)),
        (any::<u8>(), 0u16..3000).prop_map(|(n, ms)| Input::EmitWithAck(n, ms)),
        (any::<u8>(), 0u64..4, 0u64..6)
            .prop_map(|(n, connection, id)| Input::Ack(n, connection, id)),
        Just(Input::EngineOpen),
        Just(Input::EngineError),
        any::<u8>().prop_map(Input::EngineClose),
        server_packet().prop_map(Input::Message),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(Input::Binary),
        (0u16..7000).prop_map(Input::Advance),
    ]
}

/// What the adapter would know about the session.
#[derive(Debug, PartialEq)]
enum Session {
    None,
    Opening,
    Open,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever happens, in any order: no panic, the adapter is never asked
    /// to send without a session or to open a second one, deadlines are in
    /// the future after `handle_timeout`, buffers stay bounded, and every
    /// disconnect follows a connect of the same namespace.
    #[test]
    fn random_input(inputs in proptest::collection::vec(input(), 0..80), max in 1usize..4) {
        let mut client = Client::with_seed(
            ClientConfig { max_buffered_packets: max, reconnection_attempts: Some(3), ..config() },
            1,
        );
        let mut now = Instant::now();
        let mut session = Session::None;
        let mut connected: HashMap<String, bool> = HashMap::new();
        for input in inputs {
            match input {
                Input::Connect(n, auth) => {
                    let auth = auth.then(|| RawJson::new(r#"{"k":1}"#).unwrap());
                    client.connect(namespace(n), auth, now);
                }
                Input::Disconnect(n) => client.disconnect(namespace(n)),
                Input::Close => client.close(),
                Input::Emit(n, binary) => {
                    let result = if binary {
                        client.emit(namespace(n), "e", &crate::socketio::Binary::from(vec![1, 2]))
                    } else {
                        client.emit(namespace(n), "e", &(1, "two"))
                    };
                    prop_assert!(matches!(result, Ok(()) | Err(EmitError::BufferFull)));
                }
                Input::EmitWithAck(n, ms) => {
                    let _ = client.emit_with_ack(
                        namespace(n), "e", &(), Some(Duration::from_millis(ms.into())), now);
                }
                Input::Ack(n, connection, id) => {
                    let _ = client.ack(namespace(n), connection, id, &("a",));
                }
                Input::EngineOpen => {
                    if session == Session::Opening {
                        client.handle_engine_open("eio", now);
                        session = Session::Open;
                    }
                }
                Input::EngineError => {
                    if session == Session::Opening {
                        client.handle_engine_error("refused", now);
                        session = Session::None;
                    }
                }
                Input::EngineClose(reason) => {
                    if session == Session::Open {
                        let reason = match reason % 3 {
                            0 => ClientCloseReason::TransportClose,
                            1 => ClientCloseReason::TransportError,
                            _ => ClientCloseReason::PingTimeout,
                        };
                        client.handle_engine_close(reason, now);
                        session = Session::None;
                    }
                }
                Input::Message(text) => {
                    client.handle_engine_message(MessageData::Text(text.into()), now)
                }
                Input::Binary(data) => {
                    client.handle_engine_message(MessageData::Binary(data.into()), now)
                }
                Input::Advance(ms) => {
                    now += Duration::from_millis(ms.into());
                    client.handle_timeout(now);
                    if let Some(next) = client.poll_timeout() {
                        prop_assert!(next > now);
                    }
                }
            }
            while let Some(transmit) = client.poll_transmit() {
                match transmit {
                    ClientTransmit::Open => {
                        prop_assert_eq!(&session, &Session::None, "a second session");
                        session = Session::Opening;
                    }
                    ClientTransmit::Send(_) => {
                        prop_assert_eq!(&session, &Session::Open, "a send without a session");
                    }
                    ClientTransmit::Close => {
                        prop_assert_ne!(&session, &Session::None, "closing no session");
                        session = Session::None;
                    }
                }
            }
            while let Some(event) = client.poll_event() {
                match event {
                    ClientEvent::Connect { namespace, .. } => {
                        let was = connected.insert(namespace.to_string(), true);
                        prop_assert_ne!(was, Some(true), "connected twice");
                    }
                    ClientEvent::Disconnect { namespace, .. } => {
                        let was = connected.insert(namespace.to_string(), false);
                        prop_assert_eq!(was, Some(true), "a disconnect without a connect");
                    }
                    _ => {}
                }
            }
            for ns in NAMESPACES {
                prop_assert!(client.buffered(ns) <= max);
                prop_assert_eq!(client.is_connected(ns), connected.get(ns) == Some(&true));
            }
            if client.is_engine_open() {
                prop_assert_eq!(&session, &Session::Open);
            }
        }
    }

    /// Random bytes from the server never panic the client.
    #[test]
    fn random_messages(messages in proptest::collection::vec(
        prop_oneof![
            "\\PC{0,40}".prop_map(|s| MessageData::Text(s.into())),
            server_packet().prop_map(|s| MessageData::Text(s.into())),
            proptest::collection::vec(any::<u8>(), 0..16).prop_map(|b| MessageData::Binary(b.into())),
        ],
        0..40,
    )) {
        let mut f = Fixture::connected(config());
        let now = f.now;
        f.client.connect("/admin", None, now);
        for message in messages {
            let now = f.now;
            f.client.handle_engine_message(message, now);
            f.transmits();
            f.events();
        }
    }
}
