//! New published heads announced over Redis pub/sub: the sync host `PUBLISH`es one message
//! per head it writes; every server holds one subscribed connection and reads the head when
//! told. Redis fans a message out to hundreds of subscribers at no cost to the catalog.
//!
//! A message is only a wake-up (the head's sequence number, for logs): the head object stays
//! the truth, so a lost message costs one poll interval, never a wrong version.

use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use redis::Client;

/// The channel kiln announces heads on, under a namespace.
pub fn channel(namespace: &str) -> String {
    format!("{namespace}:published-head")
}

/// Announces a new head (`seq`) to every subscriber of `channel`; returns how many got it.
pub async fn announce(url: &str, channel: &str, seq: u64) -> kiln_core::Result<u64> {
    let client = client(url)?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| unavailable(&client, e))?;
    let n: u64 = redis::cmd("PUBLISH")
        .arg(channel)
        .arg(seq.to_string())
        .query_async(&mut conn)
        .await
        .map_err(|e| unavailable(&client, e))?;
    Ok(n)
}

/// Wake-ups from `channel`: one per message, and one after every (re)connection (a message
/// may have been missed while the connection was down). Reconnects forever, waiting up to
/// 2 s between attempts; the subscription ends when the stream is dropped.
pub fn subscribe(url: &str, channel: &str) -> kiln_core::Result<BoxStream<'static, ()>> {
    let client = client(url)?;
    let channel = channel.to_string();
    let (tx, rx) = tokio::sync::mpsc::channel::<()>(16);
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(100);
        // Said once per outage, not once per attempt.
        let mut said = false;
        loop {
            match client.get_async_pubsub().await {
                Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                    Ok(()) => {
                        delay = Duration::from_millis(100);
                        said = false;
                        if tx.send(()).await.is_err() {
                            return;
                        }
                        let mut messages = pubsub.on_message();
                        while messages.next().await.is_some() {
                            // A full queue already holds a wake-up: nothing is lost.
                            if let Err(tokio::sync::mpsc::error::TrySendError::Closed(())) =
                                tx.try_send(())
                            {
                                return;
                            }
                        }
                        tracing::warn!(
                            "the redis announcement channel {channel} closed; reconnecting"
                        );
                    }
                    Err(e) => say(&mut said, format!("subscribing to {channel}: {e}")),
                },
                Err(e) => say(
                    &mut said,
                    format!("connecting to redis for announcements: {e}"),
                ),
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    });
    Ok(futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|()| ((), rx)) },
    )
    .boxed())
}

/// Logs a failed (re)subscription: a warning once per outage, then at debug level.
fn say(said: &mut bool, what: String) {
    if *said {
        tracing::debug!("{what}");
    } else {
        tracing::warn!("{what}; retrying every 2 s, reading the head on its poll meanwhile");
        *said = true;
    }
}

fn client(url: &str) -> kiln_core::Result<Client> {
    Client::open(url).map_err(|e| kiln_core::Error::invalid(format!("invalid redis url: {e}")))
}

fn unavailable(client: &Client, e: redis::RedisError) -> kiln_core::Error {
    kiln_core::Error::Unavailable {
        what: format!("redis at {}", client.get_connection_info().addr),
        source: Box::new(e),
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    #[tokio::test]
    async fn a_subscriber_wakes_on_connect_and_on_each_announcement() {
        let url = kiln_testkit::skip_unless_env!("TEST_REDIS_URL");
        let channel = format!("kiln-test-announce-{}", std::process::id());
        let mut wakes = super::subscribe(&url, &channel).unwrap();
        // The first wake-up says the subscription is live.
        tokio::time::timeout(std::time::Duration::from_secs(30), wakes.next())
            .await
            .expect("subscribed")
            .unwrap();
        let n = super::announce(&url, &channel, 7).await.unwrap();
        assert_eq!(n, 1, "one subscriber");
        tokio::time::timeout(std::time::Duration::from_secs(30), wakes.next())
            .await
            .expect("woken by the announcement")
            .unwrap();
    }
}
