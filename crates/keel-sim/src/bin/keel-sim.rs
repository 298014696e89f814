//! `keel-sim`: runs the rebalancing strategies on one seeded workload and reports the results.

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use eyre::{bail, WrapErr};
use indicatif::{ProgressBar, ProgressStyle};
use keel_sim::{lp, plot, table, Generate, Kind, Network, SimConfig, Strategy, Workload};

/// Keel's rebalancing simulator.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs strategies on one seeded workload; prints a table (or JSON) and writes plots.
    Run(Box<RunArgs>),
    /// Times the Revive-style LP on generated networks of the given channel counts.
    LpBench {
        /// Channel counts (nodes = channels / 5).
        #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
        channels: Vec<usize>,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Also time one solve on this topology (ln-snapshot format), as read.
        #[arg(long)]
        topology: Option<PathBuf>,
        /// Also time the simplex (good_lp + microlp) on networks up to this many channels and
        /// check that it finds the same optimum (it takes about 40 s at 30,000 channels).
        #[arg(long, default_value_t = 10_000)]
        simplex_max: usize,
    },
}

#[derive(Args)]
struct RunArgs {
    /// A directory with channels_ln.csv and edges_ln.csv (the ln-snapshot format, msat);
    /// without it, a seeded scale-free network is generated (wei).
    #[arg(long)]
    topology: Option<PathBuf>,
    /// Generated network: nodes.
    #[arg(long, default_value_t = 1_000)]
    nodes: usize,
    /// Generated network: channels.
    #[arg(long, default_value_t = 5_000)]
    channels: usize,
    /// Seed of the topology and the workload.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Which workload.
    #[arg(long, value_enum, default_value_t = Kind::Directional)]
    workload: Kind,
    /// How many payments.
    #[arg(long, default_value_t = 100_000)]
    payments: usize,
    /// Expected payment amount in base units (default: the median channel capacity / 10).
    #[arg(long)]
    expected_amount: Option<u128>,
    /// Payments per simulated second.
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Directional workload: share of nodes that mostly receive.
    #[arg(long, default_value_t = 0.1)]
    sink_share: f64,
    /// Directional workload: chance a payment goes to a receiving node.
    #[arg(long, default_value_t = 0.8)]
    sink_bias: f64,
    /// Strategies to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "none,threshold,greedy,lp,keel"
    )]
    strategies: Vec<Strategy>,
    /// Gas price in base units per gas (default 1 gwei for wei networks; 4 msat, about 1 gwei
    /// at 0.035 BTC/ETH, for msat topologies).
    #[arg(long)]
    gas_price: Option<u128>,
    /// Seconds between rebalancing passes.
    #[arg(long, default_value_t = 1_800.0)]
    interval: f64,
    /// Seconds before an on-chain action lands.
    #[arg(long, default_value_t = 60.0)]
    confirmation_delay: f64,
    /// The most any strategy pays per unit moved (ppm).
    #[arg(long, default_value_t = 5_000)]
    max_fee_ppm: u32,
    /// keel: what a unit of restored outbound flow is worth (ppm).
    #[arg(long, default_value_t = 10_000)]
    value_ppm: u32,
    /// keel: each node's daily budget, shared by its channels, in ppm of its capacity.
    #[arg(long, default_value_t = 20_000)]
    budget_ppm: u32,
    /// keel: also a daily budget per channel, in ppm of its capacity (default: none).
    #[arg(long)]
    channel_budget_ppm: Option<u32>,
    /// keel: share of each node's routing earnings added to its budget, in ppm (carried over).
    #[arg(long, default_value_t = 0)]
    earnings_share_ppm: u32,
    /// keel: nodes do not learn other channels' liquidity from their cycles' outcomes.
    #[arg(long)]
    no_learning: bool,
    /// keel: seconds of history the policy's recent demand is summed over, in whole
    /// intervals (default: one interval).
    #[arg(long)]
    demand_window: Option<f64>,
    /// Each node's wallet at the start, in ppm of its channel capacity.
    #[arg(long, default_value_t = 500_000)]
    wallet_ppm: u32,
    /// keel: withdraw idle surplus above the high threshold to the wallet.
    #[arg(long)]
    withdraw_idle: bool,
    /// Strategies run at once, each on its own thread (default: one per processor). Results do
    /// not depend on it; each strategy's `run time` is then measured while others run.
    #[arg(long)]
    jobs: Option<usize>,
    /// Print the reports as JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Write report.json, report.md and the SVG plots into this directory.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> eyre::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => run(*args),
        Command::LpBench {
            channels,
            seed,
            topology,
            simplex_max,
        } => {
            println!("| channels | nodes | variables | circulation | simplex | moved (both) |");
            println!("|---:|---:|---:|---:|---:|---:|");
            let mut nets = Vec::new();
            for c in channels {
                nets.push(Network::generate(&Generate {
                    nodes: (c / 5).max(3),
                    channels: c,
                    seed,
                    ..Generate::default()
                })?);
            }
            if let Some(dir) = topology {
                nets.push(Network::read_snapshot(&dir)?);
            }
            for net in nets {
                let circ = lp::revive(&net, 0)?;
                let moved: u128 = circ.moves.iter().map(|m| m.2).sum();
                let simplex = if net.channels.len() <= simplex_max {
                    let s = lp::revive_simplex(&net, 0)?;
                    let s_moved: u128 = s.moves.iter().map(|m| m.2).sum();
                    format!(
                        "{:.3} s ({:.3e})",
                        s.solve_time.as_secs_f64(),
                        s_moved as f64
                    )
                } else {
                    "not run".to_string()
                };
                println!(
                    "| {} | {} | {} | {:.4} s | {} | {:.3e} |",
                    net.channels.len(),
                    net.node_count(),
                    circ.variables,
                    circ.solve_time.as_secs_f64(),
                    simplex,
                    moved as f64
                );
            }
            Ok(())
        }
    }
}

/// Runs each strategy on the same network and payments, `jobs` at a time; reports come back
/// in the order of `strategies`.
fn run_all(
    net: &Network,
    payments: &[keel_sim::Payment],
    strategies: &[Strategy],
    cfg: &SimConfig,
    jobs: usize,
    bar: &ProgressBar,
) -> eyre::Result<Vec<keel_sim::Report>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<eyre::Result<keel_sim::Report>>>> = strategies
        .iter()
        .map(|_| std::sync::Mutex::new(None))
        .collect();
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&strategy) = strategies.get(i) else {
                    break;
                };
                let report = keel_sim::run(net, payments, strategy, cfg, &mut |k| bar.inc(k))
                    .map_err(eyre::Report::from);
                *results[i].lock().expect("a worker panicked") = Some(report);
            });
        }
    });
    results
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .expect("a worker panicked")
                .expect("every strategy ran")
        })
        .collect()
}

fn run(a: RunArgs) -> eyre::Result<()> {
    let started = Instant::now();
    let net = match &a.topology {
        Some(dir) => Network::read_snapshot(dir)
            .wrap_err_with(|| format!("reading the topology in {}", dir.display()))?,
        None => Network::generate(&Generate {
            nodes: a.nodes,
            channels: a.channels,
            seed: a.seed,
            ..Generate::default()
        })?,
    };
    if a.strategies.is_empty() {
        bail!("no strategy to run");
    }
    let expected_amount = a
        .expected_amount
        .unwrap_or_else(|| (net.median_capacity() / 10).max(1));
    let gas_price = a
        .gas_price
        .unwrap_or(if net.unit == "msat" { 4 } else { 1_000_000_000 });
    let workload = Workload {
        kind: a.workload,
        payments: a.payments,
        expected_amount,
        rate: a.rate,
        sink_share: a.sink_share,
        sink_bias: a.sink_bias,
        seed: a.seed,
    };
    let payments = workload.generate(&net);
    let cfg = SimConfig {
        interval: a.interval,
        confirmation_delay: a.confirmation_delay,
        gas_price,
        max_fee_ppm: a.max_fee_ppm,
        value_ppm: a.value_ppm,
        budget_ppm: a.budget_ppm,
        channel_budget_ppm: a.channel_budget_ppm,
        earnings_share_ppm: a.earnings_share_ppm,
        learn: !a.no_learning,
        demand_window: a.demand_window.unwrap_or(a.interval),
        wallet_ppm: a.wallet_ppm,
        withdraw_idle: a.withdraw_idle,
        expected_amount,
        ..SimConfig::default()
    };
    let bar = ProgressBar::new((payments.len() * a.strategies.len()) as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} payments ({eta})")
            .wrap_err("progress template")?
            .progress_chars("=> "),
    );
    let jobs = a
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, a.strategies.len());
    bar.set_message(format!("{jobs} at once"));
    let reports = run_all(&net, &payments, &a.strategies, &cfg, jobs, &bar)?;
    bar.finish_and_clear();
    let header = format!(
        "{} nodes, {} channels ({}), {:?} workload, {} payments, E = {} {}, gas price {} {}/gas, seed {}",
        net.node_count(),
        net.channels.len(),
        a.topology
            .as_ref()
            .map_or("generated".to_string(), |d| d.display().to_string()),
        a.workload,
        payments.len(),
        expected_amount,
        net.unit,
        gas_price,
        net.unit,
        a.seed
    );
    let text = format!("{header}\n\n{}", table(&reports));
    if a.json {
        let json = serde_json::json!({ "workload": workload, "config": cfg, "reports": reports });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!("{text}");
        println!("total time {:.1} s", started.elapsed().as_secs_f64());
    }
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir).wrap_err_with(|| format!("creating {}", dir.display()))?;
        let json = serde_json::json!({ "workload": workload, "config": cfg, "reports": reports });
        std::fs::write(
            dir.join("report.json"),
            serde_json::to_string_pretty(&json)?,
        )?;
        std::fs::write(dir.join("report.md"), &text)?;
        let title = format!("{:?} workload, {} nodes", a.workload, net.node_count());
        plot::over_time(&reports, &title, &dir.join("success-over-time.svg"))?;
        plot::by_size(&reports, &title, &dir.join("success-by-size.svg"))?;
    }
    Ok(())
}
