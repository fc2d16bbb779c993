//! The log's own Tokio runtime. `EventLog`'s reads are synchronous (sled answers them from
//! memory), but a PostgreSQL read is a network round trip on an async client. Running the client
//! on a runtime of its own lets a synchronous read wait on a plain channel from any thread —
//! including a worker of the caller's runtime, where `block_on` would panic — without stalling
//! the task that drives the connection.

use std::future::Future;

use tokio::runtime::{Handle, Runtime};
use wagate_store::{Result, StoreError};

#[derive(Debug)]
pub(crate) struct Bridge {
    runtime: Option<Runtime>,
    handle: Handle,
}

impl Bridge {
    pub(crate) fn new() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("wagate-postgres")
            .enable_all()
            .build()
            .map_err(StoreError::from)?;
        let handle = runtime.handle().clone();
        Ok(Bridge {
            runtime: Some(runtime),
            handle,
        })
    }

    /// Runs `future` on the log's runtime and waits for it on this thread.
    pub(crate) fn wait<T: Send + 'static>(
        &self,
        future: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = reply.send(future.await);
        });
        answer.recv().map_err(|_| StoreError::Closed)?
    }

    /// Runs `future` on the log's runtime; the answer can be awaited on any runtime.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        future: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        self.handle
            .spawn(future)
            .await
            .map_err(|_| StoreError::Closed)?
    }

    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for Bridge {
    // A runtime may not be dropped (blocking) inside another runtime, which is where logs are
    // usually dropped; its tasks only hold connections, so letting them go in the background
    // loses nothing.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
