//! Expected values come from ansible-core 2.19 (`ansible-playbook` with `debug: msg=...`).

use super::*;

fn json(j: serde_json::Value) -> Value {
    Value::from(minijinja::value::Serde(j))
}

fn vars() -> Value {
    json(serde_json::json!({
        "root": "/srv",
        "name": "web",
        "port": 8080,
        "list": [1, 2, 3],
        "d": {"a": 1, "b": 2},
        "r": {"changed": true, "failed": false},
        "s": {"skipped": true, "changed": false},
        "f": {"failed": true, "changed": true},
        "t": true,
        "empty": "",
        "nothing": null,
        "yes_str": "yes",
        "users": [{"name": "a", "admin": true}, {"name": "b", "admin": false}],
    }))
}

/// Renders a template and prints the result as Ansible's debug would show a string.
fn r(t: &str) -> String {
    let v = Templar::new()
        .render_str(t, &vars())
        .unwrap_or_else(|e| panic!("{t}: {e}"));
    pyrepr::py_str(&v)
}

/// Renders a template file body (the `template` module: Jinja's string escapes apply).
fn rt(t: &str) -> String {
    Templar::new()
        .render_text(t, &vars())
        .unwrap_or_else(|e| panic!("{t}: {e}"))
}

fn e(t: &str) -> String {
    match Templar::new().render_str(t, &vars()) {
        Ok(v) => panic!("{t}: expected an error, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

fn b(expr: &str) -> bool {
    Templar::new()
        .eval_bool(expr, &vars())
        .unwrap_or_else(|e| panic!("{expr}: {e}"))
}

#[test]
fn plain_strings_untouched() {
    let t = Templar::new();
    assert_eq!(
        t.render_str("hello", &vars()).unwrap(),
        Value::from("hello")
    );
    assert_eq!(
        t.render_str("a { b } %", &vars()).unwrap(),
        Value::from("a { b } %")
    );
    assert!(Templar::is_template("x{{y}}"));
    assert!(Templar::is_template("{% if %}"));
    assert!(Templar::is_template("{# c #}"));
    assert!(!Templar::is_template("{ x }"));
}

#[test]
fn native_values() {
    let t = Templar::new();
    let v = t.render_str("{{ list }}", &vars()).unwrap();
    assert_eq!(v.kind(), minijinja::value::ValueKind::Seq);
    assert_eq!(
        t.render_str("{{ port }}", &vars()).unwrap(),
        Value::from(8080)
    );
    assert_eq!(
        t.render_str("{{port}}", &vars()).unwrap(),
        Value::from(8080)
    );
    assert_eq!(
        t.render_str("{{- port -}}", &vars()).unwrap(),
        Value::from(8080)
    );
    let d = t.render_str("{{ d }}", &vars()).unwrap();
    assert_eq!(d.kind(), minijinja::value::ValueKind::Map);
    assert_eq!(t.render_str("{{ t }}", &vars()).unwrap(), Value::from(true));
    assert!(t.render_str("{{ nothing }}", &vars()).unwrap().is_none());
    // Ansible: text around the expression (even whitespace) makes a string.
    assert_eq!(
        t.render_str(" {{ 1 }} ", &vars()).unwrap(),
        Value::from(" 1 ")
    );
    assert_eq!(
        t.render_str("{{ root }}/x", &vars()).unwrap(),
        Value::from("/srv/x")
    );
    assert_eq!(
        t.render_str("{{ name }}-{{ port }}", &vars()).unwrap(),
        Value::from("web-8080")
    );
    assert_eq!(r("{{ 4 / 2 }}"), "2.0");
}

#[test]
fn python_str_formatting() {
    assert_eq!(r("a{{ none }}b"), "ab");
    assert_eq!(r("a{{ true }}b{{ false }}"), "aTruebFalse");
    assert_eq!(
        r("a{{ [1,'x',true,none,1.5] }}b"),
        "a[1, 'x', True, None, 1.5]b"
    );
    assert_eq!(r("a{{ {'k': 1, 'b': 'x'} }}b"), "a{'k': 1, 'b': 'x'}b");
    assert_eq!(r("a{{ 2.0 }}b{{ 1/3 }}"), "a2.0b0.3333333333333333");
    assert_eq!(
        r("x{{ 1e20 }}x{{ 1.5e-7 }}x{{ 100.0 }}x{{ 12345678901234567.0 }}x{{ 0.1+0.2 }}"),
        "x1e+20x1.5e-07x100.0x1.2345678901234568e+16x0.30000000000000004"
    );
    assert_eq!(
        r("{{ ['a', \"b'c\", 'd\"e'] | string }}"),
        "['a', \"b'c\", 'd\"e']"
    );
}

#[test]
fn text_rendering() {
    let t = Templar::new();
    assert_eq!(
        t.render_str("{{ 'a' }}\n", &vars()).unwrap(),
        Value::from("a\n")
    );
    assert_eq!(
        t.render_str("{% if true %}\nX\n{% endif %}\nY", &vars())
            .unwrap(),
        Value::from("X\nY")
    );
    let body = "port={{ port }}\n{% for i in list %}\n  - {{ i }}\n{% endfor %}\nend\n";
    assert_eq!(
        t.render_text(body, &vars()).unwrap(),
        "port=8080\n  - 1\n  - 2\n  - 3\nend\n"
    );
    assert_eq!(
        t.render_text("no template\n", &vars()).unwrap(),
        "no template\n"
    );
    // a source whose text ends like an html file name must not be auto-escaped
    assert_eq!(
        t.render_text("{{ '<b>' }} index.html", &vars()).unwrap(),
        "<b> index.html"
    );
    // lstrip_blocks is off
    assert_eq!(
        t.render_text("  {% if true %}x{% endif %}\n", &vars())
            .unwrap(),
        // trim_blocks eats the newline after endif; Ansible adds it back (checked with 2.19)
        "  x\n"
    );
}

#[test]
fn undefined_handling() {
    let msg = e("{{ foo }}");
    assert!(msg.contains("foo"), "{msg}");
    assert!(e("x{{ foo }}").contains("undefined"));
    e("{{ foo | upper }}");
    e("{% for i in foo %}{{ i }}{% endfor %}");
    e("{% if foo %}a{% else %}b{% endif %}");
    e("{{ d.missing }}");
    assert_eq!(r("{{ foo.bar is defined }}"), "False");
    assert_eq!(r("{{ foo.bar | default('x') }}"), "x");
    assert_eq!(r("{{ foo['bar'].baz | default('x') }}"), "x");
    assert_eq!(r("{{ foo is undefined }}"), "True");
    assert_eq!(r("{{ d.missing is defined }}"), "False");
    assert_eq!(r("{{ d.a is defined }}"), "True");
    assert_eq!(r("{{ d.missing | default(5) }}"), "5");
    assert_eq!(r("{{ foo | d('z') }}"), "z");
}

#[test]
fn syntax_errors() {
    let t = Templar::new();
    let err = t.check_syntax("{{ foo ").unwrap_err().to_string();
    assert!(err.contains("syntax error"), "{err}");
    let err = t
        .check_syntax("a\nb\n{% if x %}\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("line"), "{err}");
    assert!(t.check_syntax("{{ foo | default('x') }}").is_ok());
    assert!(t.check_syntax("plain").is_ok());
    assert!(t.check_expr_syntax("x is defined and y | bool").is_ok());
    assert!(t.check_expr_syntax("x ==").is_err());
    assert!(t.check_expr_syntax("{{ x }}").is_ok());
    assert!(t.render_str("{{ 1 + }}", &vars()).is_err());
}

#[test]
fn eval_bool_and_expr() {
    assert!(b("t"));
    assert!(b("port == 8080"));
    assert!(!b("port > 9000"));
    assert!(b("foo is not defined"));
    assert!(b("foo.bar is undefined"));
    assert!(b("d.a is defined and d.a == 1"));
    assert!(b("'1' in ['1']"));
    assert!(!b("empty"));
    assert!(!b("nothing"));
    assert!(b("yes_str | bool"));
    assert!(b("true"));
    assert!(b("True"));
    assert!(b("yes"));
    assert!(!b("False"));
    assert!(!b("no"));
    assert!(b("{{ port == 8080 }}"));
    assert!(!b("{{ 'False' }}"));
    assert!(!b("{{ 'no' }}"));
    assert!(b("r is changed"));
    let t = Templar::new();
    assert!(t.eval_bool("foo", &vars()).is_err());
    assert!(t.eval_bool("foo and true", &vars()).is_err());
    assert_eq!(
        t.eval_expr("list | length", &vars()).unwrap(),
        Value::from(3)
    );
    assert!(t.eval_expr("nope", &vars()).is_err());
}

#[test]
fn render_value_recursive() {
    let t = Templar::new();
    let v = json(serde_json::json!({
        "path": "{{ root }}/etc",
        "{{ name }}_key": ["{{ port }}", "x", {"n": "{{ list }}"}],
        "plain": 5,
    }));
    let out = t.render_value(&v, &vars()).unwrap();
    assert_eq!(out.get_attr("path").unwrap(), Value::from("/srv/etc"));
    let l = out.get_attr("web_key").unwrap();
    assert_eq!(l.get_item(&Value::from(0)).unwrap(), Value::from(8080));
    let n = l.get_item(&Value::from(2)).unwrap().get_attr("n").unwrap();
    assert_eq!(n.len(), Some(3));
    assert_eq!(out.get_attr("plain").unwrap(), Value::from(5));
}

#[test]
fn omit_global() {
    assert_eq!(r("{{ omit }}"), OMIT);
}

#[test]
fn filter_default_bool_int_float() {
    assert_eq!(
        r("{{ '' | default('d', true) }}|{{ 0 | d('z') }}|{{ none | default('n') }}"),
        "d|0|"
    );
    assert_eq!(r("{{ [] | default(['x'], true) }}"), "['x']");
    assert_eq!(r("{{ '' | default('d', boolean=true) }}"), "d");
    assert_eq!(
        r("{{ ['yes','No','on','OFF','true','False','1','0','y','n','t','f', 1, 0, 'foo', none, 2, '2', ''] | map('bool') | list }}"),
        "[True, False, True, False, True, False, True, False, False, False, False, False, True, False, False, False, False, False, False]"
    );
    assert_eq!(
        r("{{ ['12', 'abc', '3.7', 4.9, ' 5 ', '0x1F', true, '-3', '1e3'] | map('int') | list }}"),
        "[12, 0, 3, 4, 5, 0, 1, -3, 1000]"
    );
    assert_eq!(
        r("{{ '0x1F' | int(base=16) }} {{ 'ff' | int(0, 16) }} {{ 'zz' | int(7) }}"),
        "31 255 7"
    );
    assert_eq!(
        r("{{ 2.5 | int }} {{ '  7\n' | int }} {{ '+3' | int }} {{ '1_000' | int }}"),
        "2 7 3 1000"
    );
    assert_eq!(
        r("{{ ['1.5', 'x', 2, '3', true] | map('float') | list }}"),
        "[1.5, 0.0, 2.0, 3.0, 1.0]"
    );
}

#[test]
fn filter_strings() {
    assert_eq!(
        r("{{ [1, true, none, [1,'a'], {'a':1}] | map('string') | list }}"),
        "['1', 'True', 'None', \"[1, 'a']\", \"{'a': 1}\"]"
    );
    assert_eq!(r("{{ [1, true, 'a'] | join(',') }}"), "1,True,a");
    assert_eq!(
        r("{{ ['a', 'b'] | join }}|{{ 'abc' | join('-') }}"),
        "ab|a-b-c"
    );
    assert_eq!(r("{{ 'aaa' | replace('a', 'b', 2) }}"), "bba");
    assert_eq!(r("{{ 'AbC' | lower }} {{ 'AbC' | upper }}"), "abc ABC");
    assert_eq!(r("[{{ '  a b  ' | trim }}]"), "[a b]");
    assert_eq!(
        r("{{ \"it's\" | quote }} {{ 'abc' | quote }} {{ '' | quote }} {{ 'a b' | quote }} {{ 'a-b_c/d.e:f=g@h%+,' | quote }}"),
        "'it'\"'\"'s' abc '' 'a b' a-b_c/d.e:f=g@h%+,"
    );
    assert_eq!(
        r("{{ 'hello' | b64encode }} {{ 'aGVsbG8=' | b64decode }}"),
        "aGVsbG8= hello"
    );
    assert_eq!(
        r("{{ '/etc/x/y.conf' | basename }} {{ '/etc/x/y.conf' | dirname }} {{ 'y' | dirname }} {{ '/etc/' | basename }}"),
        "y.conf /etc/x  "
    );
    assert_eq!(r("{{ '/x' | dirname }}"), "/");
    assert_eq!(r("{{ 'a,b'.split(',') }} {{ 'abc'.startswith('a') }} {{ ' x '.strip() }} {{ 'ab'.upper() }}"), "['a', 'b'] True x AB");
    assert_eq!(
        r("{{ 'a b  c'.split() }} {{ 'a=b=c'.split('=', 1) }}"),
        "['a', 'b', 'c'] ['a', 'b=c']"
    );
    assert_eq!(
        r("{{ d.items() | list }} {{ d.keys() | list }} {{ d.get('zz', 3) }}"),
        "[['a', 1], ['b', 2]] ['a', 'b'] 3"
    );
    assert_eq!(r("{{ 1 | type_debug }} {{ 'a' | type_debug }} {{ [] | type_debug }} {{ none | type_debug }}"), "int str list NoneType");
}

#[test]
fn filter_regex() {
    assert_eq!(
        r(r"{{ 'hello world' | regex_replace('(\w+) (?P<second>\w+)', '\2-\g<second>-\1') }}"),
        "world-world-hello"
    );
    assert_eq!(
        r("{{ 'aaa' | regex_replace('a', 'b') }} {{ 'ABC' | regex_replace('b', 'x', ignorecase=true) }} {{ 'a\nb' | regex_replace('^b', 'X', multiline=true) }}"),
        "bbb AxC a\nX"
    );
    assert_eq!(
        r(r"{{ 'abc' | regex_replace('(b)', '[\1]') }}|{{ 'abc' | regex_replace('x*', '-') }}"),
        "a[b]c|-a-b-c-"
    );
    assert_eq!(r("{{ 'a$b' | regex_replace('\\$', '$$') }}"), "a$$b");
    assert_eq!(r("{{ 'foo123bar' | regex_search('[0-9]+') }}"), "123");
    let t = Templar::new();
    assert!(t
        .render_str("{{ 'foo' | regex_search('[0-9]+') }}", &vars())
        .unwrap()
        .is_none());
    assert_eq!(
        r(r"{{ 'foo123bar456' | regex_search('(?P<n>[0-9]+)bar([0-9]+)', '\1', '\g<n>', '\2') }}"),
        "['123', '123', '456']"
    );
    assert_eq!(
        r("{{ 'a1b22c333' | regex_findall('[0-9]+') }}"),
        "['1', '22', '333']"
    );
    assert_eq!(
        r(r"{{ 'k1=v1 k2=v2' | regex_findall('(\w+)=(\w+)') }}"),
        "[['k1', 'v1'], ['k2', 'v2']]"
    );
    assert_eq!(r(r"{{ 'k1=v1' | regex_findall('(\w+)=\w+') }}"), "['k1']");
    assert_eq!(r("{{ 'a.b' | regex_escape }}"), "a\\.b");
}

/// ansible-core 2.19, each as `debug: msg="..."` in YAML double quotes (so the Jinja source is
/// what the raw strings below show).
#[test]
fn regex_backrefs_as_python_re() {
    let s = "{% set s = 'abc-123' %}";
    let rr = |t: &str| r(&format!("{s}{t}"));
    assert_eq!(
        rr(r"{{ s | regex_replace('(\w+)-(\d+)', '\2-\1') }}"),
        "123-abc"
    );
    assert_eq!(
        r(r"{{ 'abc-123' | regex_replace('(?P<w>\w+)-(?P<d>\d+)', '\g<d>/\g<w>') }}"),
        "123/abc"
    );
    assert_eq!(
        r(r"{{ 'abc-123' | regex_replace('(\w+)-(\d+)', '\0|\101|\-|\n') }}"),
        "\0|A|\\-|\n"
    );
    assert_eq!(
        r(r"{{ 'abc-123' | regex_replace('(a)|(z)', '[\2]') }}"),
        "[]bc-123"
    );
    assert_eq!(
        r(r"{{ 'abc-123' | regex_replace('x*', '-') }}"),
        "-a-b-c---1-2-3-"
    );
    assert_eq!(r(r"{{ 'abxd' | regex_replace('x*', '-') }}"), "-a-b--d-");
    assert!(e(r"{{ 'abc-123' | regex_replace('(\w+)-(\d+)', '\3') }}")
        .contains("invalid group reference 3"));
    assert!(
        e(r"{{ 'abc-123' | regex_replace('(\w+)-(\d+)', '\g<0>|\12') }}")
            .contains("invalid group reference 12")
    );
    assert!(e(r"{{ 'abc-123' | regex_replace('(\w+)', '\q') }}").contains("bad escape \\q"));
    // regex_search: `\g<1>` names a group called "1" (none), an absent group is an error
    for bad in [r"'\g<1>'", r"'\g<x>'", r"'\3'"] {
        let t = format!(r"{{{{ 'abc-123' | regex_search('(\w+)-(\d+)', {bad}) }}}}");
        assert!(e(&t).contains("no such group"), "{t}");
    }
    assert_eq!(
        r(r"{{ 'abc-123' | regex_search('(\w+)-(\d+)', '\2', '\1') }}"),
        "['123', 'abc']"
    );
    // a literal block (YAML `|`): the Jinja source keeps `\\1`, which is `\\1` to re.sub
    assert_eq!(r(r"{{ 'abc' | regex_replace('(b)', '\\1') }}"), "a\\1c");
    // in a template file and in a `{% %}` statement, Jinja's escapes apply
    assert_eq!(rt(r"{{ 'abc' | regex_replace('(b)', '[\\1]') }}"), "a[b]c");
    assert_eq!(rt("{{ 'it\\'s' }}"), "it's");
    assert_eq!(r(r"{{ 'it\'s' }}|{{ 'q\\x' }}"), "it\\'s|q\\\\x");
    assert_eq!(r(r"{% set x = 'a\\b' %}{{ x }}"), "a\\b");
}

#[test]
fn filter_json() {
    assert_eq!(
        r("{{ {'b': 1, 'a': [1, 'x', none, true], 'c': 'é'} | to_json }}"),
        "{\"b\": 1, \"a\": [1, \"x\", null, true], \"c\": \"\\u00e9\"}"
    );
    assert_eq!(
        r("{{ {'b': 1, 'a': [1, 'x', none, true], 'c': {'z': 1, 'y': {}} , 'd': []} | to_nice_json }}"),
        "{\n    \"a\": [\n        1,\n        \"x\",\n        null,\n        true\n    ],\n    \"b\": 1,\n    \"c\": {\n        \"y\": {},\n        \"z\": 1\n    },\n    \"d\": []\n}"
    );
    assert_eq!(
        r("{{ {'z': 1, 'a': 'é'} | to_json(sort_keys=true) }}|{{ [] | to_nice_json }}|{{ 1.0 | to_json }}|{{ 1e20 | to_json }}"),
        "{\"a\": \"\\u00e9\", \"z\": 1}|[]|1.0|1e+20"
    );
    assert_eq!(
        r("{{ ('{\"a\": [1, 2.5, null, true]}' | from_json).a }}"),
        "[1, 2.5, None, True]"
    );
}

#[test]
fn filter_yaml() {
    assert_eq!(
        r("{{ {'b': 1, 'a': [1, 'x', none, true], 'c': {'z': 1, 'y': 'yes'}} | to_yaml }}"),
        "a: [1, x, null, true]\nb: 1\nc: {y: 'yes', z: 1}\n"
    );
    assert_eq!(
        r("{{ {'b': 1, 'a': [1, 'x', none, true, {'k': 'v', 'l': [1,2]}], 'c': {'z': 1.5, 'y': 'yes', 'e': '', 'n': '123', 'w': 'a: b', 'm': 'line1\nline2', 'q': \"it's\"}, 'd': [], 'f': {}} | to_nice_yaml }}"),
        "a:\n- 1\n- x\n- null\n- true\n-   k: v\n    l:\n    - 1\n    - 2\nb: 1\nc:\n    e: ''\n    m: 'line1\n\n        line2'\n    n: '123'\n    q: it's\n    w: 'a: b'\n    y: 'yes'\n    z: 1.5\nd: []\nf: {}\n"
    );
    assert_eq!(
        r("{{ [1, 'a', [2, 3], {'x': 1}] | to_nice_yaml }}"),
        "- 1\n- a\n-   - 2\n    - 3\n-   x: 1\n"
    );
    assert_eq!(
        r("{{ 'abc' | to_nice_yaml }}|{{ 5 | to_nice_yaml }}"),
        "abc\n|5\n"
    );
    assert_eq!(
        r("{{ [[1,2],[]] | to_yaml }}|{{ 'abc' | to_yaml }}|{{ [] | to_nice_yaml }}|{{ {} | to_nice_yaml }}|{{ none | to_nice_yaml }}"),
        "- [1, 2]\n- []\n|abc\n|[]\n|{}\n|null\n"
    );
    assert_eq!(
        r("{{ {'a': {'b': {'c': [1]}}} | to_nice_yaml(indent=2) }}"),
        "a:\n  b:\n    c:\n    - 1\n"
    );
    let long = "aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj kkkk llll mmmm nnnn oooo pppp qqqq rrrr ssss tttt uuuu";
    assert_eq!(
        r(&format!("{{{{ '{long}' | to_nice_yaml }}}}")),
        "aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj kkkk llll mmmm nnnn oooo pppp qqqq\n    rrrr ssss tttt uuuu\n"
    );
    assert_eq!(
        r(&format!("{{{{ {{'k': '{long}'}} | to_nice_yaml }}}}")),
        "k: aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj kkkk llll mmmm nnnn oooo pppp\n    qqqq rrrr ssss tttt uuuu\n"
    );
    // quoting rules (PyYAML's analysis and YAML 1.1 implicit types)
    let y = r#"{{ {'s1': 'true', 's2': 'null', 's3': '~', 's4': '1.0', 's5': '-x', 's6': 'x:', 's7': '#x', 's8': ' lead', 's9': 'trail ', 's10': 'é ü', 's11': 'a	b', 's12': '@at', 's13': 'a #b', 's14': 'on', 's15': '0o17', 's16': '1_000', 's20': "a'b\"c", 's21': 'x\ny\n', 's22': '2024-01-01', 's23': '- a', 's26': 'a,b', 's28': '0777', 's29': '1e3', 's30': '.inf', 's31': 'NO', 's35': 'a\\b', 'n2': -0.5, 'n3': 1000000, 'b1': false} | to_nice_yaml }}"#;
    assert_eq!(
        rt(y),
        "b1: false\nn2: -0.5\nn3: 1000000\ns1: 'true'\ns10: é ü\ns11: \"a\\tb\"\ns12: '@at'\ns13: 'a #b'\ns14: 'on'\ns15: 0o17\ns16: '1_000'\ns2: 'null'\ns20: a'b\"c\ns21: 'x\n\n    y\n\n    '\ns22: '2024-01-01'\ns23: '- a'\ns26: a,b\ns28: '0777'\ns29: 1e3\ns3: '~'\ns30: '.inf'\ns31: 'NO'\ns35: a\\b\ns4: '1.0'\ns5: -x\ns6: 'x:'\ns7: '#x'\ns8: ' lead'\ns9: 'trail '\n"
    );
    assert_eq!(
        r("{{ ('a: 1\nb: [x, y]\nc:\n  d: yes\n' | from_yaml) }}"),
        "{'a': 1, 'b': ['x', 'y'], 'c': {'d': True}}"
    );
    assert_eq!(
        r("{{ ('- 0x10\n- 1.5\n- ~\n- \"yes\"\n- 010' | from_yaml) }}"),
        "[16, 1.5, None, 'yes', 8]"
    );
}

#[test]
fn filter_dicts_and_lists() {
    assert_eq!(
        r("{{ {'a': {'x': 1, 'y': 2}, 'b': 1} | combine({'a': {'y': 3}}, {'c': 4}) }}"),
        "{'a': {'y': 3}, 'b': 1, 'c': 4}"
    );
    assert_eq!(
        r("{{ {'a': {'x': 1, 'y': 2}, 'b': 1} | combine({'a': {'y': 3}}, recursive=true) }}"),
        "{'a': {'x': 1, 'y': 3}, 'b': 1}"
    );
    assert_eq!(
        r("{{ {} | combine([{'a': 1}, {'b': 2}]) }}"),
        "{'a': 1, 'b': 2}"
    );
    assert_eq!(
        r("{{ {'a': 1, 'b': 2} | dict2items }} {{ {'a': 1} | dict2items(key_name='k', value_name='v') }}"),
        "[{'key': 'a', 'value': 1}, {'key': 'b', 'value': 2}] [{'k': 'a', 'v': 1}]"
    );
    assert_eq!(
        r("{{ [{'key': 'a', 'value': 1}] | items2dict }} {{ [{'k': 'a', 'v': 1}] | items2dict(key_name='k', value_name='v') }}"),
        "{'a': 1} {'a': 1}"
    );
    assert_eq!(r("{{ true | ternary('y', 'n') }} {{ none | ternary('y', 'n', 'null') }} {{ 0 | ternary('y', 'n') }}"), "y null n");
    assert_eq!(r("{{ [1, 2, 1, 'a', 'a'] | unique }}"), "[1, 2, 'a']");
    assert_eq!(
        r("{{ [1,2] | length }} {{ 'abc' | count }} {{ {'a':1} | length }}"),
        "2 3 1"
    );
    assert_eq!(
        r("{{ [1,2,3] | first }} {{ [1,2,3] | last }} {{ 'abc' | first }}"),
        "1 3 a"
    );
    assert_eq!(
        r("{{ [3,1,2] | sort }} {{ ['b','A','a'] | sort }} {{ [{'n': 2}, {'n': 1}] | sort(attribute='n') }}"),
        "[1, 2, 3] ['A', 'a', 'b'] [{'n': 1}, {'n': 2}]"
    );
    assert_eq!(r("{{ 'ab' | list }}"), "['a', 'b']");
    assert_eq!(
        r("{{ [1,2,3,4] | select('even') | list }} {{ [1,2,3] | reject('odd') | list }} {{ [{'a':1,'n':'x'},{'a':0,'n':'y'}] | selectattr('a') | map(attribute='n') | list }} {{ [{'a':1},{'a':0}] | rejectattr('a', 'equalto', 0) | list }}"),
        "[2, 4] [2] ['x'] [{'a': 1}]"
    );
    assert_eq!(
        r("{{ users | selectattr('admin') | map(attribute='name') | join(',') }}"),
        "a"
    );
    assert_eq!(
        r("{{ [1, [2, [3, [4]]]] | flatten }} {{ [1, [2, [3, [4]]]] | flatten(levels=1) }} {{ [1, none, [2]] | flatten }}"),
        "[1, 2, 3, 4] [1, 2, [3, [4]]] [1, 2]"
    );
    assert_eq!(
        r("{{ [3,1,2] | min }} {{ [3,1,2] | max }} {{ [1,2,3] | sum }} {{ [1.5, 2] | sum }}"),
        "1 3 6 3.5"
    );
    assert_eq!(
        r("{{ [1,2] | zip(['a','b']) | list }}"),
        "[[1, 'a'], [2, 'b']]"
    );
    assert_eq!(
        r("{{ -3 | abs }} {{ 2.567 | round(2) }} {{ 2.5 | round }} {{ 3.5 | round }} {{ 2.1 | round(0, 'ceil') }} {{ 7 | round }}"),
        "3 2.57 2.0 4.0 3.0 7"
    );
    assert_eq!(r("{{ range(3) | list }}"), "[0, 1, 2]");
    assert_eq!(r("{{ [1,2] | union([2,3]) }} {{ [1,2] | intersect([2,3]) }} {{ [1,2] | difference([2,3]) }} {{ [1,2] | symmetric_difference([2,3]) }}"), "[1, 2, 3] [2] [1] [1, 3]");
}

#[test]
fn filter_mandatory() {
    assert_eq!(
        e("{{ foo | mandatory }}"),
        "Mandatory variable 'foo' not defined."
    );
    assert_eq!(e("{{ foo | mandatory('give foo') }}"), "give foo");
    assert_eq!(r("{{ port | mandatory }}"), "8080");
}

#[test]
fn tests_results_and_types() {
    assert_eq!(
        r("{{ r is changed }} {{ r is failed }} {{ r is succeeded }} {{ r is success }} {{ r is skipped }} {{ s is skipped }}"),
        "True False True True False True"
    );
    assert!(b("f is failed and f is not succeeded"));
    assert_eq!(
        r("{{ 1 in [1] }} {{ 'a' is string }} {{ 1 is number }} {{ {} is mapping }} {{ [] is sequence }} {{ 'a' is sequence }} {{ 'a' is iterable }} {{ 0 is falsy }} {{ 'x' is truthy }} {{ none is none }} {{ 1 is in([1,2]) }}"),
        "True True True True True True True True True True True"
    );
    assert!(b("d is defined and nothing is none"));
}

#[test]
fn tests_version() {
    assert_eq!(
        r("{{ '1.10' is version('1.9', '>') }} {{ '1.2.3' is version('1.2.3', 'eq') }} {{ '1.2' is version('1.2.0', '<') }} {{ '2.0a' is version('2.0', '>') }} {{ '1.2.3' is version('1.3', 'lt') }} {{ '1.0' is version('1.0') }} {{ '1.2.3' is version_compare('1.2', '>=') }} {{ '5.4.0-150-generic' is version('5.4', '>') }} {{ 'a' is version('b', '<') }} {{ '1.0' is version('1.0', '==') }} {{ '1.0.0' is version('1.0', '==') }}"),
        "True True True True True True True True True True False"
    );
    for op in ["<", "lt", "<=", "le", "!=", "<>", "ne"] {
        assert!(b(&format!("'1.2' is version('1.10', '{op}')")), "{op}");
    }
    for op in [">", "gt", ">=", "ge", "==", "=", "eq"] {
        assert!(!b(&format!("'1.2' is version('1.10', '{op}')")), "{op}");
    }
    assert_eq!(r("{{ '1.2.3' | version_compare('1.2', '>=') }}"), "True");
    assert!(b("12 is version('9', '>')"));
}

#[test]
fn tests_regex_and_paths() {
    assert_eq!(
        r("{{ 'abc' is match('b') }} {{ 'abc' is search('b') }} {{ 'abc' is regex('^a') }} {{ 'ABC' is search('b', ignorecase=true) }}"),
        "False True True True"
    );
    assert!(b("'abc' is match('a.c')"));
    assert_eq!(
        r("{{ '/etc' is directory }} {{ '/etc/passwd' is file }} {{ '/nonexist' is exists }} {{ '/etc' is link }} {{ '/proc/self' is link }}"),
        "True True False False True"
    );
    assert!(b("'/etc' is exists"));
}

#[test]
fn a_python_method_given_an_undefined_argument_fails() {
    // As Jinja's StrictUndefined in ansible-core: the task fails instead of joining nothing.
    assert!(e("{{ ' '.join(nope) }}").contains("undefined"));
    assert!(e("{{ 'a,b'.split(nope) }}").contains("undefined"));
    assert_eq!(r("{{ ' '.join(['a', 'b']) }}"), "a b");
}

#[test]
fn include_outside_a_template_file_fails_naming_it() {
    let msg = e("{% include 'part.j2' %}");
    assert!(
        msg.contains("'part.j2'") && msg.contains("template module"),
        "{msg}"
    );
    let msg = e("x{% import 'm.j2' as m %}{{ m.x }}");
    assert!(msg.contains("'m.j2'"), "{msg}");
}

/// Renders each source as a task argument and compares the text with ansible-core's.
fn check_all(cases: &[(&str, &str)]) {
    let mut bad = Vec::new();
    for (src, want) in cases {
        match Templar::new().render_str(src, &vars()) {
            Ok(v) if pyrepr::py_str(&v) == *want => {}
            Ok(v) => bad.push(format!(
                "{src:?}\n  want {want:?}\n  got  {:?}",
                pyrepr::py_str(&v)
            )),
            Err(e) => bad.push(format!("{src:?}\n  want {want:?}\n  error {e}")),
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Jinja2 builtins (text, format, random with a seed).
/// Expected values: ansible-core 2.19 (`copy: content: |` of each source, the file written).
#[test]
fn jinja_text_builtins_as_jinja2() {
    let cases: &[(&str, &str)] = &[
        ("{{ 'hello world foo bar' | truncate(9) }}\n", "hello...\n"),
        ("{{ 'hello world foo bar' | truncate(11, true) }}\n", "hello wo...\n"),
        ("{{ 'hello world foo bar' | truncate(11, false, '..', 0) }}\n", "hello..\n"),
        ("{{ 'hello world' | truncate(255) }}\n", "hello world\n"),
        ("{{ 'helloworldfoobar' | truncate(10, leeway=0) }}\n", "hellowo...\n"),
        ("{{ 'one two  three' | wordcount }} {{ 'it\\'s a-b c_d 3.5' | wordcount }}\n", "3 7\n"),
        ("{{ 'ab' | center(7) }}|{{ 'abc' | center(8) }}|{{ 'ab' | center(1) }}|{{ 'x' | center }}|\n", "   ab  |  abc   |ab|                                       x                                        |\n"),
        ("{{ '%s-%05.2f-%d-%r' | format('x', 3.14159, 42, 'q') }}\n", "x-03.14-42-'q'\n"),
        ("{{ '%(a)s/%(b)03d' | format(a='A', b=7) }}\n", "A/007\n"),
        ("{{ '%-6s|%6s|%+d|% d|%x|%#X|%o|%#o|%e|%.3E|%g|%g|%g|%G|%c|%%|%5.1f' | format('ab', 'cd', 5, 5, 255, 255, 8, 8, 12345.678, 0.00012, 0.0001, 1234567.0, 100.0, 1e-10, 65, -2.25) }}\n", "ab    |    cd|+5| 5|ff|0XFF|10|0o10|1.234568e+04|1.200E-04|0.0001|1.23457e+06|100|1E-10|A|%| -2.2\n"),
        ("{{ '%s %s' | format([1, 'a'], {'k': none}) }} {{ '%d' | format(3.9) }} {{ '%.2s' | format('abc') }} {{ '%*d' | format(5, 42) }}\n", "[1, 'a'] {'k': None} 3 ab    42\n"),
        ("{{ '%s' | format(true) }} {{ '%d' | format(true) }} {{ '%s|%r' | format(1.0, 'it\\'s') }}\n", "True 1 1.0|\"it\\\\'s\"\n"),
        ("{{ 'a\\nb\\n\\nc' | indent }}\n", "a\\nb\\n\\nc\n"),
        ("{{ 'a\\nb\\n\\nc' | indent(2, true) }}\n", "  a\\nb\\n\\nc\n"),
        ("{{ 'a\\nb\\n\\nc' | indent(3, true, true) }}\n", "   a\\nb\\n\\nc\n"),
        ("{{ 'a\\nb' | indent('> ') }}\n", "a\\nb\n"),
        ("{{ 'a\\nb\\n' | indent(first=true) }}|\n", "    a\\nb\\n|\n"),
        ("{{ 'The quick brown fox jumps over the lazy dog again and again' | wordwrap(20) }}\n", "The quick brown fox\njumps over the lazy\ndog again and again\n"),
        ("{{ 'The quick brown fox' | wordwrap(7, false, '|') }}\n", "The|quick|brown|fox\n"),
        ("{{ 'abcdefghijkl mn' | wordwrap(5) }}\n", "abcde\nfghij\nkl mn\n"),
        ("{{ 'a well-known long-winded self-contained thing' | wordwrap(10) }}\n", "a well-\nknown\nlong-\nwinded\nself-\ncontained\nthing\n"),
        ("{{ 'a well-known long-winded self-contained thing' | wordwrap(10, break_on_hyphens=false) }}\n", "a\nwell-known\nlong-winde\nd self-con\ntained\nthing\n"),
        ("{{ 'aaaa bbbbbbbbbbbbbbbbbbbb c' | wordwrap(8, false) }}\n", "aaaa\nbbbbbbbbbbbbbbbbbbbb\nc\n"),
        ("{{ '  lead  and   trail  ' | wordwrap(6) }}|\n", "  lead\nand\ntrail|\n"),
        ("{{ '<p>Hello <b>World</b></p>  <br/>x &amp; y &lt;z&gt; &#65;&#x42; <!-- c <b> -->end' | striptags }}\n", "Hello World x & y <z> AB end\n"),
        ("{{ \"hello wORLD it's o'neil a-b_c 3rd\" | title }}\n", "Hello World It's O'neil A-B_c 3rd\n"),
        ("{{ \"hELLO World\" | capitalize }}\n", "Hello world\n"),
        ("{{ 1000 | filesizeformat }} {{ 1024 | filesizeformat(true) }} {{ 1500000 | filesizeformat }} {{ 0 | filesizeformat }} {{ 1 | filesizeformat }} {{ 123456789012 | filesizeformat(true) }}\n", "1.0 kB 1.0 KiB 1.5 MB 0 Bytes 1 Byte 115.0 GiB\n"),
        ("{{ 12 | filesizeformat(true) }} {{ '2048' | filesizeformat }} {{ 999.9 | filesizeformat }} {{ 1e30 | filesizeformat }}\n", "12 Bytes 2.0 kB 999 Bytes 1000000.0 YB\n"),
        ("{{ {'class': 'a b', 'id': 'x<y\"\\'&', 'n': none, 'v': 3} | xmlattr }}\n", " class=\"a b\" id=\"x&lt;y&#34;\\&#39;&amp;\" v=\"3\"\n"),
        ("{{ {'class': 'a'} | xmlattr(false) }}\n", "class=\"a\"\n"),
        ("{{ 'a b&c/d?é~' | urlencode }}\n", "a%20b%26c/d%3F%C3%A9~\n"),
        ("{{ {'a': 'b c', 'x': 1, 'p/q': 'é'} | urlencode }} {{ [['k', 'v w']] | urlencode }}\n", "a=b+c&x=1&p%2Fq=%C3%A9 k=v+w\n"),
        ("{{ 'Hello' | e }} {{ '<&>\"\\'' | escape }} {{ '<b>' | forceescape }}\n", "Hello &lt;&amp;&gt;&#34;\\&#39; &lt;b&gt;\n"),
        ("{{ 'abc' | random(seed='x') }}\n", "c\n"),
        ("{{ 59 | random(seed='web01.example.com') }} {{ 23 | random(seed='web01.example.com') }} {{ 59 | random(seed=42) }}\n", "38 19 40\n"),
        ("{{ 10000000000 | random(seed='big') }} {{ ['a','b','c','d'] | random(seed='') }}\n", "2904262553 d\n"),
    ];
    check_all(cases);
}

/// In a template file Jinja's string escapes apply: `indent` and `wordwrap` on real lines.
/// Expected values: ansible-core 2.19 (template module).
#[test]
fn indent_and_wordwrap_in_template_files() {
    assert_eq!(rt("{{ 'a\\nb\\n\\nc' | indent }}"), "a\n    b\n\n    c");
    assert_eq!(
        rt("{{ 'a\\nb\\n\\nc' | indent(2, true) }}"),
        "  a\n  b\n\n  c"
    );
    assert_eq!(
        rt("{{ 'a\\nb\\n\\nc' | indent(3, true, true) }}"),
        "   a\n   b\n   \n   c"
    );
    assert_eq!(rt("{{ 'a\\nb' | indent('> ') }}"), "a\n> b");
    assert_eq!(
        rt("{{ 'a\\nb\\n' | indent(first=true) }}|"),
        "    a\n    b\n|"
    );
    assert_eq!(
        rt("{{ 'one two\\nthree four five' | wordwrap(9) }}"),
        "one two\nthree\nfour five"
    );
}

#[test]
fn a_filter_the_agent_lacks_fails_naming_it() {
    let msg = e("{{ 'x' | urlize }}");
    assert!(
        msg.contains("urlize") && msg.contains("unknown filter"),
        "{msg}"
    );
    // checked at render, not at load: a template using it still passes the syntax check
    assert!(Templar::new().check_syntax("{{ 'x' | urlize }}").is_ok());
}

/// ansible-core 2.19 (template module): a result ending in newlines of its own gets none added.
#[test]
fn a_template_result_ending_in_a_newline_gets_no_extra_one() {
    assert_eq!(
        rt("{{ 'k=v' | comment(prefix='', postfix='') }}\n"),
        "# k=v\n"
    );
    assert_eq!(rt("a\n{% if true %}b\n{% endif %}\n"), "a\nb\n");
    assert_eq!(rt("x\n\n"), "x\n\n");
}

/// ansible-core 2.19 (no loopcontrols extension, Jinja2's tests only) refuses these.
#[test]
fn what_jinja2_lacks_is_refused() {
    assert!(Templar::new()
        .check_syntax("{% for i in [1] %}{% continue %}{% endfor %}")
        .is_err());
    assert!(e("{{ 'abc' is startingwith('a') }}").contains("startingwith"));
}
