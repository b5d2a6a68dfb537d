//! WebSocket (RFC 6455) with permessage-deflate (RFC 7692), sans IO.
//!
//! - [`handshake`]: the opening handshake for both roles.
//! - [`Connection`]: frames in, messages out (and back), with fragment
//!   reassembly, fail-fast UTF-8 validation, automatic pongs, the close
//!   handshake, keep-alive and size limits.
//! - [`FrameHeader`], [`encode_frame`], [`apply_mask`]: the frame codec.
//! - [`deflate`]: permessage-deflate negotiation and codec.
//!
//! ```
//! use switchboard_core::ws::{Config, Connection, Event, Message, Role};
//! let mut server = Connection::new(Role::Server, Config::default().into(), None);
//! // A masked text frame "Hello" from RFC 6455 section 5.7.
//! server.receive(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
//! assert_eq!(server.poll_event(), Some(Event::Message(Message::text("Hello"))));
//! server.send(Message::text("Hi")).unwrap();
//! assert_eq!(server.transmit(), b"\x81\x02Hi");
//! ```

mod close;
mod config;
mod connection;
pub mod deflate;
mod error;
mod frame;
pub mod handshake;
mod mask;
mod message;
mod utf8;

pub use close::{CloseCode, CloseFrame};
pub use config::{Config, KeepAlive, OriginPolicy, Role};
pub use connection::{Connection, Event, State};
pub use deflate::{DeflateConfig, DeflateParams};
pub use error::{ProtocolError, SendError};
pub use frame::{FrameHeader, MAX_HEADER_LEN, OpCode, encode_frame};
pub use mask::apply_mask;
pub use message::{Message, Text};
