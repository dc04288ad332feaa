//! The README's "What the gate guarantees" tables: every scenario run through `sft-eval gate`'s
//! own code ([`sft_eval::gate::simulate`]), printed as markdown.
//!
//! ```sh
//! cargo run --release --example gate_simulation > /tmp/gate-simulation.md   # ~15 min on 2 cores
//! GATE_SIM_REPS=2000 cargo run --release --example gate_simulation          # a quicker look
//! GATE_SIM_ONLY=clustered cargo run --release --example gate_simulation      # one table
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use rayon::prelude::*;
use sft_eval::gate::simulate::{simulate, Metric, Rates, Scenario};

const CONFIDENCE: f64 = 0.95;

fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

/// An MDE in points, or `none` when no outcome fails.
fn pts(x: f64) -> String {
    if x.is_finite() {
        format!("{:.1} pts", 100.0 * x)
    } else {
        "none".into()
    }
}

/// (scenario at the margin, the same with no drop) → the table's cells.
struct Row {
    at_margin: Rates,
    no_drop: Rates,
    at_mde: Option<Rates>,
}

fn run(s: Scenario, reps: usize, power_reps: usize, seed: u64) -> Row {
    let at_margin = simulate(
        &Scenario {
            true_drop: s.margin,
            ..s
        },
        CONFIDENCE,
        reps,
        seed,
    )
    .expect("simulation runs");
    let no_drop = simulate(
        &Scenario {
            true_drop: 0.0,
            ..s
        },
        CONFIDENCE,
        power_reps,
        seed + 1,
    )
    .expect("simulation runs");
    // the gate's own statement: a true drop of its MDE fails with 80% power
    let mde = no_drop.median_mde;
    let feasible = match s.metric {
        Metric::Binary {
            base_accuracy,
            discordance,
        } => mde.is_finite() && (discordance.max(mde) + mde) / 2.0 <= base_accuracy,
        Metric::Fractional { .. } => mde < 0.5,
        Metric::Nll { .. } => mde.is_finite(),
    };
    let at_mde = feasible.then(|| {
        let disc = match s.metric {
            Metric::Binary {
                base_accuracy,
                discordance,
            } => Metric::Binary {
                base_accuracy,
                discordance: discordance.max(mde),
            },
            m => m,
        };
        simulate(
            &Scenario {
                true_drop: mde,
                metric: disc,
                ..s
            },
            CONFIDENCE,
            power_reps,
            seed + 2,
        )
        .expect("simulation runs")
    });
    Row {
        at_margin,
        no_drop,
        at_mde,
    }
}

fn main() {
    let reps: usize = std::env::var("GATE_SIM_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let power_reps = (reps / 10).max(500);
    let mc = (0.025 * 0.975 / reps as f64).sqrt();
    let t0 = std::time::Instant::now();
    let margin = 0.02;
    let only = std::env::var("GATE_SIM_ONLY").ok();
    let wanted = |table: &str| only.as_deref().is_none_or(|o| o == table);
    println!(
        "Each false-pass/false-fail cell: {reps} replications (Monte-Carlo sd at 2.5%: {:.2} points); power cells: {power_reps}. Nominal one-sided error: 2.5% (confidence {CONFIDENCE}).\n",
        100.0 * mc
    );

    if wanted("binary") {
        binary_table(margin, reps, power_reps);
        eprintln!("binary done at {:.0} s", t0.elapsed().as_secs_f64());
    }
    if wanted("clustered") {
        clustered_table(margin, reps, power_reps);
        eprintln!("clustered done at {:.0} s", t0.elapsed().as_secs_f64());
    }
    if wanted("continuous") {
        continuous_table(reps, power_reps);
    }
    if wanted("tango") {
        tango_table(margin);
    }
    eprintln!("all done in {:.0} s", t0.elapsed().as_secs_f64());
}

fn binary_table(margin: f64, reps: usize, power_reps: usize) {
    let mut binary = Vec::new();
    for n in [5usize, 20, 50, 200, 1000] {
        for acc in [0.1, 0.5, 0.95] {
            for s in [0.02, 0.1, 0.5, 0.9] {
                let (pl, pg) = ((s + margin) / 2.0, (s - margin) / 2.0);
                if pl <= acc && pg <= 1.0 - acc {
                    binary.push(Scenario {
                        n,
                        metric: Metric::Binary {
                            base_accuracy: acc,
                            discordance: s,
                        },
                        clusters: None,
                        cluster_spread: 0.0,
                        true_drop: margin,
                        margin,
                    });
                }
            }
        }
    }
    let rows: Vec<Row> = binary
        .par_iter()
        .enumerate()
        .map(|(k, s)| run(*s, reps, power_reps, 1000 * k as u64))
        .collect();
    println!("**Binary scores, independent items, margin 2 points.**\n");
    println!("| n | base accuracy | discordant share | false pass (drop = margin) | false fail (drop = margin) | pass, no drop | stated MDE | fail at the MDE |");
    println!("|---|---|---|---|---|---|---|---|");
    for (s, r) in binary.iter().zip(&rows) {
        let Metric::Binary {
            base_accuracy,
            discordance,
        } = s.metric
        else {
            unreachable!()
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            s.n,
            base_accuracy,
            discordance,
            pct(r.at_margin.pass),
            pct(r.at_margin.fail),
            pct(r.no_drop.pass),
            pts(r.no_drop.median_mde),
            r.at_mde.map_or("–".into(), |m| pct(m.fail)),
        );
    }
}

fn clustered_table(margin: f64, reps: usize, power_reps: usize) {
    let mut clustered = Vec::new();
    for n in [200usize, 1000] {
        for g in [4usize, 10, 50] {
            for spread in [0.5, 1.0] {
                clustered.push(Scenario {
                    n,
                    metric: Metric::Binary {
                        base_accuracy: 0.5,
                        discordance: 0.1,
                    },
                    clusters: Some(g),
                    cluster_spread: spread,
                    true_drop: margin,
                    margin,
                });
            }
        }
    }
    let rows: Vec<Row> = clustered
        .par_iter()
        .enumerate()
        .map(|(k, s)| run(*s, reps, power_reps, 500_000 + 1000 * k as u64))
        .collect();
    println!("\n**Binary scores in clusters** (base accuracy 0.5, 10% of items flip; a cluster's flip rate is the mean × a Gamma multiplier of the given coefficient of variation), margin 2 points.\n");
    println!("| n | clusters | spread (CV) | false pass (drop = margin) | false fail (drop = margin) | pass, no drop | stated MDE |");
    println!("|---|---|---|---|---|---|---|");
    for (s, r) in clustered.iter().zip(&rows) {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            s.n,
            s.clusters.unwrap_or(0),
            s.cluster_spread,
            pct(r.at_margin.pass),
            pct(r.at_margin.fail),
            pct(r.no_drop.pass),
            pts(r.no_drop.median_mde),
        );
    }
}

fn continuous_table(reps: usize, power_reps: usize) {
    let mut cont = Vec::new();
    for n in [5usize, 20, 50, 200, 1000] {
        cont.push(Scenario {
            n,
            metric: Metric::Fractional { samples: 5 },
            clusters: None,
            cluster_spread: 0.0,
            true_drop: 0.05,
            margin: 0.05,
        });
        for skew in [0.0, 0.25, 0.5, 1.0] {
            cont.push(Scenario {
                n,
                metric: Metric::Nll { sd: 0.3, skew },
                clusters: None,
                cluster_spread: 0.0,
                true_drop: 0.05,
                margin: 0.05,
            });
        }
    }
    for g in [4usize, 10, 50] {
        cont.push(Scenario {
            n: 200,
            metric: Metric::Nll { sd: 0.3, skew: 0.0 },
            clusters: Some(g),
            cluster_spread: 0.5,
            true_drop: 0.05,
            margin: 0.05,
        });
    }
    let rows: Vec<Row> = cont
        .par_iter()
        .enumerate()
        .map(|(k, s)| run(*s, reps, power_reps, 900_000 + 1000 * k as u64))
        .collect();
    println!("\n**Continuous scores**: pass@1 over 5 samples per item (scores in fifths; margin 5 points), and per-item NLL (lower is better; the fine-tune's change has sd 0.3 nats, normal or log-normal of the given shape; margin 0.05 nats/token).\n");
    println!("| metric | n | shape | clusters | false pass (drop = margin) | false fail (drop = margin) | pass, no drop | stated MDE | fail at the MDE |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (s, r) in cont.iter().zip(&rows) {
        let (metric, shape, mde) = match s.metric {
            Metric::Fractional { samples } => (
                format!("pass@1, {samples} samples"),
                "–".to_string(),
                pts(r.no_drop.median_mde),
            ),
            Metric::Nll { skew, .. } => (
                "NLL".to_string(),
                if skew == 0.0 {
                    "normal".into()
                } else {
                    format!("log-normal {skew}")
                },
                format!("{:.3} nats", r.no_drop.median_mde),
            ),
            Metric::Binary { .. } => unreachable!(),
        };
        println!(
            "| {metric} | {} | {shape} | {} | {} | {} | {} | {mde} | {} |",
            s.n,
            s.clusters.map_or("–".into(), |g| g.to_string()),
            pct(r.at_margin.pass),
            pct(r.at_margin.fail),
            pct(r.no_drop.pass),
            r.at_mde.map_or("–".into(), |m| pct(m.fail)),
        );
    }
}

/// Beyond `MAX_EXACT_N` binary items Tango's interval decides alone: its false-pass rate at the
/// margin, summed exactly over every outcome (trinomial probabilities within ±12 sd).
fn tango_table(margin: f64) {
    use sft_eval::stats::dist::{ln_gamma, two_sided_z};
    use sft_eval::stats::{score_statistic, PairedCounts};
    let z = two_sided_z(CONFIDENCE).expect("valid confidence");
    println!("\n**Tango's interval alone** (binary, independent items, margin 2 points), false-pass rate at the margin summed exactly over every outcome:\n");
    println!("| n | discordant share | false pass |");
    println!("|---|---|---|");
    for n in [20_000u64, 50_000] {
        for s in [0.02, 0.1, 0.5, 0.9, 1.0] {
            let (pl, pg, ps) = ((s + margin) / 2.0, (s - margin) / 2.0, 1.0 - s);
            let range = |p: f64| {
                let (m, sd) = (n as f64 * p, (n as f64 * p * (1.0 - p)).sqrt());
                (
                    (m - 12.0 * sd - 2.0).max(0.0) as u64,
                    ((m + 12.0 * sd + 3.0) as u64).min(n),
                )
            };
            let ((i0, i1), (j0, j1)) = (range(pl), range(pg));
            let lnf = |k: u64| ln_gamma(k as f64 + 1.0);
            let mut total = 0.0;
            for i in i0..=i1 {
                for j in j0..=j1.min(n - i) {
                    let m = n - i - j;
                    if (j > 0 && pg <= 0.0) || (m > 0 && ps <= 0.0) {
                        continue;
                    }
                    let c = PairedCounts {
                        n: n as f64,
                        losses: i as f64,
                        gains: j as f64,
                    };
                    if score_statistic(&c, margin) > -z {
                        continue;
                    }
                    let mut lp = lnf(n) - lnf(i) - lnf(j) - lnf(m) + i as f64 * pl.ln();
                    if j > 0 {
                        lp += j as f64 * pg.ln();
                    }
                    if m > 0 {
                        lp += m as f64 * ps.ln();
                    }
                    total += lp.exp();
                }
            }
            println!("| {n} | {s} | {} |", pct(total));
        }
    }
}
