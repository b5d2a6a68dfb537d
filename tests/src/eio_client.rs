//! A blocking handle on a Switchboard Engine.IO client running on any
//! runtime, so a client case is written once and run on each.

use std::sync::mpsc;
use std::time::Duration;

use switchboard_core::engineio::MessageData;
use switchboard_core::engineio::client::{ClientConfig, ClientEvent};

use crate::RuntimeKind;

enum Handle {
    Async(switchboard_async::engineio::client::ClientSender),
    Threads(switchboard_threads::engineio::client::ClientSender),
}

/// A connected client: what the session reports arrives on a channel,
/// sends go straight to the client.
pub struct EioTestClient {
    handle: Handle,
    events: mpsc::Receiver<ClientEvent>,
    /// The session id the server gave.
    pub sid: String,
}

impl EioTestClient {
    /// Connects with `config` on `runtime`; `Err` with the connect error's
    /// text if the handshake fails.
    pub fn connect(runtime: RuntimeKind, config: ClientConfig) -> Result<Self, String> {
        let (events_tx, events) = mpsc::channel();
        if runtime == RuntimeKind::Threads {
            let mut client =
                switchboard_threads::engineio::client::EngineIoClient::connect_with_config(config)
                    .map_err(|e| e.to_string())?;
            let handle = Handle::Threads(client.sender());
            let sid = client.sid().to_owned();
            std::thread::spawn(move || {
                while let Some(event) = client.recv() {
                    if events_tx.send(event).is_err() {
                        break;
                    }
                }
            });
            return Ok(EioTestClient {
                handle,
                events,
                sid,
            });
        }
        let (ready_tx, ready) = mpsc::channel();
        std::thread::spawn(move || {
            let session = async move {
                use switchboard_async::engineio::client::EngineIoClient;
                let connected = match runtime {
                    RuntimeKind::Tokio => {
                        EngineIoClient::connect(switchboard_tokio::Tokio, config).await
                    }
                    RuntimeKind::Smol => {
                        EngineIoClient::connect(switchboard_smol::Smol::new(), config).await
                    }
                    _ => {
                        let runtime = switchboard_smol::Smol::with_spawner(|task| {
                            async_std::task::spawn(task);
                        });
                        EngineIoClient::connect(runtime, config).await
                    }
                };
                let mut client = match connected {
                    Ok(client) => client,
                    Err(error) => {
                        let _ = ready_tx.send(Err(error.to_string()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok((client.sender(), client.sid().to_owned())));
                while let Some(event) = client.recv().await {
                    if events_tx.send(event).is_err() {
                        break;
                    }
                }
            };
            match runtime {
                RuntimeKind::Tokio => tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("tokio runtime")
                    .block_on(session),
                RuntimeKind::Smol => smol::block_on(session),
                _ => async_std::task::block_on(session),
            }
        });
        let (sender, sid) = ready
            .recv_timeout(Duration::from_secs(20))
            .map_err(|_| "connect timed out".to_string())??;
        Ok(EioTestClient {
            handle: Handle::Async(sender),
            events,
            sid,
        })
    }

    /// Sends a message.
    pub fn send(&self, data: impl Into<MessageData>) {
        let result = match &self.handle {
            Handle::Async(sender) => sender.send(data),
            Handle::Threads(sender) => sender.send(data),
        };
        result.expect("send");
    }

    /// Closes the session from this side.
    pub fn close(&self) {
        match &self.handle {
            Handle::Async(sender) => sender.close(),
            Handle::Threads(sender) => sender.close(),
        }
    }

    /// The next event within `timeout`.
    pub fn event(&self, timeout: Duration) -> Option<ClientEvent> {
        self.events.recv_timeout(timeout).ok()
    }

    /// The next message within `timeout`, noting whether an `Upgraded`
    /// event came before it; panics on a close or a timeout.
    pub fn message(&self, timeout: Duration, upgraded: &mut bool) -> MessageData {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.event(left) {
                Some(ClientEvent::Message(data)) => return data,
                Some(ClientEvent::Upgraded) => *upgraded = true,
                Some(ClientEvent::UpgradeFailed(error)) => panic!("upgrade failed: {error}"),
                Some(ClientEvent::Closed { reason, error }) => {
                    panic!("session closed: {reason} {error:?}")
                }
                Some(ClientEvent::Open { .. }) => panic!("a second open event"),
                None => panic!("no message within {timeout:?}"),
            }
        }
    }
}
