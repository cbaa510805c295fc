//! Asking a replica group: either its members one after another until one answers (failover),
//! or all at once, keeping every answer that arrives in time (for gap filling). A member
//! whose twin answered is no failure of the group.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::time::Instant;

use super::{ApiRequest, ApiResponse, Backend, BackendError, ReplicaGroup};

/// After the first member answers, how long the others may still take: the first answer's
/// own time, but at least this.
const MIN_FILL_GRACE: Duration = Duration::from_millis(500);

/// A member that did not answer, and why.
#[derive(Debug, Clone)]
pub struct MemberFailure {
    pub backend: String,
    pub error: BackendError,
}

impl MemberFailure {
    pub fn warning(&self) -> String {
        format!("backend {:?}: {}", self.backend, self.error)
    }
}

/// What a replica group said.
pub enum GroupOutcome {
    /// At least one member answered; answers in member order (healthiest first).
    Answered {
        answers: Vec<(Arc<Backend>, ApiResponse)>,
        failures: Vec<MemberFailure>,
    },
    /// No member answered.
    Failed(Vec<MemberFailure>),
    /// A member rejected the query itself; the client must see this error.
    Rejected(BackendError),
}

/// Tries the members in order; the first answer wins. A member that fails hands over to
/// the next at once; one that has not answered after `hedge_after` gets the next member asked
/// beside it (a hung replica then costs `hedge_after`, not its whole timeout). The slower
/// request is dropped when the other answers, which cancels it on the backend.
pub async fn first_answer(
    group: &ReplicaGroup,
    req: &ApiRequest,
    hedge_after: Duration,
) -> GroupOutcome {
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut members = group.members.iter();
    let mut asked: Vec<&Arc<Backend>> = Vec::new();
    let mut pending = FuturesUnordered::new();
    let ask = |member: &Arc<Backend>| {
        let member = member.clone();
        let req = req.clone();
        async move {
            let result = member.call(req).await;
            (member, result)
        }
    };
    if let Some(first) = members.next() {
        asked.push(first);
        pending.push(ask(first));
    }
    let mut hedge = Box::pin(tokio::time::sleep_until(after(hedge_after)));
    loop {
        let next = tokio::select! {
            next = pending.next() => next,
            _ = &mut hedge, if members.len() > 0 => {
                if let Some(member) = members.next() {
                    asked.push(member);
                    pending.push(ask(member));
                }
                hedge.as_mut().reset(after(hedge_after));
                continue;
            }
        };
        let Some((member, result)) = next else {
            return GroupOutcome::Failed(failures);
        };
        match result {
            Ok(resp) => {
                // Members asked before it and still silent were hedged around.
                for slow in asked.iter().filter(|b| !Arc::ptr_eq(b, &member)) {
                    if !failures.iter().any(|f| f.backend == slow.name()) {
                        slow.mark_unresponsive(started.elapsed());
                    }
                }
                return GroupOutcome::Answered {
                    answers: vec![(member, resp)],
                    failures,
                };
            }
            Err(e) if e.is_query_error() => return GroupOutcome::Rejected(e),
            Err(e) => {
                failures.push(MemberFailure {
                    backend: member.name().to_string(),
                    error: e,
                });
                if let Some(next_member) = members.next() {
                    asked.push(next_member);
                    pending.push(ask(next_member));
                    hedge.as_mut().reset(after(hedge_after));
                }
            }
        }
    }
}

/// `d` from now, or a year when that overflows (`Duration::MAX` means never).
fn after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

/// Asks every member at once. Once one has answered, the others get a grace period (as long
/// as the first took, at least [`MIN_FILL_GRACE`]) so that a hung replica delays the answer
/// boundedly, not by its whole timeout.
pub async fn all_answers(group: &ReplicaGroup, req: &ApiRequest) -> GroupOutcome {
    if group.members.len() == 1 {
        return first_answer(group, req, Duration::MAX).await;
    }
    let started = Instant::now();
    let mut pending: FuturesUnordered<_> = group
        .members
        .iter()
        .enumerate()
        .map(|(i, member)| {
            let req = req.clone();
            async move { (i, member.call(req).await) }
        })
        .collect();
    let mut answers: Vec<(usize, ApiResponse)> = Vec::new();
    let mut failures = Vec::new();
    let mut grace_until: Option<Instant> = None;
    loop {
        let next = match grace_until {
            None => pending.next().await,
            Some(until) => match tokio::time::timeout_at(until, pending.next()).await {
                Ok(next) => next,
                Err(_) => {
                    // Whoever has not answered by now is left behind.
                    for (i, member) in group.members.iter().enumerate() {
                        let answered = answers.iter().any(|(j, _)| *j == i);
                        let failed = failures
                            .iter()
                            .any(|f: &MemberFailure| f.backend == member.name());
                        if !answered && !failed {
                            member.mark_unresponsive(started.elapsed());
                        }
                    }
                    break;
                }
            },
        };
        let Some((i, result)) = next else { break };
        let member = &group.members[i];
        match result {
            Ok(resp) => {
                if grace_until.is_none() {
                    grace_until = Some(Instant::now() + started.elapsed().max(MIN_FILL_GRACE));
                }
                answers.push((i, resp));
            }
            Err(e) if e.is_query_error() => return GroupOutcome::Rejected(e),
            Err(e) => failures.push(MemberFailure {
                backend: member.name().to_string(),
                error: e,
            }),
        }
    }
    if answers.is_empty() {
        return GroupOutcome::Failed(failures);
    }
    answers.sort_by_key(|(i, _)| *i);
    GroupOutcome::Answered {
        answers: answers
            .into_iter()
            .map(|(i, resp)| (group.members[i].clone(), resp))
            .collect(),
        failures,
    }
}
