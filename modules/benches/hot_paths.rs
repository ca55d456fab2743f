//! The engine's hot paths, timed: fact gathering (once per run) and template operations (many
//! per task). Prints figures; asserts nothing (timing assertions do not belong in tests). Run by
//! hand: `cargo bench -p gitops-modules --bench hot_paths`. The whole no-op converge of 450
//! files is `tests/bench/noop_bench.sh`.

use std::time::{Duration, Instant};

use gitops_modules::facts::Facts;
use gitops_modules::template::Templar;
use minijinja::Value;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let _ = Facts::gather();
    let gather = median(
        (0..21)
            .map(|_| {
                let start = Instant::now();
                let _ = Facts::gather();
                start.elapsed()
            })
            .collect(),
    );
    println!("facts: gather {gather:?} (median of 21; target under 2 ms)");

    let t = Templar::new();
    let vars = Value::from(minijinja::value::Serde(serde_json::json!({
        "root": "/srv", "port": 8080, "t": true,
    })));
    // warm the caches
    t.render_str("{{ root }}/x", &vars).unwrap();
    t.render_str("{{ port }}", &vars).unwrap();
    let n = 1000;
    let start = Instant::now();
    for _ in 0..n {
        t.render_str("plain string", &vars).unwrap();
        t.render_str("{{ root }}/x", &vars).unwrap();
        t.render_str("{{ port }}", &vars).unwrap();
        t.eval_bool("port == 8080 and t", &vars).unwrap();
    }
    let took = start.elapsed();
    println!(
        "templates: {} operations in {took:?} ({:?} each)",
        4 * n,
        took / (4 * n)
    );
}
