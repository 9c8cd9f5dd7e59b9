//! A hierarchical hashed timer wheel with 1 ms resolution, in the style of the
//! Linux kernel's and tokio's.
//!
//! # Algorithm
//!
//! Time is counted in ticks of 1 ms since `start`. Deadlines are rounded *up*
//! to a tick and the `now` given to [`Wheel::poll_expired`] is rounded *down*,
//! so a timer never fires before its deadline, and fires at most one tick late
//! when polled at or after it.
//!
//! There are 6 levels of 64 slots. A slot on level `i` spans `64^i` ticks, so
//! level `i` spans `64^(i+1)` ticks and the whole wheel `2^36` ms (about 2.2
//! years). A pending timer due at tick `when` is filed relative to `elapsed`
//! (the last tick the wheel has processed) on the level of the most significant
//! base-64 digit in which `when` and `elapsed` differ, in slot
//! `(when >> 6 * level) % 64`. Hence every timer on a level lies in the same
//! window of that level as `elapsed`, in a slot strictly after the current one,
//! and everything on a lower level is due before the start of any occupied
//! slot on a higher level. The next slot that needs attention is therefore the
//! first occupied slot of the lowest non-empty level, found with one
//! `trailing_zeros` on that level's occupancy bitmap; its start time is
//! [`Wheel::next_deadline`].
//!
//! [`Wheel::poll_expired`] processes those slots in time order until the next
//! one starts after `now`, then jumps `elapsed` straight to `now`, so idle gaps
//! cost nothing. Processing a slot at its start fires the timers due by then
//! and re-files ("cascades") the others relative to the new `elapsed`, which
//! puts them on a lower level, so a timer moves at most once per level.
//!
//! Deadlines more than the wheel's span away cannot be filed exactly. They are
//! clamped onto the top level, in the slot given by their own digit, so the
//! top level behaves as a ring: when the slot comes round the timer is not due
//! yet and is simply filed again, until it comes within range. It is looked at
//! once every 2^36 ms at most and, because firing always compares the real
//! deadline, never fires early.
//!
//! Deadlines at or before `elapsed` go on a separate ready list, which the next
//! poll drains first.
//!
//! Timers live in a slab. Every slot, and the ready list, is an intrusive
//! doubly-linked list of slab indices, which makes insertion and removal O(1)
//! without allocation once the slab has grown. Keys carry a generation that is
//! bumped whenever their entry is freed, so a stale key never touches a reused
//! entry (short of 2^32 reuses of the same entry while the key is held).

use std::fmt;
use std::time::{Duration, Instant};

/// Number of levels in the hierarchy.
const LEVELS: usize = 6;
/// log2 of the number of slots per level.
const SLOT_BITS: u32 = 6;
/// Number of slots per level.
const SLOTS: usize = 1 << SLOT_BITS;
/// Mask selecting one base-64 digit of a tick.
const SLOT_MASK: u64 = SLOTS as u64 - 1;
/// Ticks spanned by the whole wheel, i.e. by the top level.
const WHEEL_SPAN: u64 = 1 << (SLOT_BITS as usize * LEVELS);
/// Index of the ready list in `Wheel::heads`, after the wheel's slots.
const READY: usize = LEVELS * SLOTS;
/// Number of lists in `Wheel::heads`.
const LISTS: usize = READY + 1;
/// Null link in the intrusive lists.
const NONE: u32 = u32::MAX;
/// `Node::list` of an entry that is on the free list.
const FREE: u16 = u16::MAX;

/// A key returned by [`Wheel::insert`], used to cancel or move the timer.
///
/// It holds the slab index and that entry's generation, so a stale key never
/// removes a timer that has since reused the entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimerKey {
    /// Index of the timer's entry in the slab.
    index: u32,
    /// Generation of that entry when the timer was inserted.
    generation: u32,
}

/// One slab entry: a pending timer, or a link in the free list.
struct Node<T> {
    /// The timer's payload; `None` while the entry is free.
    value: Option<T>,
    /// Deadline in ticks since `start`, rounded up.
    when: u64,
    /// Previous entry in the same list, or `NONE` at the head.
    prev: u32,
    /// Next entry in the same list (or in the free list), or `NONE` at the end.
    next: u32,
    /// Bumped each time the entry is freed, invalidating outstanding keys.
    generation: u32,
    /// The list holding the entry: `level * SLOTS + slot`, `READY` or `FREE`.
    list: u16,
}

/// A hierarchical timer wheel holding values of type `T`. See the module docs.
pub(crate) struct Wheel<T> {
    /// The instant of tick 0.
    start: Instant,
    /// The last tick processed; every timer due by then is on the ready list.
    elapsed: u64,
    /// All entries, pending and free; indices are stable for a timer's life.
    slab: Vec<Node<T>>,
    /// Head of the free list, threaded through `Node::next`, or `NONE`.
    free: u32,
    /// Number of pending timers.
    len: usize,
    /// Head of every list: slot `s` of level `l` at `l * SLOTS + s`, then `READY`.
    heads: [u32; LISTS],
    /// Bit `s` of `occupied[l]` is set iff slot `s` of level `l` is non-empty.
    occupied: [u64; LEVELS],
    /// A lower bound on the ticks on the ready list; `u64::MAX` when it is empty.
    ready_min: u64,
    /// Slots processed by `poll_expired`, so tests can see idle gaps are jumped.
    #[cfg(test)]
    steps: u64,
}

impl<T> Wheel<T> {
    /// Creates an empty wheel. `start` is time zero; resolution is 1 ms
    /// (deadlines are rounded up to the next tick so a timer never fires early).
    pub(crate) fn new(start: Instant) -> Self {
        Wheel {
            start,
            elapsed: 0,
            slab: Vec::new(),
            free: NONE,
            len: 0,
            heads: [NONE; LISTS],
            occupied: [0; LEVELS],
            ready_min: u64::MAX,
            #[cfg(test)]
            steps: 0,
        }
    }

    /// Adds a timer in O(1). A deadline in the past fires at the next
    /// [`poll_expired`](Self::poll_expired).
    pub(crate) fn insert(&mut self, deadline: Instant, value: T) -> TimerKey {
        let when = self.tick_for_deadline(deadline);
        let index = if self.free == NONE {
            let index = u32::try_from(self.slab.len())
                .ok()
                .filter(|&index| index != NONE)
                .expect("timer wheel: too many timers");
            self.slab.push(Node {
                value: Some(value),
                when,
                prev: NONE,
                next: NONE,
                generation: 0,
                list: FREE,
            });
            index
        } else {
            let index = self.free;
            let node = &mut self.slab[index as usize];
            self.free = node.next;
            node.value = Some(value);
            node.when = when;
            index
        };
        self.len += 1;
        self.file(index);
        TimerKey {
            index,
            generation: self.slab[index as usize].generation,
        }
    }

    /// Cancels a timer in O(1). Returns its value if it was still pending (not
    /// fired and not removed).
    pub(crate) fn remove(&mut self, key: TimerKey) -> Option<T> {
        if !self.is_pending(key) {
            return None;
        }
        self.unlink(key.index);
        Some(self.release(key.index))
    }

    /// Moves a pending timer to a new deadline, keeping its key. Returns false
    /// if the key is stale.
    pub(crate) fn reset(&mut self, key: TimerKey, deadline: Instant) -> bool {
        if !self.is_pending(key) {
            return false;
        }
        self.unlink(key.index);
        self.slab[key.index as usize].when = self.tick_for_deadline(deadline);
        self.file(key.index);
        true
    }

    /// The earliest instant at which `poll_expired` could return something, or
    /// `None` when the wheel is empty.
    ///
    /// For timers on upper levels this is the start of their slot, which may be
    /// earlier than their deadline (polling then cascades them); it is never
    /// later than the earliest deadline rounded up to the tick. Costs a few
    /// bit operations per level.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let tick = if self.heads[READY] != NONE {
            self.ready_min
        } else {
            self.next_expiration()?.0
        };
        Some(self.instant_at(tick))
    }

    /// Advances the wheel to `now` and pushes every timer whose deadline
    /// (rounded up to the tick) is at or before `now` into `out`, in deadline
    /// order except that timers that were already due when inserted come first.
    ///
    /// Costs O(slots processed + timers moved); idle time is skipped in one
    /// step. A `now` earlier than a previous one only drains the ready list.
    pub(crate) fn poll_expired(&mut self, now: Instant, out: &mut Vec<(TimerKey, T)>) {
        let now = self.tick_at_or_before(now);

        let mut index = self.take_list(READY);
        while index != NONE {
            let next = self.slab[index as usize].next;
            self.fire(index, out);
            index = next;
        }

        while let Some((tick, list)) = self.next_expiration().filter(|&(tick, _)| tick <= now) {
            #[cfg(test)]
            {
                self.steps += 1;
            }
            // Filing is relative to `elapsed`, so it must be the slot's start
            // before the survivors are re-filed onto lower levels.
            self.elapsed = tick;
            let mut index = self.take_list(list);
            while index != NONE {
                let next = self.slab[index as usize].next;
                if self.slab[index as usize].when <= tick {
                    self.fire(index, out);
                } else {
                    self.file(index);
                }
                index = next;
            }
        }

        // Every slot starting at or before `now` has been processed, so the
        // timers left are all after `now` and can be left where they are.
        self.elapsed = self.elapsed.max(now);
    }

    /// Number of pending timers.
    // Part of the wheel's API and used by the tests, though the runtime does
    // not need it yet.
    #[allow(dead_code)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no pending timers.
    #[allow(dead_code)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `key` names a timer that is still pending.
    fn is_pending(&self, key: TimerKey) -> bool {
        self.slab
            .get(key.index as usize)
            .is_some_and(|node| node.generation == key.generation && node.list != FREE)
    }

    /// The tick and list of the next slot to process (which is after
    /// `elapsed`), or `None` if the wheel proper is empty.
    fn next_expiration(&self) -> Option<(u64, usize)> {
        // Lower levels first: their timers are due before the start of any
        // occupied slot above them.
        let level = self.occupied.iter().position(|&bits| bits != 0)?;
        let shift = SLOT_BITS * level as u32;
        let current = (self.elapsed >> shift) & SLOT_MASK;
        // Rotating by one past the current slot orders the search from the
        // next slot round to the current one, which is time order even on the
        // top level, where distant timers wrap around.
        let rotated = self.occupied[level].rotate_right((current + 1) as u32);
        let slot = (u64::from(rotated.trailing_zeros()) + current + 1) & SLOT_MASK;
        let level_span = 1u64 << (shift + SLOT_BITS);
        let mut tick = (self.elapsed & !(level_span - 1)) + (slot << shift);
        if tick <= self.elapsed {
            debug_assert_eq!(level, LEVELS - 1, "only the top level wraps");
            tick += level_span;
        }
        Some((tick, level * SLOTS + slot as usize))
    }

    /// Puts a detached entry on the list its deadline belongs to, relative to
    /// `elapsed`.
    fn file(&mut self, index: u32) {
        let when = self.slab[index as usize].when;
        let list = if when <= self.elapsed {
            self.ready_min = self.ready_min.min(when);
            READY
        } else {
            let level = level_for(self.elapsed, when);
            level * SLOTS + ((when >> (SLOT_BITS * level as u32)) & SLOT_MASK) as usize
        };
        self.push_front(list, index);
    }

    /// Links a detached entry at the head of `list`.
    fn push_front(&mut self, list: usize, index: u32) {
        let head = self.heads[list];
        let node = &mut self.slab[index as usize];
        node.prev = NONE;
        node.next = head;
        // Lists number fewer than `FREE`, so this cannot truncate.
        node.list = list as u16;
        if head != NONE {
            self.slab[head as usize].prev = index;
        }
        self.heads[list] = index;
        if list < READY {
            self.occupied[list / SLOTS] |= 1 << (list % SLOTS);
        }
    }

    /// Detaches a pending entry from its list.
    fn unlink(&mut self, index: u32) {
        let node = &self.slab[index as usize];
        let (list, prev, next) = (usize::from(node.list), node.prev, node.next);
        if prev == NONE {
            self.heads[list] = next;
        } else {
            self.slab[prev as usize].next = next;
        }
        if next != NONE {
            self.slab[next as usize].prev = prev;
        }
        if self.heads[list] == NONE {
            self.mark_empty(list);
        }
    }

    /// Detaches a whole list and returns its former head; the entries stay
    /// chained through `next`.
    fn take_list(&mut self, list: usize) -> u32 {
        let head = std::mem::replace(&mut self.heads[list], NONE);
        self.mark_empty(list);
        head
    }

    /// Records that `list` has become empty.
    fn mark_empty(&mut self, list: usize) {
        if list < READY {
            self.occupied[list / SLOTS] &= !(1 << (list % SLOTS));
        } else {
            // Forget removed entries' ticks so the bound does not stay stale.
            self.ready_min = u64::MAX;
        }
    }

    /// Frees a detached entry and hands its value to `out`.
    fn fire(&mut self, index: u32, out: &mut Vec<(TimerKey, T)>) {
        let generation = self.slab[index as usize].generation;
        let value = self.release(index);
        out.push((TimerKey { index, generation }, value));
    }

    /// Moves a detached entry to the free list and returns its value.
    fn release(&mut self, index: u32) -> T {
        let node = &mut self.slab[index as usize];
        node.generation = node.generation.wrapping_add(1);
        node.list = FREE;
        node.prev = NONE;
        node.next = self.free;
        self.free = index;
        self.len -= 1;
        node.value.take().expect("pending timer has a value")
    }

    /// The tick of `deadline`, rounded up so the timer cannot fire early.
    fn tick_for_deadline(&self, deadline: Instant) -> u64 {
        deadline
            .checked_duration_since(self.start)
            .map_or(0, |since| {
                let partial = since.subsec_nanos() % 1_000_000 != 0;
                u64::try_from(since.as_millis() + u128::from(partial)).unwrap_or(u64::MAX)
            })
    }

    /// The last tick that has fully passed at `now`.
    fn tick_at_or_before(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.start).as_millis()).unwrap_or(u64::MAX)
    }

    /// The instant at which `tick` begins.
    fn instant_at(&self, tick: u64) -> Instant {
        // `elapsed` came from a real `Instant`, so it is representable; an
        // earlier answer only costs the caller a spurious poll.
        self.start
            .checked_add(Duration::from_millis(tick))
            .unwrap_or_else(|| self.start + Duration::from_millis(self.elapsed))
    }
}

/// The level on which a timer due at `when` is filed when time is `elapsed`.
fn level_for(elapsed: u64, when: u64) -> usize {
    // Setting the low digit keeps `ilog2` defined and files anything
    // within the current level-0 window on level 0; the cap clamps deadlines
    // beyond the wheel's span onto the top level.
    let masked = ((elapsed ^ when) | SLOT_MASK).min(WHEEL_SPAN - 1);
    (masked.ilog2() / SLOT_BITS) as usize
}

impl<T> fmt::Debug for Wheel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wheel")
            .field("len", &self.len)
            .field("elapsed_ms", &self.elapsed)
            .field("slab", &self.slab.len())
            .field("next_deadline", &self.next_deadline())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashMap};

    const DAY: u64 = 24 * 60 * 60 * 1000;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn poll<T>(wheel: &mut Wheel<T>, now: Instant) -> Vec<(TimerKey, T)> {
        let mut out = Vec::new();
        wheel.poll_expired(now, &mut out);
        out
    }

    fn values<T>(fired: Vec<(TimerKey, T)>) -> Vec<T> {
        fired.into_iter().map(|(_, value)| value).collect()
    }

    impl<T> Wheel<T> {
        /// Checks the links, bitmaps, counts and filing invariants.
        fn check_invariants(&self) {
            let mut seen = 0;
            for list in 0..LISTS {
                let mut prev = NONE;
                let mut index = self.heads[list];
                if list < READY {
                    let bit = self.occupied[list / SLOTS] >> (list % SLOTS) & 1;
                    assert_eq!(bit == 1, index != NONE, "bitmap of list {list}");
                }
                while index != NONE {
                    let node = &self.slab[index as usize];
                    assert_eq!(usize::from(node.list), list);
                    assert_eq!(node.prev, prev);
                    assert!(node.value.is_some());
                    if list == READY {
                        assert!(node.when <= self.elapsed);
                        assert!(self.ready_min <= node.when);
                    } else {
                        let (level, slot) = (list / SLOTS, (list % SLOTS) as u64);
                        let shift = SLOT_BITS * level as u32;
                        assert!(node.when > self.elapsed);
                        assert_eq!((node.when >> shift) & SLOT_MASK, slot);
                        if level < LEVELS - 1 {
                            let above = shift + SLOT_BITS;
                            assert_eq!(node.when >> above, self.elapsed >> above);
                            assert!(slot > (self.elapsed >> shift) & SLOT_MASK);
                        }
                    }
                    seen += 1;
                    prev = index;
                    index = node.next;
                }
            }
            assert_eq!(seen, self.len);
            let mut free = 0;
            let mut index = self.free;
            while index != NONE {
                assert_eq!(self.slab[index as usize].list, FREE);
                assert!(self.slab[index as usize].value.is_none());
                free += 1;
                index = self.slab[index as usize].next;
            }
            assert_eq!(seen + free, self.slab.len());
        }
    }

    /// A tiny xorshift64 generator, enough for reproducible random tests.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, bound: u64) -> u64 {
            self.next() % bound.max(1)
        }
    }

    #[test]
    fn fires_in_deadline_order_across_levels_and_never_early() {
        let deadlines = [
            0,
            1,
            63,
            64,
            65,
            4095,
            4096,
            300_000,
            10 * DAY,
            // Beyond the wheel's 2^36 ms span: clamped, then re-cascaded.
            3 * 365 * DAY,
            10 * 365 * DAY,
        ];
        let start = Instant::now();

        let mut wheel = Wheel::new(start);
        for &d in deadlines.iter().rev() {
            wheel.insert(start + ms(d), d);
        }
        wheel.check_invariants();
        for &d in &deadlines {
            if d > 0 {
                let early = poll(&mut wheel, start + ms(d - 1));
                assert!(early.is_empty(), "{:?} fired at {}ms", values(early), d - 1);
                wheel.check_invariants();
            }
            assert_eq!(values(poll(&mut wheel, start + ms(d))), [d]);
            wheel.check_invariants();
        }
        assert!(wheel.is_empty());
        assert_eq!(wheel.next_deadline(), None);

        // All at once: one poll returns them in deadline order.
        let mut wheel = Wheel::new(start);
        for &d in deadlines.iter().rev() {
            wheel.insert(start + ms(d), d);
        }
        let last = *deadlines.last().unwrap();
        assert_eq!(values(poll(&mut wheel, start + ms(last))), deadlines);
    }

    #[test]
    fn deadlines_round_up_to_the_tick() {
        let start = Instant::now();
        let mut wheel = Wheel::new(start);
        wheel.insert(start + Duration::from_micros(1_500), "a");
        wheel.insert(start + Duration::from_micros(2_000), "b");
        assert_eq!(wheel.next_deadline(), Some(start + ms(2)));
        assert!(poll(&mut wheel, start + Duration::from_micros(1_999)).is_empty());
        assert_eq!(values(poll(&mut wheel, start + ms(2))).len(), 2);

        // A deadline before `start`, or before the last poll, fires next poll.
        wheel.insert(start + ms(1), "past");
        if let Some(before) = start.checked_sub(ms(5)) {
            wheel.insert(before, "before start");
        }
        assert!(wheel.next_deadline().unwrap() <= start + ms(1));
        let fired = values(poll(&mut wheel, start + ms(2)));
        assert!(fired.contains(&"past"));
        assert!(wheel.is_empty());
    }

    #[test]
    fn remove_before_and_after_fire_and_stale_keys() {
        let start = Instant::now();
        let mut wheel = Wheel::new(start);

        let a = wheel.insert(start + ms(100), 'a');
        let far = wheel.insert(start + ms(5 * DAY), 'f');
        assert_eq!(wheel.len(), 2);
        assert_eq!(wheel.remove(a), Some('a'));
        assert_eq!(wheel.remove(far), Some('f'));
        assert_eq!(wheel.remove(a), None);
        assert!(wheel.is_empty());
        assert!(poll(&mut wheel, start + ms(10 * DAY)).is_empty());

        let b = wheel.insert(start + ms(10 * DAY + 1), 'b');
        let fired = poll(&mut wheel, start + ms(10 * DAY + 1));
        assert_eq!(fired, [(b, 'b')]);
        assert_eq!(wheel.remove(b), None);
        assert!(!wheel.reset(b, start + ms(20 * DAY)));

        // `c` and `d` share a slab entry; `c`'s key must not reach `d`.
        let c = wheel.insert(start + ms(11 * DAY), 'c');
        assert_eq!(wheel.remove(c), Some('c'));
        let d = wheel.insert(start + ms(11 * DAY), 'd');
        assert_eq!(c.index, d.index);
        assert_ne!(c, d);
        assert_eq!(wheel.remove(c), None);
        assert!(!wheel.reset(c, start));
        assert_eq!(wheel.len(), 1);
        assert_eq!(poll(&mut wheel, start + ms(11 * DAY)), [(d, 'd')]);
        wheel.check_invariants();
    }

    #[test]
    fn reset_moves_earlier_and_later() {
        let start = Instant::now();
        let mut wheel = Wheel::new(start);
        let early = wheel.insert(start + ms(100_000), "earlier");
        let late = wheel.insert(start + ms(10), "later");
        let past = wheel.insert(start + ms(DAY), "past");

        assert!(wheel.reset(early, start + ms(10)));
        assert!(wheel.reset(late, start + ms(5_000)));
        wheel.check_invariants();
        assert_eq!(poll(&mut wheel, start + ms(10)), [(early, "earlier")]);

        assert!(wheel.reset(past, start + ms(3)));
        assert_eq!(wheel.next_deadline(), Some(start + ms(3)));
        assert_eq!(poll(&mut wheel, start + ms(11)), [(past, "past")]);

        assert!(poll(&mut wheel, start + ms(4_999)).is_empty());
        assert!(wheel.reset(late, start + ms(6_000)));
        assert!(poll(&mut wheel, start + ms(5_999)).is_empty());
        assert_eq!(poll(&mut wheel, start + ms(6_000)), [(late, "later")]);
        assert!(!wheel.reset(late, start + ms(7_000)));
        wheel.check_invariants();
    }

    #[test]
    fn next_deadline_is_never_late_and_none_when_empty() {
        let start = Instant::now();
        let mut wheel = Wheel::new(start);
        assert_eq!(wheel.next_deadline(), None);

        let mut pending: Vec<u64> = vec![5, 70, 4_000, 4_100, 1_000_000, 40 * DAY, 900 * DAY];
        let mut keys: Vec<TimerKey> = pending
            .iter()
            .map(|&d| wheel.insert(start + ms(d), d))
            .collect();
        assert_eq!(wheel.next_deadline(), Some(start + ms(5)));

        // Removing the earliest must not leave the answer later than the rest.
        assert_eq!(wheel.remove(keys.remove(0)), Some(5));
        pending.remove(0);

        // Sleep-and-poll like a runtime would: each wake-up makes progress and
        // the answer never overshoots the earliest pending deadline.
        let mut wakeups = 0;
        while let Some(next) = wheel.next_deadline() {
            let earliest = *pending.iter().min().unwrap();
            assert!(next <= start + ms(earliest), "{next:?} after {earliest}ms");
            let fired = values(poll(&mut wheel, next));
            pending.retain(|d| !fired.contains(d));
            wakeups += 1;
            assert!(wakeups < 100, "next_deadline does not make progress");
        }
        assert!(pending.is_empty());
        assert!(wheel.is_empty());
    }

    #[test]
    fn long_idle_gap_is_jumped() {
        let start = Instant::now();
        let mut wheel = Wheel::new(start);
        let key = wheel.insert(start + ms(30 * DAY), ());
        assert!(poll(&mut wheel, start + ms(30 * DAY - 1)).is_empty());
        assert_eq!(poll(&mut wheel, start + ms(30 * DAY)), [(key, ())]);
        // One slot per level on the way down, not one per millisecond.
        assert!(wheel.steps <= LEVELS as u64, "{} steps", wheel.steps);

        let steps = wheel.steps;
        wheel.insert(start + ms(30 * DAY + 1), ());
        assert_eq!(poll(&mut wheel, start + ms(60 * DAY)).len(), 1);
        assert!(wheel.steps - steps <= 2);

        // A deadline well beyond the wheel's span takes a handful of laps.
        let steps = wheel.steps;
        let key = wheel.insert(start + ms(60 * DAY + 20 * 365 * DAY), ());
        assert_eq!(
            poll(&mut wheel, start + ms(60 * DAY + 20 * 365 * DAY)),
            [(key, ())]
        );
        assert!(wheel.steps - steps < 20, "{} steps", wheel.steps - steps);
    }

    #[test]
    fn slab_entries_are_reused() {
        const N: u64 = 100_000;
        let start = Instant::now();
        let mut wheel = Wheel::new(start);
        let mut capacity = None;
        for round in 0..2 {
            let keys: Vec<TimerKey> = (0..N)
                .map(|i| wheel.insert(start + ms(i * 7919 % (40 * DAY)), i))
                .collect();
            assert_eq!(wheel.len(), N as usize);
            // Remove in a scrambled order to exercise unlinking mid-list.
            for i in 0..N {
                let j = i * 48_271 % N;
                assert_eq!(wheel.remove(keys[j as usize]), Some(j));
            }
            assert_eq!(wheel.len(), 0);
            assert!(wheel.is_empty());
            assert_eq!(wheel.next_deadline(), None);
            assert_eq!(wheel.occupied, [0; LEVELS]);
            wheel.check_invariants();
            let now = (wheel.slab.len(), wheel.slab.capacity());
            assert_eq!(now.0, N as usize, "round {round}");
            if let Some(before) = capacity {
                assert_eq!(before, now, "slab grew in round {round}");
            }
            capacity = Some(now);
        }
    }

    /// Random deadlines in microseconds relative to `now_us`, mixing sub-tick,
    /// short, long, beyond-the-wheel and past deadlines.
    fn random_deadline(rng: &mut XorShift, now_us: u64) -> u64 {
        match rng.below(10) {
            0..=2 => now_us + rng.below(3_000),
            3..=5 => now_us + rng.below(200_000),
            6 | 7 => now_us + rng.below(10 * DAY * 1000),
            8 => now_us + rng.below(4 * WHEEL_SPAN * 1000),
            _ => now_us - rng.below(now_us + 1),
        }
    }

    fn run_against_model(seed: u64, ops: usize, calm: bool) {
        let start = Instant::now();
        let at = |us: u64| start + Duration::from_micros(us);
        let tick = |us: u64| us.div_ceil(1000);
        let mut rng = XorShift(seed);
        let mut wheel = Wheel::new(start);
        let mut now_us = 0u64;
        let mut next_id = 0u64;
        // (tick, id) of every pending timer, in firing order.
        let mut model = BTreeSet::new();
        // id -> (deadline in us, key).
        let mut timers: HashMap<u64, (u64, TimerKey)> = HashMap::new();
        // Pending ids for random picks; `slot` maps id -> position.
        let mut live: Vec<u64> = Vec::new();
        let mut slot: HashMap<u64, usize> = HashMap::new();
        let mut dead: Vec<TimerKey> = Vec::new();
        let mut out = Vec::new();

        let forget = |id: u64, live: &mut Vec<u64>, slot: &mut HashMap<u64, usize>| {
            let pos = slot.remove(&id).unwrap();
            live.swap_remove(pos);
            if let Some(&moved) = live.get(pos) {
                slot.insert(moved, pos);
            }
        };

        // Calm runs rarely cancel or jump far, so many timers pile up on the
        // upper levels and get cascaded rather than flushed.
        let (inserts, removes, resets, stales) = if calm {
            (50, 53, 57, 60)
        } else {
            (45, 52, 62, 66)
        };
        for op in 0..ops {
            match rng.below(100) {
                n if n < inserts => {
                    let deadline = random_deadline(&mut rng, now_us);
                    let key = wheel.insert(at(deadline), next_id);
                    model.insert((tick(deadline), next_id));
                    timers.insert(next_id, (deadline, key));
                    slot.insert(next_id, live.len());
                    live.push(next_id);
                    next_id += 1;
                }
                n if n < removes && !live.is_empty() => {
                    let id = live[rng.below(live.len() as u64) as usize];
                    let (deadline, key) = timers.remove(&id).unwrap();
                    assert_eq!(wheel.remove(key), Some(id));
                    assert!(model.remove(&(tick(deadline), id)));
                    forget(id, &mut live, &mut slot);
                    dead.push(key);
                }
                n if n < resets && !live.is_empty() => {
                    let id = live[rng.below(live.len() as u64) as usize];
                    let deadline = random_deadline(&mut rng, now_us);
                    let entry = timers.get_mut(&id).unwrap();
                    assert!(wheel.reset(entry.1, at(deadline)));
                    assert!(model.remove(&(tick(entry.0), id)));
                    model.insert((tick(deadline), id));
                    entry.0 = deadline;
                }
                n if n < stales && !dead.is_empty() => {
                    let key = dead[rng.below(dead.len() as u64) as usize];
                    assert_eq!(wheel.remove(key), None);
                    assert!(!wheel.reset(key, at(now_us)));
                }
                _ => {
                    let (far, farther) = if calm {
                        (2_000, 60 * DAY)
                    } else {
                        (10, 2 * WHEEL_SPAN)
                    };
                    now_us += match rng.below(far) {
                        0 => 0,
                        1 => rng.below(DAY * 1000),
                        2 => rng.below(farther * 1000),
                        n if n % 2 == 0 => rng.below(3_000),
                        _ => rng.below(300_000),
                    };
                    out.clear();
                    wheel.poll_expired(at(now_us), &mut out);
                    let now_tick = now_us / 1000;
                    let later = model.split_off(&(now_tick + 1, 0));
                    let due = std::mem::replace(&mut model, later);
                    let mut fired = BTreeSet::new();
                    for &(key, id) in &out {
                        let (deadline, expected_key) = timers.remove(&id).expect("fired twice");
                        assert_eq!(key, expected_key);
                        assert!(deadline <= now_us, "{id} fired early");
                        fired.insert((tick(deadline), id));
                        forget(id, &mut live, &mut slot);
                        dead.push(key);
                    }
                    assert_eq!(fired.len(), out.len());
                    assert_eq!(fired, due, "op {op}: fired set differs from model");
                    // Nothing left is more than one tick overdue.
                    if let Some(&(first, _)) = model.first() {
                        assert!(first > now_tick);
                    }
                }
            }
            if dead.len() > 256 {
                dead.drain(..128);
            }
            assert_eq!(wheel.len(), model.len());
            assert_eq!(wheel.len(), timers.len());
            match (wheel.next_deadline(), model.first()) {
                (None, None) => {}
                (Some(next), Some(&(first, _))) => assert!(next <= start + ms(first)),
                (next, first) => panic!("next_deadline {next:?} with earliest {first:?}"),
            }
            if op % 97 == 0 {
                wheel.check_invariants();
            }
        }
        wheel.check_invariants();
    }

    #[test]
    fn randomized_against_model() {
        for seed in 1..=8u64 {
            let calm = seed % 2 == 0;
            run_against_model(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), 20_000, calm);
        }
    }
}
