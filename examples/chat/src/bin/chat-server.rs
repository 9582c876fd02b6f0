//! A chat server that scales out: run several behind a load balancer; each sends what its
//! clients say to Redis (`PUBLISH`), and sends everything Redis hands back (`SUBSCRIBE`) to its
//! own clients with one publish to a `Topics` topic every client joins. Every client thus gets every message exactly
//! once, in the order its sender sent it, whichever process either is on.
//!
//!     chat-server --listen 127.0.0.1:9001 --redis redis://127.0.0.1:6379/ --name s1
//!
//! A new client is greeted with `welcome <name>` (the process it landed on). Messages are
//! text, relayed as they are. `scripts/chat.sh` runs three behind HAProxy and checks them.

use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::TypedCommands;
use syncws::{Accept, Listener, Message, Server, Topics, WhenFull};

const CHANNEL: &str = "syncws-chat";
/// How long a Redis connect, command or reply may take. Publishing happens under one lock on
/// the clients' threads: without a limit a stalled Redis would block every client for ever.
const REDIS_TIMEOUT: Duration = Duration::from_secs(5);

/// The topic of this process's clients: each joins it when it opens and leaves it when it
/// ends, by itself.
const ROOM: &str = "room";

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// A connection to Redis with the timeouts every call here relies on.
fn connect(client: &redis::Client) -> redis::RedisResult<redis::Connection> {
    let c = client.get_connection_with_timeout(REDIS_TIMEOUT)?;
    c.set_read_timeout(Some(REDIS_TIMEOUT))?;
    c.set_write_timeout(Some(REDIS_TIMEOUT))?;
    Ok(c)
}

/// The connection messages are published on, replaced after any error: a reply that missed
/// its timeout may still arrive, and on the same connection it would be read as the answer to
/// the next command.
struct Publisher {
    client: redis::Client,
    connection: Option<redis::Connection>,
}

impl Publisher {
    fn publish(&mut self, text: String) -> redis::RedisResult<()> {
        let connection = match &mut self.connection {
            Some(c) => c,
            None => self.connection.insert(connect(&self.client)?),
        };
        let published = connection.publish(CHANNEL, text);
        if published.is_err() {
            self.connection = None;
        }
        published.map(drop)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(redis_url)) = (arg(&args, "--listen"), arg(&args, "--redis")) else {
        eprintln!("usage: chat-server --listen ADDR --redis redis://HOST:PORT/ [--name NAME]");
        return ExitCode::from(2);
    };
    let name = arg(&args, "--name").unwrap_or_else(|| listen.clone());
    // The URL may carry Redis's password: shown without userinfo and query, as syncws shows
    // URLs in its own logs.
    let shown_url = syncws::redact_url(&redis_url);
    let client = match redis::Client::open(redis_url.as_str()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chat-server: {shown_url}: {e}");
            return ExitCode::from(2);
        }
    };
    let (publisher, subscriber) = match (connect(&client), connect(&client)) {
        (Ok(p), Ok(s)) => (p, s),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("chat-server: cannot reach Redis at {shown_url}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let publisher = Arc::new(Mutex::new(Publisher {
        client,
        connection: Some(publisher),
    }));
    let room = Topics::new();

    // Redis -> this process's clients: one thread, one prepared broadcast per message.
    let members = room.clone();
    let subscribed = std::thread::spawn(move || -> redis::RedisResult<()> {
        let mut subscriber = subscriber;
        let mut pubsub = subscriber.as_pubsub();
        pubsub.subscribe(CHANNEL)?;
        // Subscribed (within the timeout): from now on a quiet channel is not a stall, so
        // wait for messages as long as it takes.
        pubsub.set_read_timeout(None)?;
        loop {
            let msg = pubsub.get_message()?;
            let text: String = msg.get_payload()?;
            // Framed once for everyone. A client too slow to take its share is closed (1008)
            // rather than holding the others back or growing memory: it reconnects and
            // carries on. Publishing never blocks.
            members.publish(ROOM, text, WhenFull::Close(1008));
        }
    });

    let server_name = name.clone();
    // The broadcast pattern of docs/deploying.md: chat lines, not files (a larger message
    // closes its sender with 1009), and each sender held to 64 KiB/s (bursts of 256 KiB) by
    // TCP flow control, so one client flooding the room slows itself, not everyone else's
    // queues: a receiver that reads faster than the senders together stays connected.
    let server = Server::builder()
        .server_no_context_takeover(true)
        .max_message_size(64 * 1024)
        .max_receive_rate(64 * 1024, 256 * 1024)
        .bind(listen.as_str(), move |_| {
            let (room, publisher, name) = (room.clone(), publisher.clone(), server_name.clone());
            Accept::upgrade(
                Listener::new()
                    .on_open(move |ws, _| {
                        ws.send(format!("welcome {name}"));
                        room.subscribe(ws, ROOM);
                    })
                    // Client -> Redis, in the order it arrives (one reader thread per client).
                    .on_message(move |ws, m| {
                        if let Message::Text(text) = m {
                            let mut redis =
                                publisher.lock().unwrap_or_else(PoisonError::into_inner);
                            if let Err(e) = redis.publish(text) {
                                eprintln!("chat-server: publish failed: {e}");
                                let _ = ws.close(1011, Some("broker unavailable"));
                            }
                        }
                    }),
            )
        });
    let server = match server {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chat-server: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("chat-server {name}: listening on {}", server.local_addr());
    match subscribed.join() {
        Ok(Err(e)) => eprintln!("chat-server {name}: Redis subscription ended: {e}"),
        _ => eprintln!("chat-server {name}: Redis subscription ended"),
    }
    ExitCode::FAILURE
}
