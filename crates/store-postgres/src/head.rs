//! Following the durable head of a log other hubs write too: `LISTEN` on a connection of its own,
//! and a poll of the head row as the fallback (a notification can be lost when that connection
//! drops; the poll then still moves the head, only later). The same loop deletes expired
//! idempotency keys now and then; lookups ignore them anyway.

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::watch;
use tokio_postgres::AsyncMessage;

use crate::append::HEAD_CHANNEL;
use crate::log::Shared;

/// Raises `head` to `position`; never lowers it.
pub(crate) fn raise(head: &watch::Sender<u64>, position: u64) {
    head.send_if_modified(|current| {
        if position > *current {
            *current = position;
            true
        } else {
            false
        }
    });
}

pub(crate) async fn follow(shared: Arc<Shared>) {
    let mut poll = tokio::time::interval(shared.options.poll_interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut polls = 0u64;
    loop {
        let listening = listen(&shared).await;
        let (notifications, _client) = match listening {
            Ok(pair) => (Some(pair.0), Some(pair.1)),
            Err(error) => {
                tracing::warn!(%error, "cannot LISTEN for the PostgreSQL head; polling only");
                (None, None)
            }
        };
        let mut notifications = notifications;
        loop {
            tokio::select! {
                message = async {
                    match notifications.as_mut() {
                        Some(receiver) => receiver.recv().await,
                        None => std::future::pending().await,
                    }
                } => match message {
                    Some(position) => raise(&shared.head, position),
                    // The listening connection ended: listen again (after a pause).
                    None => {
                        tokio::time::sleep(shared.options.poll_interval).await;
                        break;
                    }
                },
                _ = poll.tick() => {
                    polls += 1;
                    poll_head(&shared, polls).await;
                    if notifications.is_none() && polls % 10 == 0 {
                        break;
                    }
                }
                _ = shared.closed.notified() => return,
            }
        }
    }
}

async fn poll_head(shared: &Shared, polls: u64) {
    let Ok(mut conn) = shared.pool.get().await else {
        return;
    };
    match conn
        .client()
        .query_one("SELECT position FROM wagate_head", &[])
        .await
    {
        Ok(row) => raise(&shared.head, row.get::<_, i64>(0) as u64),
        Err(error) => tracing::warn!(%error, "polling the PostgreSQL head failed"),
    }
    // About once a minute at the default interval.
    if polls % 120 == 0 {
        let now = shared.options.clock.now_ms();
        if let Err(error) = conn
            .client()
            .execute(
                "DELETE FROM wagate_idempotency WHERE expires_at_ms <= $1",
                &[&now],
            )
            .await
        {
            tracing::warn!(%error, "deleting expired idempotency keys failed");
        }
    }
}

/// A connection that `LISTEN`s; answers the positions it hears and the client (kept alive).
async fn listen(
    shared: &Shared,
) -> Result<
    (
        tokio::sync::mpsc::UnboundedReceiver<u64>,
        tokio_postgres::Client,
    ),
    tokio_postgres::Error,
> {
    let (client, mut connection) = shared.config.connect(tokio_postgres::NoTls).await?;
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(note)) => {
                    if let Ok(position) = note.payload().parse::<u64>() {
                        if sender.send(position).is_err() {
                            return;
                        }
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "the PostgreSQL LISTEN connection ended");
                    return;
                }
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {HEAD_CHANNEL}"))
        .await?;
    Ok((receiver, client))
}
