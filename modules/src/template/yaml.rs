//! YAML output as PyYAML (Ansible's `to_yaml` / `to_nice_yaml`) writes it, and a YAML 1.1
//! loader for `from_yaml` (through saphyr-parser, with PyYAML's implicit scalar types).

use std::sync::OnceLock;

use indexmap::IndexMap;
use minijinja::value::ValueKind;
use minijinja::{Error, ErrorKind, Value};
use regex::Regex;

use super::pyrepr::py_float;

struct Resolvers {
    bool_: Regex,
    float: Regex,
    int: Regex,
    null: Regex,
    timestamp: Regex,
}

fn resolvers() -> &'static Resolvers {
    static R: OnceLock<Resolvers> = OnceLock::new();
    R.get_or_init(|| Resolvers {
        bool_: Regex::new(r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$").unwrap(),
        float: Regex::new(r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$").unwrap(),
        int: Regex::new(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$").unwrap(),
        null: Regex::new(r"^(?:~|null|Null|NULL|)$").unwrap(),
        timestamp: Regex::new(r"^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$").unwrap(),
    })
}

/// Whether a plain scalar `s` would be read back as a string by a YAML 1.1 loader (PyYAML).
fn plain_is_str(s: &str) -> bool {
    let r = resolvers();
    !(r.bool_.is_match(s)
        || r.float.is_match(s)
        || r.int.is_match(s)
        || r.null.is_match(s)
        || r.timestamp.is_match(s)
        || s == "<<"
        || s == "=")
}

#[derive(Default)]
struct Analysis {
    empty: bool,
    multiline: bool,
    allow_flow_plain: bool,
    allow_block_plain: bool,
    allow_single_quoted: bool,
}

fn is_break(c: char) -> bool {
    matches!(c, '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_ws_or_end(c: Option<&char>) -> bool {
    match c {
        None => true,
        Some(c) => matches!(c, '\0' | ' ' | '\t' | '\r') || is_break(*c),
    }
}

/// PyYAML's `Emitter.analyze_scalar` (allow_unicode=True).
fn analyze(s: &str) -> Analysis {
    if s.is_empty() {
        return Analysis {
            empty: true,
            allow_single_quoted: true,
            ..Default::default()
        };
    }
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    let (mut block_ind, mut flow_ind) = (false, false);
    let (mut line_breaks, mut special) = (false, false);
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) =
        (false, false, false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut prev_space, mut prev_break) = (false, false);
    if s.starts_with("---") || s.starts_with("...") {
        block_ind = true;
        flow_ind = true;
    }
    let mut preceded_ws = true;
    let mut followed_ws = n == 1 || is_ws_or_end(chars.get(1));
    for (i, &ch) in chars.iter().enumerate() {
        if i == 0 {
            if "#,[]{}&*!|>'\"%@`".contains(ch) {
                flow_ind = true;
                block_ind = true;
            }
            if ch == '?' || ch == ':' {
                flow_ind = true;
                if followed_ws {
                    block_ind = true;
                }
            }
            if ch == '-' && followed_ws {
                flow_ind = true;
                block_ind = true;
            }
        } else {
            if ",?[]{}".contains(ch) {
                flow_ind = true;
            }
            if ch == ':' {
                flow_ind = true;
                if followed_ws {
                    block_ind = true;
                }
            }
            if ch == '#' && preceded_ws {
                flow_ind = true;
                block_ind = true;
            }
        }
        if is_break(ch) {
            line_breaks = true;
        }
        if !(ch == '\n' || ('\x20'..='\x7e').contains(&ch)) {
            let unicode = (ch == '\u{85}'
                || ('\u{a0}'..='\u{d7ff}').contains(&ch)
                || ('\u{e000}'..='\u{fffd}').contains(&ch)
                || ('\u{10000}'..'\u{10ffff}').contains(&ch))
                && ch != '\u{feff}';
            if !unicode {
                special = true;
            }
        }
        if ch == ' ' {
            if i == 0 {
                leading_space = true;
            }
            if i == n - 1 {
                trailing_space = true;
            }
            if prev_break {
                break_space = true;
            }
            prev_space = true;
            prev_break = false;
        } else if is_break(ch) {
            if i == 0 {
                leading_break = true;
            }
            if i == n - 1 {
                trailing_break = true;
            }
            if prev_space {
                space_break = true;
            }
            prev_space = false;
            prev_break = true;
        } else {
            prev_space = false;
            prev_break = false;
        }
        preceded_ws = matches!(ch, '\0' | ' ' | '\t' | '\r') || is_break(ch);
        followed_ws = i + 2 >= n || is_ws_or_end(chars.get(i + 2));
    }
    let mut a = Analysis {
        empty: false,
        multiline: line_breaks,
        allow_flow_plain: true,
        allow_block_plain: true,
        allow_single_quoted: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.allow_flow_plain = false;
        a.allow_block_plain = false;
    }
    if break_space {
        a.allow_flow_plain = false;
        a.allow_block_plain = false;
        a.allow_single_quoted = false;
    }
    if space_break || special {
        a.allow_flow_plain = false;
        a.allow_block_plain = false;
        a.allow_single_quoted = false;
    }
    if line_breaks {
        a.allow_flow_plain = false;
        a.allow_block_plain = false;
    }
    if flow_ind {
        a.allow_flow_plain = false;
    }
    if block_ind {
        a.allow_block_plain = false;
    }
    a
}

#[derive(Clone, Copy)]
enum Style {
    Plain,
    Single,
    Double,
}

struct Emitter {
    out: String,
    column: usize,
    indent_step: usize,
    width: usize,
    /// Leaf collections (only scalars inside) in flow style (`to_yaml`), else all block.
    flow_leaves: bool,
    sort_keys: bool,
}

fn err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

fn is_collection(v: &Value) -> bool {
    matches!(
        v.kind(),
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable
    )
}

fn items(v: &Value) -> Vec<Value> {
    v.try_iter().map(|i| i.collect()).unwrap_or_default()
}

impl Emitter {
    fn write(&mut self, s: &str) {
        self.out.push_str(s);
        match s.rfind('\n') {
            Some(p) => self.column = s[p + 1..].chars().count(),
            None => self.column += s.chars().count(),
        }
    }

    fn newline_indent(&mut self, indent: usize) {
        self.out.push('\n');
        self.column = 0;
        self.write(&" ".repeat(indent));
    }

    fn map_pairs(&self, v: &Value) -> Result<Vec<(Value, Value)>, Error> {
        let mut pairs: Vec<(Value, Value)> = items(v)
            .into_iter()
            .map(|k| {
                let val = v.get_item(&k).unwrap_or_default();
                (k, val)
            })
            .collect();
        if self.sort_keys {
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
        }
        Ok(pairs)
    }

    fn is_flow(&self, v: &Value) -> bool {
        match v.kind() {
            ValueKind::Map => {
                v.len() == Some(0)
                    || (self.flow_leaves
                        && items(v).iter().all(|k| {
                            !is_collection(k) && !is_collection(&v.get_item(k).unwrap_or_default())
                        }))
            }
            ValueKind::Seq | ValueKind::Iterable => {
                let it = items(v);
                it.is_empty() || (self.flow_leaves && it.iter().all(|x| !is_collection(x)))
            }
            _ => false,
        }
    }

    fn scalar_text(&self, v: &Value) -> Result<(String, bool), Error> {
        // (text, is_string)
        Ok(match v.kind() {
            ValueKind::Undefined => return Err(err("cannot serialize an undefined value")),
            ValueKind::None => ("null".into(), false),
            ValueKind::Bool => ((if v.is_true() { "true" } else { "false" }).into(), false),
            ValueKind::Number => {
                if v.is_integer() {
                    (v.to_string(), false)
                } else {
                    let f = f64::try_from(v.clone()).unwrap_or(0.0);
                    let t = if f.is_nan() {
                        ".nan".to_string()
                    } else if f.is_infinite() {
                        if f > 0.0 { ".inf" } else { "-.inf" }.to_string()
                    } else {
                        let r = py_float(f).to_lowercase();
                        if !r.contains('.') && r.contains('e') {
                            r.replacen('e', ".0e", 1)
                        } else {
                            r
                        }
                    };
                    (t, false)
                }
            }
            ValueKind::String => (v.as_str().unwrap_or_default().to_string(), true),
            _ => (v.to_string(), true),
        })
    }

    fn choose_style(&self, s: &str, flow: bool, simple_key: bool) -> Style {
        let a = analyze(s);
        let plain_ok = if flow {
            a.allow_flow_plain
        } else {
            a.allow_block_plain
        };
        if plain_is_str(s) && !(simple_key && (a.empty || a.multiline)) && plain_ok {
            return Style::Plain;
        }
        if a.allow_single_quoted && !(simple_key && a.multiline) {
            return Style::Single;
        }
        Style::Double
    }

    /// Writes a scalar; `indent` is the continuation indentation for wrapped lines.
    fn scalar(&mut self, v: &Value, indent: usize, flow: bool, key: bool) -> Result<(), Error> {
        let (text, is_str) = self.scalar_text(v)?;
        if !is_str {
            self.write(&text);
            return Ok(());
        }
        match self.choose_style(&text, flow, key) {
            Style::Plain => self.write_plain(&text, indent, !key),
            Style::Single => self.write_single(&text, indent, !key),
            Style::Double => self.write_double(&text),
        }
        Ok(())
    }

    fn write_plain(&mut self, text: &str, indent: usize, split: bool) {
        let chars: Vec<char> = text.chars().collect();
        let mut start = 0;
        let mut spaces = false;
        let mut end = 0;
        while end <= chars.len() {
            let ch = chars.get(end).copied();
            if spaces {
                if ch != Some(' ') {
                    if start + 1 == end && self.column > self.width && split {
                        self.newline_indent(indent);
                    } else {
                        let s: String = chars[start..end].iter().collect();
                        self.write(&s);
                    }
                    start = end;
                }
            } else if ch.is_none() || ch == Some(' ') {
                let s: String = chars[start..end].iter().collect();
                self.write(&s);
                start = end;
            }
            spaces = ch == Some(' ');
            end += 1;
        }
    }

    fn write_single(&mut self, text: &str, indent: usize, split: bool) {
        self.write("'");
        let chars: Vec<char> = text.chars().collect();
        let n = chars.len();
        let (mut spaces, mut breaks) = (false, false);
        let mut start = 0;
        let mut end = 0;
        while end <= n {
            let ch = chars.get(end).copied();
            if spaces {
                if ch != Some(' ') {
                    if start + 1 == end
                        && self.column > self.width
                        && split
                        && start != 0
                        && end != n
                    {
                        self.newline_indent(indent);
                    } else {
                        let s: String = chars[start..end].iter().collect();
                        self.write(&s);
                    }
                    start = end;
                }
            } else if breaks {
                if ch.is_none_or(|c| !is_break(c)) {
                    if chars[start] == '\n' {
                        self.out.push('\n');
                    }
                    for &br in &chars[start..end] {
                        if br == '\n' {
                            self.out.push('\n');
                        } else {
                            self.out.push(br);
                        }
                    }
                    self.column = 0;
                    self.write(&" ".repeat(indent));
                    start = end;
                }
            } else if ch.is_none_or(|c| c == ' ' || c == '\'' || is_break(c)) && start < end {
                let s: String = chars[start..end].iter().collect();
                self.write(&s);
                start = end;
            }
            if ch == Some('\'') {
                self.write("''");
                start = end + 1;
            }
            if let Some(c) = ch {
                spaces = c == ' ';
                breaks = is_break(c);
            }
            end += 1;
        }
        self.write("'");
    }

    fn write_double(&mut self, text: &str) {
        let mut s = String::from("\"");
        for c in text.chars() {
            match c {
                '\0' => s.push_str("\\0"),
                '\x07' => s.push_str("\\a"),
                '\x08' => s.push_str("\\b"),
                '\t' => s.push_str("\\t"),
                '\n' => s.push_str("\\n"),
                '\x0b' => s.push_str("\\v"),
                '\x0c' => s.push_str("\\f"),
                '\r' => s.push_str("\\r"),
                '\x1b' => s.push_str("\\e"),
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                '\u{85}' => s.push_str("\\N"),
                '\u{a0}' => s.push_str("\\_"),
                '\u{2028}' => s.push_str("\\L"),
                '\u{2029}' => s.push_str("\\P"),
                c if ('\x20'..='\x7e').contains(&c)
                    || (('\u{a0}'..='\u{d7ff}').contains(&c)
                        || ('\u{e000}'..='\u{fffd}').contains(&c)
                        || c >= '\u{10000}')
                        && c != '\u{feff}' =>
                {
                    s.push(c)
                }
                c if (c as u32) <= 0xff => s.push_str(&format!("\\x{:02X}", c as u32)),
                c if (c as u32) <= 0xffff => s.push_str(&format!("\\u{:04X}", c as u32)),
                c => s.push_str(&format!("\\U{:08X}", c as u32)),
            }
        }
        s.push('"');
        self.write(&s);
    }

    /// A flow collection at container indentation `indent`.
    fn flow(&mut self, v: &Value, indent: usize) -> Result<(), Error> {
        let inner = indent + self.indent_step;
        if v.kind() == ValueKind::Map {
            self.write("{");
            for (i, (k, val)) in self.map_pairs(v)?.into_iter().enumerate() {
                if i > 0 {
                    self.write(",");
                }
                if self.column > self.width {
                    self.newline_indent(inner);
                } else if i > 0 {
                    self.write(" ");
                }
                self.scalar(&k, inner, true, true)?;
                self.write(": ");
                self.node_flow(&val, inner)?;
            }
            self.write("}");
        } else {
            self.write("[");
            for (i, item) in items(v).into_iter().enumerate() {
                if i > 0 {
                    self.write(",");
                }
                if self.column > self.width {
                    self.newline_indent(inner);
                } else if i > 0 {
                    self.write(" ");
                }
                self.node_flow(&item, inner)?;
            }
            self.write("]");
        }
        Ok(())
    }

    fn node_flow(&mut self, v: &Value, indent: usize) -> Result<(), Error> {
        if is_collection(v) {
            self.flow(v, indent)
        } else {
            self.scalar(v, indent + self.indent_step, true, false)
        }
    }

    /// A node after `key:` or `- ` (the separating space not yet written), in a block
    /// container at indentation `indent`.
    fn block_value(&mut self, v: &Value, indent: usize, in_seq: bool) -> Result<(), Error> {
        if is_collection(v) && !self.is_flow(v) {
            if in_seq {
                // "-" then pad to the nested collection's indentation, first entry inline.
                let inner = indent + self.indent_step;
                self.write(&" ".repeat(inner - self.column.min(inner)).to_string());
                if v.kind() == ValueKind::Map {
                    self.block_map(v, inner)
                } else {
                    self.block_seq(v, inner)
                }
            } else if v.kind() == ValueKind::Map {
                let inner = indent + self.indent_step;
                self.newline_indent(inner);
                self.block_map(v, inner)
            } else {
                // sequences in mappings are not indented (PyYAML's indentless sequences)
                self.newline_indent(indent);
                self.block_seq(v, indent)
            }
        } else {
            self.write(" ");
            if is_collection(v) {
                self.flow(v, indent)
            } else {
                self.scalar(v, indent + self.indent_step, false, false)
            }
        }
    }

    /// A block mapping whose first key goes at the current position (column `indent`).
    fn block_map(&mut self, v: &Value, indent: usize) -> Result<(), Error> {
        for (i, (k, val)) in self.map_pairs(v)?.into_iter().enumerate() {
            if i > 0 {
                self.newline_indent(indent);
            }
            self.scalar(&k, indent, false, true)?;
            self.write(":");
            self.block_value(&val, indent, false)?;
        }
        Ok(())
    }

    fn block_seq(&mut self, v: &Value, indent: usize) -> Result<(), Error> {
        for (i, item) in items(v).into_iter().enumerate() {
            if i > 0 {
                self.newline_indent(indent);
            }
            self.write("-");
            self.block_value(&item, indent, true)?;
        }
        Ok(())
    }

    fn document(&mut self, v: &Value) -> Result<(), Error> {
        if is_collection(v) {
            if self.is_flow(v) {
                self.flow(v, 0)?;
            } else if v.kind() == ValueKind::Map {
                self.block_map(v, 0)?;
            } else {
                self.block_seq(v, 0)?;
            }
        } else {
            self.scalar(v, self.indent_step, false, false)?;
        }
        self.out.push('\n');
        Ok(())
    }
}

/// PyYAML `yaml.dump` with `sort_keys=True`, `allow_unicode=True`, width 80.
/// `nice`: `default_flow_style=False` (to_nice_yaml); otherwise leaf collections are written in
/// flow style (to_yaml's `default_flow_style=None`).
pub fn dump(v: &Value, indent: usize, nice: bool, sort_keys: bool) -> Result<String, Error> {
    let mut e = Emitter {
        out: String::new(),
        column: 0,
        indent_step: indent.clamp(2, 9),
        width: 80,
        flow_leaves: !nice,
        sort_keys,
    };
    e.document(v)?;
    Ok(e.out)
}

/// A plain YAML 1.1 scalar as PyYAML's SafeLoader types it.
fn resolve_plain(s: &str) -> Value {
    let r = resolvers();
    if r.null.is_match(s) {
        return Value::from(());
    }
    if r.bool_.is_match(s) {
        let l = s.to_ascii_lowercase();
        return Value::from(matches!(l.as_str(), "yes" | "true" | "on"));
    }
    if r.int.is_match(s) && !s.contains(':') {
        let t = s.replace('_', "");
        let (neg, body) = match t.strip_prefix('-') {
            Some(b) => (true, b.to_string()),
            None => (false, t.strip_prefix('+').unwrap_or(&t).to_string()),
        };
        let parsed = if let Some(b) = body.strip_prefix("0b") {
            i64::from_str_radix(b, 2)
        } else if let Some(h) = body.strip_prefix("0x") {
            i64::from_str_radix(h, 16)
        } else if body.len() > 1 && body.starts_with('0') {
            i64::from_str_radix(&body[1..], 8)
        } else {
            body.parse::<i64>()
        };
        if let Ok(n) = parsed {
            return Value::from(if neg { -n } else { n });
        }
    }
    if r.float.is_match(s) && !s.contains(':') {
        let t = s.replace('_', "").to_ascii_lowercase();
        let f = match t.as_str() {
            ".inf" | "+.inf" => Some(f64::INFINITY),
            "-.inf" => Some(f64::NEG_INFINITY),
            ".nan" => Some(f64::NAN),
            _ => t.parse::<f64>().ok(),
        };
        if let Some(f) = f {
            return Value::from(f);
        }
    }
    Value::from(s)
}

/// Parses a YAML document into a Value (`from_yaml`). Only the first document is used.
pub fn load(src: &str) -> Result<Value, Error> {
    use saphyr_parser::{Event, Parser, ScalarStyle};
    enum Frame {
        Seq(Vec<Value>, usize),
        Map(IndexMap<Value, Value>, Option<Value>, usize),
    }
    let mut anchors: std::collections::HashMap<usize, Value> = Default::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut result: Option<Value> = None;
    let parser = Parser::new_from_str(src);
    let push_value = |stack: &mut Vec<Frame>,
                      anchors: &mut std::collections::HashMap<usize, Value>,
                      v: Value,
                      anchor: usize|
     -> Option<Value> {
        if anchor > 0 {
            anchors.insert(anchor, v.clone());
        }
        match stack.last_mut() {
            Some(Frame::Seq(items, _)) => {
                items.push(v);
                None
            }
            Some(Frame::Map(map, key, _)) => {
                match key.take() {
                    None => *key = Some(v),
                    Some(k) => {
                        map.insert(k, v);
                    }
                }
                None
            }
            None => Some(v),
        }
    };
    for ev in parser {
        let (ev, _span) = ev.map_err(|e| err(format!("YAML parse error: {e}")))?;
        let done = match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let v = match (&tag, style) {
                    (Some(t), _) if t.suffix == "str" => Value::from(text.as_ref()),
                    (_, ScalarStyle::Plain) => resolve_plain(&text),
                    _ => Value::from(text.as_ref()),
                };
                push_value(&mut stack, &mut anchors, v, anchor)
            }
            Event::Alias(id) => {
                let v = anchors.get(&id).cloned().unwrap_or_default();
                push_value(&mut stack, &mut anchors, v, 0)
            }
            Event::SequenceStart(anchor, _) => {
                stack.push(Frame::Seq(Vec::new(), anchor));
                None
            }
            Event::MappingStart(anchor, _) => {
                stack.push(Frame::Map(IndexMap::new(), None, anchor));
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(items, anchor)) => {
                    push_value(&mut stack, &mut anchors, Value::from(items), anchor)
                }
                _ => return Err(err("YAML parse error: unbalanced sequence")),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(map, _, anchor)) => {
                    push_value(&mut stack, &mut anchors, Value::from(map), anchor)
                }
                _ => return Err(err("YAML parse error: unbalanced mapping")),
            },
            Event::DocumentEnd | Event::StreamEnd => {
                if result.is_some() {
                    break;
                }
                None
            }
            _ => None,
        };
        if let Some(v) = done {
            result = Some(v);
        }
    }
    Ok(result.unwrap_or(Value::from(())))
}
