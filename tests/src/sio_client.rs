//! Our Socket.IO client on a runtime chosen at run time: one driver type
//! for the four runtimes, so a case connects the same way on each.

use std::sync::Arc;

use switchboard_async::socketio::client::{
    BuildError, ClientBuilder, ClientDriver, ClientHub, ClientSocket, ConnectError,
};

use crate::RuntimeKind;

/// A runtime to run clients on (tokio's own, when it is tokio).
pub struct ClientRuntime {
    kind: RuntimeKind,
    tokio: Option<tokio::runtime::Runtime>,
}

/// The driver of one of the runtimes.
pub enum AnyDriver {
    /// A tokio task (in the entered runtime).
    Tokio,
    /// A task on smol's executor, or async-std's through a spawner.
    Smol(switchboard_smol::Smol),
    /// A thread.
    Threads,
}

impl ClientDriver for AnyDriver {
    fn start(self, hub: Arc<ClientHub>) {
        match self {
            AnyDriver::Tokio => switchboard_tokio::Tokio.start(hub),
            AnyDriver::Smol(smol) => smol.start(hub),
            AnyDriver::Threads => switchboard_threads::socketio::client::Threads.start(hub),
        }
    }
}

impl ClientRuntime {
    /// Clients on `kind` (for tokio, on a 2-worker runtime of their own).
    pub fn new(kind: RuntimeKind) -> Self {
        let tokio = (kind == RuntimeKind::Tokio).then(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime")
        });
        ClientRuntime { kind, tokio }
    }

    fn driver(&self) -> AnyDriver {
        match self.kind {
            RuntimeKind::Tokio => AnyDriver::Tokio,
            RuntimeKind::Smol => AnyDriver::Smol(switchboard_smol::Smol::new()),
            RuntimeKind::AsyncStd => {
                AnyDriver::Smol(switchboard_smol::Smol::with_spawner(|task| {
                    async_std::task::spawn(task);
                }))
            }
            RuntimeKind::Threads => AnyDriver::Threads,
        }
    }

    /// Connects `builder`, waiting for its namespace.
    pub fn connect(&self, builder: ClientBuilder) -> Result<ClientSocket, ConnectError> {
        let _entered = self.tokio.as_ref().map(|rt| rt.enter());
        builder.connect(self.driver()).wait()
    }

    /// Makes the client without waiting for the connection.
    pub fn build(&self, builder: ClientBuilder) -> Result<ClientSocket, BuildError> {
        let _entered = self.tokio.as_ref().map(|rt| rt.enter());
        builder.build(self.driver())
    }
}
