//! A client's connect as a chain of hops: the first URL's, then each redirect's, up to
//! `max_redirects`, all within one deadline ([`ChainDeadline`]).

use std::sync::Arc;

use super::deadline::ChainDeadline;
use super::hop::{self, ConnectError, TlsSource};
use crate::config::Config;
use crate::driver::read::Opened;
use crate::driver::socket::Socket;
use crate::driver::transport::{ReadHalf, WriteHalf};
use crate::error::Error;
use crate::proto::redirect;
use crate::response::Response;

/// Connects, following up to `max_redirects` redirects of the upgrade.
///
/// Never inlined: its locals (the request, TLS, the handshake's buffers) would otherwise stay
/// reserved in the frame of the reader's whole life, and a touched stack page stays resident
/// (an idle socket's reader kept 12 KiB of stack instead of 8).
#[inline(never)]
pub(super) fn follow(
    socket: &Arc<Socket>,
    config: &Config,
    tls: &TlsSource,
) -> Result<(ReadHalf, WriteHalf, Opened), ConnectError> {
    let mut request = socket.request.clone();
    let mut redirects = 0u32;
    // One deadline for the whole chain, however many redirects it follows.
    let chain = ChainDeadline::new(config);
    loop {
        let (error, response) = match hop::connect(socket, &request, config, tls, &chain) {
            Err((error, Some(response))) if redirect::is_redirect(response.status) => {
                (error, response)
            }
            done => return done,
        };
        if config.max_redirects == 0 {
            // Not following: the 3xx is the error it always was.
            return Err((error, Some(response)));
        }
        let refused = |e: Error, response: Box<Response>| {
            (e.with_response(Some((*response).clone())), Some(response))
        };
        if redirects >= config.max_redirects {
            let e = Error::rejected(format!(
                "{} {} to {:?} after {redirects} redirects: more than max_redirects allows",
                response.status,
                response.reason,
                crate::redact::url(response.header("Location").unwrap_or(""))
            ));
            return Err(refused(e, response));
        }
        match redirect::follow(&request, &response) {
            Ok(next) => {
                log::debug!(
                    "following {} from {} to {}",
                    response.status,
                    request.shown_url(),
                    next.shown_url()
                );
                redirects += 1;
                request = next;
            }
            Err(e) => return Err(refused(e, response)),
        }
    }
}
