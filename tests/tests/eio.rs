//! The Engine.IO server cases (`switchboard_conformance::eio_cases`), each
//! against:
//!
//! - `node`: the official Node `engine.io` v6 server
//!   (`tests/interop/eio-server.mjs`), configured as contract section 1, to
//!   check the cases themselves; `node_eio3` is the same with `--eio3`, for
//!   the v3 cases;
//! - `conformance-server` on each runtime (`tokio`, `smol`, `async_std`,
//!   `threads`): v4 on `/engine.io/`; v3 on an in-process server with the
//!   same routes and `allow_eio3` (the contract keeps `/engine.io/` v4
//!   only; its v3 clients are Socket.IO's, on `/socket.io/`, section 3).
//!
//! Where Node does not do what the contract demands, the case is still run
//! against our server and is `#[ignore]`d for Node with the reason.

use std::net::SocketAddr;

use switchboard_conformance::RuntimeKind;
use switchboard_conformance::eio_cases;
use switchboard_conformance::peers::{self, PeerProcess};
use switchboard_conformance::runtime;
use switchboard_conformance::server_process::ServerProcess;
use switchboard_core::engineio::ServerConfig;
use switchboard_core::http::ServerLimits;

/// What a case runs against; kept alive for the case's duration.
enum Server {
    Node(PeerProcess),
    Ours(ServerProcess),
    InProcess(SocketAddr),
}

impl Server {
    fn addr(&self) -> SocketAddr {
        match self {
            Server::Node(p) => SocketAddr::from(([127, 0, 0, 1], p.port)),
            Server::Ours(p) => p.addr,
            Server::InProcess(addr) => *addr,
        }
    }
}

fn node_engine_io_ready() -> bool {
    peers::node_ready()
        && peers::interop_dir()
            .join("node_modules")
            .join("engine.io")
            .exists()
}

/// The Node reference server, or `None` (a loud skip; a failure in CI).
fn node(eio3: bool) -> Option<Server> {
    if !peers::require(node_engine_io_ready(), "node + the engine.io package") {
        return None;
    }
    let args: &[&str] = if eio3 { &["--eio3"] } else { &[] };
    Some(Server::Node(PeerProcess::spawn_node(
        "eio-server.mjs",
        args,
    )))
}

fn ours(runtime: RuntimeKind) -> Option<Server> {
    Some(Server::Ours(ServerProcess::spawn(
        env!("CARGO_BIN_EXE_conformance-server"),
        runtime,
    )))
}

/// Our server on `runtime` with Engine.IO v3 enabled at `/engine.io/`.
fn ours_eio3(runtime: RuntimeKind) -> Option<Server> {
    let config = ServerConfig {
        allow_eio3: true,
        ..runtime::conformance_engineio_config()
    };
    Some(Server::InProcess(runtime::spawn_engineio_echo(
        runtime, config,
    )))
}

/// A v4 case against `server`.
fn v4(server: Option<Server>, case: fn(SocketAddr)) {
    if let Some(server) = server {
        case(server.addr());
    }
}

/// A v3 case against `server`, on the path where it accepts `EIO=3`.
fn v3(server: Option<Server>, case: fn(SocketAddr, &str)) {
    if let Some(server) = server {
        case(server.addr(), "/engine.io/");
    }
}

/// The v4 cases that hold for Node and for our server.
macro_rules! v4_cases {
    ($server:expr) => {
        v4_cases!(@each $server;
            handshake_over_polling,
            handshake_over_websocket,
            bad_requests_get_400,
            bad_websocket_handshakes_are_refused,
            first_poll_gets_the_ping,
            polling_echoes_text,
            polling_echoes_binary,
            polling_echoes_several_packets_per_post,
            polling_post_of_many_packets_is_echoed,
            expect_continue_gets_100,
            polling_queued_messages_arrive_in_order,
            websocket_echoes_text_and_binary,
            heartbeat_keeps_a_polling_session,
            missing_pong_closes_a_polling_session,
            heartbeat_keeps_a_websocket_session,
            missing_pong_closes_a_websocket_session,
            close_packet_closes_a_polling_session,
            close_packet_closes_a_websocket_session,
            duplicate_poll_closes_the_session,
            invalid_packet_closes_a_polling_session,
            invalid_packet_closes_a_websocket_session,
            invalid_utf8_over_websocket_gets_close_1007,
            websocket_burst_larger_than_the_send_queue_is_echoed,
            post_of_max_payload_is_accepted,
            oversize_post_gets_413,
            upgrade_to_websocket,
            oversize_websocket_message_closes,
            cors_allows_any_origin,
            websocket_declines_permessage_deflate,
        );
    };
    (@each $server:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                super::v4($server, eio_cases::$case)
            }
        )*
    };
}

/// The v3 cases that hold for Node (`--eio3`) and for our server.
macro_rules! v3_cases {
    ($server:expr) => {
        v3_cases!(@each $server;
            v3_handshake_over_polling,
            v3_client_pings_keep_a_polling_session,
            v3_session_without_pings_times_out,
            v3_websocket_heartbeat,
            v3_upgrade_to_websocket,
        );
    };
    (@each $server:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                super::v3($server, eio_cases::$case)
            }
        )*
    };
}

/// Cases where Node deviates from the contract: run on our server.
macro_rules! contract_only_cases {
    ($server:expr, $eio3_server:expr) => {
        #[test]
        fn invalid_packet_post_gets_400() {
            super::v4($server, eio_cases::invalid_packet_post_gets_400)
        }
        #[test]
        fn oversize_post_closes_the_session() {
            super::v4($server, eio_cases::oversize_post_closes_the_session)
        }
        #[test]
        fn v3_server_rejects_bad_eio() {
            super::v3($eio3_server, eio_cases::v3_server_rejects_bad_eio)
        }
        #[test]
        fn head_responses_have_no_body() {
            super::v4($server, eio_cases::head_responses_have_no_body)
        }
    };
}

mod node {
    use super::*;
    v4_cases!(node(false));

    // Node deviations from the contract (checked by hand against
    // engine.io 6.6.12), so these cases are not run against it:

    /// Node answers a POST holding an invalid packet with 200 `ok` (it does
    /// close the session). The official suite asserts 400, but inside a
    /// try/catch that also swallows the failed assertion.
    #[test]
    #[ignore = "Node deviation: a POST with an invalid packet gets 200 ok"]
    fn invalid_packet_post_gets_400() {
        v4(node(false), eio_cases::invalid_packet_post_gets_400)
    }

    /// Node answers an oversize POST with 413 but keeps the session open
    /// (the next poll gets the ping); the contract closes it.
    #[test]
    #[ignore = "Node deviation: an oversize POST gets 413 but the session stays open"]
    fn oversize_post_closes_the_session() {
        v4(node(false), eio_cases::oversize_post_closes_the_session)
    }
}

mod node_eio3 {
    use super::*;
    v3_cases!(node(true));

    /// With `allowEIO3`, Node treats every `EIO` other than `4` (missing,
    /// `abc`, `5`) as v3 and accepts it; the contract demands 400.
    #[test]
    #[ignore = "Node deviation: with allowEIO3 a missing or unknown EIO is accepted as v3"]
    fn v3_server_rejects_bad_eio() {
        v3(node(true), eio_cases::v3_server_rejects_bad_eio)
    }
}

macro_rules! our_server {
    ($module:ident, $kind:expr) => {
        mod $module {
            use super::*;
            v4_cases!(ours($kind));
            v3_cases!(ours_eio3($kind));
            contract_only_cases!(ours($kind), ours_eio3($kind));

            #[test]
            fn unanswered_server_close_drops_the_websocket() {
                v4(
                    ours($kind),
                    eio_cases::unanswered_server_close_drops_the_websocket,
                );
            }

            #[test]
            fn connection_limit_holds_back_a_third_connection() {
                let limits = ServerLimits {
                    max_connections: 2,
                    ..ServerLimits::default()
                };
                let addr = runtime::spawn_routes_with_limits($kind, limits);
                eio_cases::connection_limit_holds_back_a_third_connection(addr);
            }

            #[test]
            fn a_websocket_whose_peer_stops_reading_is_released() {
                let limits = ServerLimits {
                    max_connections: 1,
                    ..ServerLimits::default()
                };
                let addr = runtime::spawn_routes_with_limits($kind, limits);
                eio_cases::a_websocket_whose_peer_stops_reading_is_released(addr);
            }

            #[test]
            fn a_stalled_request_gets_408() {
                let limits = ServerLimits {
                    request_timeout: std::time::Duration::from_millis(300),
                    ..ServerLimits::default()
                };
                let addr = runtime::spawn_routes_with_limits($kind, limits);
                eio_cases::a_stalled_request_gets_408(addr);
            }
        }
    };
}

our_server!(tokio, RuntimeKind::Tokio);
our_server!(smol, RuntimeKind::Smol);
our_server!(async_std, RuntimeKind::AsyncStd);
our_server!(threads, RuntimeKind::Threads);
