//! Opening `private-encrypted-*` events: NaCl's `crypto_secretbox_open` (XSalsa20 + Poly1305,
//! what pusher-js does with tweetnacl) and the base64 the server relays them in. Written out
//! here because only opening is needed: about 2 KB of wasm, against a RustCrypto stack or a
//! bundled tweetnacl that every user would download whether they use encryption or not.

use crate::prelude::*;

const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];
const MASK26: u32 = 0x3ff_ffff;

fn le32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// The 20 Salsa20 rounds (double rounds: columns, then rows).
fn rounds(x: &mut [u32; 16]) {
    fn quarter(x: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
        x[b] ^= x[a].wrapping_add(x[d]).rotate_left(7);
        x[c] ^= x[b].wrapping_add(x[a]).rotate_left(9);
        x[d] ^= x[c].wrapping_add(x[b]).rotate_left(13);
        x[a] ^= x[d].wrapping_add(x[c]).rotate_left(18);
    }
    for _ in 0..10 {
        for [a, b, c, d] in [
            [0, 4, 8, 12],
            [5, 9, 13, 1],
            [10, 14, 2, 6],
            [15, 3, 7, 11],
            [0, 1, 2, 3],
            [5, 6, 7, 4],
            [10, 11, 8, 9],
            [15, 12, 13, 14],
        ] {
            quarter(x, a, b, c, d);
        }
    }
}

/// The Salsa20 input block: constants, the 32-byte key and four words of `input`.
fn state(key: &[u32; 8], input: [u32; 4]) -> [u32; 16] {
    [
        SIGMA[0], key[0], key[1], key[2], key[3], SIGMA[1], input[0], input[1], input[2], input[3],
        SIGMA[2], key[4], key[5], key[6], key[7], SIGMA[3],
    ]
}

/// XSalsa20's keystream for `key` and a 24-byte `nonce`, `len` bytes from the start.
fn xsalsa20_keystream(key: &[u8; 32], nonce: &[u8], len: usize) -> Vec<u8> {
    let key: [u32; 8] = core::array::from_fn(|i| le32(key, 4 * i));
    let mut x = state(&key, core::array::from_fn(|i| le32(nonce, 4 * i)));
    rounds(&mut x);
    // HSalsa20: the subkey is words 0, 5, 10, 15, 6, 7, 8, 9 of the rounds' output.
    let subkey = [x[0], x[5], x[10], x[15], x[6], x[7], x[8], x[9]];
    let mut out = Vec::with_capacity(len + 64);
    let mut counter = 0u64;
    while out.len() < len {
        let input = [
            le32(nonce, 16),
            le32(nonce, 20),
            counter as u32,
            (counter >> 32) as u32,
        ];
        let block = state(&subkey, input);
        let mut x = block;
        rounds(&mut x);
        for (word, initial) in x.iter().zip(block) {
            out.extend_from_slice(&word.wrapping_add(initial).to_le_bytes());
        }
        counter += 1;
    }
    out.truncate(len);
    out
}

/// Poly1305 of `message` under the one-time `key` (radix 2^26, as poly1305-donna).
fn poly1305(key: &[u8], message: &[u8]) -> [u8; 16] {
    let r = [
        le32(key, 0) & 0x3ff_ffff,
        (le32(key, 3) >> 2) & 0x3ff_ff03,
        (le32(key, 6) >> 4) & 0x3ff_c0ff,
        (le32(key, 9) >> 6) & 0x3f0_3fff,
        (le32(key, 12) >> 8) & 0x00f_ffff,
    ]
    .map(u64::from);
    let s = [r[1] * 5, r[2] * 5, r[3] * 5, r[4] * 5];
    let mut h = [0u64; 5];
    for chunk in message.chunks(16) {
        let mut block = [0u8; 16];
        block[..chunk.len()].copy_from_slice(chunk);
        let high = if chunk.len() == 16 {
            1 << 24
        } else {
            block[chunk.len()] = 1;
            0
        };
        h[0] += u64::from(le32(&block, 0) & MASK26);
        h[1] += u64::from((le32(&block, 3) >> 2) & MASK26);
        h[2] += u64::from((le32(&block, 6) >> 4) & MASK26);
        h[3] += u64::from((le32(&block, 9) >> 6) & MASK26);
        h[4] += u64::from((le32(&block, 12) >> 8) | high);
        let d = [
            h[0] * r[0] + h[1] * s[3] + h[2] * s[2] + h[3] * s[1] + h[4] * s[0],
            h[0] * r[1] + h[1] * r[0] + h[2] * s[3] + h[3] * s[2] + h[4] * s[1],
            h[0] * r[2] + h[1] * r[1] + h[2] * r[0] + h[3] * s[3] + h[4] * s[2],
            h[0] * r[3] + h[1] * r[2] + h[2] * r[1] + h[3] * r[0] + h[4] * s[3],
            h[0] * r[4] + h[1] * r[3] + h[2] * r[2] + h[3] * r[1] + h[4] * r[0],
        ];
        let mut carry = 0;
        for i in 0..5 {
            let v = d[i] + carry;
            carry = v >> 26;
            h[i] = v & u64::from(MASK26);
        }
        h[0] += carry * 5;
        h[1] += h[0] >> 26;
        h[0] &= u64::from(MASK26);
    }
    // Full carry, then subtract p = 2^130 - 5 when h >= p.
    let mut carry = 0;
    for limb in h.iter_mut().skip(1) {
        *limb += carry;
        carry = *limb >> 26;
        *limb &= u64::from(MASK26);
    }
    h[0] += carry * 5;
    h[1] += h[0] >> 26;
    h[0] &= u64::from(MASK26);
    let mut g = [0u64; 5];
    let mut carry = 5;
    for i in 0..5 {
        let v = h[i] + carry;
        carry = v >> 26;
        g[i] = v & u64::from(MASK26);
    }
    // h + 5 reaching 2^130 means h >= p: take g = h + 5 - 2^130.
    let h = if carry != 0 { g } else { h };
    let words = [
        (h[0] | (h[1] << 26)) as u32,
        ((h[1] >> 6) | (h[2] << 20)) as u32,
        ((h[2] >> 12) | (h[3] << 14)) as u32,
        ((h[3] >> 18) | (h[4] << 8)) as u32,
    ];
    let mut tag = [0u8; 16];
    let mut carry = 0u64;
    for (i, word) in words.iter().enumerate() {
        let v = u64::from(*word) + u64::from(le32(key, 16 + 4 * i)) + carry;
        tag[4 * i..4 * i + 4].copy_from_slice(&(v as u32).to_le_bytes());
        carry = v >> 32;
    }
    tag
}

/// `crypto_secretbox_open` in tweetnacl's layout: `boxed` is the 16-byte tag then the
/// ciphertext. `None` when the nonce is not 24 bytes or the tag does not match.
pub fn secretbox_open(key: &[u8; 32], nonce: &[u8], boxed: &[u8]) -> Option<Vec<u8>> {
    if nonce.len() != 24 || boxed.len() < 16 {
        return None;
    }
    let (tag, ciphertext) = boxed.split_at(16);
    let stream = xsalsa20_keystream(key, nonce, 32 + ciphertext.len());
    let expected = poly1305(&stream[..32], ciphertext);
    // Constant time: every byte is compared whatever the first difference.
    if tag
        .iter()
        .zip(expected)
        .fold(0, |diff, (a, b)| diff | (a ^ b))
        != 0
    {
        return None;
    }
    Some(
        ciphertext
            .iter()
            .zip(&stream[32..])
            .map(|(c, k)| c ^ k)
            .collect(),
    )
}

/// Standard base64 with optional padding; `None` on anything else.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut bits, mut count) = (0u32, 0);
    for byte in text.bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(value);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with tweetnacl 1.0.3 (what pusher-js uses): key[i] = 7i + 1, nonce[i] = 255 - 3i.
    const KEY: &str = "AQgPFh0kKzI5QEdOVVxjanF4f4aNlJuiqbC3vsXM09o=";
    const NONCE: &str = "//z59vPw7ern5OHe29jV0s/MycbDwL26";
    const SHORT: &str = "IItpkJWZ4+tu9grBtfuDa80h8LyVSuzKscu58BLaInCrVq74gGbhkaCUnQ==";
    const LONG: &str = "jyEhpsS/gxAJHYRwovFBbs57/KGVRraI69uk5AbNdii2QLXygW7tjLzOmDnhmDYYSs3C5ZQjseyGIcgGu7srsCc7wTnQ+VdRpi609GaATwUSSnoABZDH/prbGx5Kay6HzT66XESpji9RypPvqazq1Dd1Pp0=";

    fn key() -> [u8; 32] {
        base64_decode(KEY).unwrap().try_into().unwrap()
    }

    #[test]
    fn opens_what_tweetnacl_sealed() {
        let nonce = base64_decode(NONCE).unwrap();
        let short = secretbox_open(&key(), &nonce, &base64_decode(SHORT).unwrap()).unwrap();
        assert_eq!(short, br#"{"text":"hello, encrypted"}"#);
        let long = secretbox_open(&key(), &nonce, &base64_decode(LONG).unwrap()).unwrap();
        let expected = [
            "x".repeat(40),
            "é☃ multi-block message that is longer than sixteen bytes!".into(),
        ]
        .concat();
        assert_eq!(String::from_utf8(long).unwrap(), expected);
    }

    #[test]
    fn refuses_tampering_and_bad_input() {
        let nonce = base64_decode(NONCE).unwrap();
        let mut boxed = base64_decode(SHORT).unwrap();
        for i in [0, 20] {
            boxed[i] ^= 1;
            assert_eq!(secretbox_open(&key(), &nonce, &boxed), None);
            boxed[i] ^= 1;
        }
        assert_eq!(secretbox_open(&key(), &nonce[..23], &boxed), None);
        assert_eq!(secretbox_open(&key(), &nonce, &boxed[..15]), None);
        assert_eq!(base64_decode("ab$d"), None);
    }

    #[test]
    fn base64_round_trips_known_values() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8").unwrap(), b"hello");
        assert_eq!(base64_decode("").unwrap(), b"");
    }
}
