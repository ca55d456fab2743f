//! YAML documents as Ansible reads them, with the line of every node.
//!
//! Built by hand on `saphyr-parser`'s event stream rather than a serde deserializer because the
//! engine needs two things no YAML crate gives together: a line number on every key and value
//! (errors must name file, line and key), and PyYAML's YAML 1.1 scalar rules that Ansible
//! playbooks rely on (`yes`/`no`/`on`/`off` are booleans, `0644` is octal).

use std::collections::HashMap;
use std::sync::Arc;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use crate::error::{LoadError, Location};

/// Upper bound on nodes produced by alias expansion: a "billion laughs" document is an error.
const MAX_ALIAS_EXPANSION: usize = 100_000;

/// One YAML node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub line: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

/// A mapping entry: keys are kept as text (Ansible playbooks only use text keys that matter).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_line: u32,
    pub value: Node,
}

impl Node {
    pub fn new(kind: NodeKind, line: u32) -> Node {
        Node { kind, line }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[Entry]> {
        match &self.kind {
            NodeKind::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            NodeKind::Seq(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.kind, NodeKind::Null)
    }

    /// Looks a key up in a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|e| e.key == key)
            .map(|e| &e.value)
    }

    /// A short name of the node's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            NodeKind::Null => "null",
            NodeKind::Bool(_) => "a boolean",
            NodeKind::Int(_) => "an integer",
            NodeKind::Float(_) => "a number",
            NodeKind::Str(_) => "a string",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }

    /// Converts to a template value (variables, module arguments).
    pub fn to_value(&self) -> minijinja::Value {
        use minijinja::Value;
        match &self.kind {
            NodeKind::Null => Value::from(()),
            NodeKind::Bool(b) => Value::from(*b),
            NodeKind::Int(i) => Value::from(*i),
            NodeKind::Float(f) => Value::from(*f),
            NodeKind::Str(s) => Value::from(s.as_str()),
            NodeKind::Seq(items) => {
                Value::from(items.iter().map(Node::to_value).collect::<Vec<_>>())
            }
            NodeKind::Map(entries) => crate::vars::map_value(
                entries
                    .iter()
                    .map(|e| (Value::from(e.key.as_str()), e.value.to_value())),
            ),
        }
    }
}

/// What saphyr-parser says of a tab at the start of a continuation line of a quoted scalar.
const QUOTED_TAB: &str = "tab cannot be used as indentation";

/// Parses the first document of `text` (an empty file is `Null`). `file` is used in errors.
pub fn parse(file: &Arc<str>, text: &str) -> Result<Node, LoadError> {
    // saphyr-parser 0.3 refuses tabs leading a continuation line of a quoted scalar, which YAML
    // allows (`s-flow-line-prefix` may hold tabs) and PyYAML reads (debops writes them). The
    // scanner drops those blanks from the value, so the line is read again with spaces for its
    // leading tabs: the value is the one PyYAML gives; the line numbers do not move.
    let mut text = std::borrow::Cow::Borrowed(text);
    for _ in 0..64 {
        match parse_once(file, &text) {
            Err(QuotedTab { line }) => match untab_line(&text, line) {
                Some(fixed) => text = std::borrow::Cow::Owned(fixed),
                None => break,
            },
            Ok(result) => return result,
        }
    }
    match parse_once(file, &text) {
        Ok(result) => result,
        Err(QuotedTab { line }) => Err(LoadError::at(
            Location::new(file.clone(), line as u32),
            format!("invalid YAML: {QUOTED_TAB}"),
        )),
    }
}

/// A tab leading a quoted scalar's continuation line (1-based `line`), see [`parse`].
struct QuotedTab {
    line: usize,
}

/// `text` with the leading tabs of line `line` (1-based) as spaces, `None` if it has none.
fn untab_line(text: &str, line: usize) -> Option<String> {
    let mut out = String::with_capacity(text.len() + 64);
    let mut changed = false;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let rest = l.trim_start_matches([' ', '\t']);
            let lead = &l[..l.len() - rest.len()];
            if lead.contains('\t') {
                changed = true;
                out.push_str(&lead.replace('\t', "        "));
                out.push_str(rest);
                continue;
            }
        }
        out.push_str(l);
    }
    changed.then_some(out)
}

fn parse_once(file: &Arc<str>, text: &str) -> Result<Result<Node, LoadError>, QuotedTab> {
    let mut builder = Builder {
        file: file.clone(),
        anchors: HashMap::new(),
        stack: Vec::new(),
        result: None,
        expanded: 0,
    };
    let mut parser = Parser::new_from_str(text);
    while let Some(ev) = parser.next_event() {
        let (event, span) = match ev {
            Ok(ev) => ev,
            Err(e) if e.info() == QUOTED_TAB => {
                return Err(QuotedTab {
                    line: e.marker().line(),
                })
            }
            Err(e) => {
                return Ok(Err(LoadError::at(
                    Location::new(file.clone(), e.marker().line() as u32),
                    format!("invalid YAML: {}", e.info()),
                )))
            }
        };
        match event {
            Event::DocumentEnd => {
                if builder.result.is_some() {
                    break;
                }
            }
            Event::StreamEnd => break,
            other => {
                if let Err(e) = builder.event(other, span) {
                    return Ok(Err(e));
                }
            }
        }
    }
    Ok(Ok(builder.result.unwrap_or(Node::new(NodeKind::Null, 1))))
}

enum Frame {
    Seq {
        items: Vec<Node>,
        line: u32,
        anchor: usize,
    },
    Map {
        entries: Vec<Entry>,
        /// Entries brought in by `<<` merge keys; explicit keys win over them.
        merged: Vec<Entry>,
        pending_key: Option<(String, u32)>,
        line: u32,
        anchor: usize,
    },
}

struct Builder {
    file: Arc<str>,
    anchors: HashMap<usize, Node>,
    stack: Vec<Frame>,
    result: Option<Node>,
    expanded: usize,
}

impl Builder {
    fn err(&self, line: u32, msg: impl Into<String>) -> LoadError {
        LoadError::at(Location::new(self.file.clone(), line), msg)
    }

    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), LoadError> {
        let line = span.start.line() as u32;
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let tag = tag.map(|t| t.suffix.clone());
                let kind = if tag.as_deref() == Some("unsafe") {
                    // A mapping key is never templated: it keeps its text.
                    if self.expects_key() {
                        NodeKind::Str(text.to_string())
                    } else {
                        unsafe_str(&text).map_err(|e| self.err(line, e.to_string()))?
                    }
                } else {
                    resolve_scalar(&text, style, tag.as_deref())
                        .map_err(|e| self.err(line, e.to_string()))?
                };
                let node = Node::new(kind, line);
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.push(node)
            }
            Event::Alias(id) => {
                let node = self
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| self.err(line, "invalid YAML: unknown alias"))?;
                self.expanded += count_nodes(&node);
                if self.expanded > MAX_ALIAS_EXPANSION {
                    return Err(self.err(line, "invalid YAML: too many alias expansions"));
                }
                self.push(node)
            }
            Event::SequenceStart(anchor, tag) => {
                self.collection_tag(tag.as_deref().map(|t| t.suffix.as_str()), line)?;
                self.stack.push(Frame::Seq {
                    items: Vec::new(),
                    line,
                    anchor,
                });
                Ok(())
            }
            Event::MappingStart(anchor, tag) => {
                self.collection_tag(tag.as_deref().map(|t| t.suffix.as_str()), line)?;
                self.stack.push(Frame::Map {
                    entries: Vec::new(),
                    merged: Vec::new(),
                    pending_key: None,
                    line,
                    anchor,
                });
                Ok(())
            }
            Event::SequenceEnd => match self.stack.pop() {
                Some(Frame::Seq {
                    items,
                    line,
                    anchor,
                }) => {
                    let node = Node::new(NodeKind::Seq(items), line);
                    if anchor > 0 {
                        self.anchors.insert(anchor, node.clone());
                    }
                    self.push(node)
                }
                _ => Err(self.err(line, "invalid YAML: unbalanced sequence")),
            },
            Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Map {
                    mut entries,
                    merged,
                    line,
                    anchor,
                    ..
                }) => {
                    for e in merged {
                        if !entries.iter().any(|x| x.key == e.key) {
                            entries.push(e);
                        }
                    }
                    let node = Node::new(NodeKind::Map(entries), line);
                    if anchor > 0 {
                        self.anchors.insert(anchor, node.clone());
                    }
                    self.push(node)
                }
                _ => Err(self.err(line, "invalid YAML: unbalanced mapping")),
            },
            _ => Ok(()),
        }
    }

    /// Whether the next node completes a mapping key (rather than a value or an item).
    fn expects_key(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame::Map {
                pending_key: None,
                ..
            })
        )
    }

    /// Tags on a sequence or mapping: only YAML's own are meaningful; anything else
    /// (`!unsafe` on a list, a custom tag) is refused rather than silently ignored.
    fn collection_tag(&self, tag: Option<&str>, line: u32) -> Result<(), LoadError> {
        match tag {
            None | Some("seq") | Some("map") | Some("omap") => Ok(()),
            Some(other) => Err(self.err(
                line,
                format!("unsupported YAML tag `!{other}` on a sequence or mapping"),
            )),
        }
    }

    fn push(&mut self, node: Node) -> Result<(), LoadError> {
        let file = self.file.clone();
        match self.stack.last_mut() {
            None => {
                self.result = Some(node);
                Ok(())
            }
            Some(Frame::Seq { items, .. }) => {
                items.push(node);
                Ok(())
            }
            Some(Frame::Map {
                entries,
                merged,
                pending_key,
                ..
            }) => match pending_key.take() {
                None => {
                    let key = match &node.kind {
                        NodeKind::Str(s) => s.clone(),
                        NodeKind::Int(i) => i.to_string(),
                        NodeKind::Bool(b) => if *b { "True" } else { "False" }.to_string(),
                        NodeKind::Float(f) => f.to_string(),
                        NodeKind::Null => "None".to_string(),
                        _ => {
                            return Err(LoadError::at(
                                Location::new(file, node.line),
                                "invalid YAML: a mapping key must be a scalar",
                            ))
                        }
                    };
                    *pending_key = Some((key, node.line));
                    Ok(())
                }
                Some((key, key_line)) => {
                    if key == "<<" {
                        // YAML merge key: entries of the merged mapping(s) come first and are
                        // overridden by explicit keys, as PyYAML does.
                        let more: Vec<Entry> = match node.kind {
                            NodeKind::Map(m) => m,
                            NodeKind::Seq(maps) => maps
                                .into_iter()
                                .filter_map(|n| match n.kind {
                                    NodeKind::Map(m) => Some(m),
                                    _ => None,
                                })
                                .flatten()
                                .collect(),
                            _ => {
                                return Err(LoadError::at(
                                    Location::new(file, key_line),
                                    "invalid YAML: `<<` expects a mapping",
                                ))
                            }
                        };
                        for e in more {
                            if !merged.iter().any(|x| x.key == e.key) {
                                merged.push(e);
                            }
                        }
                        return Ok(());
                    }
                    if let Some(pos) = entries.iter().position(|e| e.key == key) {
                        return Err(LoadError::at(
                            Location::new(file, key_line),
                            format!(
                                "invalid YAML: duplicate key `{key}` (first at line {})",
                                entries[pos].key_line
                            ),
                        )
                        .with_key(key));
                    }
                    entries.push(Entry {
                        key,
                        key_line,
                        value: node,
                    });
                    Ok(())
                }
            },
        }
    }
}

fn count_nodes(node: &Node) -> usize {
    match &node.kind {
        NodeKind::Seq(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        NodeKind::Map(entries) => 1 + entries.iter().map(|e| count_nodes(&e.value)).sum::<usize>(),
        _ => 1,
    }
}

/// A tagged scalar that does not fit its tag, or a tag this loader does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum ScalarError {
    #[error("invalid YAML: `{0}` is not an integer")]
    NotInt(String),
    #[error("invalid YAML: `{0}` is not a number")]
    NotFloat(String),
    #[error("invalid YAML: `{0}` is not a boolean")]
    NotBool(String),
    /// Jinja's raw block cannot hold its own end tag.
    #[error("`!unsafe` text containing `endraw` is not supported")]
    UnsafeEndraw,
    /// Ansible's `!vault` and unknown tags are not supported: refused rather than guessed.
    #[error("unsupported YAML tag `!{0}`")]
    UnsupportedTag(String),
}

/// Ansible's `!unsafe`: the text is never templated. It is kept as a string that renders to
/// itself (a Jinja raw block around it; `+%}` so trim_blocks keeps a leading newline), so every
/// later rendering — lazy variables, module
/// arguments — yields the text as written, with no special case downstream.
fn unsafe_str(text: &str) -> Result<NodeKind, ScalarError> {
    if !crate::template::Templar::is_template(text) {
        return Ok(NodeKind::Str(text.to_string()));
    }
    if text.contains("endraw") {
        return Err(ScalarError::UnsafeEndraw);
    }
    Ok(NodeKind::Str(format!("{{% raw +%}}{text}{{% endraw %}}")))
}

/// YAML 1.1 plain-scalar resolution as PyYAML's SafeLoader does it.
fn resolve_scalar(
    text: &str,
    style: ScalarStyle,
    tag: Option<&str>,
) -> Result<NodeKind, ScalarError> {
    if let Some(tag) = tag {
        return match tag {
            "str" => Ok(NodeKind::Str(text.to_string())),
            "int" => parse_int(text)
                .map(NodeKind::Int)
                .ok_or_else(|| ScalarError::NotInt(text.to_string())),
            "float" => text
                .parse()
                .map(NodeKind::Float)
                .map_err(|_| ScalarError::NotFloat(text.to_string())),
            "bool" => parse_bool(text)
                .map(NodeKind::Bool)
                .ok_or_else(|| ScalarError::NotBool(text.to_string())),
            "null" => Ok(NodeKind::Null),
            other => Err(ScalarError::UnsupportedTag(other.to_string())),
        };
    }
    if style != ScalarStyle::Plain {
        return Ok(NodeKind::Str(text.to_string()));
    }
    if matches!(text, "" | "~" | "null" | "Null" | "NULL") {
        return Ok(NodeKind::Null);
    }
    if let Some(b) = parse_bool(text) {
        return Ok(NodeKind::Bool(b));
    }
    if let Some(i) = parse_int(text) {
        return Ok(NodeKind::Int(i));
    }
    if let Some(f) = parse_float(text) {
        return Ok(NodeKind::Float(f));
    }
    Ok(NodeKind::Str(text.to_string()))
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => Some(true),
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

/// YAML 1.1 ints: decimal, `0o`/leading-zero octal, `0x` hex, `0b` binary, `_` separators.
fn parse_int(text: &str) -> Option<i64> {
    let (neg, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if body.is_empty() || !body.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    let body = body.replace('_', "");
    let value = if let Some(hex) = body.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if let Some(bin) = body.strip_prefix("0b") {
        i64::from_str_radix(bin, 2).ok()?
    } else if let Some(oct) = body.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()?
    } else if body.len() > 1 && body.starts_with('0') {
        i64::from_str_radix(&body[1..], 8).ok()?
    } else if body.bytes().all(|b| b.is_ascii_digit()) {
        body.parse().ok()?
    } else {
        return None;
    };
    Some(if neg { -value } else { value })
}

fn parse_float(text: &str) -> Option<f64> {
    match text {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    // PyYAML requires a dot in a float (`1e3` is a string there).
    let t = text.replace('_', "");
    let digits = t.trim_start_matches(['-', '+']);
    if !digits.contains('.') || !digits.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    if !digits.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Node {
        parse(&Arc::from("t.yml"), text).expect("parses")
    }

    #[test]
    fn tabs_leading_a_quoted_continuation_line_read_as_pyyaml() {
        for (text, want) in [
            ("b: 'x\n\t\ty'\n", "x y"),
            ("a: 1\nb: \"x\n\t\ty\"\n", "x y"),
            ("b: '{{ a\n\t\tand b }}'\nc: 2\n", "{{ a and b }}"),
        ] {
            let n = p(text);
            assert_eq!(
                n.get("b").unwrap().kind,
                NodeKind::Str(want.into()),
                "{text:?}"
            );
        }
        // The line of a later error is still the line in the file.
        let e = parse(&Arc::from("t.yml"), "b: 'x\n\ty'\nc: [\n").unwrap_err();
        assert_eq!(e.location.unwrap().line, 4, "{}", e.message);
        // A tab as block indentation is still refused.
        assert!(parse(&Arc::from("t.yml"), "a:\n\tb: 1\n").is_err());
    }

    #[test]
    fn yaml11_scalars() {
        let n = p("a: yes\nb: off\nc: 0644\nd: '0644'\ne: 12\nf: 1.5\ng: ~\nh: 0x1f\ni: text\n");
        assert_eq!(n.get("a").unwrap().kind, NodeKind::Bool(true));
        assert_eq!(n.get("b").unwrap().kind, NodeKind::Bool(false));
        assert_eq!(n.get("c").unwrap().kind, NodeKind::Int(0o644));
        assert_eq!(n.get("d").unwrap().kind, NodeKind::Str("0644".into()));
        assert_eq!(n.get("e").unwrap().kind, NodeKind::Int(12));
        assert_eq!(n.get("f").unwrap().kind, NodeKind::Float(1.5));
        assert_eq!(n.get("g").unwrap().kind, NodeKind::Null);
        assert_eq!(n.get("h").unwrap().kind, NodeKind::Int(31));
        assert_eq!(n.get("i").unwrap().kind, NodeKind::Str("text".into()));
    }

    #[test]
    fn lines_are_recorded() {
        let n = p("- name: one\n  copy:\n    dest: /x\n- name: two\n");
        let seq = n.as_seq().unwrap();
        assert_eq!(seq[0].line, 1);
        assert_eq!(seq[1].line, 4);
        let copy = seq[0]
            .as_map()
            .unwrap()
            .iter()
            .find(|e| e.key == "copy")
            .unwrap();
        assert_eq!(copy.key_line, 2);
        assert_eq!(copy.value.get("dest").unwrap().line, 3);
    }

    #[test]
    fn unsafe_text_renders_as_written() {
        let t = crate::template::Templar::new();
        let vars =
            minijinja::Value::from(std::collections::BTreeMap::<String, minijinja::Value>::new());
        let doc = "a: !unsafe \"\\n{{ x }} {% if %}\\n\"\nb: !unsafe plain\n!unsafe k: 1\n";
        let node = parse(&Arc::from("t.yml"), doc).unwrap();
        let v = node.to_value();
        let a = t.render_str(v.get_attr("a").unwrap().as_str().unwrap(), &vars);
        assert_eq!(a.unwrap().as_str(), Some("\n{{ x }} {% if %}\n"));
        assert_eq!(v.get_attr("b").unwrap().as_str(), Some("plain"));
        assert_eq!(v.get_attr("k").unwrap().as_i64(), Some(1));
    }

    #[test]
    fn tag_errors_name_line_and_tag() {
        let e = parse(&Arc::from("t.yml"), "a: 1\nb: !!int x1\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.yml:2: invalid YAML: `x1` is not an integer"
        );
        let e = parse(&Arc::from("t.yml"), "a: !vault '$ANSIBLE_VAULT'\n").unwrap_err();
        assert_eq!(e.to_string(), "t.yml:1: unsupported YAML tag `!vault`");
        let e = parse(&Arc::from("t.yml"), "a: !unsafe [1]\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.yml:1: unsupported YAML tag `!unsafe` on a sequence or mapping"
        );
        let e = parse(&Arc::from("t.yml"), "a: !unsafe '{% endraw %}'\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.yml:1: `!unsafe` text containing `endraw` is not supported"
        );
        let e = parse(&Arc::from("t.yml"), "a: !!bool maybe\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.yml:1: invalid YAML: `maybe` is not a boolean"
        );
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse(&Arc::from("bad.yml"), "a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("bad.yml:"), "{text}");
        assert!(text.contains("invalid YAML"), "{text}");
        let e = parse(&Arc::from("dup.yml"), "a: 1\na: 2\n").unwrap_err();
        assert!(e.to_string().contains("dup.yml:2"), "{e}");
        assert!(e.to_string().contains("duplicate key"), "{e}");
    }

    #[test]
    fn anchors_and_merge_keys() {
        let n = p("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n");
        let o = n.get("other").unwrap();
        assert_eq!(o.get("x").unwrap().kind, NodeKind::Int(1));
        assert_eq!(o.get("y").unwrap().kind, NodeKind::Int(3));
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut doc = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let mut prev = 'a';
        for c in ['b', 'c', 'd', 'e', 'f', 'g'] {
            doc.push_str(&format!(
                "{c}: &{c} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
            prev = c;
        }
        assert!(parse(&Arc::from("bomb.yml"), &doc).is_err());
    }
}
