//! Finding a line's end and its commas a 64-bit word at a time: the hot loop of
//! [`Records`](super::Records), kept apart so its bit tricks can be read on their own.
//!
//! A word's bytes are tested against a byte value all at once: XOR makes the matching
//! bytes zero, and the arithmetic below sets the top bit of each zero byte. That needs
//! nothing beyond 64-bit integer operations, which WebAssembly has, so the native and the
//! Wasm builds run the same code.

const ONES: u64 = 0x0101_0101_0101_0101;
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// `0x80` in each byte of `word` that equals `byte`, `0` in every other byte. Exact (no
/// carries between bytes), so every set bit is a real match.
#[inline]
fn matches(word: u64, byte: u8) -> u64 {
    let x = word ^ (ONES * byte as u64);
    !(((x & LOW7).wrapping_add(LOW7)) | x | LOW7)
}

/// Like [`matches`] in two fewer operations, but only the lowest set bit is sure: a borrow
/// out of a matching byte can set bits above it. Enough to find the first match.
#[inline]
fn first_match(word: u64, byte: u8) -> u64 {
    let x = word ^ (ONES * byte as u64);
    x.wrapping_sub(ONES) & !x & !LOW7
}

/// What [`scan`] found at the start of its bytes.
pub(super) enum Scan {
    /// A plain line of this length (without its terminator).
    Line(usize),
    /// A line that needs the `csv` crate.
    Csv,
    /// The bytes end before the line does.
    More,
}

/// Finds the end of the line at the start of `bytes` and the commas in it: their count in
/// `commas`, the ends of the first `keep` fields in `ends`.
pub(super) fn scan(
    bytes: &[u8],
    eof: bool,
    keep: usize,
    ends: &mut Vec<usize>,
    commas: &mut usize,
) -> Scan {
    // Counts the commas marked in `mask` (`0x80` per comma byte of the word at `at`, or
    // `1` for one comma at `at`) and notes where fields end while they are kept.
    let mut note = |mut mask: u64, at: usize, ends: &mut Vec<usize>| {
        *commas += mask.count_ones() as usize;
        while mask != 0 && ends.len() < keep {
            ends.push(at + (mask.trailing_zeros() / 8) as usize);
            mask &= mask - 1;
        }
    };
    let line = |len: usize, ends: &mut Vec<usize>| {
        if ends.len() < keep {
            ends.push(len);
        }
        Scan::Line(len)
    };
    let end = bytes.len();
    let mut i = 0;
    // Eight bytes at a time while a whole word is left.
    for word in bytes.chunks_exact(8) {
        let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        let newline = first_match(word, b'\n');
        // Only the bytes before the line's end belong to it.
        let mine = match newline {
            0 => u64::MAX,
            n => (n & n.wrapping_neg()) - 1,
        };
        // Stray bits can only sit above a real quote or `\r`, so the lowest one is real.
        let special = (first_match(word, b'"') | first_match(word, b'\r')) & mine;
        if special != 0 {
            let at = i + (special.trailing_zeros() / 8) as usize;
            // `\r\n` ends a line like `\n` does; any other `\r` or `"` needs the csv crate.
            let lone = bytes[at] != b'\r' || special & (special - 1) != 0;
            if !lone && at + 1 == end && !eof {
                return Scan::More;
            }
            if lone || at + 1 == end || bytes[at + 1] != b'\n' {
                return Scan::Csv;
            }
            note(
                matches(word, b',') & ((1u64 << ((at - i) * 8)) - 1),
                i,
                ends,
            );
            return line(at, ends);
        }
        note(matches(word, b',') & mine, i, ends);
        if newline != 0 {
            return line(i + (newline.trailing_zeros() / 8) as usize, ends);
        }
        i += 8;
    }
    // The last few bytes one at a time.
    while i < end {
        match bytes[i] {
            b',' => note(1, i, ends),
            b'\n' => return line(i, ends),
            b'\r' if i + 1 < end && bytes[i + 1] == b'\n' => return line(i, ends),
            b'\r' if i + 1 == end && !eof => return Scan::More,
            b'"' | b'\r' => return Scan::Csv,
            _ => {}
        }
        i += 1;
    }
    if eof {
        // The last line, without a terminator.
        return line(end, ends);
    }
    Scan::More
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_marks_exactly_the_equal_bytes_and_first_match_the_lowest() {
        for target in [b',', b'\n', b'"', b'\r'] {
            for other in 0..=255u8 {
                for at in 0..8 {
                    // The target at `at`, `other` just above it (where a borrow would land)
                    // and everywhere else below.
                    let mut bytes = [other; 8];
                    bytes[at] = target;
                    let word = u64::from_le_bytes(bytes);
                    let expected: u64 = (0..8)
                        .filter(|&i| bytes[i] == target)
                        .map(|i| 0x80u64 << (8 * i))
                        .sum();
                    assert_eq!(matches(word, target), expected, "{bytes:?}");
                    let first = first_match(word, target);
                    assert_eq!(
                        first & first.wrapping_neg(),
                        expected & expected.wrapping_neg()
                    );
                }
            }
        }
    }

    #[test]
    fn a_line_splits_at_its_commas_and_a_quote_or_lone_cr_asks_for_the_csv_crate() {
        let mut ends = Vec::new();
        let mut commas = 0;
        let line = b"2013,1,UA,-4,hello world\nnext";
        assert!(matches!(
            scan(line, false, 3, &mut ends, &mut commas),
            Scan::Line(24)
        ));
        assert_eq!((ends.as_slice(), commas), (&[4, 6, 9][..], 4));
        for needs_csv in [&b"a,\"b\",c\n"[..], b"a,b\rc,d\n"] {
            ends.clear();
            assert!(matches!(
                scan(needs_csv, true, 9, &mut ends, &mut commas),
                Scan::Csv
            ));
        }
        ends.clear();
        assert!(matches!(
            scan(b"a,b,c", false, 9, &mut ends, &mut commas),
            Scan::More
        ));
    }
}
