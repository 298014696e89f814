//! Variable-time scalar multiplication from a table of a point's multiples, for signature
//! checks (nothing secret is involved, so lookups may depend on the scalar).
//!
//! `k` is written in signed base-2^w digits `d_i ∈ [−2^(w−1), 2^(w−1))`, and the table holds
//! `j · 2^(w·i) · P` for `1 ≤ j ≤ 2^(w−1)`, so `k·P = Σ ±table[i][|d_i|]`: one mixed addition
//! per non-zero digit and no doublings; a negative digit negates the entry's `y`. A wider
//! window means fewer additions and a larger table (`2^(w−1)` points per digit).

use k256::{elliptic_curve::BatchNormalize, AffinePoint, ProjectivePoint, Scalar};

/// The multiples of one point, for one window width.
#[derive(Clone)]
pub(super) struct Multiples {
    window: u32,
    /// Row `i` (digit `i`), entry `j`: `(j + 1) · 2^(w·i) · P`, rows one after another.
    points: Box<[AffinePoint]>,
}

impl Multiples {
    /// The table of `base` for `window`-bit digits (`2 ≤ window ≤ 16`).
    pub(super) fn new(base: ProjectivePoint, window: u32) -> Self {
        assert!((2..=16).contains(&window), "unsupported window {window}");
        let per_row = 1usize << (window - 1);
        let mut points = Vec::with_capacity(digit_count(window) * per_row);
        let mut row_base = base;
        for _ in 0..digit_count(window) {
            let mut multiple = row_base;
            for _ in 0..per_row {
                points.push(multiple);
                multiple += row_base;
            }
            for _ in 0..window {
                row_base = row_base.double();
            }
        }
        // One field inversion for the whole table instead of one per point.
        let affine =
            <ProjectivePoint as BatchNormalize<[ProjectivePoint]>>::batch_normalize(&points[..]);
        Self {
            window,
            points: affine.into_boxed_slice(),
        }
    }

    /// `k · P`.
    pub(super) fn mul(&self, k: &Scalar) -> ProjectivePoint {
        let per_row = 1usize << (self.window - 1);
        let mut sum = ProjectivePoint::IDENTITY;
        for (row, digit) in signed_digits(k, self.window).enumerate() {
            if digit == 0 {
                continue;
            }
            // |digit| ≤ 2^(w−1): the entry exists.
            let entry = &self.points[row * per_row + digit.unsigned_abs() as usize - 1];
            if digit > 0 {
                sum += entry;
            } else {
                sum += &-*entry;
            }
        }
        sum
    }
}

/// Digits needed for any scalar: 256 bits plus the carry the last digit may leave, `⌈257 / w⌉`.
///
/// Why no carry is ever left over past the last digit (the recoding's final carry is zero, which
/// the tests assert): with `D = ⌈257 / w⌉` digits, `w·D ≥ 257`, and `w·D = 257` would need `w`
/// to divide 257, which no `w` in `2..=16` does since 257 is prime. So `w·D ≥ 258`: the last
/// digit's window starts at bit `w·(D−1) ≥ 258 − w` and holds at most `w − 2` bits of a scalar
/// below 2^256. Its value plus the carry coming in is at most `2^(w−2) < 2^(w−1)`: it stays a
/// non-negative digit and passes nothing on. (Were `w·D = 257`, the last window could hold
/// `w − 1` one-bits, reach `2^(w−1)` with the carry, be recoded as `−2^(w−1)`, and the carry of
/// 1 past the end would be lost: the product would be off by `2^257 · P`.)
const fn digit_count(window: u32) -> usize {
    257_usize.div_ceil(window as usize)
}

/// `k` in signed base-2^`window` digits, least significant first, each in
/// `[−2^(w−1), 2^(w−1)]`: `k = Σ d_i · 2^(w·i)`.
fn signed_digits(k: &Scalar, window: u32) -> SignedDigits {
    let bytes = k.to_bytes();
    // Little-endian limbs, with a zero limb above so that reads past bit 255 see zeros.
    let mut limbs = [0u64; 5];
    for (limb, chunk) in limbs.iter_mut().zip(bytes.rchunks_exact(8)) {
        *limb = u64::from_be_bytes(chunk.try_into().expect("8-byte chunk"));
    }
    SignedDigits {
        limbs,
        window,
        next: 0,
        carry: 0,
    }
}

/// The digits of [`signed_digits`], computed one at a time.
struct SignedDigits {
    limbs: [u64; 5],
    window: u32,
    /// Index of the next digit.
    next: usize,
    /// Carried into the next digit (0 or 1).
    carry: i32,
}

impl SignedDigits {
    /// What the last digit carried on: zero once every digit is taken (see [`digit_count`]).
    #[cfg(test)]
    const fn carry(&self) -> i32 {
        self.carry
    }
}

impl Iterator for SignedDigits {
    type Item = i32;

    fn next(&mut self) -> Option<i32> {
        let i = self.next;
        if i >= digit_count(self.window) {
            return None;
        }
        self.next += 1;
        let width = self.window as usize;
        let (half, full) = (1i32 << (self.window - 1), 1i32 << self.window);
        let (limb, shift) = ((i * width) / 64, (i * width) % 64);
        let mut bits = self.limbs.get(limb).copied().unwrap_or(0) >> shift;
        if shift + width > 64 {
            bits |= self.limbs.get(limb + 1).copied().unwrap_or(0) << (64 - shift);
        }
        // At most 2^w: the window's bits plus the carry.
        let raw = (bits & ((1 << width) - 1)) as i32 + self.carry;
        Some(if raw >= half {
            self.carry = 1;
            raw - full
        } else {
            self.carry = 0;
            raw
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k256::elliptic_curve::{ops::Reduce, Field};

    fn scalar(bytes: [u8; 32]) -> Scalar {
        <Scalar as Reduce<k256::U256>>::reduce_bytes(&bytes.into())
    }

    /// Edge scalars: zero, one, n − 1, and ones in every bit (reduced), where carries ripple.
    fn edges() -> Vec<Scalar> {
        vec![
            Scalar::ZERO,
            Scalar::ONE,
            -Scalar::ONE,
            scalar([0xff; 32]),
            scalar([0x80; 32]),
            scalar({
                let mut top = [0u8; 32];
                top[0] = 0x80;
                top
            }),
        ]
    }

    #[test]
    fn every_window_multiplies_edge_scalars_as_k256() {
        let point = ProjectivePoint::GENERATOR * scalar([7; 32]);
        for window in 2..=8 {
            let table = Multiples::new(point, window);
            assert_eq!(
                table.points.len(),
                digit_count(window) << (window - 1),
                "window {window}"
            );
            for k in edges() {
                assert_eq!(table.mul(&k), point * k, "window {window}, k {k:?}");
            }
        }
    }

    #[test]
    fn digits_rebuild_the_scalar() {
        for window in 2..=16 {
            for k in edges() {
                let rebuilt =
                    signed_digits(&k, window)
                        .enumerate()
                        .fold(Scalar::ZERO, |sum, (i, d)| {
                            let weight =
                                Scalar::from(2u64).pow_vartime([(i * window as usize) as u64]);
                            let magnitude = Scalar::from(u64::from(d.unsigned_abs())) * weight;
                            if d < 0 {
                                sum - magnitude
                            } else {
                                sum + magnitude
                            }
                        });
                assert_eq!(rebuilt, k, "window {window}");
                assert!(signed_digits(&k, window).all(|d| d.unsigned_abs() <= 1 << (window - 1)));
            }
        }
    }

    proptest::proptest! {
        /// Every window's recoding of a random scalar sums back to it exactly (as integers, not
        /// only modulo the order) and leaves no carry past its last digit.
        #[test]
        fn recoding_is_exact_and_leaves_no_carry(
            k in proptest::array::uniform32(proptest::num::u8::ANY),
            window in 2u32..=16,
        ) {
            use alloy::primitives::U512;
            let k = scalar(k);
            let mut digits = signed_digits(&k, window);
            let (mut plus, mut minus) = (U512::ZERO, U512::ZERO);
            for (i, d) in digits.by_ref().enumerate() {
                proptest::prop_assert!(d.unsigned_abs() <= 1 << (window - 1));
                let term = U512::from(d.unsigned_abs()) << (i * window as usize);
                if d < 0 {
                    minus += term;
                } else {
                    plus += term;
                }
            }
            proptest::prop_assert_eq!(digits.carry(), 0, "window {}", window);
            let bytes: [u8; 32] = k.to_bytes().into();
            proptest::prop_assert_eq!(plus - minus, U512::from_be_slice(&bytes), "window {}", window);
        }

        #[test]
        fn multiplies_as_k256(
            k in proptest::array::uniform32(proptest::num::u8::ANY),
            p in proptest::array::uniform32(proptest::num::u8::ANY),
            window in 4u32..=8,
        ) {
            let point = ProjectivePoint::GENERATOR * scalar(p);
            let k = scalar(k);
            proptest::prop_assert_eq!(Multiples::new(point, window).mul(&k), point * k);
        }
    }
}
