//! The two "stop" signals of the transport tasks.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{Notify, watch};

/// Closes one TCP connection: set once, observed by its reader and writer tasks.
#[derive(Debug, Default)]
pub(super) struct CloseSignal {
    closed: AtomicBool,
    notify: Notify,
}

impl CloseSignal {
    pub fn close(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.notify.notify_waiters();
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Resolves once `close` has been called (at once if it already was).
    pub async fn wait(&self) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        // Register before checking the flag so a concurrent `close` is not missed.
        notified.as_mut().enable();
        if !self.is_closed() {
            notified.await;
        }
    }
}

/// Held by every spawned transport task. Doubles as a task tracker: the
/// owner's `watch::Sender::closed()` resolves once every task (every receiver)
/// has finished, which is how `Transports::shutdown` waits for them.
#[derive(Debug, Clone)]
pub(super) struct ShutdownToken(watch::Receiver<bool>);

impl ShutdownToken {
    pub fn new(rx: watch::Receiver<bool>) -> Self {
        ShutdownToken(rx)
    }

    pub async fn wait(&mut self) {
        // An Err means the sender is gone, which is shutdown too.
        let _ = self.0.wait_for(|&stop| stop).await;
    }
}
