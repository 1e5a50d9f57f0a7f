//! `cargo bench --bench fleet_sim [-- --nodes 10,100,1000,10000 --seed 7]`: the drain claim
//! protocol at fleet scale, on nodewarden's own decision code against a model of ECS (see
//! `tests/fleet_sim/engine.rs` for the model and the scenarios). Prints a Markdown table.

#[path = "../tests/fleet_sim/engine.rs"]
mod engine;

use engine::{Config, Scenario};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let nodes: Vec<usize> = value("--nodes")
        .unwrap_or_else(|| "10,100,1000,10000".into())
        .split(',')
        .map(|n| n.trim().parse().expect("--nodes takes numbers separated by commas"))
        .collect();
    let seed: u64 = value("--seed").map_or(7, |s| s.parse().expect("--seed takes a number"));
    println!("Seed {seed}; {} simulated seconds a run; budget max-draining-fraction 20%.\n", 240);
    println!("{}", engine::table_header());
    let only: Option<String> = value("--scenario");
    for scenario in Scenario::ALL.into_iter().filter(|s| only.as_deref().is_none_or(|o| s.name().starts_with(o))) {
        for &n in &nodes {
            let started = std::time::Instant::now();
            let outcome = engine::run(&Config { nodes: n, seed, scenario, max_fraction: 0.2 });
            println!("{}", engine::table_row(scenario, &outcome));
            eprintln!(
                "  ({} nodes, {}: {:.1} s to simulate; calls, tokens/turned away: {})",
                n,
                scenario.name(),
                started.elapsed().as_secs_f64(),
                outcome.by_kind
            );
        }
    }
}
