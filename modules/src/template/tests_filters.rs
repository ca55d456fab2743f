//! Ansible's filters (ansible.builtin core, mathstuff, urlsplit) against ansible-core 2.19:
//! each source was rendered by `copy: content: |` under ansible-playbook and the file it wrote
//! is the expected text. Host-dependent ones (realpath, expanduser, local time) are in the
//! differential playbook tmpl_filters4 instead.

use super::*;

fn vars() -> Value {
    Value::from(minijinja::value::Serde(serde_json::json!({
        "users": [
            {"name": "alice", "groups": ["wheel", "adm"], "authorized": ["k1"]},
            {"name": "bob", "groups": [], "authorized": ["k2", "k3"]},
            {"name": "carol", "authorized": []},
        ],
        "hosts_map": {"web": {"ip": "10.0.0.1", "port": 80}, "db": {"ip": "10.0.0.2", "port": 5432}},
    })))
}

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

fn fails(src: &str) -> String {
    match Templar::new().render_str(src, &vars()) {
        Ok(v) => panic!("{src}: expected an error, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn ansible_filters_as_ansible_core() {
    let cases: &[(&str, &str)] = &[
        ("{{ 'abc' | hash }} {{ 'abc' | hash('md5') }} {{ 'abc' | hash('sha256') }}\n", "a9993e364706816aba3e25717850c26c9cd0d89d 900150983cd24fb0d6963f7d28e17f72 ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n"),
        ("{{ 'abc' | hash('sha512') }}\n", "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f\n"),
        ("{{ 'abc' | hash('sha224') }} {{ 'abc' | hash('sha384') }}\n", "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7 cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7\n"),
        ("{{ 'abc' | checksum }} {{ 'abc' | sha1 }} {{ 'abc' | md5 }} {{ 123 | checksum }}\n", "a9993e364706816aba3e25717850c26c9cd0d89d a9993e364706816aba3e25717850c26c9cd0d89d 900150983cd24fb0d6963f7d28e17f72 40bd001563085fc35165329ea1ff5c5ecbdbbeef\n"),
        ("{{ 'abc' | to_uuid }} {{ 'web01' | to_uuid(namespace='6ba7b810-9dad-11d1-80b4-00c04fd430c8') }}\n", "27dc713b-d72c-5825-88f3-9f240e739319 b3d64a2b-8b6a-5164-bcec-3f7ba519d18c\n"),
        ("{{ '/a/b.tar.gz' | splitext | join('|') }} {{ 'noext' | splitext | join('|') }} {{ '.bashrc' | splitext | join('|') }} {{ 'a.b/c' | splitext | join('|') }}\n", "/a/b.tar|.gz noext| .bashrc| a.b/c|\n"),
        ("{{ '/a/b/c' | relpath('/a') }} {{ '/a/b' | relpath('/a/c/d') }} {{ '/a' | relpath('/a') }}\n", "b/c ../../b .\n"),
        ("{{ [1,2] | product(['a','b']) | map('join', '-') | join(',') }}\n", "1-a,1-b,2-a,2-b\n"),
        ("{{ [1,2,3] | permutations | map('join', '') | join(',') }} {{ [1,2,3] | permutations(2) | map('join', '') | join(',') }}\n", "123,132,213,231,312,321 12,13,21,23,31,32\n"),
        ("{{ [1,2,3,4] | combinations(2) | map('join', '') | join(',') }}\n", "12,13,14,23,24,34\n"),
        ("{{ users | subelements('groups', skip_missing=true) | map('last') | join(',') }}\n", "wheel,adm\n"),
        ("{{ users | subelements('authorized', true) | map('first') | map(attribute='name') | join(',') }}\n", "alice,bob,bob\n"),
        ("{{ ['web', 'db'] | map('extract', hosts_map, 'ip') | join(',') }} {{ 'web' | extract(hosts_map) | string }}\n", "10.0.0.1,10.0.0.2 {'ip': '10.0.0.1', 'port': 80}\n"),
        ("{{ '1K' | human_to_bytes }} {{ '10 MB' | human_to_bytes }} {{ '1.5G' | human_to_bytes }} {{ '2' | human_to_bytes('K') }} {{ 100 | human_to_bytes }} {{ '1Mb' | human_to_bytes(isbits=true) }} {{ '3 byte' | human_to_bytes }}\n", "1024 10485760 1610612736 2048 100 1048576 3\n"),
        ("{{ 1024 | human_readable }} {{ 1500000 | human_readable }} {{ 10 | human_readable }} {{ 2048 | human_readable(unit='K') }} {{ 1048576 | human_readable(isbits=true) }} {{ 0 | human_readable }}\n", "1.00 KB 1.43 MB 10.00 Bytes 2.00 KB 1.00 Mb 0.00 Bytes\n"),
        ("{{ 'hello\\nworld' | comment }}\n", "#\n# hello\\nworld\n#\n"),
        ("{{ 'hello' | comment('c') }}\n", "//\n// hello\n//\n"),
        ("{{ 'hello\\nworld' | comment('cblock') }}\n", "/*\n *\n * hello\\nworld\n *\n */\n"),
        ("{{ 'hello' | comment('xml') }}\n", "<!--\n -\n - hello\n -\n-->\n"),
        ("{{ 'hello' | comment('erlang') }}\n", "%\n% hello\n%\n"),
        ("{{ 'a\\n\\nb' | comment(decoration='; ') }}\n", ";\n; a\\n\\nb\n;\n"),
        ("{{ 'x' | comment('plain', prefix='#!/bin/sh\\n#', postfix='#\\n', prefix_count=2) }}\n", "#!/bin/sh\\n#\n#!/bin/sh\\n#\n# x\n#\\n\n"),
        ("{{ 'x' | comment(beginning='BEGIN', end='END', decoration='| ', newline='\\n') }}\n", "BEGIN\\n|\\n| x\\n|\\nEND\n"),
        ("{{ 'Ansible managed' | comment(postfix_count=3) }}\n", "#\n# Ansible managed\n#\n#\n#\n"),
        ("{{ '%Y-%m-%d %H:%M:%S' | strftime(0, utc=true) }} {{ '%a %b %d %j %U %w %y %p %I %%' | strftime(1700000000, utc=true) }}\n", "1970-01-01 00:00:00 Tue Nov 14 318 46 2 23 PM 10 %\n"),
        ("{{ '%s' | strftime(86400, utc=true) }}\n", "86400\n"),
        ("{{ 'https://u:p@Host.Example:8080/path/x?q=1&r=2#frag' | urlsplit('hostname') }} {{ 'https://u:p@Host.Example:8080/path/x?q=1&r=2#frag' | urlsplit('port') }}\n", "host.example 8080\n"),
        ("{{ 'http://example.com' | urlsplit('path') }}|{{ 'http://example.com' | urlsplit('port') }}|{{ 'ftp://[::1]:21/x' | urlsplit('hostname') }}\n", "||::1\n"),
        ("{{ 'héllo' | b64encode }} {{ 'hi' | b64encode(encoding='utf-16-le') }} {{ 'a?>' | b64encode(urlsafe=true) }}\n", "aMOpbGxv aABpAA== YT8-\n"),
        ("{{ 'aGk=' | b64decode }} {{ 'aABpAA==' | b64decode(encoding='utf-16-le') }}\n", "hi hi\n"),
        ("{{ ['a', 'b'] | path_join }} {{ ['/a', '/b', 'c'] | path_join }} {{ '/a/./b/../c' | normpath }} {{ ['/a/b/c', '/a/b/d'] | commonpath }}\n", "a/b /b/c /a/c /a/b\n"),
        ("{{ 'x' | type_debug }} {{ {'a':1} | type_debug }} {{ 1.5 | type_debug }} {{ true | type_debug }}\n", "str dict float bool\n"),
        ("{{ 8 | log(2) }} {{ 2 | pow(10) }} {{ 27 | root(3) }} {{ 100 | log }} {{ 16 | root }}\n", "3.0 1024.0 3.0 4.605170185988092 4.0\n"),
        ("{{ [{'n': 'a', 'v': 1}, {'n': 'b', 'v': 2}] | rekey_on_member('n') | string }}\n", "{'a': {'n': 'a', 'v': 1}, 'b': {'n': 'b', 'v': 2}}\n"),
        ("{{ [1,2,3] | zip(['a','b']) | list | string }} {{ [1,2] | zip_longest(['a'], fillvalue='-') | list | string }}\n", "[(1, 'a'), (2, 'b')] [(1, 'a'), (2, '-')]\n"),
        ("{{ 'a b  c' | split }} {{ 'a,b' | split(',') | string }}\n", "['a', 'b', 'c'] ['a', 'b']\n"),
        ("{{ [1,2] | product(['a']) | list | string }} {{ '/a/b.c' | splitext | string }} {{ [[1]] | zip | list | string }} {{ (users | subelements('authorized'))[0] | last }}\n", "[(1, 'a'), (2, 'a')] ('/a/b', '.c') [([1],)] k1\n"),
        ("{{ [1,2] | product(['a']) | list | to_json }} {{ ([1,2] | product(['a']) | first)[1] }} {{ [1,2] | zip([3,4]) | map('sum') | list | string }}\n", "[[1, \"a\"], [2, \"a\"]] a [4, 6]\n"),
        ("{{ [1,2,3] | product(repeat=2) | length }} {{ [] | product([1]) | list | string }}\n", "9 []\n"),
    ];
    check_all(cases);
}

/// Expected values: glibc's crypt(3) with the same salt and rounds (the algorithms passlib
/// implements for ansible-core; the venv of the differential tier has no passlib, so
/// ansible-core itself refuses `password_hash` there).
#[test]
fn password_hash_as_passlib() {
    let cases: &[(&str, &str)] = &[
        (
            "{{ 'secret' | password_hash('sha512', 'mysalt') }}",
            "$6$rounds=656000$mysalt$cDA0t8lm/qt.LT6DzpoHxJ.NwTpx.WTkOPwhseSva8pRixDSH2./ffedCjAMbTX1Uo1QNT7jJPJ6FIzU2i59K/",
        ),
        (
            "{{ 'secret' | password_hash('sha256', 'mysalt') }}",
            "$5$rounds=535000$mysalt$GnEktJhWXRuwViyPsEWK9s63HYW1GqXFqU5SdKDqol6",
        ),
        (
            "{{ 'secret' | password_hash('sha512', 'mysalt', rounds=10000) }}",
            "$6$rounds=10000$mysalt$9XTP7570fxVN/uTspSrH6kRPdR4KKGzGz7.TmJjDYGrKSwZuavW/3YaLur8JX6WP75Czcxa.megIO0lKreY0R.",
        ),
        ("{{ 'secret' | password_hash('md5', 'mysalt') }}", "$1$mysalt$n/EfEiV74OYgBdqhKQzSW/"),
        ("{{ '' | password_hash('md5', 'x') }}", "$1$x$fwjfZtMwarkdetsjiQreU1"),
        (
            "{{ 'secret' | password_hash('sha512', 'saltsaltsaltsalt', rounds=1000) }}",
            "$6$rounds=1000$saltsaltsaltsalt$cv7no.30n.S75jcCNBQv6o7WVXQ5AaB1EpIeSKwsNupcnQDQ0DsukcAPRNjPumwKIBg2JK5ii9uw5enNnnA4N/",
        ),
        (
            "{{ 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' | password_hash('sha512', 'q', rounds=1000) }}",
            "$6$rounds=1000$q$66/OOpH0fjbY6ERt6uCc1C/z5G6DZAIuorFl4Uq1wyqZu/QPNhgzatWY.5lydczAgQa4tsHCb6oCz55AUKN2g1",
        ),
    ];
    for (src, want) in cases {
        assert_eq!(
            Templar::new().render_str(src, &vars()).unwrap().as_str(),
            Some(*want),
            "{src}"
        );
    }
    // passlib leaves the default 5000 rounds implicit (glibc writes them)
    let v = Templar::new()
        .render_str(
            "{{ 'secret' | password_hash('sha256', 'ab', rounds=5000) }}",
            &vars(),
        )
        .unwrap();
    assert_eq!(
        v.as_str(),
        Some("$5$ab$uBQPK5nh89waaCXDSRwBxzVzl.pS5fPkZnKN7HXbvj6")
    );
    // without a salt: a random one each time, as Ansible
    let t = Templar::new();
    let a = t
        .render_str("{{ 'x' | password_hash('md5') }}", &vars())
        .unwrap();
    let b = t
        .render_str("{{ 'x' | password_hash('md5') }}", &vars())
        .unwrap();
    assert_ne!(a, b);
    assert!(fails("{{ 'x' | password_hash('blowfish', 'a') }}").contains("blowfish"));
    assert!(fails("{{ 'x' | password_hash('sha512', 'bad salt!') }}").contains("salt"));
    assert!(fails("{{ 'x' | password_hash('sha512', 'abcdefghijklmnopq') }}").contains("salt"));
}

#[test]
fn ansible_filter_errors_are_loud() {
    assert!(fails("{{ 'x' | hash('whirlpool') }}").contains("whirlpool"));
    assert!(fails("{{ 'x' | comment('lisp') }}").contains("Invalid style 'lisp'"));
    assert!(fails("{{ '3 bytes' | human_to_bytes }}").contains("expect B or byte"));
    assert!(fails("{{ 'x/y' | realpath }}").contains("relative"));
    assert!(fails("{{ '/a' | relpath }}").contains("working directory"));
    assert!(fails("{{ '%Q' | strftime(0) }}").contains("%Q"));
    assert!(fails("{{ 'http://h' | urlsplit('nope') }}").contains("unknown URL component: nope"));
    assert!(fails("{{ users | subelements('groups') }}").contains("could not find 'groups' key"));
    assert!(fails("{{ '/x' | b64decode }}").contains("b64decode"));
    assert!(fails("{{ 'x' | to_uuid(namespace='nope') }}").contains("namespace"));
}

/// ansible-core 2.19: `default(none)` is None (xmlattr then skips the attribute).
#[test]
fn default_none_is_none() {
    check_all(&[
        (
            "{{ {'class': 'a b', 'id': 'x<y', 'n': none, 'u': omit_me | default(none)} | xmlattr }}\n",
            " class=\"a b\" id=\"x&lt;y\"\n",
        ),
        ("{{ nope | default(default_value=none) is none }}\n", "True"),
        ("{{ nope | default }}|{{ '' | default('x', true) }}|{{ 0 | default('y', boolean=true) }}\n", "|x|y\n"),
    ]);
}
