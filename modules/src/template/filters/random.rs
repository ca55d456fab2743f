//! Ansible's `random` and `shuffle` filters. With a `seed` they are Python's `random.Random(seed)`
//! (Mersenne Twister, seeded from a string as Python 3 does: the string's bytes and their
//! SHA-512), so `{{ 59 | random(seed=inventory_hostname) }}` gives the same minute as
//! ansible-core; without one they are random on each run, as in Ansible.

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Error, Value};
use sha2::{Digest, Sha512};

use super::{check_defined, err};
use crate::template::pyrepr::py_str;

/// MT19937 as CPython's `_random` module.
struct Mt {
    state: [u32; 624],
    index: usize,
}

impl Mt {
    fn init_genrand(s: u32) -> Mt {
        let mut state = [0u32; 624];
        state[0] = s;
        for i in 1..624 {
            state[i] = 1_812_433_253u32
                .wrapping_mul(state[i - 1] ^ (state[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        Mt { state, index: 624 }
    }

    fn init_by_array(key: &[u32]) -> Mt {
        let mut mt = Mt::init_genrand(19_650_218);
        let s = &mut mt.state;
        let (mut i, mut j) = (1usize, 0usize);
        let n = 624;
        for _ in 0..n.max(key.len()) {
            s[i] = (s[i] ^ (s[i - 1] ^ (s[i - 1] >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= n {
                s[0] = s[n - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..n - 1 {
            s[i] = (s[i] ^ (s[i - 1] ^ (s[i - 1] >> 30)).wrapping_mul(1_566_083_941))
                .wrapping_sub(i as u32);
            i += 1;
            if i >= n {
                s[0] = s[n - 1];
                i = 1;
            }
        }
        s[0] = 0x8000_0000;
        mt
    }

    fn next_u32(&mut self) -> u32 {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        if self.index >= 624 {
            let s = &mut self.state;
            for k in 0..624 {
                let y = (s[k] & UPPER) | (s[(k + 1) % 624] & LOWER);
                let mag = if y & 1 == 1 { 0x9908_b0df } else { 0 };
                s[k] = s[(k + 397) % 624] ^ (y >> 1) ^ mag;
            }
            self.index = 0;
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }

    /// `getrandbits(k)` for k ≤ 64.
    fn getrandbits(&mut self, k: u32) -> u64 {
        if k == 0 {
            return 0;
        }
        if k <= 32 {
            return (self.next_u32() >> (32 - k)) as u64;
        }
        let low = self.next_u32() as u64;
        let high = (self.next_u32() >> (64 - k)) as u64;
        low | (high << 32)
    }

    /// `_randbelow(n)`.
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let k = 64 - n.leading_zeros();
        loop {
            let r = self.getrandbits(k);
            if r < n {
                return r;
            }
        }
    }
}

/// The key CPython seeds from: the integer's 32-bit words, least significant first.
fn key_of_bytes(be: &[u8]) -> Vec<u32> {
    let start = be.iter().position(|b| *b != 0).unwrap_or(be.len());
    let be = &be[start..];
    if be.is_empty() {
        return vec![0];
    }
    be.rchunks(4)
        .map(|c| c.iter().fold(0u32, |acc, b| (acc << 8) | *b as u32))
        .collect()
}

/// `random.Random(seed)`: a string seeds from its UTF-8 bytes followed by their SHA-512, an
/// integer from its absolute value.
fn seeded(seed: &Value) -> Result<Mt, Error> {
    let key = match seed.kind() {
        ValueKind::String => {
            let s = py_str(seed);
            let mut bytes = s.as_bytes().to_vec();
            bytes.extend_from_slice(&Sha512::digest(s.as_bytes()));
            key_of_bytes(&bytes)
        }
        ValueKind::Number if seed.is_integer() => {
            let n = i128::try_from(seed.clone()).map_err(|_| err("random: bad seed"))?;
            key_of_bytes(&n.unsigned_abs().to_be_bytes())
        }
        _ => {
            return Err(err(format!(
                "random: a seed of type {} is not supported (use a string or an integer)",
                crate::template::pyrepr::py_type(seed)
            )))
        }
    };
    Ok(Mt::init_by_array(&key))
}

/// A generator for one call: seeded, or from the OS-seeded thread generator.
fn generator(seed: Option<&Value>) -> Result<Mt, Error> {
    match seed {
        Some(s) => seeded(s),
        None => {
            let key: Vec<u32> = (0..8).map(|_| fastrand::u32(..)).collect();
            Ok(Mt::init_by_array(&key))
        }
    }
}

pub(super) fn random(
    value: &Value,
    start: Option<Value>,
    step: Option<Value>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    check_defined(value, "random")?;
    let seed: Option<Value> = kwargs.get("seed")?;
    kwargs.assert_all_used()?;
    let seed = seed.filter(|s| !s.is_none());
    let mut mt = generator(seed.as_ref())?;
    let int = |v: &Option<Value>, dflt: i64| -> Result<i64, Error> {
        match v {
            Some(v) if v.is_true() => {
                i64::try_from(v.clone()).map_err(|_| err("random: start and step must be integers"))
            }
            _ => Ok(dflt),
        }
    };
    if value.is_integer() {
        let end = i64::try_from(value.clone()).map_err(|_| err("random: integer too large"))?;
        let (start, step) = (int(&start, 0)?, int(&step, 1)?);
        let width = end - start;
        let n = match step {
            0 => return Err(err("zero step for randrange()")),
            s if s > 0 => (width + s - 1).div_euclid(s),
            s => (width + s + 1).div_euclid(s),
        };
        if n <= 0 {
            return Err(err(format!(
                "empty range in randrange({start}, {end}, {step})"
            )));
        }
        return Ok(Value::from(start + step * mt.below(n as u64) as i64));
    }
    if start.as_ref().is_some_and(|v| v.is_true()) || step.as_ref().is_some_and(|v| v.is_true()) {
        return Err(err("start and step can only be used with integer values"));
    }
    let items: Vec<Value> = match value.as_str() {
        Some(s) => s.chars().map(|c| Value::from(c.to_string())).collect(),
        None if matches!(
            value.kind(),
            ValueKind::Seq | ValueKind::Map | ValueKind::Iterable
        ) =>
        {
            value.try_iter()?.collect()
        }
        None => return Err(err("random can only be used on sequences and integers")),
    };
    if items.is_empty() {
        return Err(err("Cannot choose from an empty sequence"));
    }
    Ok(items[mt.below(items.len() as u64) as usize].clone())
}

pub(super) fn shuffle(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    check_defined(value, "shuffle")?;
    let seed: Option<Value> = kwargs.get("seed")?;
    kwargs.assert_all_used()?;
    let mut items: Vec<Value> = match value.as_str() {
        Some(s) => s.chars().map(|c| Value::from(c.to_string())).collect(),
        None => value.try_iter()?.collect(),
    };
    // ansible-core: `if seed:` (a false seed shuffles at random)
    let mut mt = generator(seed.as_ref().filter(|s| s.is_true()))?;
    for i in (1..items.len()).rev() {
        let j = mt.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
    Ok(Value::from(items))
}
