//! syncws in a desktop app: a small egui client (URL, connect/disconnect, the socket's state, a
//! message log, an input line, the socket's statistics).
//!
//! The socket's events reach the window through `syncws::channel_with_waker`: the socket's
//! thread only calls `Context::request_repaint`; the window drains the events on its own thread
//! when it repaints. No polling, and no GUI code on a socket thread (docs/desktop.md).
//!
//!     cargo run -p syncws-desktop                         # an embedded echo server
//!     cargo run -p syncws-desktop -- --url ws://host/path
//!     cargo run -p syncws-desktop -- --self-test shot.png # connect, send, see the echo, save a PNG
//!
//! The self-test is what `scripts/desktop.sh` runs under Xvfb.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use eframe::egui;
use syncws::{Client, EchoServer, Event, Events, Message, Request, State, WebSocket};

const SELF_TEST_MESSAGE: &str = "hello from the desktop";
/// The self-test gives up (exit status 1) after this long.
const SELF_TEST_LIMIT: Duration = Duration::from_secs(60);
const WIDTH: f32 = 640.0;
const HEIGHT: f32 = 420.0;
/// The window keeps the last this many log lines (one per network message otherwise grows
/// without limit).
const LOG_LINES: usize = 1000;

/// Where the self-test is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Step {
    Connect,
    WaitOpen,
    WaitEcho,
    /// The echo is in the log; a few frames later the window is photographed.
    Shown(u32),
    Shooting,
    /// The picture is saved (or failed) and the window is closing.
    Done,
}

/// The screenshot callback's news, for the window's thread.
const SHOT_PENDING: u8 = 0;
const SHOT_SAVED: u8 = 1;
const SHOT_FAILED: u8 = 2;

struct SelfTest {
    out: PathBuf,
    step: Step,
    shot: Arc<AtomicU8>,
}

struct App {
    client: Client,
    url: String,
    input: String,
    log: VecDeque<String>,
    /// The self-test's echo has come in (noted as it arrives, not looked for in the log).
    echo_seen: bool,
    socket: Option<(WebSocket, Events)>,
    note: String,
    self_test: Option<SelfTest>,
    /// Kept alive while the window is open.
    _server: Option<EchoServer>,
}

/// Appends to the window's log, dropping its oldest line once it holds [`LOG_LINES`].
fn push_log(log: &mut VecDeque<String>, line: String) {
    if log.len() >= LOG_LINES {
        log.pop_front();
    }
    log.push_back(line);
}

impl App {
    fn log(&mut self, line: String) {
        push_log(&mut self.log, line);
    }

    fn connect(&mut self, ctx: &egui::Context) {
        let request = match Request::builder(&self.url).build() {
            Ok(r) => r,
            Err(e) => {
                self.note = format!("bad URL: {e}");
                return;
            }
        };
        // The socket's thread only wakes the window; the window reads the events itself.
        let repaint = ctx.clone();
        let (listener, events) = syncws::channel_with_waker(move || repaint.request_repaint());
        let ws = self.client.new_web_socket(request, listener);
        self.log(format!("# connecting to {}", self.url));
        self.socket = Some((ws, events));
    }

    fn send(&mut self) {
        let text = std::mem::take(&mut self.input);
        if let Some((ws, _)) = &self.socket
            && !text.is_empty()
        {
            let line = format!("> {text}");
            if ws.send(text) {
                self.log(line);
            } else {
                self.log("# not sent: the socket is closing or closed".into());
            }
        }
    }

    /// Takes what the socket queued since the last frame (on the window's thread).
    fn drain(&mut self) {
        let Some((_, events)) = &self.socket else {
            return;
        };
        let mut ended = false;
        for event in events.try_iter() {
            let line = match event {
                Event::Open(r) => format!("# open ({} {})", r.status(), r.reason()),
                Event::Message(Message::Text(t)) => {
                    if t == SELF_TEST_MESSAGE {
                        self.echo_seen = true;
                    }
                    format!("< {t}")
                }
                Event::Message(Message::Binary(b)) => format!("< binary, {} bytes", b.len()),
                Event::Closing { code, reason } => format!("# server closing: {code} {reason}"),
                Event::Ended(how) => {
                    ended = true;
                    format!("# ended: {how:?}")
                }
                other => format!("# {other:?}"),
            };
            push_log(&mut self.log, line);
        }
        if ended {
            self.socket = None;
        }
    }

    fn state(&self) -> String {
        match &self.socket {
            None => "disconnected".into(),
            Some((ws, _)) => format!("{:?}", ws.state()),
        }
    }

    fn self_test(&mut self, ctx: &egui::Context) {
        let Some(test) = &self.self_test else { return };
        let step = test.step;
        let next = match step {
            Step::Connect => {
                self.connect(ctx);
                Step::WaitOpen
            }
            Step::WaitOpen => match &self.socket {
                Some((ws, _)) if ws.state() == State::Open => {
                    self.input = SELF_TEST_MESSAGE.into();
                    self.send();
                    Step::WaitEcho
                }
                _ => Step::WaitOpen,
            },
            Step::WaitEcho => {
                if self.echo_seen {
                    Step::Shown(0)
                } else {
                    Step::WaitEcho
                }
            }
            // A few frames with the echo on screen before the picture.
            Step::Shown(n) if n < 3 => {
                ctx.request_repaint();
                Step::Shown(n + 1)
            }
            Step::Shown(_) => {
                let out = test.out.clone();
                let shot = test.shot.clone();
                let wake = ctx.clone();
                ctx.request_screenshot(move |image| {
                    let result = save_png(&out, &image);
                    if let Err(e) = &result {
                        eprintln!("desktop: could not save {}: {e}", out.display());
                    }
                    shot.store(
                        if result.is_ok() {
                            SHOT_SAVED
                        } else {
                            SHOT_FAILED
                        },
                        Ordering::Release,
                    );
                    wake.request_repaint();
                });
                Step::Shooting
            }
            Step::Shooting => match test.shot.load(Ordering::Acquire) {
                SHOT_PENDING => Step::Shooting,
                saved => {
                    if let Some((ws, _)) = &self.socket {
                        let _ = ws.close(1000, None);
                    }
                    if saved == SHOT_SAVED {
                        println!(
                            "desktop: self-test passed, screenshot in {}",
                            test.out.display()
                        );
                    }
                    ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                    Step::Done
                }
            },
            Step::Done => Step::Done,
        };
        if let Some(test) = &mut self.self_test {
            test.step = next;
        }
    }
}

fn save_png(path: &PathBuf, image: &egui::ColorImage) -> Result<(), String> {
    let [w, h] = image.size;
    let file = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let mut encoder = png::Encoder::new(
        std::io::BufWriter::new(file),
        u32::try_from(w).map_err(|e| e.to_string())?,
        u32::try_from(h).map_err(|e| e.to_string())?,
    );
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    let bytes: Vec<u8> = image
        .pixels
        .iter()
        .flat_map(|p| p.to_srgba_unmultiplied())
        .collect();
    writer.write_image_data(&bytes).map_err(|e| e.to_string())
}

impl eframe::App for App {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.drain();
        self.self_test(&ctx);
        egui::Panel::top("connection").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.label("URL");
                ui.text_edit_singleline(&mut self.url);
                if self.socket.is_none() {
                    if ui.button("Connect").clicked() {
                        self.connect(&ctx);
                    }
                } else if ui.button("Disconnect").clicked()
                    && let Some((ws, _)) = &self.socket
                {
                    let _ = ws.close(1000, Some("bye"));
                }
                ui.label(format!("state: {}", self.state()));
            });
            if let Some((ws, _)) = &self.socket {
                let s = ws.stats();
                let rtt = s.last_rtt.map_or_else(
                    || "—".to_owned(),
                    |d| format!("{:.2} ms", d.as_secs_f64() * 1e3),
                );
                ui.label(format!(
                    "sent {} messages ({} B, {} B on the wire) · received {} ({} B) · RTT {rtt}",
                    s.messages_sent,
                    s.bytes_sent,
                    s.wire_bytes_sent,
                    s.messages_received,
                    s.bytes_received
                ));
            }
            if !self.note.is_empty() {
                ui.label(&self.note);
            }
        });
        egui::Panel::bottom("input").show(ui, |ui| {
            ui.horizontal(|ui| {
                let line = ui.text_edit_singleline(&mut self.input);
                let enter = line.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                if ui.button("Send").clicked() || enter {
                    self.send();
                }
            });
        });
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::vertical()
                .stick_to_bottom(true)
                .show(ui, |ui| {
                    for line in &self.log {
                        ui.monospace(line);
                    }
                });
        });
    }
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut url = None;
    let mut self_test = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--url" => url = it.next().cloned(),
            "--self-test" => self_test = it.next().map(PathBuf::from),
            other => {
                eprintln!("usage: syncws-desktop [--url URL] [--self-test OUT.png] (not {other})");
                return std::process::ExitCode::from(2);
            }
        }
    }
    let server = if url.is_none() {
        match EchoServer::start() {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("desktop: could not start the echo server: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let url = url.unwrap_or_else(|| server.as_ref().map(EchoServer::url).unwrap_or_default());
    let shot = Arc::new(AtomicU8::new(SHOT_PENDING));
    if self_test.is_some() {
        // A self-test never hangs CI: it gives up after a minute.
        let started = Instant::now();
        std::thread::spawn(move || {
            std::thread::sleep(SELF_TEST_LIMIT);
            eprintln!(
                "desktop: self-test did not finish in {:?}",
                started.elapsed()
            );
            std::process::exit(1);
        });
    }
    let app = App {
        client: Client::builder()
            .ping_interval(Duration::from_secs(1))
            .build(),
        url,
        input: String::new(),
        log: VecDeque::new(),
        echo_seen: false,
        socket: None,
        note: String::new(),
        self_test: self_test.clone().map(|out| SelfTest {
            out,
            step: Step::Connect,
            shot: shot.clone(),
        }),
        _server: server,
    };
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([WIDTH, HEIGHT])
            .with_title("syncws desktop"),
        renderer: eframe::Renderer::Glow,
        ..Default::default()
    };
    if let Err(e) = eframe::run_native("syncws desktop", options, Box::new(|_| Ok(Box::new(app)))) {
        eprintln!("desktop: {e}");
        return std::process::ExitCode::FAILURE;
    }
    match (self_test, shot.load(Ordering::Acquire)) {
        (None, _) | (Some(_), SHOT_SAVED) => std::process::ExitCode::SUCCESS,
        (Some(_), _) => {
            eprintln!("desktop: the window closed before the screenshot was saved");
            std::process::ExitCode::FAILURE
        }
    }
}
