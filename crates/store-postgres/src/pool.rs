//! A few connections, each reconnected when found closed. Transactions need a connection of
//! their own (`&mut Client`); the pool hands one out at a time per slot.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Mutex, MutexGuard};
use tokio_postgres::{Client, Config, NoTls};
use wagate_store::Result;

use crate::error::connect_error;

#[derive(Debug)]
pub(crate) struct Pool {
    config: Config,
    target: String,
    slots: Vec<Mutex<Option<Client>>>,
    next: AtomicUsize,
}

/// A connection taken from the pool; it returns when dropped.
pub(crate) struct Conn<'a>(MutexGuard<'a, Option<Client>>);

impl Conn<'_> {
    pub(crate) fn client(&mut self) -> &mut Client {
        // Invariant: `Pool::get` fills the slot before handing it out.
        self.0.as_mut().expect("a connected slot")
    }
}

impl Pool {
    pub(crate) fn new(config: Config, target: String, size: usize) -> Self {
        Pool {
            config,
            target,
            slots: (0..size.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    /// A free connection if there is one, else the next one in turn once it is free.
    pub(crate) async fn get(&self) -> Result<Conn<'_>> {
        let mut guard = None;
        for slot in &self.slots {
            if let Ok(free) = slot.try_lock() {
                guard = Some(free);
                break;
            }
        }
        let mut guard = match guard {
            Some(guard) => guard,
            None => {
                let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
                self.slots[turn].lock().await
            }
        };
        if guard.as_ref().is_none_or(Client::is_closed) {
            *guard = Some(self.connect().await?);
        }
        Ok(Conn(guard))
    }

    /// A new connection, driven on the current runtime.
    pub(crate) async fn connect(&self) -> Result<Client> {
        let (client, connection) = self
            .config
            .connect(NoTls)
            .await
            .map_err(|error| connect_error(&self.target, error))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!(%error, "a PostgreSQL connection ended");
            }
        });
        Ok(client)
    }
}

/// Where `config` points, for messages: hosts, port, database and user, never the password.
pub(crate) fn describe(config: &Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}:{port}/{} as {}",
        hosts.join(","),
        config.get_dbname().unwrap_or("(default database)"),
        config.get_user().unwrap_or("(default user)")
    )
}
