//! Drives every transaction's timers from one task: each [`ProxyTx`] has at
//! most one entry in a [`TimerQueue`] (its earliest deadline), re-armed after
//! every step. 100k live transactions cost one queue entry each, not a task.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::core::{Core, TxRef};
use crate::transaction::{TimerId, TimerQueue};
use switchyard_proto::proxy_tx::{Output, ProxyTx};

#[derive(Default)]
struct State {
    queue: TimerQueue<u64>,
    entries: HashMap<u64, (TimerId, Weak<Mutex<ProxyTx>>)>,
}

#[derive(Default)]
pub(crate) struct TimerDriver {
    state: Mutex<State>,
    notify: Notify,
    next_id: AtomicU64,
}

impl TimerDriver {
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Schedules `tx` for its earliest deadline (or removes it if it has none).
    pub fn arm(&self, tx: &TxRef) {
        // The transaction stays locked until the queue is updated: two tasks
        // arming the same transaction must not write their deadlines out of
        // order (a stale "no deadline" would cancel a live timer). Lock
        // order is transaction, then queue; `run` never holds both.
        let guard = tx.lock();
        let (id, deadline) = (guard.id, guard.next_deadline());
        let mut st = self.state.lock();
        let head = st.queue.next_deadline();
        match (st.entries.get(&id).map(|e| e.0), deadline) {
            (Some(tid), Some(at)) => {
                if st.queue.deadline(tid) == Some(at) {
                    return;
                }
                if !st.queue.reschedule(tid, at) {
                    let tid = st.queue.schedule(id, at);
                    st.entries.insert(id, (tid, Arc::downgrade(tx)));
                }
            }
            (None, Some(at)) => {
                let tid = st.queue.schedule(id, at);
                st.entries.insert(id, (tid, Arc::downgrade(tx)));
            }
            (Some(tid), None) => {
                st.queue.cancel(tid);
                st.entries.remove(&id);
            }
            (None, None) => {}
        }
        if deadline.is_some_and(|at| head.is_none_or(|h| at < h)) {
            self.notify.notify_one();
        }
    }

    pub fn disarm(&self, tx: &TxRef) {
        let id = tx.lock().id;
        let mut st = self.state.lock();
        if let Some((tid, _)) = st.entries.remove(&id) {
            st.queue.cancel(tid);
        }
    }

    pub fn len(&self) -> usize {
        self.state.lock().entries.len()
    }

    /// The driver task: sleeps until the earliest deadline, then runs the
    /// due transactions' timeouts.
    pub async fn run(core: Weak<Core>) {
        loop {
            let Some(c) = core.upgrade() else { return };
            let next = c.timers.state.lock().queue.next_deadline();
            let sleep_until = next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = tokio::time::sleep_until(sleep_until.into()) => {}
                _ = c.timers.notify.notified() => {}
            }
            let now = Instant::now();
            let due: Vec<TxRef> = {
                let mut st = c.timers.state.lock();
                let mut due = Vec::new();
                while let Some(id) = st.queue.pop_expired(now) {
                    if let Some((_, weak)) = st.entries.remove(&id)
                        && let Some(tx) = weak.upgrade()
                    {
                        due.push(tx);
                    }
                }
                due
            };
            for tx in due {
                let out = tx.lock().handle_timeout(now);
                // Most expiries only end a transaction (Timer J, K, L...):
                // bookkeeping done here. Anything that sends or resolves gets
                // its own task so one slow peer never delays other timers.
                if out.iter().all(Output::is_bookkeeping) {
                    c.execute_now(&tx, out);
                } else {
                    let c = c.clone();
                    tokio::spawn(async move { c.execute(&tx, out).await });
                }
            }
        }
    }
}
