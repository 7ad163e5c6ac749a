use super::*;

fn t(uri: &str, q: u16) -> Target {
    Target {
        q,
        ..Target::new(uri)
    }
}

/// The actions, with the Max-Breadth shares left out (the tests of other
/// rules run unlimited); [`drain_raw`] keeps them.
fn drain(ctx: &mut ResponseContext<&'static str>) -> Vec<ForkAction<&'static str>> {
    drain_raw(ctx)
        .into_iter()
        .map(|a| match a {
            ForkAction::StartBranch(id, target) => ForkAction::StartBranch(
                id,
                Target {
                    max_breadth: 0,
                    ..target
                },
            ),
            other => other,
        })
        .collect()
}

fn drain_raw(ctx: &mut ResponseContext<&'static str>) -> Vec<ForkAction<&'static str>> {
    std::iter::from_fn(|| ctx.poll_action()).collect()
}

/// The branches started, as (id, uri, Max-Breadth).
fn started(actions: &[ForkAction<&'static str>]) -> Vec<(BranchId, String, u32)> {
    actions
        .iter()
        .filter_map(|a| match a {
            ForkAction::StartBranch(id, t) => Some((*id, t.uri.clone(), t.max_breadth)),
            _ => None,
        })
        .collect()
}

fn same_q(uris: &[&str]) -> Vec<Target> {
    uris.iter().map(|u| t(u, 1000)).collect()
}

#[test]
fn max_breadth_is_shared_among_parallel_branches() {
    let limits = ForkLimits {
        breadth: 5,
        max_branches: 10,
    };
    let mut ctx = ResponseContext::new(true, same_q(&["sip:a", "sip:b"]), limits);
    ctx.start();
    assert_eq!(
        started(&drain_raw(&mut ctx)),
        vec![(0, "sip:a".into(), 3), (1, "sip:b".into(), 2)]
    );
}

#[test]
fn a_group_wider_than_max_breadth_is_tried_breadth_at_a_time() {
    let limits = ForkLimits {
        breadth: 2,
        max_branches: 10,
    };
    let mut ctx = ResponseContext::new(true, same_q(&["sip:a", "sip:b", "sip:c"]), limits);
    ctx.start();
    assert_eq!(
        started(&drain_raw(&mut ctx)),
        vec![(0, "sip:a".into(), 1), (1, "sip:b".into(), 1)]
    );
    ctx.on_final(0, 486, "486a");
    assert!(drain_raw(&mut ctx).is_empty(), "b still rings");
    ctx.on_final(1, 486, "486b");
    assert_eq!(started(&drain_raw(&mut ctx)), vec![(2, "sip:c".into(), 2)]);
}

#[test]
fn max_branches_drops_the_rest_and_says_how_many() {
    let limits = ForkLimits {
        breadth: 60,
        max_branches: 2,
    };
    let mut ctx = ResponseContext::new(
        true,
        vec![
            t("sip:a", 900),
            t("sip:b", 900),
            t("sip:c", 500),
            t("sip:d", 100),
        ],
        limits,
    );
    ctx.start();
    assert_eq!(started(&drain_raw(&mut ctx)).len(), 2);
    ctx.on_final(0, 486, "486a");
    ctx.on_final(1, 486, "486b");
    assert_eq!(
        drain_raw(&mut ctx),
        vec![ForkAction::Dropped(2), ForkAction::Exhausted]
    );
    // A policy's failover targets are held to the same cap.
    ctx.add_targets(same_q(&["sip:e"]));
    assert_eq!(
        drain_raw(&mut ctx),
        vec![
            ForkAction::Dropped(1),
            ForkAction::Final(FinalResponse::Received("486a"))
        ]
    );
}

#[test]
fn no_max_breadth_left_is_440() {
    let limits = ForkLimits {
        breadth: 0,
        max_branches: 10,
    };
    let mut ctx = ResponseContext::new(true, same_q(&["sip:a"]), limits);
    ctx.start();
    assert_eq!(
        drain_raw(&mut ctx),
        vec![ForkAction::Final(FinalResponse::Local(440))]
    );
}

#[test]
fn empty_target_set_is_480() {
    let mut ctx = ResponseContext::<&str>::new(true, vec![], ForkLimits::UNLIMITED);
    ctx.start();
    assert_eq!(
        drain(&mut ctx),
        vec![ForkAction::Final(FinalResponse::Local(480))]
    );
}

#[test]
fn equal_q_forks_in_parallel_and_first_2xx_cancels_the_rest() {
    let mut ctx = ResponseContext::new(
        true,
        vec![t("sip:a", 500), t("sip:b", 500)],
        ForkLimits::UNLIMITED,
    );
    ctx.start();
    assert_eq!(
        drain(&mut ctx),
        vec![
            ForkAction::StartBranch(0, t("sip:a", 500)),
            ForkAction::StartBranch(1, t("sip:b", 500)),
        ]
    );
    ctx.on_provisional(0, 180, "180a");
    ctx.on_provisional(1, 180, "180b");
    assert_eq!(
        drain(&mut ctx),
        vec![ForkAction::Forward("180a"), ForkAction::Forward("180b")]
    );
    ctx.on_final(1, 200, "200b");
    assert_eq!(
        drain(&mut ctx),
        vec![ForkAction::Forward("200b"), ForkAction::CancelBranch(0)]
    );
    // The cancelled branch's 487 is absorbed: the 2xx was the final answer.
    ctx.on_final(0, 487, "487a");
    assert!(drain(&mut ctx).is_empty());
    assert!(ctx.is_concluded());
}

#[test]
fn busy_on_highest_q_moves_to_next_group() {
    let mut ctx = ResponseContext::new(
        true,
        vec![t("sip:low", 100), t("sip:high", 900)],
        ForkLimits::UNLIMITED,
    );
    ctx.start();
    assert_eq!(
        drain(&mut ctx),
        vec![ForkAction::StartBranch(0, t("sip:high", 900))]
    );
    ctx.on_final(0, 486, "486");
    assert_eq!(
        drain(&mut ctx),
        vec![ForkAction::StartBranch(1, t("sip:low", 100))]
    );
    ctx.on_final(1, 200, "200");
    assert_eq!(drain(&mut ctx), vec![ForkAction::Forward("200")]);
}

#[test]
fn exhausted_then_best_response_wins() {
    let mut ctx = ResponseContext::new(
        true,
        vec![t("sip:a", 1000), t("sip:b", 1000)],
        ForkLimits::UNLIMITED,
    );
    ctx.start();
    drain(&mut ctx);
    ctx.on_final(0, 503, "503");
    assert!(drain(&mut ctx).is_empty(), "waits for the other branch");
    ctx.on_final(1, 404, "404");
    assert_eq!(drain(&mut ctx), vec![ForkAction::Exhausted]);
    ctx.conclude();
    assert_eq!(
        drain(&mut ctx),
        vec![ForkAction::Final(FinalResponse::Received("404"))]
    );
}

#[test]
fn policy_can_add_failover_targets_after_exhaustion() {
    let mut ctx = ResponseContext::new(true, vec![t("sip:phone", 1000)], ForkLimits::UNLIMITED);
    ctx.start();
    drain(&mut ctx);
    ctx.on_final(0, 486, "486");
    assert_eq!(drain(&mut ctx), vec![ForkAction::Exhausted]);
    ctx.add_targets(vec![t("sip:voicemail", 1000)]);
    assert_eq!(
        drain(&mut ctx),
        vec![ForkAction::StartBranch(1, t("sip:voicemail", 1000))]
    );
    ctx.on_final(1, 200, "200vm");
    assert_eq!(drain(&mut ctx), vec![ForkAction::Forward("200vm")]);
}

#[test]
fn six_xx_cancels_pending_and_stops_serial_forking() {
    let mut ctx = ResponseContext::new(
        true,
        vec![t("sip:a", 1000), t("sip:b", 1000), t("sip:later", 10)],
        ForkLimits::UNLIMITED,
    );
    ctx.start();
    drain(&mut ctx);
    ctx.on_provisional(1, 180, "180b");
    drain(&mut ctx);
    ctx.on_final(0, 603, "603");
    assert_eq!(drain(&mut ctx), vec![ForkAction::CancelBranch(1)]);
    ctx.on_final(1, 487, "487");
    assert_eq!(
        drain(&mut ctx),
        vec![ForkAction::Final(FinalResponse::Received("603"))]
    );
}

#[test]
fn timeout_without_any_response_is_408() {
    let mut ctx = ResponseContext::<&str>::new(true, vec![t("sip:a", 1000)], ForkLimits::UNLIMITED);
    ctx.start();
    drain(&mut ctx);
    ctx.on_timeout(0);
    assert_eq!(drain(&mut ctx), vec![ForkAction::Exhausted]);
    ctx.conclude();
    assert_eq!(
        drain(&mut ctx),
        vec![ForkAction::Final(FinalResponse::Local(408))]
    );
}

#[test]
fn received_response_beats_local_timeout() {
    let mut ctx = ResponseContext::new(
        true,
        vec![t("sip:a", 1000), t("sip:b", 1000)],
        ForkLimits::UNLIMITED,
    );
    ctx.start();
    drain(&mut ctx);
    ctx.on_timeout(0);
    ctx.on_final(1, 480, "480");
    assert_eq!(drain(&mut ctx), vec![ForkAction::Exhausted]);
    ctx.conclude();
    assert_eq!(
        drain(&mut ctx),
        vec![ForkAction::Final(FinalResponse::Received("480"))]
    );
}

#[test]
fn cancel_waits_for_a_provisional_before_cancelling_a_branch() {
    let mut ctx = ResponseContext::new(true, vec![t("sip:a", 1000)], ForkLimits::UNLIMITED);
    ctx.start();
    drain(&mut ctx);
    ctx.cancel();
    assert!(
        drain(&mut ctx).is_empty(),
        "no CANCEL before a provisional (§16.10)"
    );
    ctx.on_provisional(0, 100, "100");
    assert_eq!(drain(&mut ctx), vec![ForkAction::CancelBranch(0)]);
    ctx.on_final(0, 487, "487");
    assert_eq!(
        drain(&mut ctx),
        vec![ForkAction::Final(FinalResponse::Received("487"))]
    );
}

#[test]
fn timer_c_cancels_a_ringing_branch_and_serial_forking_continues() {
    let mut ctx = ResponseContext::new(
        true,
        vec![t("sip:a", 1000), t("sip:b", 10)],
        ForkLimits::UNLIMITED,
    );
    ctx.start();
    drain(&mut ctx);
    ctx.on_provisional(0, 180, "180");
    drain(&mut ctx);
    ctx.on_timer_c(0);
    assert_eq!(drain(&mut ctx), vec![ForkAction::CancelBranch(0)]);
    ctx.on_final(0, 487, "487");
    assert_eq!(
        drain(&mut ctx),
        vec![ForkAction::StartBranch(1, t("sip:b", 10))]
    );
    ctx.on_final(1, 487, "487 from b");
    ctx.conclude();
    // The first branch's 487 was our own doing: it counts as 408, so the
    // second branch's real 487 wins.
    assert_eq!(
        drain(&mut ctx),
        vec![
            ForkAction::Exhausted,
            ForkAction::Final(FinalResponse::Received("487 from b"))
        ]
    );
}

#[test]
fn ringing_without_answer_until_timer_c_is_408() {
    let mut ctx = ResponseContext::new(true, vec![t("sip:a", 1000)], ForkLimits::UNLIMITED);
    ctx.start();
    drain(&mut ctx);
    ctx.on_provisional(0, 180, "180");
    drain(&mut ctx);
    ctx.on_timer_c(0);
    assert_eq!(drain(&mut ctx), vec![ForkAction::CancelBranch(0)]);
    ctx.on_final(0, 487, "487");
    assert_eq!(drain(&mut ctx), vec![ForkAction::Exhausted]);
    ctx.conclude();
    assert_eq!(
        drain(&mut ctx),
        vec![ForkAction::Final(FinalResponse::Local(408))]
    );
}

#[test]
fn non_invite_is_never_cancelled() {
    let mut ctx = ResponseContext::new(
        false,
        vec![t("sip:a", 1000), t("sip:b", 1000)],
        ForkLimits::UNLIMITED,
    );
    ctx.start();
    drain(&mut ctx);
    ctx.on_provisional(1, 183, "183");
    drain(&mut ctx);
    ctx.on_final(0, 200, "200");
    assert_eq!(drain(&mut ctx), vec![ForkAction::Forward("200")]);
}

#[test]
fn ranking_prefers_6xx_then_lowest_class() {
    assert!(rank(603) < rank(302));
    assert!(rank(302) < rank(486));
    assert!(rank(401) < rank(486));
    assert!(rank(486) < rank(408));
    assert!(rank(486) < rank(500));
}

#[test]
fn retransmitted_and_extra_2xx_on_a_finished_branch_are_still_forwarded() {
    let mut ctx = ResponseContext::new(true, vec![t("sip:a", 1000)], ForkLimits::UNLIMITED);
    ctx.start();
    drain(&mut ctx);
    ctx.on_final(0, 200, "200");
    assert_eq!(drain(&mut ctx), vec![ForkAction::Forward("200")]);
    ctx.on_final(0, 200, "200 again");
    assert_eq!(drain(&mut ctx), vec![ForkAction::Forward("200 again")]);
    ctx.on_final(0, 486, "486 late");
    assert!(drain(&mut ctx).is_empty());
}

#[test]
fn a_silenced_provisional_still_allows_cancel() {
    let mut ctx = ResponseContext::new(true, vec![t("sip:a", 1000)], ForkLimits::UNLIMITED);
    ctx.start();
    drain(&mut ctx);
    assert!(ctx.note_provisional(0));
    assert!(drain(&mut ctx).is_empty(), "nothing forwarded");
    ctx.cancel();
    assert_eq!(drain(&mut ctx), vec![ForkAction::CancelBranch(0)]);
}
