//! Jinja2's `format` filter: Python's printf-style `%` formatting (`'%s-%05.2f' | format(a, b)`,
//! `'%(name)s' | format(name=x)`), conversions `s r a d i u f F e E g G x X o c %`, flags
//! `-+ 0#`, width and precision (`*` too).

use minijinja::value::{Kwargs, Rest, ValueKind};
use minijinja::{Error, Value};

use super::{check_defined, err};
use crate::template::pyrepr::{py_repr, py_str};

/// Where the arguments come from: positional ones in order, or a mapping by key.
enum Args<'a> {
    Seq(&'a [Value], usize),
    Map(&'a Value),
}

impl Args<'_> {
    fn next(&mut self) -> Result<Value, Error> {
        match self {
            Args::Seq(v, i) => {
                let a = v
                    .get(*i)
                    .cloned()
                    .ok_or_else(|| err("not enough arguments for format string"))?;
                *i += 1;
                Ok(a)
            }
            Args::Map(m) => Ok((*m).clone()),
        }
    }
}

pub(super) fn format(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    check_defined(value, "format")?;
    let keys: Vec<&str> = kwargs.args().collect();
    if !args.is_empty() && !keys.is_empty() {
        return Err(err(
            "can't handle positional and keyword arguments at the same time",
        ));
    }
    let map;
    let mut source = if keys.is_empty() {
        Args::Seq(&args, 0)
    } else {
        let mut m = indexmap::IndexMap::new();
        for k in &keys {
            m.insert(Value::from(*k), kwargs.get::<Value>(k)?);
        }
        map = Value::from(m);
        Args::Map(&map)
    };
    let out = percent_format(&py_str(value), &mut source)?;
    if let Args::Seq(v, used) = source {
        if used < v.len() {
            return Err(err("not all arguments converted during string formatting"));
        }
    }
    Ok(Value::from(out))
}

fn percent_format(fmt: &str, args: &mut Args) -> Result<String, Error> {
    let mut out = String::new();
    let chars: Vec<char> = fmt.chars().collect();
    let mut i = 0;
    let bad = |i: usize| err(format!("incomplete format at index {i}"));
    while i < chars.len() {
        if chars[i] != '%' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        i += 1;
        let mut arg: Option<Value> = None;
        if chars.get(i) == Some(&'(') {
            let mut depth = 1;
            let start = i + 1;
            i += 1;
            while i < chars.len() && depth > 0 {
                match chars[i] {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                i += 1;
            }
            if depth > 0 {
                return Err(err("incomplete format key"));
            }
            let key: String = chars[start..i - 1].iter().collect();
            let Args::Map(m) = args else {
                return Err(err("format requires a mapping"));
            };
            let v = m.get_item(&Value::from(key.as_str()))?;
            if v.is_undefined() {
                return Err(err(format!("KeyError: '{key}'")));
            }
            arg = Some(v);
        }
        let mut spec = Spec::default();
        while let Some(&c) = chars.get(i) {
            match c {
                '-' => spec.left = true,
                '+' => spec.plus = true,
                ' ' => spec.space = true,
                '#' => spec.alt = true,
                '0' => spec.zero = true,
                _ => break,
            }
            i += 1;
        }
        let number = |i: &mut usize, args: &mut Args| -> Result<Option<usize>, Error> {
            if chars.get(*i) == Some(&'*') {
                *i += 1;
                let v = args.next()?;
                let n = i64::try_from(v).map_err(|_| err("* wants int"))?;
                return Ok(Some(n.max(0) as usize));
            }
            let start = *i;
            while chars.get(*i).is_some_and(|c| c.is_ascii_digit()) {
                *i += 1;
            }
            let digits: String = chars[start..*i].iter().collect();
            Ok(digits.parse().ok())
        };
        spec.width = number(&mut i, args)?;
        if chars.get(i) == Some(&'.') {
            i += 1;
            spec.precision = Some(number(&mut i, args)?.unwrap_or(0));
        }
        while chars.get(i).is_some_and(|c| matches!(c, 'h' | 'l' | 'L')) {
            i += 1;
        }
        let Some(&conv) = chars.get(i) else {
            return Err(bad(i));
        };
        i += 1;
        if conv == '%' {
            out.push('%');
            continue;
        }
        let v = match arg {
            Some(v) => v,
            None => args.next()?,
        };
        out.push_str(&spec.convert(conv, &v, i - 1)?);
    }
    Ok(out)
}

#[derive(Default)]
struct Spec {
    left: bool,
    plus: bool,
    space: bool,
    alt: bool,
    zero: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

fn as_int(v: &Value, conv: char) -> Result<i128, Error> {
    match v.kind() {
        ValueKind::Bool => Ok(v.is_true() as i128),
        ValueKind::Number => {
            if let Ok(n) = i128::try_from(v.clone()) {
                Ok(n)
            } else if conv == 'd' || conv == 'i' || conv == 'u' {
                let f = f64::try_from(v.clone()).map_err(|_| err("a number is required"))?;
                Ok(f.trunc() as i128)
            } else {
                Err(err(format!(
                    "%{conv} format: an integer is required, not float"
                )))
            }
        }
        _ => Err(err(format!(
            "%{conv} format: a real number is required, not {}",
            crate::template::pyrepr::py_type(v)
        ))),
    }
}

fn as_float(v: &Value, conv: char) -> Result<f64, Error> {
    match v.kind() {
        ValueKind::Bool => Ok(v.is_true() as i64 as f64),
        ValueKind::Number => f64::try_from(v.clone()).map_err(|_| err("a number is required")),
        _ => Err(err(format!(
            "must be real number, not {} (%{conv})",
            crate::template::pyrepr::py_type(v)
        ))),
    }
}

/// `1.5e+07` style: Rust's `{:e}` gives `1.5e7`.
fn exp_format(f: f64, precision: usize, upper: bool) -> String {
    let s = format!("{f:.precision$e}");
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let e = if upper { 'E' } else { 'e' };
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mant}{e}{sign}{:02}", exp.abs())
}

/// `%g`: the shorter of `%e` and `%f` by Python's rule, trailing zeros dropped unless `#`.
fn general_format(f: f64, precision: usize, upper: bool, alt: bool) -> String {
    let p = if precision == 0 { 1 } else { precision };
    if f == 0.0 {
        return if alt {
            format!("{:.*}", p - 1, 0.0)
        } else {
            "0".into()
        };
    }
    let e = exp_format(f, p - 1, upper);
    let exp: i32 = e
        .rsplit_once(['e', 'E'])
        .and_then(|(_, x)| x.parse().ok())
        .unwrap_or(0);
    let mut s = if exp < -4 || exp >= p as i32 {
        e
    } else {
        format!("{:.*}", (p as i32 - 1 - exp).max(0) as usize, f)
    };
    if !alt {
        let (mant, rest) = match s.find(['e', 'E']) {
            Some(k) => (s[..k].to_string(), s[k..].to_string()),
            None => (s.clone(), String::new()),
        };
        let mant = if mant.contains('.') {
            mant.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            mant
        };
        s = mant + &rest;
    }
    s
}

impl Spec {
    fn sign(&self, negative: bool) -> &'static str {
        if negative {
            "-"
        } else if self.plus {
            "+"
        } else if self.space {
            " "
        } else {
            ""
        }
    }

    /// Pads a number: sign and prefix before zero padding.
    fn pad_number(&self, sign: &str, prefix: &str, digits: String) -> String {
        let len = sign.len() + prefix.len() + digits.chars().count();
        let width = self.width.unwrap_or(0);
        if len >= width {
            return format!("{sign}{prefix}{digits}");
        }
        let fill = width - len;
        if self.left {
            format!("{sign}{prefix}{digits}{}", " ".repeat(fill))
        } else if self.zero {
            format!("{sign}{prefix}{}{digits}", "0".repeat(fill))
        } else {
            format!("{}{sign}{prefix}{digits}", " ".repeat(fill))
        }
    }

    fn pad_text(&self, s: String) -> String {
        let len = s.chars().count();
        let width = self.width.unwrap_or(0);
        if len >= width {
            s
        } else if self.left {
            s + &" ".repeat(width - len)
        } else {
            " ".repeat(width - len) + &s
        }
    }

    fn convert(&self, conv: char, v: &Value, at: usize) -> Result<String, Error> {
        match conv {
            's' | 'r' | 'a' => {
                let mut s = if conv == 's' { py_str(v) } else { py_repr(v) };
                if let Some(p) = self.precision {
                    s = s.chars().take(p).collect();
                }
                Ok(self.pad_text(s))
            }
            'd' | 'i' | 'u' => {
                let n = as_int(v, conv)?;
                let mut digits = n.unsigned_abs().to_string();
                if let Some(p) = self.precision {
                    while digits.len() < p {
                        digits.insert(0, '0');
                    }
                }
                Ok(self.pad_number(self.sign(n < 0), "", digits))
            }
            'x' | 'X' | 'o' => {
                let n = as_int(v, conv)?;
                let a = n.unsigned_abs();
                let (digits, prefix) = match conv {
                    'x' => (format!("{a:x}"), "0x"),
                    'X' => (format!("{a:X}"), "0X"),
                    _ => (format!("{a:o}"), "0o"),
                };
                let prefix = if self.alt { prefix } else { "" };
                Ok(self.pad_number(self.sign(n < 0), prefix, digits))
            }
            'f' | 'F' | 'e' | 'E' | 'g' | 'G' => {
                let f = as_float(v, conv)?;
                let p = self.precision.unwrap_or(6);
                if !f.is_finite() {
                    let s = if f.is_nan() { "nan" } else { "inf" };
                    let s = if conv.is_ascii_uppercase() {
                        s.to_uppercase()
                    } else {
                        s.into()
                    };
                    return Ok(self.pad_text(format!("{}{s}", self.sign(f < 0.0))));
                }
                let a = f.abs();
                let digits = match conv {
                    'f' | 'F' => format!("{a:.p$}"),
                    'e' | 'E' => exp_format(a, p, conv == 'E'),
                    _ => general_format(a, p, conv == 'G', self.alt),
                };
                let digits = if self.alt && !digits.contains('.') && matches!(conv, 'f' | 'F') {
                    digits + "."
                } else {
                    digits
                };
                Ok(self.pad_number(self.sign(f.is_sign_negative() && f != 0.0), "", digits))
            }
            'c' => {
                let c = match v.as_str() {
                    Some(s) if s.chars().count() == 1 => s.to_string(),
                    Some(_) => return Err(err("%c requires an int or a unicode character")),
                    None => {
                        let n = as_int(v, conv)?;
                        u32::try_from(n)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(|| err("%c arg not in range(0x110000)"))?
                            .to_string()
                    }
                };
                Ok(self.pad_text(c))
            }
            other => Err(err(format!(
                "unsupported format character '{other}' ({:#x}) at index {at}",
                other as u32
            ))),
        }
    }
}
