//! Deciding what to do about slots that came due while nothing was watching.
//!
//! After downtime (or a late wake-up) the scheduler asks [`plan_catch_up`] about every slot in
//! `(last, now]`. The answer says which slots to start now and which to record as missed, and
//! why. It is pure: the same inputs always give the same plan, and it never looks at a clock.
//!
//! The work is bounded whatever the downtime: only the slots that will run are listed one by
//! one; missed slots are reported as groups with their first and last slot and a count that
//! stops at [`COUNT_LIMIT`]. A job firing every second that was down for a year costs a few
//! hundred schedule steps, not thirty million.

use std::collections::VecDeque;

use chrono::{DateTime, TimeDelta, Utc};

use super::Schedule;

/// How long after its slot a start still counts as on time rather than as catching up.
///
/// The scheduler always wakes a little after a slot; under [`MissedPolicy::Skip`] a slot at
/// most this old is the one it woke for and still runs.
pub const ON_TIME_GRACE: TimeDelta = TimeDelta::seconds(60);

/// Missed groups are counted exactly up to this many slots, and reported as "at least" beyond.
pub const COUNT_LIMIT: u64 = 10_000;

/// What to do with slots that passed while the runner was not running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MissedPolicy {
    /// Run only a slot that is on time (at most [`ON_TIME_GRACE`] old); everything older is
    /// missed.
    Skip,
    /// Run the newest slot however old (within the starting deadline); older ones are missed.
    Latest,
    /// Run the newest `max` slots, oldest first (within the starting deadline); older ones are
    /// missed. `max` bounds both the backlog and the work to find it.
    All {
        /// The most slots to run in one catch-up.
        max: usize,
    },
}

/// Why slots were not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MissedReason {
    /// The slot is older than the starting deadline allows.
    PastDeadline,
    /// The policy does not run it (it is older than the slots that do run).
    Policy,
}

/// How many slots a missed group holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotCount {
    /// Exactly this many.
    Exact(u64),
    /// At least this many; counting stopped at [`COUNT_LIMIT`].
    AtLeast(u64),
}

/// A run of consecutive missed slots with one reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MissedSlots {
    /// Why these slots do not run.
    pub reason: MissedReason,
    /// The oldest slot in the group.
    pub first: DateTime<Utc>,
    /// The newest slot in the group.
    pub last: DateTime<Utc>,
    /// How many slots the group holds.
    pub count: SlotCount,
}

/// One decision of a catch-up plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Start a run now for this logical slot time.
    Run(DateTime<Utc>),
    /// Record these slots as missed.
    Missed(MissedSlots),
}

/// Decides about every slot of `schedule` in `(last, now]`, oldest first: missed groups (past
/// the deadline, then dropped by the policy) followed by the runs.
///
/// `last` is the instant through which slots have been handled; with `None` (a job with no
/// history) there is nothing to catch up and the plan is empty. A slot is past the
/// `starting_deadline` when it is older than `now - starting_deadline`; a negative deadline
/// counts as zero.
pub fn plan_catch_up(
    schedule: &Schedule,
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    policy: MissedPolicy,
    starting_deadline: Option<TimeDelta>,
) -> Vec<Decision> {
    let Some(last) = last else { return Vec::new() };
    if now <= last {
        return Vec::new();
    }

    // Slots before `deadline_cut` are past the deadline; slots before `run_cut` may not run.
    // A deadline reaching before the earliest representable time cuts nothing.
    let deadline_cut =
        starting_deadline.and_then(|d| now.checked_sub_signed(d.max(TimeDelta::zero())));
    let skip_cut = (policy == MissedPolicy::Skip).then(|| now - ON_TIME_GRACE);
    let run_cut = deadline_cut.max(skip_cut);
    let keep = match policy {
        MissedPolicy::Skip | MissedPolicy::Latest => 1,
        MissedPolicy::All { max } => max,
    };

    // The newest `keep` slots, less those before the cut, are exactly the newest `keep`
    // slots at or after the cut: anything older than a dropped slot is dropped too.
    let runs: Vec<DateTime<Utc>> = newest(schedule, last, now, keep)
        .into_iter()
        .filter(|slot| run_cut.is_none_or(|cut| *slot >= cut))
        .collect();

    let mut plan = Vec::new();
    // Bounds are inclusive at the top; one nanosecond below an instant excludes it.
    let before = |t: DateTime<Utc>| t - TimeDelta::nanoseconds(1);
    let mut lower = last;
    if let Some(cut) = deadline_cut.filter(|cut| *cut > last) {
        let upper = before(cut).min(now);
        plan.extend(group(schedule, MissedReason::PastDeadline, lower, upper));
        lower = upper;
    }
    let upper = runs.first().map_or(now, |oldest| before(*oldest));
    if upper > lower {
        plan.extend(group(schedule, MissedReason::Policy, lower, upper));
    }
    plan.extend(runs.into_iter().map(Decision::Run));
    plan
}

/// The missed group of all slots in `(lower, upper]`, if there are any.
fn group(
    schedule: &Schedule,
    reason: MissedReason,
    lower: DateTime<Utc>,
    upper: DateTime<Utc>,
) -> Option<Decision> {
    let first = schedule.next_after(lower).filter(|t| *t <= upper)?;
    let last = *newest(schedule, lower, upper, 1).last()?;
    let mut count = 0u64;
    for _ in schedule.iter_after(lower).take_while(|t| *t <= upper) {
        if count == COUNT_LIMIT {
            return Some(Decision::Missed(MissedSlots {
                reason,
                first,
                last,
                count: SlotCount::AtLeast(COUNT_LIMIT),
            }));
        }
        count += 1;
    }
    Some(Decision::Missed(MissedSlots {
        reason,
        first,
        last,
        count: SlotCount::Exact(count),
    }))
}

/// The newest `n` slots in `(lower, upper]`, oldest first.
///
/// Schedules only walk forward, so this looks back through windows that double in width
/// until one holds `n` slots or reaches `lower`; the work is proportional to the slots in
/// the last window, not to everything since `lower`.
fn newest(
    schedule: &Schedule,
    lower: DateTime<Utc>,
    upper: DateTime<Utc>,
    n: usize,
) -> Vec<DateTime<Utc>> {
    if n == 0 || upper <= lower {
        return Vec::new();
    }
    let mut width = TimeDelta::seconds(1);
    loop {
        let start = upper
            .checked_sub_signed(width)
            .map_or(lower, |s| s.max(lower));
        let mut kept = VecDeque::new();
        for slot in schedule.iter_after(start).take_while(|t| *t <= upper) {
            if kept.len() == n {
                kept.pop_front();
            }
            kept.push_back(slot);
        }
        if kept.len() == n || start == lower {
            return kept.into();
        }
        width = width.checked_mul(2).unwrap_or(TimeDelta::MAX);
    }
}
