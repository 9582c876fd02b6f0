//! The idle and scale child of syncws's listener API.

use std::time::{Duration, Instant};

use syncws::crossbeam_channel::{self, RecvTimeoutError};
use syncws::{Listener, Request};

use crate::Deadline;
use crate::many_child::{Errors, ManyParams, report, stats};

/// syncws: every socket created at once (each starts connecting on its own reader thread);
/// listener closures forward (index, event) to one crossbeam channel.
pub fn many_syncws(p: &ManyParams) {
    #[derive(Debug)]
    enum Ev {
        Open,
        Echo,
        Closed,
        Failed(String),
    }
    #[derive(Clone, Copy, PartialEq, Debug)]
    enum St {
        Connecting,
        Open,
        Echoed,
        Failed,
        Closed,
    }

    let base = stats();
    let mut errs = Errors::default();
    let client = syncws::Client::new();
    let url = format!("ws://127.0.0.1:{}/echo", p.port);
    let request = Request::builder(&url).build().expect("a valid URL");
    let (tx, rx) = crossbeam_channel::unbounded::<(usize, Ev)>();
    let t0 = Instant::now();
    let mut sockets = Vec::with_capacity(p.n);
    for i in 0..p.n {
        let (a, b, c, d) = (tx.clone(), tx.clone(), tx.clone(), tx.clone());
        let listener = Listener::new()
            .on_open(move |_, _| {
                let _ = a.send((i, Ev::Open));
            })
            .on_message(move |_, _| {
                let _ = b.send((i, Ev::Echo));
            })
            .on_closed(move |_, _, _| {
                let _ = c.send((i, Ev::Closed));
            })
            .on_failure(move |_, e, _| {
                let _ = d.send((i, Ev::Failed(e.to_string())));
            });
        sockets.push(client.new_web_socket(request.clone(), listener));
    }
    drop(tx);
    let mut st = vec![St::Connecting; p.n];
    // A socket whose reader thread could not start ends Canceled without any callback: after
    // it has been seen Canceled for a second with no event, count it as failed.
    let mut canceled_since: Vec<Option<Instant>> = vec![None; p.n];
    let mut late_opens = 0usize;
    // Every socket must end exactly once (on_closed or on_failure): counted per socket, so a
    // lost or doubled terminal callback shows.
    let mut ends = vec![0u8; p.n];
    let mut apply = |i: usize, ev: Ev, st: &mut [St], errs: &mut Errors| {
        if matches!(ev, Ev::Closed | Ev::Failed(_)) {
            ends[i] = ends[i].saturating_add(1);
        }
        match (st[i], ev) {
            (St::Connecting, Ev::Open) => st[i] = St::Open,
            (St::Open, Ev::Echo) => st[i] = St::Echoed,
            (St::Connecting | St::Open | St::Echoed, Ev::Failed(e)) => {
                errs.add(format!("{:?}: {e}", st[i]));
                st[i] = St::Failed;
            }
            (St::Failed, Ev::Open) => late_opens += 1,
            (St::Open | St::Echoed, Ev::Closed) => st[i] = St::Closed,
            (s, ev) => errs.add(format!("unexpected {ev:?} in state {s:?}")),
        }
    };

    let open_deadline = Deadline::after(p.open_timeout);
    let mut last_scan = Instant::now();
    while st.contains(&St::Connecting) && !open_deadline.passed() {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((i, ev)) => apply(i, ev, &mut st, &mut errs),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_scan.elapsed() > Duration::from_millis(500) {
            last_scan = Instant::now();
            for i in 0..p.n {
                if st[i] != St::Connecting || sockets[i].state() != syncws::State::Canceled {
                    continue;
                }
                match canceled_since[i] {
                    None => canceled_since[i] = Some(Instant::now()),
                    Some(t) if t.elapsed() > Duration::from_secs(1) => {
                        errs.add("ended Canceled without a callback (reader thread not started?)");
                        st[i] = St::Failed;
                    }
                    Some(_) => {}
                }
            }
        }
    }
    let still = st.iter().filter(|s| **s == St::Connecting).count();
    if still > 0 {
        errs.add(format!(
            "{still} still connecting after {:?}",
            p.open_timeout
        ));
        for i in 0..p.n {
            if st[i] == St::Connecting {
                st[i] = St::Failed;
                sockets[i].cancel();
            }
        }
    }
    let opened = st.iter().filter(|s| **s == St::Open).count();
    let open_secs = t0.elapsed().as_secs_f64();

    for i in 0..p.n {
        if st[i] == St::Open && !sockets[i].send("hello") {
            errs.add(format!(
                "send returned false (state {:?})",
                sockets[i].state()
            ));
            st[i] = St::Failed;
        }
    }
    let echo_deadline = Deadline::after(p.echo_timeout);
    while st.contains(&St::Open) && !echo_deadline.passed() {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((i, ev)) => apply(i, ev, &mut st, &mut errs),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let waiting = st.iter().filter(|s| **s == St::Open).count();
    if waiting > 0 {
        errs.add(format!(
            "{waiting} open sockets got no echo within {:?}",
            p.echo_timeout
        ));
    }
    let echoed = st.iter().filter(|s| **s == St::Echoed).count();
    let secs = t0.elapsed().as_secs_f64();
    report(&base, opened, echoed, open_secs, secs, p, &mut errs);

    let t1 = Instant::now();
    let close_deadline = Deadline::after(p.close_timeout);
    let mut closing = 0;
    for i in 0..p.n {
        if matches!(st[i], St::Open | St::Echoed) {
            match sockets[i].close(1000, None) {
                Ok(true) => closing += 1,
                Ok(false) => errs.add(format!("close: already closing ({:?})", sockets[i].state())),
                Err(e) => errs.add(format!("close: {e}")),
            }
        }
    }
    while st.iter().any(|s| matches!(s, St::Open | St::Echoed)) && !close_deadline.passed() {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((i, ev)) => apply(i, ev, &mut st, &mut errs),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let closed = st.iter().filter(|s| **s == St::Closed).count();
    if closed < closing {
        errs.add(format!(
            "{} of {closing} closes did not complete within {:?}",
            closing - closed,
            p.close_timeout
        ));
    }
    let mut unfinished = 0;
    for s in &sockets {
        if !s.wait_finished(close_deadline.remaining()) {
            unfinished += 1;
            s.cancel();
        }
    }
    // Every socket has finished (its terminal callback has returned): take the events still
    // in the channel, then count the ends.
    while let Ok((i, ev)) = rx.try_recv() {
        apply(i, ev, &mut st, &mut errs);
    }
    let ended = ends.iter().filter(|&&e| e == 1).count();
    let unended = ends.iter().filter(|&&e| e == 0).count();
    let doubled = ends.iter().filter(|&&e| e > 1).count();
    if unended > 0 || doubled > 0 {
        errs.add(format!(
            "{unended} sockets without a terminal callback, {doubled} with more than one"
        ));
    }
    if unfinished > 0 {
        errs.add(format!(
            "{unfinished} sockets not finished at the close deadline"
        ));
    }
    if late_opens > 0 {
        errs.add(format!(
            "{late_opens} on_open after on_failure (should not happen)"
        ));
    }
    errs.print();
    println!(
        "CLOSED closed={closed} ended={ended} secs={:.3}",
        t1.elapsed().as_secs_f64()
    );
}
