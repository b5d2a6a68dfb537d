//! The WebSocket conformance cases on every runtime.

use switchboard_conformance::{RuntimeKind, ws_cases};

macro_rules! cases {
    ($kind:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                ws_cases::$case($kind)
            }
        )*
    };
}

macro_rules! runtime_suite {
    ($module:ident, $kind:expr) => {
        mod $module {
            use super::*;
            cases!($kind;
                server_echoes_all_length_forms,
                server_answers_bad_handshakes,
                server_origin_policy,
                server_negotiates_subprotocol,
                server_routes_http_bodies,
                server_negotiates_deflate,
                server_fails_unmasked_frame,
                server_fails_reserved_bits_and_opcodes,
                server_fails_bad_control_frames,
                server_reassembles_fragments_around_pings,
                server_fails_bad_fragment_sequences,
                server_fails_invalid_utf8_fast,
                server_close_handshake,
                server_enforces_size_limits,
                server_ignores_unsolicited_pong_and_reads_pipelined_frames,
                server_keepalive,
                server_keepalive_fires_while_a_send_waits,
                server_gives_up_unwritable_output_after_a_failure,
                server_handshake_deadline,
                server_connection_limit,
                server_routes_by_path,
                server_times_a_request_from_its_first_byte,
                client_request_and_masking,
                client_rejects_bad_responses,
                client_protocol_rules,
                client_close_handshake,
                client_backpressure,
            );
        }
    };
}

runtime_suite!(tokio, RuntimeKind::Tokio);
runtime_suite!(smol, RuntimeKind::Smol);
runtime_suite!(async_std, RuntimeKind::AsyncStd);
runtime_suite!(threads, RuntimeKind::Threads);
