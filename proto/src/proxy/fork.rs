//! The proxy's response context (RFC 3261 §16.7): which branches a request
//! forked to, which response wins, and when to move to the next q-group.
//!
//! Sans-IO like the transaction layer: the node feeds it branch outcomes and
//! drains [`ForkAction`]s. It never parses or sends anything itself, so every
//! forking rule is unit-tested without sockets or clocks. The message type is
//! generic (`M`) so tests can use plain strings.

use std::collections::VecDeque;
use std::time::Duration;

/// One destination the request is forked to: a registered contact, a policy
/// target or the Request-URI itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The new Request-URI for this branch.
    pub uri: String,
    /// Preference in thousandths (RFC 3261 §16.6 step 1 / §20.10 `q`); higher first.
    pub q: u16,
    /// Route set to push before forwarding: the binding's Path (RFC 3327 §5.3).
    pub route: Vec<String>,
    /// No-answer timeout of this branch (a policy's ring timeout): when it
    /// passes the branch is cancelled like on Timer C, but it is not
    /// restarted by provisional responses. `None`: Timer C only.
    pub timeout: Option<Duration>,
    /// An RFC 5626 flow this node holds: the branch is sent on it and
    /// nowhere else (set by the edge, never by a policy).
    pub flow: Option<crate::net::Source>,
    /// The next hop is another node's edge entry (its flow token in the
    /// top Route): when that node cannot be reached, the UA is
    /// temporarily unavailable (480) rather than the proxy broken (500).
    pub via_edge: bool,
    /// The Max-Breadth this branch carries (RFC 5393 §5.3): its share of
    /// the request's, set by the [`ResponseContext`] when it starts the
    /// branch.
    pub max_breadth: u32,
}

impl Target {
    pub fn new(uri: impl Into<String>) -> Self {
        Target {
            uri: uri.into(),
            q: 1000,
            route: Vec::new(),
            timeout: None,
            flow: None,
            via_edge: false,
            max_breadth: 0,
        }
    }
}

/// How far one request may fan out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForkLimits {
    /// RFC 5393 Max-Breadth: branches in parallel at most, and the sum of
    /// the Max-Breadth values the branches carry. A larger q-group is
    /// tried `breadth` targets at a time.
    pub breadth: u32,
    /// Branches per request in all (parallel, serial and a policy's
    /// failover): targets beyond it are dropped, and reported as
    /// [`ForkAction::Dropped`].
    pub max_branches: usize,
}

impl ForkLimits {
    /// RFC 5393 §5.3.1's default for a request without Max-Breadth.
    pub const DEFAULT_BREADTH: u32 = 60;

    /// No limit worth the name: for tests of other rules.
    pub const UNLIMITED: ForkLimits = ForkLimits {
        breadth: u32::MAX,
        max_branches: usize::MAX,
    };
}

/// Groups targets for serial forking: highest q first, equal q tried in parallel
/// (RFC 3261 §16.6 leaves the order to the proxy; this is what Kamailio's
/// `t_load_contacts` does too).
pub fn group_by_q(mut targets: Vec<Target>) -> Vec<Vec<Target>> {
    targets.sort_by_key(|t| std::cmp::Reverse(t.q));
    let mut groups: Vec<Vec<Target>> = Vec::new();
    for t in targets {
        match groups.last_mut() {
            Some(g) if g[0].q == t.q => g.push(t),
            _ => groups.push(vec![t]),
        }
    }
    groups
}

pub type BranchId = usize;

/// What the node must do next.
#[derive(Debug, PartialEq)]
pub enum ForkAction<M> {
    /// Create a client transaction for this target (§16.6).
    StartBranch(BranchId, Target),
    /// Send CANCEL on this branch (§16.10, §16.7 step 10).
    CancelBranch(BranchId),
    /// Forward this response upstream now (provisional > 100, or a 2xx).
    Forward(M),
    /// Targets left out because [`ForkLimits::max_branches`] was reached
    /// (the node counts them).
    Dropped(usize),
    /// Every branch ended without success and no targets remain: the node may
    /// ask the policy's branch-failure hook for more targets ([`ResponseContext::add_targets`])
    /// or conclude ([`ResponseContext::conclude`]).
    Exhausted,
    /// The final response to send upstream: the best one received, or a locally
    /// generated status when no branch produced one.
    Final(FinalResponse<M>),
}

/// The final answer of the context.
#[derive(Debug, PartialEq)]
pub enum FinalResponse<M> {
    Received(M),
    Local(u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BranchState {
    Trying,
    Proceeding,
    Done,
}

#[derive(Debug)]
struct Branch {
    state: BranchState,
    cancel_pending: bool,
    /// Cancelled because Timer C fired: its 487 means "no answer" (408).
    timed_out: bool,
}

/// Response context of one proxied request.
#[derive(Debug)]
pub struct ResponseContext<M> {
    invite: bool,
    groups: VecDeque<Vec<Target>>,
    branches: Vec<Branch>,
    best: Option<(u16, M)>,
    best_local: Option<u16>,
    /// A 2xx or 6xx was seen, or the final response was sent: no new branches.
    decided: bool,
    cancelled: bool,
    concluded: bool,
    actions: VecDeque<ForkAction<M>>,
    limits: ForkLimits,
}

impl<M> ResponseContext<M> {
    /// `invite` selects INVITE rules (2xx cancels the other branches; §16.7 step 10).
    pub fn new(invite: bool, targets: Vec<Target>, limits: ForkLimits) -> Self {
        ResponseContext {
            limits,
            invite,
            groups: group_by_q(targets).into(),
            branches: Vec::new(),
            best: None,
            best_local: None,
            decided: false,
            cancelled: false,
            concluded: false,
            actions: VecDeque::new(),
        }
    }

    /// Starts the first q-group. With no targets at all the answer is 480
    /// (§16.5: an empty target set; "Temporarily Unavailable" is what registrars use).
    /// RFC 5393 §5.3.3: a request whose Max-Breadth leaves nothing to
    /// fork with is 440 Max-Breadth Exceeded.
    pub fn start(&mut self) {
        if self.limits.breadth == 0 && !self.groups.is_empty() {
            self.best_local = Some(440);
            self.conclude();
        } else if !self.start_next_group() {
            self.best_local = Some(480);
            self.conclude();
        }
    }

    pub fn poll_action(&mut self) -> Option<ForkAction<M>> {
        self.actions.pop_front()
    }

    pub fn is_concluded(&self) -> bool {
        self.concluded
    }

    pub fn branch_count(&self) -> usize {
        self.branches.len()
    }

    /// A provisional response arrived on a branch.
    pub fn on_provisional(&mut self, branch: BranchId, status: u16, msg: M) {
        if !self.note_provisional(branch) {
            return;
        }
        // §16.7 step 5: forward provisionals other than 100 unless a final was sent.
        if status > 100 && !self.concluded {
            self.actions.push_back(ForkAction::Forward(msg));
        }
    }

    /// A provisional arrived that is not to be forwarded (a policy dropped
    /// it): the branch still counts as proceeding, so it can be cancelled.
    /// Returns whether the branch is still live.
    pub fn note_provisional(&mut self, branch: BranchId) -> bool {
        let Some(b) = self.branches.get_mut(branch) else {
            return false;
        };
        if b.state == BranchState::Done {
            return false;
        }
        b.state = BranchState::Proceeding;
        // §16.10: CANCEL may only be sent once a provisional has been received.
        if b.cancel_pending {
            b.cancel_pending = false;
            self.actions.push_back(ForkAction::CancelBranch(branch));
        }
        true
    }

    /// Whether CANCEL (ours or the caller's) was asked for this branch: a
    /// branch still resolving its next hop must then not be started.
    pub fn is_cancelled(&self, branch: BranchId) -> bool {
        self.cancelled
            || self.concluded
            || self
                .branches
                .get(branch)
                .is_some_and(|b| b.cancel_pending || b.timed_out)
    }

    /// Whether the branch has seen a provisional response (Timer C rules).
    pub fn is_proceeding(&self, branch: BranchId) -> bool {
        self.branches
            .get(branch)
            .is_some_and(|b| b.state == BranchState::Proceeding)
    }

    /// A final response arrived on a branch.
    pub fn on_final(&mut self, branch: BranchId, status: u16, msg: M) {
        let Some(b) = self.branches.get_mut(branch) else {
            return;
        };
        if b.state == BranchState::Done {
            // §16.7 step 5: every 2xx to an INVITE goes upstream, also a
            // retransmission or a second 2xx forked further downstream.
            if self.invite && (200..300).contains(&status) {
                self.actions.push_back(ForkAction::Forward(msg));
            }
            return;
        }
        if b.timed_out && status == 487 {
            // §16.8: the caller hears "no answer" (408), as from Kamailio's
            // fr_inv_timer, not the 487 our own CANCEL provoked.
            self.local_failure(branch, 408);
            return;
        }
        b.state = BranchState::Done;
        b.cancel_pending = false;
        match status {
            200..=299 => {
                // §16.7 step 5: every 2xx is forwarded at once; for INVITE the
                // first one ends the forking and the rest are cancelled.
                self.actions.push_back(ForkAction::Forward(msg));
                if !self.concluded {
                    self.decided = true;
                    self.concluded = true;
                    self.groups.clear();
                    if self.invite {
                        self.cancel_pending_branches();
                    }
                }
                return;
            }
            600..=699 => {
                // §16.7 step 4 (and Kamailio/OpenSIPS practice): a 6xx ends
                // the search; pending branches are cancelled.
                self.decided = true;
                self.groups.clear();
                self.keep_best(status, msg);
                self.cancel_pending_branches();
            }
            _ => self.keep_best(status, msg),
        }
        self.after_branch_done();
    }

    /// The branch's client transaction timed out (Timer B/F): a local 408 (§16.8).
    pub fn on_timeout(&mut self, branch: BranchId) {
        self.local_failure(branch, 408);
    }

    /// The branch could not be sent (transport error or forbidden next hop):
    /// treated as a 503 (§16.9), which §16.7 step 6 turns into 500 upstream.
    pub fn on_transport_error(&mut self, branch: BranchId) {
        self.local_failure(branch, 503);
    }

    /// The upstream client cancelled (§16.10): cancel every pending branch and
    /// start no new ones. The 487s that come back produce the final response.
    pub fn cancel(&mut self) {
        self.cancelled = true;
        self.groups.clear();
        self.cancel_pending_branches();
        // Branches that never reached the UAS cannot answer: conclude once the
        // remaining ones finish (or now, if there are none).
        self.best_local.get_or_insert(487);
        self.after_branch_done();
    }

    /// Timer C fired for an INVITE branch (§16.8): cancel it; its 487 ends it.
    pub fn on_timer_c(&mut self, branch: BranchId) {
        if let Some(b) = self.branches.get_mut(branch)
            && b.state != BranchState::Done
        {
            b.timed_out = true;
            self.request_cancel(branch);
        }
    }

    /// Answer to [`ForkAction::Exhausted`]: fork to new targets (serial failover
    /// chosen by a policy) instead of concluding.
    pub fn add_targets(&mut self, targets: Vec<Target>) {
        if self.concluded || self.decided || self.cancelled || targets.is_empty() {
            self.conclude();
            return;
        }
        self.groups.extend(group_by_q(targets));
        if !self.start_next_group() {
            self.conclude();
        }
    }

    /// Best received or local status so far (what `conclude` would send).
    pub fn best_status(&self) -> u16 {
        match (&self.best, self.best_local) {
            (Some((s, _)), _) => *s,
            (None, Some(l)) => l,
            (None, None) => 408,
        }
    }

    /// The best final response received so far, if any branch produced one.
    pub fn best_response(&self) -> Option<&M> {
        self.best.as_ref().map(|(_, m)| m)
    }

    /// Answer to [`ForkAction::Exhausted`]: send the best response (§16.7 step 6).
    pub fn conclude(&mut self) {
        if self.concluded {
            return;
        }
        self.concluded = true;
        let fin = match self.best.take() {
            Some((_, m)) => FinalResponse::Received(m),
            None => FinalResponse::Local(self.best_local.unwrap_or(408)),
        };
        self.actions.push_back(ForkAction::Final(fin));
    }

    /// A branch failed before reaching anyone, with a locally chosen status
    /// (e.g. 403 for a next hop outside the egress allowlist).
    pub fn on_local_failure(&mut self, branch: BranchId, status: u16) {
        self.local_failure(branch, status);
    }

    /// Answer to [`ForkAction::Exhausted`]: conclude with a status of the
    /// policy's choosing instead of the best response received.
    pub fn conclude_with(&mut self, status: u16) {
        self.best = None;
        self.best_local = Some(status);
        self.conclude();
    }

    fn local_failure(&mut self, branch: BranchId, status: u16) {
        let Some(b) = self.branches.get_mut(branch) else {
            return;
        };
        if b.state == BranchState::Done {
            return;
        }
        b.state = BranchState::Done;
        b.cancel_pending = false;
        if self.best.is_none() {
            self.best_local = Some(match self.best_local {
                Some(prev) if rank(prev) <= rank(status) => prev,
                _ => status,
            });
        }
        self.after_branch_done();
    }

    fn keep_best(&mut self, status: u16, msg: M) {
        let better = match &self.best {
            None => true,
            Some((cur, _)) => rank(status) < rank(*cur),
        };
        if better {
            self.best = Some((status, msg));
        }
    }

    fn after_branch_done(&mut self) {
        if self.concluded || self.branches.iter().any(|b| b.state != BranchState::Done) {
            return;
        }
        if !self.decided && !self.cancelled && self.start_next_group() {
            return;
        }
        if self.decided || self.cancelled {
            self.conclude();
        } else {
            self.actions.push_back(ForkAction::Exhausted);
        }
    }

    fn start_next_group(&mut self) -> bool {
        let room = self.limits.max_branches.saturating_sub(self.branches.len());
        if room == 0 {
            let dropped: usize = self.groups.drain(..).map(|g| g.len()).sum();
            if dropped > 0 {
                self.actions.push_back(ForkAction::Dropped(dropped));
            }
            return false;
        }
        let Some(mut group) = self.groups.pop_front() else {
            return false;
        };
        // At most `breadth` at a time: the rest of the group comes next.
        let parallel = room.min(usize::try_from(self.limits.breadth).unwrap_or(usize::MAX));
        if group.len() > parallel {
            let rest = group.split_off(parallel);
            self.groups.push_front(rest);
        }
        // RFC 5393 §5.3.3: the branches' Max-Breadths add up to at most
        // the request's, and each is at least 1.
        let share = self.limits.breadth / group.len() as u32;
        let extra = (self.limits.breadth % group.len() as u32) as usize;
        for (i, mut target) in group.into_iter().enumerate() {
            target.max_breadth = share + u32::from(i < extra);
            let id = self.branches.len();
            self.branches.push(Branch {
                state: BranchState::Trying,
                cancel_pending: false,
                timed_out: false,
            });
            self.actions.push_back(ForkAction::StartBranch(id, target));
        }
        true
    }

    fn cancel_pending_branches(&mut self) {
        for id in 0..self.branches.len() {
            if self.branches[id].state != BranchState::Done {
                self.request_cancel(id);
            }
        }
    }

    fn request_cancel(&mut self, id: BranchId) {
        if !self.invite {
            // Non-INVITE transactions cannot be cancelled meaningfully (§9.1).
            return;
        }
        let b = &mut self.branches[id];
        match b.state {
            BranchState::Proceeding => self.actions.push_back(ForkAction::CancelBranch(id)),
            BranchState::Trying => b.cancel_pending = true,
            BranchState::Done => {}
        }
    }
}

/// Ordering of final responses for §16.7 step 6: 6xx beats everything, then
/// the lowest class; within 4xx prefer the ones that tell the UAC how to
/// retry (401/407/415/420/484) as the RFC suggests. Lower rank wins.
fn rank(status: u16) -> u32 {
    let class = status / 100;
    let class_rank = match class {
        6 => 0,
        3 => 1,
        4 => 2,
        5 => 3,
        _ => 4,
    };
    let preferred = matches!(status, 401 | 407 | 415 | 420 | 484);
    // 408 from a local timeout is the least informative 4xx.
    let within = if preferred {
        0
    } else if status == 408 {
        2
    } else {
        1
    };
    class_rank * 10 + within
}

#[cfg(test)]
#[path = "fork_tests.rs"]
mod tests;
