//! The fast path behind `XorIter::decode_into`: regular samples (the third on) decoded
//! straight into the caller's slices from a zero-padded copy of the chunk body.
//!
//! The body is copied into a stack buffer with zeros after it, and every read is one
//! unaligned big-endian load at the bit position, masked into the buffer: no read can fail
//! or leave the buffer, so the loop has no truncation checks and no bounds checks. No bit
//! buffer is carried between samples; the position is the only dependency, and for the
//! common shapes (unchanged interval; value unchanged or in its previous window) it advances
//! by amounts already in registers. Runs of unchanged samples (two zero bits each, as in
//! `up`) are written several at a time by counting leading zeros.
//!
//! The loop is optimistic. Bits past the body read as zeros, so a truncated chunk decodes to
//! something; that shows afterwards as a position past the last real bit. Then, or on bit
//! counts that contradict each other, it gives up and the caller decodes the same samples
//! again the reference way, which finds the exact error. A chunk that decodes here decodes
//! bit for bit as there: every sample read only real bits, through the same fields.

use super::DOD_CODES;

/// Chunk bodies up to this many bytes take the fast path; longer ones are decoded the
/// reference way. Prometheus cuts XOR chunks at 1 KiB, so most take the smaller buffer,
/// which is cheaper to zero.
pub(super) const MAX_BODY: usize = 4096;
const SMALL_BODY: usize = 1024;

/// Carried from sample to sample, copied into locals for the loop.
#[derive(Clone, Copy)]
pub(super) struct State {
    /// Bits consumed from the chunk body.
    pub pos: usize,
    pub t: i64,
    pub v: u64,
    pub t_delta: u64,
    pub leading: u32,
    pub trailing: u32,
}

/// The body, then zeros: `N` bytes for bodies (a power of two, so the byte index is masked
/// into them) and 8 more so a load at any masked index stays inside. `M` is `N + 8`.
struct Padded<const N: usize, const M: usize>([u8; M]);

impl<const N: usize, const M: usize> Padded<N, M> {
    /// The 64 bits from bit `pos` on, most significant first; the low `pos % 8` are zero,
    /// so at least 57 are real. The mask keeps garbage positions (after a truncation) in.
    #[inline(always)]
    fn word(&self, pos: usize) -> u64 {
        let i = (pos >> 3) & (N - 1);
        let bytes = self.0.get(i..i + 8).and_then(|b| b.try_into().ok());
        u64::from_be_bytes(bytes.unwrap_or([0; 8])) << (pos & 7)
    }

    /// All 64 bits from bit `pos` on, from two loads.
    #[inline(always)]
    fn word64(&self, pos: usize) -> u64 {
        (self.word(pos) >> 32) << 32 | self.word(pos + 32) >> 32
    }

    /// At least `n` real bits from bit `pos` on: one load when `n` fits in 57.
    #[inline(always)]
    fn wide(&self, pos: usize, n: usize) -> u64 {
        if n <= 57 {
            self.word(pos)
        } else {
            self.word64(pos)
        }
    }
}

/// Decodes one regular sample per slot of `ts`/`vs` (equal lengths) from a body of at most
/// `MAX_BODY` bytes, through the given build of the hot loop. False when the chunk is
/// truncated or corrupt there: the slots and the state are then garbage, and the caller
/// decodes again the reference way.
pub(super) fn fill(
    with: Loop,
    body: &[u8],
    st: &mut State,
    ts: &mut [i64],
    vs: &mut [f64],
) -> bool {
    let ok = if body.len() <= SMALL_BODY {
        padded::<SMALL_BODY, { SMALL_BODY + 8 }>(with, body, st, ts, vs)
    } else {
        padded::<MAX_BODY, { MAX_BODY + 8 }>(with, body, st, ts, vs)
    };
    ok && st.pos <= 8 * body.len()
}

/// Which build of the hot loop runs. Nearly every step shifts by an amount known only at
/// run time; x86's BMI2 shifts take the amount from any register and leave the flags
/// alone, where the older ones need it in CL, which costs moves and spills. Alternating the
/// two builds on the same chunks, the BMI2 one decoded 2-9% more samples a second on the
/// benchmark's jittered scrapes and 12% more on counters scraped without jitter, so it is
/// used wherever the processor has BMI2. This is the crate's one use of `unsafe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Loop {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Bmi2,
}

impl Loop {
    /// The fastest build this processor runs.
    pub(super) fn best() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("bmi2") {
            return Loop::Bmi2;
        }
        Loop::Portable
    }

    /// Every build this processor runs, for tests.
    #[cfg(test)]
    pub(super) fn all() -> Vec<Self> {
        let mut all = vec![Loop::Portable];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("bmi2") {
            all.push(Loop::Bmi2);
        }
        all
    }

    #[inline(always)]
    fn steady<const N: usize, const M: usize>(
        self,
        buf: &Padded<N, M>,
        st: &mut State,
        ts: &mut [i64],
        vs: &mut [f64],
        i: usize,
    ) -> (usize, Stop) {
        match self {
            Loop::Portable => steady(buf, st, ts, vs, i),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Bmi2` is only ever made where `is_x86_feature_detected!("bmi2")`
            // holds, so the processor runs the instructions this build contains; it is
            // otherwise the same safe code.
            #[allow(unsafe_code)]
            Loop::Bmi2 => unsafe { steady_bmi2(buf, st, ts, vs, i) },
        }
    }
}

#[inline(never)]
fn padded<const N: usize, const M: usize>(
    with: Loop,
    body: &[u8],
    st: &mut State,
    ts: &mut [i64],
    vs: &mut [f64],
) -> bool {
    let mut buf = Padded::<N, M>([0; M]);
    match buf.0.get_mut(..body.len()) {
        Some(to) if body.len() <= N => to.copy_from_slice(body),
        _ => return false,
    }
    let n = ts.len().min(vs.len());
    let (ts, vs) = (&mut ts[..n], &mut vs[..n]);
    let mut i = 0;
    loop {
        let (at, stop) = with.steady(&buf, st, ts, vs, i);
        i = at;
        match stop {
            Stop::Done => return true,
            Stop::Bad => return false,
            Stop::Run(k) => {
                let k = k.min(n - i);
                let (ts, vs) = (&mut ts[i..i + k], &mut vs[i..i + k]);
                st.t = repeat(ts, vs, st.t, st.t_delta, st.v);
                st.pos += 2 * k;
                i += k;
            }
        }
    }
}

/// Why `steady` returned.
enum Stop {
    /// Every slot is written.
    Done,
    /// This many unchanged samples come next (at least one).
    Run(usize),
    /// Bit counts that contradict each other.
    Bad,
}

/// The hot loop, from slot `i` on, returning where it stopped. Runs are left to the caller,
/// so that this function calls nothing and keeps all its state in registers.
#[inline(never)]
fn steady<const N: usize, const M: usize>(
    buf: &Padded<N, M>,
    st: &mut State,
    ts: &mut [i64],
    vs: &mut [f64],
    i: usize,
) -> (usize, Stop) {
    steady_loop(buf, st, ts, vs, i)
}

/// The same loop built with BMI2 instructions.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "bmi2")]
#[inline(never)]
fn steady_bmi2<const N: usize, const M: usize>(
    buf: &Padded<N, M>,
    st: &mut State,
    ts: &mut [i64],
    vs: &mut [f64],
    i: usize,
) -> (usize, Stop) {
    steady_loop(buf, st, ts, vs, i)
}

#[inline(always)]
fn steady_loop<const N: usize, const M: usize>(
    buf: &Padded<N, M>,
    st: &mut State,
    ts: &mut [i64],
    vs: &mut [f64],
    mut i: usize,
) -> (usize, Stop) {
    let State {
        mut pos,
        mut t,
        mut v,
        mut t_delta,
        mut leading,
        trailing,
    } = *st;
    let n = ts.len().min(vs.len());
    let (ts, vs) = (&mut ts[..n], &mut vs[..n]);
    // The window as the loop uses it: a value's significant bits, top-aligned in a word,
    // land in place shifted right by `leading` and masked below by `mask`.
    let mut sig = (64 - leading - trailing) as usize;
    let mut mask = !0u64 << trailing;
    let mut stop = Stop::Done;
    while i < n {
        let w = buf.word(pos);
        // The first three bits: `0` for an unchanged interval, then `10` for a value in the
        // previous window (the most common sample), `11` for a new window, `0` for an
        // unchanged value.
        let head = w >> 61;
        if head == 0b010 {
            t = t.wrapping_add(t_delta as i64);
            let top = if sig <= 54 {
                w << 3
            } else {
                buf.wide(pos + 3, sig)
            };
            v ^= (top >> leading) & mask;
            pos += 3 + sig;
        } else if head == 0b011 {
            t = t.wrapping_add(t_delta as i64);
            let Some((lead, s, m)) = new_window(w << 1) else {
                stop = Stop::Bad;
                break;
            };
            (leading, sig, mask) = (lead, s, m);
            let top = if sig <= 43 {
                w << 14
            } else {
                buf.wide(pos + 14, sig)
            };
            v ^= (top >> leading) & mask;
            pos += 14 + sig;
        } else if head < 0b010 {
            // Unchanged interval and value: a run of zero bit pairs, each one sample.
            stop = Stop::Run((w.leading_zeros().min(56) / 2) as usize);
            break;
        } else {
            // A changed interval: the bucket from the first four bits. `vw` is the word at
            // the value's first bit; after a bucket of at most 24 bits `w` still holds the
            // 13 bits a value's header can take.
            let (vw, used) = if w >> 62 == 0b10 {
                // 14 bits, the usual jitter.
                let raw = (w << 2) >> 50;
                let dod = if raw > 1 << 13 {
                    raw.wrapping_sub(1 << 14)
                } else {
                    raw
                };
                t_delta = t_delta.wrapping_add(dod);
                (w << 16, 16)
            } else if w >> 60 == 0xf {
                t_delta = t_delta.wrapping_add(buf.word64(pos + 4));
                (buf.word(pos + 68), 68)
            } else {
                let (ctrl, width) = DOD_CODES[(w >> 60) as usize];
                // Two shifts so a zero width yields 0 instead of an overlong shift.
                let raw = ((w << ctrl) >> 1) >> (63 - width);
                // Values above half the range stand for negatives.
                let half = (1u64 << width) >> 1;
                let dod = if raw > half {
                    raw.wrapping_sub(1 << width)
                } else {
                    raw
                };
                t_delta = t_delta.wrapping_add(dod);
                (w << (ctrl + width), ctrl + width)
            };
            pos += used as usize;
            t = t.wrapping_add(t_delta as i64);
            if vw & 1 << 63 == 0 {
                pos += 1;
            } else {
                if vw & 1 << 62 == 0 {
                    pos += 2;
                } else {
                    let Some((lead, s, m)) = new_window(vw) else {
                        stop = Stop::Bad;
                        break;
                    };
                    (leading, sig, mask) = (lead, s, m);
                    pos += 13;
                }
                v ^= (buf.wide(pos, sig) >> leading) & mask;
                pos += sig;
            }
        }
        ts[i] = t;
        vs[i] = f64::from_bits(v);
        i += 1;
    }
    *st = State {
        pos,
        t,
        v,
        t_delta,
        leading,
        trailing: 64 - leading - sig as u32,
    };
    (i, stop)
}

/// Writes a run of samples that keep the interval and the value, returning the last
/// timestamp. Out of line: inlined, its vectorised loop's set-up lands inside the hot loop.
#[inline(never)]
fn repeat(ts: &mut [i64], vs: &mut [f64], mut t: i64, t_delta: u64, v: u64) -> i64 {
    for (ts, vs) in ts.iter_mut().zip(vs) {
        t = t.wrapping_add(t_delta as i64);
        *ts = t;
        *vs = f64::from_bits(v);
    }
    t
}

/// A new value window from the word whose top bits are its `11` prefix: the leading zeros
/// (5 bits), the significant bits (6 bits, 0 meaning 64) and the mask over them; None when
/// the two add up to more than 64 bits.
#[inline(always)]
fn new_window(word: u64) -> Option<(u32, usize, u64)> {
    let lead = ((word >> 57) & 0x1f) as u32;
    let sig = match ((word >> 51) & 0x3f) as usize {
        0 => 64,
        n => n,
    };
    (lead as usize + sig <= 64).then(|| (lead, sig, !0u64 << (64 - lead as usize - sig)))
}
