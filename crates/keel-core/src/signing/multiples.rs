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

/// Digits needed for any scalar: 256 bits plus the carry the last digit may leave.
const fn digit_count(window: u32) -> usize {
    257_usize.div_ceil(window as usize)
}

/// `k` in signed base-2^`window` digits, least significant first, each in
/// `[−2^(w−1), 2^(w−1)]`: `k = Σ d_i · 2^(w·i)`.
fn signed_digits(k: &Scalar, window: u32) -> impl Iterator<Item = i32> {
    let bytes = k.to_bytes();
    // Little-endian limbs, with a zero limb above so that reads past bit 255 see zeros.
    let mut limbs = [0u64; 5];
    for (limb, chunk) in limbs.iter_mut().zip(bytes.rchunks_exact(8)) {
        *limb = u64::from_be_bytes(chunk.try_into().expect("8-byte chunk"));
    }
    let width = window as usize;
    let (half, full) = (1i32 << (window - 1), 1i32 << window);
    let mut carry = 0;
    (0..digit_count(window)).map(move |i| {
        let (limb, shift) = ((i * width) / 64, (i * width) % 64);
        let mut bits = limbs.get(limb).copied().unwrap_or(0) >> shift;
        if shift + width > 64 {
            bits |= limbs.get(limb + 1).copied().unwrap_or(0) << (64 - shift);
        }
        // At most 2^w: the window's bits plus the carry.
        let raw = (bits & ((1 << width) - 1)) as i32 + carry;
        if raw >= half {
            carry = 1;
            raw - full
        } else {
            carry = 0;
            raw
        }
    })
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
