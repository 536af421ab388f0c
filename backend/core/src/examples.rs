//! Per-example results: which examples of a split an attacker fooled a defender on.
//!
//! A matrix cell keeps, next to its counts, one bit per example of its split (in
//! the split's example order: the eval set's order, keeping the split's own
//! examples), so 1,000 examples take 125 bytes. The union of a defender's bitsets
//! over every attack it faced gives its worst-case robust accuracy: the share of
//! the split's examples that no attack fooled (RobustBench's rule, where an
//! example counts only when the model is right under every attack).
//!
//! Stored as lowercase hex, two characters per byte, bit `i` in byte `i / 8` at
//! `1 << (i % 8)`.

use serde::{Deserialize, Serialize};

/// Most examples a bitset may describe (the parser refuses longer strings before
/// allocating).
pub const MAX_EXAMPLES: usize = 1 << 24;

/// Which of `len` examples were fooled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExampleBits {
    len: usize,
    bytes: Vec<u8>,
}

impl ExampleBits {
    /// No example fooled, out of `len`.
    pub fn empty(len: usize) -> Self {
        Self {
            len,
            bytes: vec![0; len.div_ceil(8)],
        }
    }

    /// One bit per verdict, in order.
    pub fn from_bools(fooled: impl IntoIterator<Item = bool>) -> Self {
        let mut bits = Self::empty(0);
        for f in fooled {
            if bits.len.is_multiple_of(8) {
                bits.bytes.push(0);
            }
            if f {
                bits.bytes[bits.len / 8] |= 1 << (bits.len % 8);
            }
            bits.len += 1;
        }
        bits
    }

    /// How many examples the set describes.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether example `i` was fooled (`false` past the end).
    pub fn get(&self, i: usize) -> bool {
        i < self.len
            && self
                .bytes
                .get(i / 8)
                .is_some_and(|b| b & (1 << (i % 8)) != 0)
    }

    /// How many examples were fooled.
    pub fn count(&self) -> usize {
        self.bytes.iter().map(|b| b.count_ones() as usize).sum()
    }

    /// The indices of the fooled examples, ascending.
    pub fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len).filter(|&i| self.get(i))
    }

    /// Fooled in `self` or in `other`; as long as the longer of the two (an
    /// attack that covered fewer examples fooled none past its end).
    pub fn union(&self, other: &ExampleBits) -> ExampleBits {
        let (long, short) = if self.len >= other.len {
            (self, other)
        } else {
            (other, self)
        };
        let mut out = long.clone();
        for (b, s) in out.bytes.iter_mut().zip(&short.bytes) {
            *b |= s;
        }
        out
    }

    /// Fooled in `self` and not in `other`.
    pub fn minus(&self, other: &ExampleBits) -> ExampleBits {
        let mut out = self.clone();
        for (b, o) in out.bytes.iter_mut().zip(&other.bytes) {
            *b &= !o;
        }
        out
    }

    /// The stored form: lowercase hex.
    pub fn to_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(self.bytes.len() * 2);
        for b in &self.bytes {
            out.push(char::from(DIGITS[usize::from(b >> 4)]));
            out.push(char::from(DIGITS[usize::from(b & 15)]));
        }
        out
    }

    /// Reads [`Self::to_hex`] for a set of `len` examples. Refuses a string of the
    /// wrong length, a non-hex character, set bits past `len`, or more than
    /// [`MAX_EXAMPLES`].
    pub fn from_hex(hex: &str, len: usize) -> Result<Self, String> {
        if len > MAX_EXAMPLES {
            return Err(format!(
                "{len} examples: at most {MAX_EXAMPLES} fit a bitset"
            ));
        }
        let want = len.div_ceil(8) * 2;
        if hex.len() != want {
            return Err(format!(
                "a bitset of {len} examples is {want} hex digits, not {}",
                hex.len()
            ));
        }
        let digit = |c: u8| -> Result<u8, String> {
            match c {
                b'0'..=b'9' => Ok(c - b'0'),
                b'a'..=b'f' => Ok(c - b'a' + 10),
                _ => Err(format!("{:?} is not a lowercase hex digit", char::from(c))),
            }
        };
        let bytes = hex
            .as_bytes()
            .chunks(2)
            .map(|pair| Ok(digit(pair[0])? << 4 | digit(pair[1])?))
            .collect::<Result<Vec<u8>, String>>()?;
        let bits = Self { len, bytes };
        if bits.count() != bits.ones().count() {
            return Err(format!("bits are set past example {len}"));
        }
        Ok(bits)
    }
}

/// Worst-case robust accuracy over a split of `total` examples from the union of
/// the fooled sets of every attack: the share no attack fooled. `None` for an
/// empty split.
pub fn worst_case(total: usize, union: &ExampleBits) -> Option<f64> {
    if total == 0 {
        return None;
    }
    let fooled = union.ones().filter(|&i| i < total).count();
    Some((total - fooled) as f64 / total as f64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip_through_hex_by_hand() {
        // examples 0, 3 and 9 of 10: byte 0 = 0b0000_1001 = 09, byte 1 = 0b10 = 02
        let bits = ExampleBits::from_bools([
            true, false, false, true, false, false, false, false, false, true,
        ]);
        assert_eq!(bits.len(), 10);
        assert_eq!(bits.count(), 3);
        assert_eq!(bits.to_hex(), "0902");
        assert_eq!(ExampleBits::from_hex("0902", 10).unwrap(), bits);
        assert_eq!(bits.ones().collect::<Vec<_>>(), [0, 3, 9]);
        assert!(bits.get(9) && !bits.get(8) && !bits.get(10));
        assert_eq!(ExampleBits::empty(0).to_hex(), "");
        // 1,000 examples take 125 bytes
        assert_eq!(ExampleBits::empty(1000).to_hex().len(), 250);
    }

    #[test]
    fn hostile_hex_is_refused() {
        assert!(
            ExampleBits::from_hex("090", 10)
                .unwrap_err()
                .contains("4 hex digits")
        );
        assert!(
            ExampleBits::from_hex("09zz", 10)
                .unwrap_err()
                .contains("hex digit")
        );
        assert!(
            ExampleBits::from_hex("09FF", 10)
                .unwrap_err()
                .contains("hex digit")
        );
        // bit 10 set in a set of 10
        assert!(
            ExampleBits::from_hex("0904", 10)
                .unwrap_err()
                .contains("past example 10")
        );
        assert!(ExampleBits::from_hex("", MAX_EXAMPLES + 1).is_err());
    }

    #[test]
    fn worst_case_counts_examples_no_attack_fooled() {
        // attack A fools 0 and 1; attack B fools 1 and 3; the reference covered only
        // the first 2 examples and fooled 0. Of 5 examples, 2 and 4 survive all.
        let a = ExampleBits::from_bools([true, true, false, false, false]);
        let b = ExampleBits::from_bools([false, true, false, true, false]);
        let reference = ExampleBits::from_bools([true, false]);
        let union = a.union(&b).union(&reference);
        assert_eq!(union.ones().collect::<Vec<_>>(), [0, 1, 3]);
        assert_eq!(worst_case(5, &union), Some(0.4));
        assert_eq!(reference.union(&a), a);
        assert_eq!(worst_case(0, &union), None);
        // the examples only B breaks: 3 (A and the reference share 0, A and B share 1)
        assert_eq!(
            b.minus(&a.union(&reference)).ones().collect::<Vec<_>>(),
            [3]
        );
    }
}
