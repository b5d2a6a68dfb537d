//! A blocking handle on a Switchboard WebSocket client running on any
//! runtime, so one case drives every runtime's client the same way.

use std::sync::mpsc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use switchboard_core::ws::{Config, Message};

use crate::RuntimeKind;

/// What a receive saw.
#[derive(Debug, PartialEq)]
pub enum Received {
    /// A message (or observed control frame).
    Message(Message),
    /// The connection failed with this error (its `Display`).
    Error(String),
    /// The stream ended: the connection is closed.
    End,
    /// Nothing arrived in time.
    Timeout,
}

enum Command {
    Send(Message, mpsc::Sender<Result<(), String>>),
}

/// A client under test.
pub struct TestClient {
    commands: async_channel::Sender<Command>,
    events: mpsc::Receiver<Result<Message, String>>,
    ended: bool,
}

impl TestClient {
    /// Connects a client on `runtime` to `url`.
    pub fn connect(runtime: RuntimeKind, url: &str, config: Config) -> Result<TestClient, String> {
        let (cmd_tx, cmd_rx) = async_channel::bounded::<Command>(1);
        let (ev_tx, ev_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let url = url.to_string();
        std::thread::spawn(move || match runtime {
            RuntimeKind::Tokio => {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                rt.block_on(async move {
                    match switchboard_tokio::ws::connect_with_config(&url, config).await {
                        Ok(ws) => {
                            let _ = ready_tx.send(Ok(()));
                            drive(ws, cmd_rx, ev_tx).await
                        }
                        Err(e) => drop(ready_tx.send(Err(e.to_string()))),
                    }
                })
            }
            RuntimeKind::Smol | RuntimeKind::AsyncStd => {
                let task = async move {
                    match switchboard_smol::ws::connect_with_config(&url, config).await {
                        Ok(ws) => {
                            let _ = ready_tx.send(Ok(()));
                            drive(ws, cmd_rx, ev_tx).await
                        }
                        Err(e) => drop(ready_tx.send(Err(e.to_string()))),
                    }
                };
                if runtime == RuntimeKind::Smol {
                    smol::block_on(task)
                } else {
                    async_std::task::block_on(task)
                }
            }
            RuntimeKind::Threads => {
                match switchboard_threads::ws::connect_with_config(&url, config) {
                    Ok(mut ws) => {
                        let _ = ready_tx.send(Ok(()));
                        let sender = ws.sender();
                        std::thread::spawn(move || {
                            while let Ok(Command::Send(message, ack)) = cmd_rx.recv_blocking() {
                                let _ = ack.send(sender.send(message).map_err(|e| e.to_string()));
                            }
                        });
                        while let Some(item) = ws.recv() {
                            if ev_tx.send(item.map_err(|e| e.to_string())).is_err() {
                                break;
                            }
                        }
                    }
                    Err(e) => drop(ready_tx.send(Err(e.to_string()))),
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| "connect timed out".to_string())??;
        Ok(TestClient {
            commands: cmd_tx,
            events: ev_rx,
            ended: false,
        })
    }

    /// Sends and waits until the send completed (or `timeout` passed:
    /// `None`, the send is still waiting, e.g. on backpressure).
    pub fn send_within(&self, message: Message, timeout: Duration) -> Option<Result<(), String>> {
        let (ack_tx, ack_rx) = mpsc::channel();
        if self
            .commands
            .send_blocking(Command::Send(message, ack_tx))
            .is_err()
        {
            return Some(Err("client task ended".into()));
        }
        ack_rx.recv_timeout(timeout).ok()
    }

    /// Sends and waits for completion (at most 10 s).
    pub fn send(&self, message: Message) -> Result<(), String> {
        self.send_within(message, Duration::from_secs(10))
            .unwrap_or_else(|| Err("send timed out".into()))
    }

    /// Waits up to `timeout` for the next event.
    pub fn recv(&mut self, timeout: Duration) -> Received {
        if self.ended {
            return Received::End;
        }
        match self.events.recv_timeout(timeout) {
            Ok(Ok(message)) => Received::Message(message),
            Ok(Err(error)) => Received::Error(error),
            Err(mpsc::RecvTimeoutError::Timeout) => Received::Timeout,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                self.ended = true;
                Received::End
            }
        }
    }

    /// Waits for the next data message, skipping pings and pongs.
    pub fn recv_data(&mut self, timeout: Duration) -> Received {
        loop {
            match self.recv(timeout) {
                Received::Message(Message::Ping(_) | Message::Pong(_)) => continue,
                other => return other,
            }
        }
    }
}

async fn drive<W>(
    ws: W,
    commands: async_channel::Receiver<Command>,
    events: mpsc::Sender<Result<Message, String>>,
) where
    W: futures_util::Stream<Item = Result<Message, switchboard_async::Error>>
        + futures_util::Sink<Message, Error = switchboard_async::Error>,
{
    let (mut sink, mut stream) = ws.split();
    let reader = async move {
        while let Some(item) = stream.next().await {
            if events.send(item.map_err(|e| e.to_string())).is_err() {
                break;
            }
        }
    };
    let writer = async move {
        while let Ok(Command::Send(message, ack)) = commands.recv().await {
            let _ = ack.send(sink.send(message).await.map_err(|e| e.to_string()));
        }
    };
    let reader = std::pin::pin!(reader);
    let writer = std::pin::pin!(writer);
    // The client is done when its reading side ends.
    let _ = futures_util::future::select(reader, writer).await;
}
